"""Email drafts: made once per step run, moved by guarded UPDATEs that name the status they
leave, so ten approvals at once move one draft once."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from datetime import datetime
from typing import Any

from sqlalchemy import Table, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.action_models import Draft, EmailEvent

DRAFTS: Table = Draft.__table__  # type: ignore[assignment]
EVENTS: Table = EmailEvent.__table__  # type: ignore[assignment]


def status_of(session: Session, *, step_ids: Collection[int]) -> dict[int, str]:
    """step run id -> its draft's status, for those of `step_ids` that have a draft."""
    if not step_ids:
        return {}
    rows = session.execute(
        select(DRAFTS.c.step_run_id, DRAFTS.c.status).where(
            DRAFTS.c.step_run_id.in_(sorted(set(step_ids)))
        )
    )
    return {r.step_run_id: r.status for r in rows}


def for_step(session: Session, *, step_run_id: int) -> Draft | None:
    return session.scalars(select(Draft).where(Draft.step_run_id == step_run_id)).one_or_none()


def get(session: Session, *, draft_id: int) -> Draft | None:
    return session.get(Draft, draft_id)


def create(session: Session, *, values: Mapping[str, Any]) -> Draft:
    """The step's draft: inserted once (a repeated run finds the first one)."""
    dialect = postgresql if session.get_bind().dialect.name == "postgresql" else sqlite
    session.execute(
        dialect.insert(DRAFTS)
        .values(**values)
        .on_conflict_do_nothing(index_elements=["step_run_id"])
    )
    found = for_step(session, step_run_id=values["step_run_id"])
    assert found is not None
    return found


def move(
    session: Session,
    *,
    draft_id: int,
    from_status: str | Collection[str],
    now: datetime,
    **values: Any,
) -> bool:
    """Guarded transition: only from `from_status`; True when this call moved it."""
    statuses = [from_status] if isinstance(from_status, str) else sorted(from_status)
    result = session.execute(
        update(DRAFTS)
        .where(DRAFTS.c.id == draft_id, DRAFTS.c.status.in_(statuses))
        .values(updated_at=now, **values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def withdraw(session: Session, *, enrollment_ids: Collection[int], now: datetime) -> list[int]:
    """Pending drafts of exited enrollments become `withdrawn`; their ids."""
    if not enrollment_ids:
        return []
    return list(
        session.scalars(
            update(DRAFTS)
            .where(
                DRAFTS.c.enrollment_id.in_(sorted(set(enrollment_ids))),
                DRAFTS.c.status == "pending",
            )
            .values(status="withdrawn", updated_at=now, decided_at=now, decided_by="exit")
            .returning(DRAFTS.c.id)
        )
    )


def unknown_for_steps(session: Session, *, step_ids: Collection[int], now: datetime) -> list[int]:
    """Drafts being sent by steps found `sending` after a crash: `unknown` too; their ids."""
    if not step_ids:
        return []
    return list(
        session.scalars(
            update(DRAFTS)
            .where(
                DRAFTS.c.step_run_id.in_(sorted(set(step_ids))),
                DRAFTS.c.status == "approved",
            )
            .values(status="unknown", updated_at=now, error="the worker stopped mid-send")
            .returning(DRAFTS.c.id)
        )
    )


def due_to_expire(session: Session, *, now: datetime, limit: int = 500) -> list[Draft]:
    return list(
        session.scalars(
            select(Draft)
            .where(Draft.status == "pending", Draft.expires_at <= now)
            .order_by(Draft.expires_at)
            .limit(limit)
        )
    )


def listed(
    session: Session,
    *,
    statuses: Collection[str] | None = None,
    workflow_id: int | None = None,
    limit: int = 100,
) -> list[Draft]:
    stmt = select(Draft).order_by(Draft.id.desc()).limit(limit)
    if statuses:
        stmt = stmt.where(Draft.status.in_(sorted(statuses)))
    if workflow_id is not None:
        stmt = stmt.where(Draft.workflow_id == workflow_id)
    return list(session.scalars(stmt))


def add_event(
    session: Session, *, draft_id: int, kind: str, at: datetime, detail: Mapping[str, Any]
) -> None:
    session.execute(
        EVENTS.insert().values(draft_id=draft_id, kind=kind, at=at, detail=dict(detail))
    )
