"""Per-record control: the suppression list (addresses never emailed, checked before every
send) and forgetting a contact (its data and events erased; its enrollments, and so every
workflow count, kept)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from sqlalchemy.orm import Session

from engine import enrollment
from storage.models import Contact
from storage.queries import enrollments as enrollment_rows
from storage.queries import privacy as q
from storage.queries import suppressions

MAX_EMAIL = 320
MAX_REASON = 32  # the column's size

# The key an address is listed under (stripped, casefolded); one definition, in storage.
email_key = suppressions.email_key


class PrivacyError(ValueError):
    """A suppression or forget request that cannot be done; the message says why, in one line."""


class UnknownContact(PrivacyError):
    """No contact has the external id asked for."""


@dataclass(frozen=True)
class Forgotten:
    """What forgetting a contact erased (rows deleted) and kept (enrollments, emptied)."""

    contact_id: int
    events: int
    signals: int
    health_scores: int
    memberships: int
    outbox_rows: int
    enrollments: int  # kept, with what they held of the contact emptied
    exited: int  # active ones ended: nothing more is done about a forgotten person


def checked_email(email: str) -> str:
    """The address without surrounding whitespace, or PrivacyError naming what is wrong."""
    address = email.strip()
    if len(address) > MAX_EMAIL:
        raise PrivacyError(
            f"EMAIL: an address has at most {MAX_EMAIL} characters (this one has {len(address):,})"
        )
    local, at, domain = address.partition("@")
    problem = None
    if not address:
        problem = "it is empty"
    elif not at:
        problem = "no @"
    elif "@" in domain:
        problem = "more than one @"
    elif any(c.isspace() for c in address):
        problem = "it contains whitespace"
    elif not local:
        problem = "nothing before the @"
    elif "." not in domain.strip("."):
        problem = f'no dot in the domain "{domain}"'
    if problem is not None:
        raise PrivacyError(f'EMAIL: "{address}" is not an email address ({problem})')
    return address


def suppress(
    session: Session, *, email: str, reason: str = "manual", by: str, now: datetime
) -> bool:
    """Never email this address again (any capitalization); False when it already was."""
    address = checked_email(email)
    reason = reason.strip()
    if not reason:
        raise PrivacyError("REASON: empty (say why, e.g. unsubscribed, bounced, asked by phone)")
    if len(reason) > MAX_REASON:
        raise PrivacyError(f"REASON: at most {MAX_REASON} characters (this one has {len(reason)})")
    return suppressions.add(session, email=address, reason=reason, by=by, now=now)


def unsuppress(session: Session, *, email: str) -> bool:
    """Take an address off the list; False when it was not on it. Not validated, so that any
    listed address can be removed."""
    return suppressions.remove(session, email=email)


def contact(session: Session, *, external_id: str, lock: bool = False) -> Contact:
    """The contact of this external id (the userId it was sent with), or UnknownContact."""
    found = q.contact(session, external_id=external_id, lock=lock)
    if found is None:
        raise UnknownContact(f'no contact with the id "{external_id}"')
    return found


def forget_contact(session: Session, *, external_id: str, now: datetime) -> Forgotten:
    """Erase a contact's events, signals (its own, and its accounts' for its events), score
    history, segment memberships and processed change rows, empty what its enrollments kept,
    and anonymize the row (id kept), in the caller's transaction; UnknownContact if none."""
    found = contact(session, external_id=external_id, lock=True)
    cid = found.id
    active = enrollment_rows.active_for(session, records=[("contact", cid)])
    exited = enrollment.exit_enrollments(
        session, exits=[(r.id, "the contact was forgotten") for r in active], now=now
    )
    accounts = q.event_accounts(session, contact_id=cid)
    if found.account_id is not None:
        accounts.add(found.account_id)
    forgotten = Forgotten(
        contact_id=cid,
        events=q.delete_events(session, contact_id=cid),
        signals=q.delete_signals(session, contact_id=cid, account_ids=accounts),
        health_scores=q.delete_health_scores(session, contact_id=cid),
        memberships=q.delete_memberships(session, contact_id=cid),
        outbox_rows=q.delete_processed_outbox(session, contact_id=cid),
        enrollments=q.clear_enrollments(session, contact_id=cid, account_ids=accounts),
        exited=len(exited),
    )
    q.anonymize(session, contact=found, now=now)
    return forgotten
