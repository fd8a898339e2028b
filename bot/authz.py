"""Who may do what in Slack (workflow-format.md, "Approval"; the Slack issue, "Permissions").

- Admins: SLACK_ADMINS (user ids `U…`/`W…` and user-group ids `S…`, whose members are read
  with `usergroups.users.list`, cached, and refreshed on `subteam_members_changed`) plus each
  workflow's `admins`. They may create, edit, enable, disable, delete, import and pause.
- Approvers of a draft: the record's owner, the workflow's `admins`, and SLACK_ADMINS.
- Everyone may list, open and read logs.

Every refusal says why (`Refusal.reason`), for an ephemeral answer.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Collection
from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from storage.action_models import Draft
from storage.models import Account, Contact, User
from storage.workflow_models import Enrollment, WorkflowVersion

log = logging.getLogger(__name__)

GROUP_TTL_SECONDS = 600.0


@dataclass(frozen=True)
class Refusal:
    reason: str


class Admins:
    """SLACK_ADMINS resolved to user ids; user groups cached for GROUP_TTL_SECONDS (and
    dropped on `subteam_members_changed`). `members_of` reads a group's members (Slack's
    usergroups.users.list); it is called outside any request's ack path."""

    def __init__(self, entries: Collection[str], members_of: Callable[[str], list[str]]) -> None:
        self._users = frozenset(e for e in entries if not e.startswith("S"))
        self._groups = tuple(e for e in entries if e.startswith("S"))
        self._members_of = members_of
        self._cache: dict[str, tuple[float, frozenset[str]]] = {}
        self._lock = threading.Lock()

    def forget(self, group_id: str | None = None) -> None:
        """A group's membership changed (or every group's, with None)."""
        with self._lock:
            if group_id is None:
                self._cache.clear()
            else:
                self._cache.pop(group_id, None)

    def _group(self, group_id: str) -> frozenset[str]:
        with self._lock:
            found = self._cache.get(group_id)
        if found is not None and time.monotonic() - found[0] < GROUP_TTL_SECONDS:
            return found[1]
        try:
            members = frozenset(self._members_of(group_id))
        except Exception:  # Slack down: the last known members, else nobody from this group
            log.warning("could not read the members of user group %s", group_id, exc_info=True)
            return found[1] if found is not None else frozenset()
        with self._lock:
            self._cache[group_id] = (time.monotonic(), members)
        return members

    def __contains__(self, user_id: object) -> bool:
        if not isinstance(user_id, str):
            return False
        return user_id in self._users or any(user_id in self._group(g) for g in self._groups)


def _slack_ids(session: Session, refs: Collection[str]) -> set[str]:
    """The Slack ids of users written as Slack ids or emails (an email's user, if known)."""
    ids = {r for r in refs if "@" not in r}
    emails = [r.strip().lower() for r in refs if "@" in r]
    if emails:
        ids |= {
            slack_id
            for slack_id in session.scalars(
                select(User.slack_id).where(User.email.in_(emails), User.slack_id.is_not(None))
            )
            if slack_id
        }
    return ids


def workflow_admins(session: Session, version_id: int) -> set[str]:
    """The Slack ids of a workflow version's `admins`."""
    document = session.scalar(
        select(WorkflowVersion.document).where(WorkflowVersion.id == version_id)
    )
    return _slack_ids(session, (document or {}).get("admins") or [])


def record_owner(session: Session, object_type: str, object_id: int) -> str | None:
    """The Slack id of the record's owner, if it has one and it is known."""
    model = Account if object_type == "account" else Contact
    return session.scalar(
        select(User.slack_id).join(model, model.owner_id == User.id).where(model.id == object_id)
    )


def may_decide(session: Session, draft: Draft, user_id: str, admins: Admins) -> Refusal | None:
    """None when `user_id` may approve, edit or discard this draft; else why not."""
    if user_id in admins:
        return None
    if record_owner(session, draft.object_type, draft.object_id) == user_id:
        return None
    version_id = session.scalar(
        select(Enrollment.version_id).where(Enrollment.id == draft.enrollment_id)
    )
    if version_id is not None and user_id in workflow_admins(session, version_id):
        return None
    return Refusal(
        "Only the record's owner, this workflow's admins and the Slack admins may decide on "
        "this draft."
    )


def may_manage(
    session: Session, version_id: int | None, user_id: str, admins: Admins
) -> Refusal | None:
    """None when `user_id` may change this workflow (edit, enable, disable, delete) — or,
    with no workflow (`version_id` None), create one, import or pause everything."""
    if user_id in admins:
        return None
    if version_id is not None and user_id in workflow_admins(session, version_id):
        return None
    if version_id is None:
        return Refusal("Only Slack admins (SLACK_ADMINS) may do this.")
    return Refusal("Only this workflow's admins and the Slack admins (SLACK_ADMINS) may do this.")
