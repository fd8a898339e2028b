"""Transaction-scoped advisory locks on segments, ordering record evaluations (shared)
against set-wise refreshes and rule changes (exclusive). Records are locked by their rows.

PostgreSQL only: an SQLite transaction already holds the database's one write lock
(BEGIN IMMEDIATE), which serializes the same work. Keys live in one bigint space:
the namespace in the top bits, the row id below (ids stay under 2**48).
"""

from __future__ import annotations

from functools import lru_cache

from sqlalchemy import BigInteger, ColumnElement, func, literal, select, text
from sqlalchemy.orm import Session

from storage.models import Segment

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


@lru_cache(maxsize=1)  # built once: constructing it costs more than running it
def all_segments_shared_clause() -> ColumnElement[bool]:
    """A condition (always true) that holds every segment's lock shared, in id order, when a
    statement evaluates it (PostgreSQL, as a one-time filter before the statement reads any
    row): a writer adds it to take the locks in its own round trip. Statements after it read
    the rules the locks protect."""
    ids = select(Segment.id).order_by(Segment.id).subquery("s")
    key_of = literal(key(SEGMENT, 0), BigInteger).op("|")(ids.c.id)
    return select(func.count(func.pg_advisory_xact_lock_shared(key_of))).scalar_subquery() >= 0
