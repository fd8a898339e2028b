"""Step runs: inserted when due to be scheduled, dispatched and claimed by guarded UPDATEs,
finished once. Every transition names the status it leaves, so a repeated message, a second
scheduler or a worker that lost its lease changes nothing."""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import Row, Table, and_, insert, or_, select, text, update
from sqlalchemy.orm import Session

from storage.workflow_models import Enrollment, StepRun

STEPS: Table = StepRun.__table__  # type: ignore[assignment]
ENROLLMENTS: Table = Enrollment.__table__  # type: ignore[assignment]


def add(session: Session, *, rows: Sequence[dict[str, Any]]) -> list[tuple[int, str]]:
    """Insert step runs; returns (id, status) of each, in the order given."""
    if not rows:
        return []
    result = session.execute(
        insert(STEPS).returning(STEPS.c.id, STEPS.c.status, sort_by_parameter_order=True),
        list(rows),
    )
    return [(r.id, r.status) for r in result]


def dispatch_due(session: Session, *, now: datetime, lease: timedelta, limit: int) -> list[int]:
    """Move up to `limit` due scheduled rows to `queued` with a lease and return their ids.
    On PostgreSQL the rows are picked FOR UPDATE SKIP LOCKED, so schedulers running at once
    take different rows; the status guard makes a row dispatched once either way."""
    pick = (
        select(STEPS.c.id)
        .where(STEPS.c.status == "scheduled", STEPS.c.due_at <= now)
        .order_by(STEPS.c.due_at)
        .limit(limit)
    )
    if session.get_bind().dialect.name == "postgresql":
        pick = pick.with_for_update(skip_locked=True)
    return list(
        session.scalars(
            update(STEPS)
            .where(STEPS.c.id.in_(pick.scalar_subquery()), STEPS.c.status == "scheduled")
            .values(status="queued", lease_until=now + lease)
            .returning(STEPS.c.id)
        )
    )


def claim(session: Session, *, step_id: int, now: datetime, lease: timedelta) -> Row[Any] | None:
    """queued (or scheduled and due) -> running with a fresh lease; the row, or None when
    another claim got it first or it is not runnable (done, cancelled, held, not yet due)."""
    return session.execute(
        update(STEPS)
        .where(
            STEPS.c.id == step_id,
            or_(
                STEPS.c.status == "queued",
                and_(STEPS.c.status == "scheduled", STEPS.c.due_at <= now),
            ),
        )
        .values(status="running", lease_until=now + lease, claims=STEPS.c.claims + 1)
        .returning(*STEPS.c)
    ).one_or_none()


def claim_many(
    session: Session, *, step_ids: Collection[int], now: datetime, lease: timedelta
) -> list[Row[Any]]:
    """`claim` for several ids in one statement: the rows this call moved, by id."""
    if not step_ids:
        return []
    rows = session.execute(
        update(STEPS)
        .where(
            STEPS.c.id.in_(sorted(set(step_ids))),
            or_(
                STEPS.c.status == "queued",
                and_(STEPS.c.status == "scheduled", STEPS.c.due_at <= now),
            ),
        )
        .values(status="running", lease_until=now + lease, claims=STEPS.c.claims + 1)
        .returning(*STEPS.c)
    ).all()
    return sorted(rows, key=lambda r: r.id)


def move(
    session: Session,
    *,
    step_id: int,
    from_status: str | Collection[str],
    at_attempt: int | None = None,
    **values: Any,
) -> bool:
    """Guarded transition: only from `from_status` (and at attempt `at_attempt`, if given)."""
    statuses = [from_status] if isinstance(from_status, str) else sorted(from_status)
    stmt = update(STEPS).where(STEPS.c.id == step_id, STEPS.c.status.in_(statuses))
    if at_attempt is not None:
        stmt = stmt.where(STEPS.c.attempt == at_attempt)
    return bool(session.execute(stmt.values(**values)).rowcount)  # type: ignore[attr-defined]


_FINISH_DONE = text(
    """
    UPDATE step_runs AS s
    SET status = 'done', result = v.result, error = NULL, lease_until = NULL,
        finished_at = :now
    FROM jsonb_to_recordset(CAST(:rows AS jsonb))
        AS v(id bigint, cur text, attempt int, result jsonb)
    WHERE s.id = v.id AND s.status = v.cur AND s.attempt = v.attempt
    RETURNING s.id
    """
)


def finish_done(
    session: Session, *, rows: Sequence[tuple[int, str, int, dict[str, Any]]], now: datetime
) -> set[int]:
    """Mark steps done with their results, each guarded by (status, attempt) as `move` is:
    (id, current status, attempt, result). One statement on PostgreSQL. Returns the ids moved."""
    if not rows:
        return set()
    if session.get_bind().dialect.name != "postgresql":
        return {
            step_id
            for step_id, current, attempt, result in rows
            if move(
                session,
                step_id=step_id,
                from_status=current,
                at_attempt=attempt,
                status="done",
                result=result,
                error=None,
                lease_until=None,
                finished_at=now,
            )
        }
    data = [{"id": i, "cur": c, "attempt": a, "result": r} for i, c, a, r in rows]
    return set(session.scalars(_FINISH_DONE, {"rows": json.dumps(data), "now": now}))


