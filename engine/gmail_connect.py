"""Connecting a user's Gmail: the link to Google's consent page (`workflowbot users
connect-gmail USER`, Slack's Connect Gmail button) and the callback that stores the tokens,
encrypted with SECRET_KEY. The link's `state` is signed and names the user, and expires after
an hour, so a callback cannot attach a Gmail account to somebody else. Once connected, the
email steps held for that sender's connection go on.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import Engine

from engine import http
from engine.email import gmail
from engine.secrets import SecretsError, Vault, sign, unsign
from engine.settings import Settings
from storage.db import session_scope
from storage.models import User
from storage.queries import steps as step_rows
from storage.queries import users as user_rows

PURPOSE = "gmail-connect"
LINK_LIFETIME = timedelta(hours=1)


class ConnectError(Exception):
    """The link cannot be made or the callback is not valid; the message says why."""


@dataclass(frozen=True)
class Connected:
    user: str  # as shown
    account: str  # the Gmail address
    released: int  # email steps that were waiting for this connection


def link(settings: Settings, user: User, now: datetime) -> str:
    """The consent link for `user` (valid for an hour); ConnectError names a missing setting."""
    if not settings.secret_key:
        raise ConnectError("SECRET_KEY is not set: it signs the link and encrypts the tokens")
    try:
        state = sign(
            settings.secret_key,
            PURPOSE,
            {"u": user.id, "exp": int((now + LINK_LIFETIME).timestamp())},
        )
        return gmail.authorization_url(
            settings,
            state=state,
            redirect_uri=gmail.callback_url(settings),
            login_hint=user.email,
        )
    except gmail.GmailFailed as exc:
        raise ConnectError(exc.error) from None


def complete(
    db: Engine, settings: Settings, resolver: http.Resolver, *, code: str, state: str, now: datetime
) -> Connected:
    """Exchange Google's code, store the tokens for the user the state names, and release
    the email steps waiting for it."""
    try:
        payload = unsign(settings.secret_key, PURPOSE, state)
    except SecretsError:
        raise ConnectError("the link is not valid (altered or made with another key)") from None
    if not isinstance(payload, dict) or payload.get("exp", 0) < now.timestamp():
        raise ConnectError("the link has expired: ask for a new one")
    with session_scope(db) as session:
        user = user_rows.by_id(session, int(payload["u"]))
        if user is None:
            raise ConnectError("the user of this link no longer exists")
        shown, user_id, user_email = (user.name or user.email or user.slack_id), user.id, user.email
    with gmail.GmailClient(settings, resolver) as client:
        try:
            tokens = client.exchange_code(code, gmail.callback_url(settings), now)
        except gmail.GmailRetry as exc:
            raise ConnectError(f"Google could not be reached ({exc.error}); try again") from None
        except gmail.GmailFailed as exc:
            raise ConnectError(exc.error) from None
    account = (tokens.email or user_email or "").lower()
    with session_scope(db) as session:
        user_rows.save_connection(
            session,
            user_id=user_id,
            provider="gmail",
            account=account,
            secret=Vault(settings.secret_key).encrypt_json(tokens.as_dict()),
            now=now,
        )
        released = sum(
            len(step_rows.release_attention(session, needs="gmail", sender=address, now=now))
            for address in {account, (user_email or "").lower()} - {""}
        )
    return Connected(str(shown), account, released)
