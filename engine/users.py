"""Users: the people who own records and approve drafts, by Slack id and / or email, with
their CRM owner ids and connected accounts (Gmail). Set by hand (`workflowbot users set`), by
ingestion (an `owner` trait) and filled from Slack (`users.info`, `users.lookupByEmail`).

A person first known by email (an owner trait) and later by Slack id is one user: setting the
Slack id of an email's user that also exists under that Slack id merges the two rows.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from storage.models import User
from storage.queries import users as rows

SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
CRMS = ("salesforce", "hubspot")


class UserError(ValueError):
    """A bad user reference or field; the message names the field."""


@dataclass(frozen=True)
class Person:
    """What Slack says about a user."""

    slack_id: str
    email: str | None
    name: str | None


def check_ref(ref: str, field: str = "user") -> str:
    """A Slack id (U…/W…) or an email address, stripped; UserError otherwise."""
    text = ref.strip()
    if SLACK_USER.fullmatch(text) or EMAIL.fullmatch(text):
        return text
    raise UserError(f'{field}: "{ref}" is not a Slack user id (U… or W…) or an email address')


def find(session: Session, ref: str) -> User | None:
    return rows.find(session, check_ref(ref))


def ensure(session: Session, ref: str, *, now: datetime) -> User:
    """The user `ref` names, created when unknown."""
    ref = check_ref(ref)
    found = rows.find(session, ref)
    if found is not None:
        return found
    if "@" in ref:
        return rows.create(session, slack_id=None, email=ref, name=None, now=now)
    return rows.create(session, slack_id=ref, email=None, name=None, now=now)


def set_user(
    session: Session,
    ref: str,
    *,
    now: datetime,
    slack_id: str | None = None,
    email: str | None = None,
    name: str | None = None,
    crm_ids: Mapping[str, str | None] | None = None,
) -> User:
    """Create or change a user; the other row of the same person (found by the new Slack
    id or email) is merged into it. UserError names a bad field."""
    if slack_id is not None and not SLACK_USER.fullmatch(slack_id.strip()):
        raise UserError(f'slack id: "{slack_id}" is not a Slack user id (U… or W…)')
    if email is not None and not EMAIL.fullmatch(email.strip()):
        raise UserError(f'email: "{email}" is not an email address')
    for crm in crm_ids or {}:
        if crm not in CRMS:
            raise UserError(f"crm: {crm} is not one of {', '.join(CRMS)}")
    user = ensure(session, ref, now=now)
    for other in (
        rows.by_slack_id(session, slack_id.strip()) if slack_id else None,
        rows.by_email(session, email) if email else None,
    ):
        if other is not None and other.id != user.id:
            if other.slack_id and user.slack_id and other.slack_id != user.slack_id:
                raise UserError(
                    f"{'slack id' if slack_id else 'email'}: already belongs to another user "
                    f"({other.slack_id}); set it there instead"
                )
            rows.merge_into(session, keep=user, drop=other)
    if slack_id is not None:
        user.slack_id = slack_id.strip()
    if email is not None:
        user.email = email.strip().lower()
    if name is not None:
        user.name = name.strip() or None
    if crm_ids:
        merged = dict(user.crm_ids or {})
        for crm, value in crm_ids.items():
            if value:
                merged[crm] = value.strip()
            else:
                merged.pop(crm, None)
        user.crm_ids = merged
    user.updated_at = now
    session.flush()
    return user


def fill(session: Session, user: User, person: Person, *, now: datetime) -> bool:
    """Complete `user` with what Slack knows (never overwriting a name or email set by hand);
    whether anything changed."""
    changed = False
    if user.slack_id is None:
        other = rows.by_slack_id(session, person.slack_id)
        if other is not None and other.id != user.id:
            rows.merge_into(session, keep=other, drop=user)
            return fill(session, other, person, now=now)
        user.slack_id, changed = person.slack_id, True
    if user.email is None and person.email:
        other = rows.by_email(session, person.email)
        if other is None:
            user.email, changed = person.email.lower(), True
        elif other.id != user.id:
            rows.merge_into(session, keep=user, drop=other)
            user.email, changed = person.email.lower(), True
    if not user.name and person.name:
        user.name, changed = person.name, True
    if changed:
        user.updated_at = now
        session.flush()
    return changed


def label(user: User | None) -> str:
    """How a user is shown: name <email>, or what is known."""
    if user is None:
        return "nobody"
    parts = [user.name or "", f"<{user.email}>" if user.email else "", user.slack_id or ""]
    return " ".join(p for p in parts if p) or f"user {user.id}"


def as_data(user: User | None) -> dict[str, str | None] | None:
    """A user as templates see it (plain data)."""
    if user is None:
        return None
    return {"slack_id": user.slack_id, "email": user.email, "name": user.name}
