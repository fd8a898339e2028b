"""Email drafts: made once per step run, moved by guarded UPDATEs that name the status they
leave, so ten approvals at once move one draft once; and the bookkeeping of their Slack
approval messages (engine.draft_messages), claimed and stored by guarded UPDATEs too."""

from __future__ import annotations

from collections.abc import Collection, Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Table, and_, case, func, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from storage.action_models import Draft, EmailEvent
from storage.models import Account, Contact, User
from storage.workflow_models import Workflow

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


# -- Slack approval messages ------------------------------------------------------------------
# `slack_status` is the draft status the message shows, or one of these marks (never a draft
# status, so a marked draft always differs from what its message should show):
SLACK_CLAIMED = "~claimed"  # a sync pass posts or updates it, since `updated_at` (a lease)
SLACK_RETRY = "~retry"  # sync it at the next pass (a pass cut short, an edit to show)
SLACK_ERROR = "~error"  # Slack refused: tried again once `updated_at` is old enough


@dataclass(frozen=True)
class SlackWork:
    """A draft whose message is due: posted (or looked for) or brought up to date."""

    id: int
    approval_channel: str | None
    seen: str | None  # `slack_status` as read: the claim is guarded by it


def _slack_ready(now: datetime, lease: timedelta, backoff: timedelta) -> ColumnElement[bool]:
    mark = DRAFTS.c.slack_status
    return or_(
        mark.is_(None),
        mark.not_in([SLACK_CLAIMED, SLACK_ERROR]),
        and_(mark == SLACK_CLAIMED, DRAFTS.c.updated_at <= now - lease),
        and_(mark == SLACK_ERROR, DRAFTS.c.updated_at <= now - backoff),
    )


def _slack_due(post: bool) -> ColumnElement[bool]:
    if post:
        # Pending drafts without a message, and any draft a pass may have posted before it
        # died (marked, no ts): its message is looked for before anything is posted.
        return and_(
            DRAFTS.c.slack_ts.is_(None),
            DRAFTS.c.approval_channel.is_not(None),
            or_(DRAFTS.c.status == "pending", DRAFTS.c.slack_status.is_not(None)),
        )
    return and_(
        DRAFTS.c.slack_ts.is_not(None),
        or_(DRAFTS.c.slack_status.is_(None), DRAFTS.c.slack_status != DRAFTS.c.status),
    )


def slack_due(
    session: Session,
    *,
    post: bool,
    now: datetime,
    lease: timedelta,
    backoff: timedelta,
    limit: int,
) -> list[SlackWork]:
    """Drafts whose message is to be posted (`post`) or updated, oldest first; a claim not
    older than `lease` and a refusal not older than `backoff` are left alone."""
    rows = session.execute(
        select(DRAFTS.c.id, DRAFTS.c.approval_channel, DRAFTS.c.slack_status)
        .where(_slack_due(post), _slack_ready(now, lease, backoff))
        .order_by(DRAFTS.c.id)
        .limit(limit)
    )
    return [SlackWork(r.id, r.approval_channel, r.slack_status) for r in rows]


def claim_slack(
    session: Session,
    *,
    work: SlackWork,
    post: bool,
    now: datetime,
    lease: timedelta,
    backoff: timedelta,
) -> bool:
    """Take a draft's message for this pass: only if it is still due and still marked as it
    was read, so of several passes at once one takes it. True when this call took it."""
    seen = DRAFTS.c.slack_status
    result = session.execute(
        update(DRAFTS)
        .where(
            DRAFTS.c.id == work.id,
            seen.is_(None) if work.seen is None else seen == work.seen,
            _slack_due(post),
            _slack_ready(now, lease, backoff),
        )
        .values(slack_status=SLACK_CLAIMED, updated_at=now)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def store_posted(session: Session, *, draft_id: int, channel: str, ts: str, shown: str) -> bool:
    """The claimed draft's message is at (`channel`, `ts`) and shows `shown`; if an edit
    asked for a new look meanwhile (SLACK_RETRY), the ts is kept and the mark too."""
    result = session.execute(
        update(DRAFTS)
        .where(
            DRAFTS.c.id == draft_id,
            DRAFTS.c.slack_ts.is_(None),
            DRAFTS.c.slack_status.in_([SLACK_CLAIMED, SLACK_RETRY]),
        )
        .values(
            slack_channel=channel,
            slack_ts=ts,
            slack_status=case((DRAFTS.c.slack_status == SLACK_CLAIMED, shown), else_=SLACK_RETRY),
        )
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def store_shown(session: Session, *, draft_id: int, ts: str, shown: str) -> bool:
    """The claimed draft's message (at `ts`) now shows `shown`."""
    result = session.execute(
        update(DRAFTS)
        .where(
            DRAFTS.c.id == draft_id,
            DRAFTS.c.slack_ts == ts,
            DRAFTS.c.slack_status == SLACK_CLAIMED,
        )
        .values(slack_status=shown)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def release_slack(
    session: Session, *, draft_id: int, mark: str | None, now: datetime, forget: bool = False
) -> bool:
    """Give a claimed draft's message back: SLACK_RETRY (next pass), SLACK_ERROR (after the
    back-off) or None (nothing to show: no message, none needed); `forget` drops its ts and
    channel too (the message is gone: a pending draft is posted anew)."""
    values: dict[str, Any] = {"slack_status": mark, "updated_at": now}
    if forget:
        values |= {"slack_ts": None, "slack_channel": None}
    result = session.execute(
        update(DRAFTS)
        .where(DRAFTS.c.id == draft_id, DRAFTS.c.slack_status == SLACK_CLAIMED)
        .values(**values)
    )
    return bool(result.rowcount)  # type: ignore[attr-defined]


def resync_slack(session: Session, *, draft_id: int) -> None:
    """The draft changed without changing status (an edit): its message is redrawn at the
    next pass (one being posted right now keeps its ts and is redrawn after)."""
    session.execute(
        update(DRAFTS)
        .where(
            DRAFTS.c.id == draft_id,
            or_(DRAFTS.c.slack_ts.is_not(None), DRAFTS.c.slack_status == SLACK_CLAIMED),
        )
        .values(slack_status=SLACK_RETRY)
    )


@dataclass(frozen=True)
class MessageRow:
    """A draft with what its message shows besides: the workflow's name, the record's owner."""

    draft: Draft
    workflow_name: str
    owner_name: str | None
    owner_email: str | None
    owner_slack_id: str | None


def for_message(session: Session, *, draft_id: int) -> MessageRow | None:
    """The draft (read afresh) with its workflow's name and its record's owner."""
    owner_id = func.coalesce(Account.owner_id, Contact.owner_id)
    row = session.execute(
        select(Draft, Workflow.name, User.name, User.email, User.slack_id)
        .join(Workflow, Workflow.id == Draft.workflow_id)
        .outerjoin(Account, and_(Draft.object_type == "account", Account.id == Draft.object_id))
        .outerjoin(Contact, and_(Draft.object_type == "contact", Contact.id == Draft.object_id))
        .outerjoin(User, User.id == owner_id)
        .where(Draft.id == draft_id)
        .execution_options(populate_existing=True)
    ).one_or_none()
    if row is None:
        return None
    draft, workflow_name, name, email, slack_id = row
    return MessageRow(draft, workflow_name, name, email, slack_id)
