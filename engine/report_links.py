"""Signed, expiring links to the report pages: `PATH?exp=<unix seconds>&sig=<HMAC>`.

The signature is HMAC-SHA256 over the path and the expiry, keyed by a key derived from a
SECRET_KEY entry (one purpose, so a report signature is never a valid token elsewhere). The
first entry signs; every entry verifies, so rotating SECRET_KEY (new key first, old one
after it) keeps the links already handed out working until they expire.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Sequence
from datetime import datetime, timedelta
from urllib.parse import urlencode

from engine.secrets import SecretsError
from engine.settings import Settings

DEFAULT_TTL = timedelta(days=7)
_PURPOSE = b"workflowbot report links v1"


def _key(secret: str) -> bytes:
    return hmac.new(secret.encode(), _PURPOSE, hashlib.sha256).digest()


def _mac(secret: str, path: str, exp: int) -> str:
    digest = hmac.new(_key(secret), f"{path}\n{exp}".encode(), hashlib.sha256).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def signed_path(secret_keys: Sequence[str], *, path: str, exp: int) -> str:
    """`path?exp=…&sig=…`, signed with the first key; SecretsError without a key."""
    if not secret_keys:
        raise SecretsError(
            "SECRET_KEY is not set: it signs the report links "
            '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))")'
        )
    return f"{path}?{urlencode({'exp': exp, 'sig': _mac(secret_keys[0], path, exp)})}"


def link(settings: Settings, *, path: str, now: datetime, ttl: timedelta = DEFAULT_TTL) -> str:
    """The absolute link (PUBLIC_URL + path) valid until `now + ttl`; SecretsError without
    SECRET_KEY or PUBLIC_URL."""
    if not settings.public_url:
        raise SecretsError("PUBLIC_URL is not set: report links need the bot's public address")
    exp = int((now + ttl).timestamp())
    return settings.public_url.rstrip("/") + signed_path(settings.secret_key, path=path, exp=exp)


def verify(
    settings: Settings, path: str, exp: str | int | None, sig: str | None, now: datetime
) -> bool:
    """True when `sig` signs `path` and `exp` with any SECRET_KEY entry and `exp` is still
    ahead of `now`; False for anything missing, malformed, altered or expired."""
    if not settings.secret_key or exp is None or not sig:
        return False
    try:
        expires = int(exp)
    except ValueError:
        return False
    if str(expires) != str(exp).strip() or expires <= now.timestamp():
        return False
    given = sig.encode("ascii", "replace")
    # Every key is tried (no early exit) so timing does not tell which one matched.
    matched = False
    for secret in settings.secret_key:
        matched |= hmac.compare_digest(_mac(secret, path, expires).encode("ascii"), given)
    return matched
