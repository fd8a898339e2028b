"""Transaction-scoped advisory locks on segments, ordering record evaluations (shared)
against set-wise refreshes and rule changes (exclusive). Records are locked by their rows.

PostgreSQL only: an SQLite transaction already holds the database's one write lock
(BEGIN IMMEDIATE), which serializes the same work. Keys live in one bigint space:
the namespace in the top bits, the row id below (ids stay under 2**48).
"""

from __future__ import annotations

from collections.abc import Iterable

from sqlalchemy import text
from sqlalchemy.orm import Session

SEGMENT = 1
_SHIFT = 48


def key(namespace: int, row_id: int) -> int:
    return (namespace << _SHIFT) | row_id


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def take(session: Session, keys: Iterable[int], *, shared: bool = False) -> None:
    """Wait for and hold these locks until the transaction ends, taken in key order so two
    callers never wait on each other in a cycle."""
    ordered = sorted(set(keys))
    if not ordered or not _postgres(session):
        return
    function = "pg_advisory_xact_lock_shared" if shared else "pg_advisory_xact_lock"
    session.execute(
        text(f"SELECT count({function}(k)) FROM unnest(CAST(:keys AS bigint[])) AS k"),
        {"keys": ordered},
    )


def try_exclusive(session: Session, lock_key: int) -> bool:
    """Take one lock if nobody holds it; False at once otherwise."""
    if not _postgres(session):
        return True
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock_key}))


def all_segments_shared(session: Session) -> None:
    """Hold every segment's lock shared (in id order), in one statement."""
    if _postgres(session):
        session.execute(
            text(
                "SELECT count(pg_advisory_xact_lock_shared((CAST(:ns AS bigint) << :shift) | id))"
                " FROM (SELECT id FROM segments ORDER BY id) AS s"
            ),
            {"ns": SEGMENT, "shift": _SHIFT},
        )
