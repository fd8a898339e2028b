"""Sending an approved draft, at most once: suppression list first, then the message built
with `email.message.EmailMessage` (our Message-ID, List-Unsubscribe one-click, tracking when
PUBLIC_URL and SECRET_KEY are set), then the provider: SMTP (`email`, `html`, team
notifications) or the sender's Gmail (`gmail`).

The runner has committed the step as `sending` before this runs. What the provider answered
decides the draft's status and the step's outcome:

| provider answer                           | draft    | step outcome                        |
|-------------------------------------------|----------|-------------------------------------|
| accepted                                  | sent     | Done                                |
| nothing sent, worth trying again          | approved | Retry (Gmail: Sent is searched first)|
| refused for good (auth, config, content)  | failed   | Attention (a person retries)        |
| every recipient refused (a hard bounce)   | failed   | Failed; the addresses suppressed    |
| broke off mid-send                        | unknown  | Unknown ("may have been sent")      |
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from email.message import EmailMessage
from email.utils import parseaddr
from urllib.parse import urlsplit

from sqlalchemy import Engine
from sqlalchemy.orm import Session

from engine import http
from engine.actions.base import (
    Attention,
    Done,
    Failed,
    Outcome,
    Retry,
    RunContext,
    Skipped,
    Unknown,
)
from engine.email import gmail, message, smtp, tracking
from engine.secrets import SecretsError, Vault
from engine.settings import Settings
from storage.action_models import Draft
from storage.db import session_scope
from storage.queries import drafts as draft_rows
from storage.queries import steps as step_rows
from storage.queries import suppressions
from storage.queries import users as user_rows

log = logging.getLogger(__name__)


def sender_domain(settings: Settings, sender: str) -> str:
    """The domain our Message-IDs carry: the sender's, else PUBLIC_URL's; never the host's."""
    address = message.check_address("from", sender)
    domain = address.rpartition("@")[2].rstrip(">").strip()
    if domain:
        return domain
    host = urlsplit(settings.public_url or "").hostname
    return host or "workflowbot.invalid"


def tracking_on(settings: Settings) -> bool:
    return bool(settings.public_url and settings.secret_key)


def _outgoing(draft: Draft, settings: Settings, to: list[str], cc: list[str]) -> message.Outgoing:
    html: str | None = None
    if draft.kind in ("html", "gmail"):
        html = draft.body
        if tracking_on(settings):
            assert settings.public_url is not None
            html = tracking.rewrite(
                html,
                draft_id=draft.id,
                public_url=settings.public_url,
                secret_keys=settings.secret_key,
            )
        text = message.html_to_text(draft.body)
    else:
        text = draft.body
    unsubscribe = None
    if tracking_on(settings):
        assert settings.public_url is not None
        unsubscribe = tracking.unsubscribe_url(
            public_url=settings.public_url,
            secret_keys=settings.secret_key,
            draft_id=draft.id,
            email=_bare(to[0]),
        )
    return message.Outgoing(
        sender=draft.sender,
        to=to,
        cc=cc,
        reply_to=draft.reply_to,
        subject=draft.subject,
        text=text,
        html=html,
        message_id=draft.message_id,
        unsubscribe_url=unsubscribe,
    )


def _bare(address: str) -> str:
    return parseaddr(address)[1] or address


def deliver(draft: Draft, ctx: RunContext) -> Outcome:
    """Send this approved draft (see the module's table)."""
    db, now = ctx.database, ctx.now
    with session_scope(db) as session:
        listed = suppressions.suppressed(session, emails=[_bare(a) for a in [*draft.to, *draft.cc]])
    to = [a for a in draft.to if suppressions.email_key(_bare(a)) not in listed]
    cc = [a for a in draft.cc if suppressions.email_key(_bare(a)) not in listed]
    if not to:
        with session_scope(db) as session:
            draft_rows.move(
                session,
                draft_id=draft.id,
                from_status="approved",
                now=now,
                status="suppressed",
                error="every recipient is on the suppression list",
            )
        return Skipped(f"draft #{draft.id}: every recipient is on the suppression list")
    try:
        built = message.build(_outgoing(draft, ctx.settings, to, cc), now=now)
    except message.HeaderError as exc:
        return _failed_for_good(db, draft, now, f"the message is not valid: {exc}")
    if draft.kind == "gmail":
        return _via_gmail(draft, ctx, built.as_bytes(), to)
    return _via_smtp(draft, ctx, built, to)


