"""Decisions on email drafts, as guarded state transitions: approve, edit, discard, expire,
mark sent, send again. The CLI (`workflowbot drafts`) and Slack's buttons call these.

A decision moves the draft (`pending -> approved`, ...) and its step (`waiting -> scheduled`,
due now) in one transaction, each by an UPDATE naming the status it leaves: of ten
approvals at once one moves the draft and the other nine are told what happened. The step
then runs again (`scheduled`, due now: the scheduler dispatches it within a tick, or the caller
enqueues the returned step id at once) and that run sends, skips or stops as the draft now
says.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from engine import metrics
from engine.email import message
from storage.action_models import Draft
from storage.queries import drafts as rows
from storage.queries import steps as step_rows
from storage.queries.enrollments import log as log_lines

DECIDED = {
    "approved": "approved",
    "discarded": "discarded",
    "expired": "expired",
    "withdrawn": "withdrawn (the enrollment exited)",
    "sent": "sent",
    "failed": "failed",
    "unknown": "possibly sent (unknown)",
    "suppressed": "not sent: every recipient is suppressed",
}


class DraftError(Exception):
    """The decision cannot be taken; the message says why (and what happened instead)."""


@dataclass(frozen=True)
class Decision:
    draft: Draft
    step_id: int  # due now: the step runs with the decision (enqueue it to skip the wait)


def _get(session: Session, draft_id: int) -> Draft:
    draft = rows.get(session, draft_id=draft_id)
    if draft is None:
        raise DraftError(f"draft #{draft_id} does not exist")
    return draft


def _refusal(draft: Draft, wanted: str) -> DraftError:
    state = DECIDED.get(draft.status, draft.status)
    who = f" by {draft.decided_by}" if draft.decided_by else ""
    when = f" at {draft.decided_at:%Y-%m-%d %H:%M} UTC" if draft.decided_at else ""
    return DraftError(f"draft #{draft.id} cannot be {wanted}: it was already {state}{who}{when}")


@dataclass(frozen=True)
class _Move:
    """One decision: from which draft (and step) statuses, to which draft status."""

    from_status: tuple[str, ...]
    step_from: tuple[str, ...]
    status: str
    wanted: str  # "cannot be <wanted>"
    log: str  # "draft #N <log> by WHO"
    sent: bool = False  # a person says it went out


_APPROVE = _Move(("pending",), ("waiting",), "approved", "approved", "approved")
_DISCARD = _Move(("pending",), ("waiting",), "discarded", "discarded", "discarded")
_EXPIRE = _Move(("pending",), ("waiting",), "expired", "expired", "expired: nobody decided in time")
_MARK_SENT = _Move(
    ("unknown", "failed"), ("unknown", "attention"), "sent", "marked sent", "marked sent", True
)
_SEND_AGAIN = _Move(
    ("unknown", "failed"), ("unknown", "attention"), "approved", "sent again", "sent again"
)


def _decide(session: Session, draft_id: int, move: _Move, *, by: str, now: datetime) -> Decision:
    draft = _get(session, draft_id)
    extra: dict[str, object] = {"provider_id": "marked", "sent_at": now} if move.sent else {}
    if not rows.move(
        session,
        draft_id=draft_id,
        from_status=move.from_status,
        now=now,
        status=move.status,
        decided_by=by,
        decided_at=now,
        **extra,
    ):
        session.refresh(draft)
        raise _refusal(draft, move.wanted)
    metrics.draft_decided(move.wanted, draft.created_at if move is _APPROVE else None, now)
    # The step goes back to work; a step that is not where the draft says (cancelled by an
    # exit in between) stays as it is and the run, if any, sees the draft's status.
    step_rows.move(
        session,
        step_id=draft.step_run_id,
        from_status=move.step_from,
        status="scheduled",
        lease_until=None,
        due_at=now,
        error=None,
    )
    _log(session, draft, f"draft #{draft.id} {move.log} by {by}", by, now)
    session.refresh(draft)
    return Decision(draft, draft.step_run_id)


def _log(session: Session, draft: Draft, message: str, by: str, now: datetime) -> None:
    log_lines(
        session,
        rows=[
            {
                "enrollment_id": draft.enrollment_id,
                "at": now,
                "kind": "draft",
                "step_index": draft.step_index,
                "message": message,
                "detail": {"draft": draft.id, "by": by},
            }
        ],
    )


def approve(session: Session, draft_id: int, *, by: str, now: datetime) -> Decision:
    """pending -> approved: the step sends it (once, however many approve at once)."""
    return _decide(session, draft_id, _APPROVE, by=by, now=now)


def discard(session: Session, draft_id: int, *, by: str, now: datetime) -> Decision:
    """pending -> discarded: the step is skipped and the workflow goes on."""
    return _decide(session, draft_id, _DISCARD, by=by, now=now)


def mark_sent(session: Session, draft_id: int, *, by: str, now: datetime) -> Decision:
    """unknown | failed -> sent, on a person's word (it did go out): the workflow goes on."""
    return _decide(session, draft_id, _MARK_SENT, by=by, now=now)


def send_again(session: Session, draft_id: int, *, by: str, now: datetime) -> Decision:
    """unknown | failed -> approved: a person asks for it to be sent (again). A Gmail draft
    is first looked up in Sent, so a copy that did go out is not sent twice."""
    return _decide(session, draft_id, _SEND_AGAIN, by=by, now=now)


def edit_values(
    *,
    to: Sequence[str] | None = None,
    cc: Sequence[str] | None = None,
    subject: str | None = None,
    body: str | None = None,
) -> dict[str, object]:
    """The columns an edit sets (None: unchanged), checked; DraftError names the field. No
    database: a Slack modal checks its fields with this before it answers."""
    values: dict[str, object] = {"edited": True}
    try:
        if to is not None:
            if not [a for a in to if a.strip()]:
                raise DraftError("to: at least one recipient is needed")
            values["to"] = [message.check_address("to", a) for a in to if a.strip()]
        if cc is not None:
            values["cc"] = [message.check_address("cc", a) for a in cc if a.strip()]
    except message.HeaderError as exc:
        raise DraftError(str(exc)) from None
    if subject is not None:
        if not subject.strip():
            raise DraftError("subject: cannot be empty")
        if "\r" in subject or "\n" in subject:
            raise DraftError("subject: must be one line")
        values["subject"] = subject.strip()
    if body is not None:
        if not body.strip():
            raise DraftError("body: cannot be empty")
        values["body"] = body
    return values


def edit(
    session: Session,
    draft_id: int,
    *,
    by: str,
    now: datetime,
    to: Sequence[str] | None = None,
    cc: Sequence[str] | None = None,
    subject: str | None = None,
    body: str | None = None,
) -> Draft:
    """Change a pending draft's recipients, subject or body (it stays pending)."""
    draft = _get(session, draft_id)
    values = edit_values(to=to, cc=cc, subject=subject, body=body)
    if not rows.move(session, draft_id=draft_id, from_status="pending", now=now, **values):
        session.refresh(draft)
        raise _refusal(draft, "edited")
    _log(session, draft, f"draft #{draft.id} edited by {by}", by, now)
    session.refresh(draft)
    return draft


def expire_due(session: Session, *, now: datetime) -> list[int]:
    """Pending drafts past `approval_timeout` expire (a skip); the step ids now due."""
    steps: list[int] = []
    for draft in rows.due_to_expire(session, now=now):
        try:
            steps.append(_decide(session, draft.id, _EXPIRE, by="expiry", now=now).step_id)
        except DraftError:
            continue  # decided meanwhile
    return steps
