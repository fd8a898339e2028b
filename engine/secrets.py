"""Secrets at rest and signed links, both keyed by SECRET_KEY (comma-separated for rotation).

`Vault` encrypts what we store (OAuth tokens, webhook secrets) with Fernet (AES-128-CBC and
HMAC-SHA256, from `cryptography`); each SECRET_KEY entry gives one Fernet key, the first
encrypts and every one decrypts, so a key is rotated by putting the new one first.
`sign` / `unsign` make URL-safe tokens for links (tracking, unsubscribe, OAuth state): the
payload is readable, its HMAC is not forgeable, and any SECRET_KEY entry verifies.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Sequence
from typing import Any

from cryptography.fernet import Fernet, InvalidToken, MultiFernet


class SecretsError(Exception):
    """No SECRET_KEY, or a value that does not decrypt or verify with any of them."""


def _derive(secret: str, purpose: bytes) -> bytes:
    return hmac.new(secret.encode(), purpose, hashlib.sha256).digest()


class Vault:
    """Encrypts and decrypts short strings with the SECRET_KEY entries."""

    def __init__(self, secret_keys: Sequence[str]) -> None:
        if not secret_keys:
            raise SecretsError(
                "SECRET_KEY is not set: it encrypts stored tokens and secrets "
                '(generate one with: python -c "import secrets; print(secrets.token_urlsafe(32))")'
            )
        self._fernet = MultiFernet(
            [
                Fernet(base64.urlsafe_b64encode(_derive(key, b"workflowbot vault v1")))
                for key in secret_keys
            ]
        )

    def encrypt(self, plain: str) -> str:
        return self._fernet.encrypt(plain.encode()).decode("ascii")

    def decrypt(self, token: str) -> str:
        try:
            return self._fernet.decrypt(token.encode("ascii")).decode()
        except (InvalidToken, UnicodeError):
            raise SecretsError(
                "a stored secret does not decrypt with any SECRET_KEY (was the key changed "
                "instead of rotated? put the new key first and keep the old one after it)"
            ) from None

    def encrypt_json(self, value: Any) -> str:
        return self.encrypt(json.dumps(value, separators=(",", ":"), sort_keys=True))

    def decrypt_json(self, token: str) -> Any:
        return json.loads(self.decrypt(token))


def _b64(raw: bytes) -> str:
    return base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(secret_keys: Sequence[str], purpose: str, payload: Any) -> str:
    """`payload.signature`, both base64url: for links that must not be altered."""
    if not secret_keys:
        raise SecretsError("SECRET_KEY is not set: it signs links")
    body = _b64(json.dumps(payload, separators=(",", ":"), sort_keys=True).encode())
    mac = hmac.new(_derive(secret_keys[0], purpose.encode()), body.encode(), hashlib.sha256)
    return f"{body}.{_b64(mac.digest()[:20])}"


def unsign(secret_keys: Sequence[str], purpose: str, token: str) -> Any:
    """The payload of a token `sign` made for `purpose`; SecretsError when it was altered,
    made for another purpose or with no current key."""
    body, _, given = token.partition(".")
    try:
        given_mac = _unb64(given)
    except ValueError:
        raise SecretsError("the link's signature is malformed") from None
    for key in secret_keys:
        mac = hmac.new(_derive(key, purpose.encode()), body.encode(), hashlib.sha256).digest()
        if hmac.compare_digest(mac[:20], given_mac):
            try:
                return json.loads(_unb64(body))
            except ValueError:
                break
    raise SecretsError("the link's signature does not match")