def _via_smtp(draft: Draft, ctx: RunContext, built: EmailMessage, to: list[str]) -> Outcome:
    db, now = ctx.database, ctx.now
    if not ctx.settings.smtp_url:
        return _attention(db, draft, now, "SMTP_URL is not set: no email provider to send with")
    try:
        config = smtp.parse_smtp_url(ctx.settings.smtp_url)
    except ValueError as exc:
        return _attention(db, draft, now, str(exc))
    try:
        sent = smtp.send(config, built)
    except smtp.SmtpRetry as exc:
        return Retry(f"SMTP: {exc}")
    except smtp.SmtpUnknown as exc:
        with session_scope(db) as session:
            draft_rows.move(
                session,
                draft_id=draft.id,
                from_status="approved",
                now=now,
                status="unknown",
                error=f"SMTP: {exc}",
            )
        return Unknown(f"SMTP: {exc}")
    except smtp.SmtpFailed as exc:
        if exc.refused:
            return _bounced(db, draft, now, exc.refused, str(exc))
        return _attention(db, draft, now, f"SMTP refused the message: {exc}")
    if sent.refused:
        with session_scope(db) as session:
            for address in sent.refused:
                suppressions.add(session, email=address, reason="bounce", by="smtp", now=now)
    return _sent(db, draft, now, sent.reply or None, to, sent.refused)


def _via_gmail(draft: Draft, ctx: RunContext, raw: bytes, to: list[str]) -> Outcome:
    db, now = ctx.database, ctx.now
    try:
        vault = Vault(ctx.settings.secret_key)
    except SecretsError as exc:
        return _attention(db, draft, now, str(exc))
    with session_scope(db) as session:
        found = _gmail_connection(session, draft.sender)
    if found is None:
        return _attention(
            db,
            draft,
            now,
            f"{draft.sender} has not connected Gmail: run `workflowbot users connect-gmail "
            f"{_bare(draft.sender)}` (or use Connect Gmail in Slack), then send again",
        )
    connection_id, secret = found
    try:
        tokens = gmail.Tokens.from_dict(vault.decrypt_json(secret))
    except (SecretsError, KeyError, ValueError) as exc:
        return _attention(db, draft, now, f"the Gmail connection cannot be read: {exc}")
    client = gmail.GmailClient(ctx.settings, ctx.resolver)
    try:
        # A previous attempt may have gone through (a timeout, a worker that died, a
        # "send again" after `unknown`): Sent is searched for our Message-ID first.
        if not ctx.first_call or draft.error is not None:
            gmail_id, tokens = client.find_sent(tokens, draft.message_id, now)
            if gmail_id is not None:
                return _sent(db, draft, now, gmail_id, to, {}, tokens, connection_id, vault)
        gmail_id, tokens = client.send(tokens, raw, now)
    except gmail.GmailRetry as exc:
        at = None if exc.retry_after is None else now + timedelta(seconds=exc.retry_after)
        return Retry(f"Gmail: {exc}", at)
    except gmail.GmailAuthError as exc:
        return _attention(db, draft, now, f"Gmail refused the connection ({exc}): reconnect Gmail")
    except gmail.GmailFailed as exc:
        return _attention(db, draft, now, f"Gmail refused the message: {exc}")
    finally:
        client.close()
    return _sent(db, draft, now, gmail_id, to, {}, tokens, connection_id, vault)


RECONCILED = "checked Gmail's Sent folder"