def recover(
    session: Session, *, now: datetime, lease: timedelta, limit: int = 1000, queued: bool = True
) -> list[int]:
    """Rows whose lease ran out: a running one's worker died (back to queued: run again with
    the same key) and, with `queued`, a queued one's message was lost (re-leased and requested
    again). The ids to enqueue again. A `sending` one is left to `mark_unknown`."""
    statuses = ["queued", "running"] if queued else ["running"]
    expired = select(STEPS.c.id).where(STEPS.c.status.in_(statuses), STEPS.c.lease_until < now)
    expired = expired.order_by(STEPS.c.lease_until).limit(limit)
    if session.get_bind().dialect.name == "postgresql":
        expired = expired.with_for_update(skip_locked=True)
    return list(
        session.scalars(
            update(STEPS)
            .where(
                STEPS.c.id.in_(expired.scalar_subquery()),
                STEPS.c.status.in_(statuses),
                STEPS.c.lease_until < now,
            )
            .values(status="queued", lease_until=now + lease)
            .returning(STEPS.c.id)
        )
    )


def mark_unknown(session: Session, *, now: datetime) -> list[Row[Any]]:
    """`sending` rows past their lease: the worker died between committing `sending` and
    recording the provider's answer. They become `unknown` (never resent by themselves)."""
    return list(
        session.execute(
            update(STEPS)
            .where(STEPS.c.status == "sending", STEPS.c.lease_until < now)
            .values(status="unknown", lease_until=None, finished_at=now)
            .returning(STEPS.c.id, STEPS.c.enrollment_id, STEPS.c.step_index)
        )
    )


def of_enrollments(session: Session, *, enrollment_ids: Collection[int]) -> list[StepRun]:
    if not enrollment_ids:
        return []
    return list(
        session.scalars(
            select(StepRun)
            .where(StepRun.enrollment_id.in_(sorted(enrollment_ids)))
            .order_by(StepRun.enrollment_id, StepRun.step_index)
        )
    )


def held_of_workflow(session: Session, *, workflow_id: int, status: str) -> list[Row[Any]]:
    """Rows of this workflow's active enrollments held in `status` (held | paused)."""
    return list(
        session.execute(
            select(STEPS.c.id, STEPS.c.enrollment_id, STEPS.c.step_index, STEPS.c.due_at)
            .join(ENROLLMENTS, ENROLLMENTS.c.id == STEPS.c.enrollment_id)
            .where(
                ENROLLMENTS.c.workflow_id == workflow_id,
                ENROLLMENTS.c.status == "active",
                STEPS.c.status == status,
            )
            .order_by(STEPS.c.id)
        )
    )


def unpause(session: Session) -> int:
    """paused -> scheduled, every one; returns how many."""
    result = session.execute(
        update(STEPS).where(STEPS.c.status == "paused").values(status="scheduled")
    )
    return int(result.rowcount)  # type: ignore[attr-defined]


def release_held(session: Session, *, workflow_id: int) -> list[Row[Any]]:
    """held -> scheduled for this workflow's active enrollments (it is live again); returns
    (enrollment_id, step_index) of each."""
    active = select(ENROLLMENTS.c.id).where(
        ENROLLMENTS.c.workflow_id == workflow_id, ENROLLMENTS.c.status == "active"
    )
    return list(
        session.execute(
            update(STEPS)
            .where(STEPS.c.status == "held", STEPS.c.enrollment_id.in_(active.scalar_subquery()))
            .values(status="scheduled")
            .returning(STEPS.c.enrollment_id, STEPS.c.step_index)
        )
    )


def release_attention(
    session: Session,
    *,
    now: datetime,
    needs: str | None = None,
    sender: str | None = None,
    enrollment_ids: Collection[int] | None = None,
) -> list[Row[Any]]:
    """attention -> scheduled (due now) for the steps held for `needs` (gmail: a connection
    of `sender`; data: a value the record lacked), of these enrollments if given; returns
    (enrollment_id, step_index) of each."""
    stmt = update(STEPS).where(STEPS.c.status == "attention")
    if needs is not None:
        stmt = stmt.where(STEPS.c.result["needs"].as_string() == needs)
    if sender is not None:
        stmt = stmt.where(STEPS.c.result["sender"].as_string() == sender.lower())
    if enrollment_ids is not None:
        if not enrollment_ids:
            return []
        stmt = stmt.where(STEPS.c.enrollment_id.in_(sorted(set(enrollment_ids))))
    return list(
        session.execute(
            stmt.values(status="scheduled", due_at=now, error=None, result=None).returning(
                STEPS.c.enrollment_id, STEPS.c.step_index
            )
        )
    )
