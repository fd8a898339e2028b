"""Slack forms (storage.action_models.SlackForm): kept by id, read back only by the kind and
the user that made them, so an id seen elsewhere opens nothing."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import delete
from sqlalchemy.orm import Session

from storage.action_models import SlackForm


def put(session: Session, *, kind: str, user: str, data: dict[str, Any], now: datetime) -> int:
    """Keep `data`; its id."""
    form = SlackForm(kind=kind, slack_user=user, data=data, created_at=now, updated_at=now)
    session.add(form)
    session.flush()
    return form.id


def get(
    session: Session, form_id: int, *, kind: str, user: str, lock: bool = False
) -> dict[str, Any] | None:
    """The form's data, or None when there is none of this kind by this user (purged, or
    someone else's). `lock` holds the row until the transaction ends (on PostgreSQL): a
    second request acting on the same form waits, then sees what the first one wrote."""
    form = session.get(SlackForm, form_id, with_for_update=lock)
    if form is None or form.kind != kind or form.slack_user != user:
        return None
    return dict(form.data)


def replace(
    session: Session, form_id: int, *, kind: str, user: str, data: dict[str, Any], now: datetime
) -> bool:
    """Store `data` in place of the form's; False when there is no such form."""
    form = session.get(SlackForm, form_id)
    if form is None or form.kind != kind or form.slack_user != user:
        return False
    form.data, form.updated_at = data, now
    return True


def purge(session: Session, *, before: datetime) -> int:
    """Forget forms untouched since `before`; how many."""
    result = session.execute(delete(SlackForm).where(SlackForm.updated_at < before))
    return int(result.rowcount)  # type: ignore[attr-defined]