def reconcile_gmail(db: Engine, settings: Settings, resolver: http.Resolver, now: datetime) -> int:
    """Gmail drafts left `unknown` (a worker died mid-send) are looked up in the sender's Sent
    folder by our Message-ID, once each: found, the draft is sent and its step goes on (it
    runs again and records the send); not found, it stays `unknown` for a person to decide
    (Send again looks once more first). Returns how many were found sent."""
    with session_scope(db) as session:
        waiting = [
            (d.id, d.sender, d.message_id, d.step_run_id)
            for d in draft_rows.listed(session, statuses=["unknown"], limit=50)
            if d.kind == "gmail" and RECONCILED not in (d.error or "")
        ]
    if not waiting or not settings.secret_key:
        return 0
    vault = Vault(settings.secret_key)
    found = 0
    with gmail.GmailClient(settings, resolver) as client:
        for draft_id, sender, message_id, step_id in waiting:
            with session_scope(db) as session:
                connection = _gmail_connection(session, sender)
            if connection is None:
                continue
            try:
                tokens = gmail.Tokens.from_dict(vault.decrypt_json(connection[1]))
                gmail_id, _ = client.find_sent(tokens, message_id, now)
            except (SecretsError, KeyError, ValueError, gmail.GmailFailed, gmail.GmailRetry):
                continue  # tried again on a later tick (a retry) or left to a person
            with session_scope(db) as session:
                if gmail_id is None:
                    draft_rows.move(
                        session,
                        draft_id=draft_id,
                        from_status="unknown",
                        now=now,
                        error=f"not found in Sent ({RECONCILED} at {now:%Y-%m-%d %H:%M} UTC)",
                    )
                    continue
                if draft_rows.move(
                    session,
                    draft_id=draft_id,
                    from_status="unknown",
                    now=now,
                    status="sent",
                    provider_id=gmail_id,
                    sent_at=now,
                    decided_by="reconciled",
                    decided_at=now,
                    error=f"found in Sent ({RECONCILED})",
                ):
                    step_rows.move(
                        session,
                        step_id=step_id,
                        from_status="unknown",
                        status="scheduled",
                        due_at=now,
                        finished_at=None,
                    )
                    found += 1
    return found


def _gmail_connection(session: Session, sender: str) -> tuple[int, str] | None:
    user = user_rows.find(session, _bare(sender))
    if user is None:
        return None
    found = user_rows.connection(session, user_id=user.id, provider="gmail")
    return None if found is None else (found.id, found.secret)


def _sent(
    db: Engine,
    draft: Draft,
    now: datetime,
    provider_id: str | None,
    to: list[str],
    refused: dict[str, str],
    tokens: gmail.Tokens | None = None,
    connection_id: int | None = None,
    vault: Vault | None = None,
) -> Outcome:
    with session_scope(db) as session:
        draft_rows.move(
            session,
            draft_id=draft.id,
            from_status="approved",
            now=now,
            status="sent",
            sent_at=now,
            provider_id=provider_id,
            error=None,
        )
        if tokens is not None and connection_id is not None and vault is not None:
            user_rows.update_secret(
                session,
                connection_id=connection_id,
                secret=vault.encrypt_json(tokens.as_dict()),
                now=now,
            )
    result = {"draft": draft.id, "message_id": draft.message_id, "to": to}
    summary = f"draft #{draft.id} sent to {', '.join(to)}"
    if refused:
        result["refused"] = sorted(refused)
        summary += f" (refused, now suppressed: {', '.join(sorted(refused))})"
    return Done(result, summary)


def _draft_failed(db: Engine, draft: Draft, now: datetime, error: str) -> str:
    with session_scope(db) as session:
        draft_rows.move(
            session,
            draft_id=draft.id,
            from_status="approved",
            now=now,
            status="failed",
            error=error,
        )
    return f"draft #{draft.id}: {error}"


def _attention(db: Engine, draft: Draft, now: datetime, error: str) -> Outcome:
    """Refused for good until a person fixes something; they send it again after."""
    return Attention(_draft_failed(db, draft, now, error))


def _failed_for_good(db: Engine, draft: Draft, now: datetime, error: str) -> Outcome:
    """Nothing a person can do makes this message go: `on_failure` decides."""
    return Failed(_draft_failed(db, draft, now, error))


def _bounced(db: Engine, draft: Draft, now: datetime, refused: dict[str, str], why: str) -> Outcome:
    with session_scope(db) as session:
        for address in refused:
            suppressions.add(session, email=address, reason="bounce", by="smtp", now=now)
    return _failed_for_good(db, draft, now, f"every recipient was refused ({why})")
