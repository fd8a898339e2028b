"""Erasing one contact's data: its events, signals, score history, memberships, the processed
outbox rows that carried its values, and what its enrollments kept of them."""

from __future__ import annotations

from collections.abc import Collection
from datetime import datetime
from typing import Any

from sqlalchemy import ColumnElement, CursorResult, Executable, delete, or_, select, update
from sqlalchemy.orm import Session

from storage.models import Contact, Event, HealthScore, OutboxRow, Segment, SegmentMember, Signal
from storage.workflow_models import Enrollment, EnrollmentLog


def _count(session: Session, stmt: Executable) -> int:
    result: CursorResult[Any] = session.execute(  # type: ignore[assignment]
        stmt, execution_options={"synchronize_session": False}
    )
    return result.rowcount or 0


def _names_contact(detail: Any, contact_id: int) -> ColumnElement[bool]:
    # NUMERIC, not INTEGER: PostgreSQL's INTEGER is 32 bits and record ids are BIGINT.
    return detail.as_numeric(20, 0) == contact_id


def contact(session: Session, *, external_id: str, lock: bool = False) -> Contact | None:
    """The contact of this external id; with `lock`, its row stays locked (FOR UPDATE) until
    the transaction ends, so an evaluation or ingestion of it runs before or after, not during."""
    stmt = select(Contact).where(Contact.external_id == external_id)
    if lock:
        stmt = stmt.with_for_update()
    return session.scalar(stmt)


def event_accounts(session: Session, *, contact_id: int) -> set[int]:
    """The accounts the contact's events were stored under (its event signals' other owners)."""
    rows = session.scalars(
        select(Event.account_id)
        .where(Event.contact_id == contact_id, Event.account_id.is_not(None))
        .distinct()
    )
    return {a for a in rows if a is not None}


def delete_events(session: Session, *, contact_id: int) -> int:
    return _count(session, delete(Event).where(Event.contact_id == contact_id))


def delete_signals(session: Session, *, contact_id: int, account_ids: Collection[int]) -> int:
    """Delete the contact's signals, and its accounts' event signals for its events."""
    wanted: ColumnElement[bool] = (Signal.object_type == "contact") & (
        Signal.object_id == contact_id
    )
    if account_ids:
        of_account = (
            (Signal.object_type == "account")
            & Signal.object_id.in_(sorted(account_ids))
            & (Signal.kind == "event")
            & _names_contact(Signal.detail["contact_id"], contact_id)
        )
        wanted = or_(wanted, of_account)
    return _count(session, delete(Signal).where(wanted))


def delete_health_scores(session: Session, *, contact_id: int) -> int:
    return _count(
        session,
        delete(HealthScore).where(
            HealthScore.object_type == "contact", HealthScore.object_id == contact_id
        ),
    )


def delete_memberships(session: Session, *, contact_id: int) -> int:
    """Take the contact out of its segments, silently (no leave signal)."""
    contact_segments = select(Segment.id).where(Segment.object_type == "contact")
    return _count(
        session,
        delete(SegmentMember).where(
            SegmentMember.record_id == contact_id, SegmentMember.segment_id.in_(contact_segments)
        ),
    )


def delete_processed_outbox(session: Session, *, contact_id: int) -> int:
    """Delete the contact's processed change rows (their `changes` hold its values); pending
    ones are left for the worker, which reads the record as it is now."""
    return _count(
        session,
        delete(OutboxRow).where(
            OutboxRow.object_type == "contact",
            OutboxRow.object_id == contact_id,
            OutboxRow.processed_at.is_not(None),
        ),
    )


def clear_enrollments(session: Session, *, contact_id: int, account_ids: Collection[int]) -> int:
    """Empty what enrollments kept of the contact: the trigger and timeline details of its own
    enrollments, and the trigger of its accounts' enrollments one of its events started.
    The rows stay, so workflow counts do not move; returns how many enrollments were cleared."""
    own = select(Enrollment.id).where(
        Enrollment.object_type == "contact", Enrollment.object_id == contact_id
    )
    _count(
        session,
        update(EnrollmentLog).where(EnrollmentLog.enrollment_id.in_(own)).values(detail={}),
    )
    cleared = _count(
        session,
        update(Enrollment)
        .where(Enrollment.object_type == "contact", Enrollment.object_id == contact_id)
        .values(trigger={}),
    )
    if account_ids:
        cleared += _count(
            session,
            update(Enrollment)
            .where(
                Enrollment.object_type == "account",
                Enrollment.object_id.in_(sorted(account_ids)),
                _names_contact(Enrollment.trigger[("detail", "contact_id")], contact_id),
            )
            .values(trigger={}),
        )
    return cleared


def anonymize(session: Session, *, contact: Contact, now: datetime) -> None:
    """Blank the contact's identity and traits; the row (id, stage, score, account) stays."""
    contact.external_id = f"forgotten-{contact.id}"
    contact.name = contact.email = contact.first_name = contact.last_name = None
    contact.traits, contact.trait_times = {}, {}
    contact.updated_at = contact.forgotten_at = now
    session.flush()
