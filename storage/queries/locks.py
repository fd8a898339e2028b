"""Transaction-scoped advisory locks on segments, ordering record evaluations (shared)
against set-wise refreshes and rule changes (exclusive). Records are locked by their rows.

PostgreSQL only: an SQLite transaction already holds the database's one write lock
(BEGIN IMMEDIATE), which serializes the same work. Keys live in one bigint space:
the namespace in the top bits, the row id below (ids stay under 2**48).
"""

from __future__ import annotations

from sqlalchemy import text
from sqlalchemy.orm import Session

SEGMENT = 1
_SHIFT = 48


def key(namespace: int, row_id: int) -> int:
    return (namespace << _SHIFT) | row_id


def _postgres(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def segment(session: Session, segment_id: int) -> None:
    """Wait for and hold one segment's lock, exclusively, until the transaction ends."""
    if _postgres(session):
        session.execute(text("SELECT pg_advisory_xact_lock(:k)"), {"k": key(SEGMENT, segment_id)})


def try_segment(session: Session, segment_id: int) -> bool:
    """Take one segment's lock if nobody holds it; False at once otherwise."""
    if not _postgres(session):
        return True
    lock = key(SEGMENT, segment_id)
    return bool(session.scalar(text("SELECT pg_try_advisory_xact_lock(:k)"), {"k": lock}))


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
