"""Sending from a user's Gmail: the Google OAuth flow (client side) and the Gmail API calls.

A user connects once: `authorization_url` sends them to Google, the callback hands the code to
`GmailClient.exchange_code`, and the caller stores the `Tokens` encrypted. `send` posts one
RFC 5322 message through `users.messages.send`; sending is at most once, so after a crash (or a
`GmailRetry` from `send`, which may come after Google accepted the message) the caller looks its
own Message-ID up with `find_sent` before sending again. Every call goes through the guarded
client of `engine.http`, allowed to reach only the configured Google hosts; failures leave this
module as `GmailRetry` (try later), `GmailFailed` (never) or `GmailAuthError` (reconnect).
"""

from __future__ import annotations

import base64
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from email.parser import BytesHeaderParser
from typing import TYPE_CHECKING, Any
from urllib.parse import quote, urlencode

import httpx

from engine import http

if TYPE_CHECKING:
    from engine.settings import Settings

# gmail.send to send. gmail.readonly only so that, after a crash mid-send, we can find our own
# Message-ID in the user's Sent folder (users.messages.list with `q`, which gmail.metadata may
# not use) and so never send twice; it also lets us read the address (users.getProfile).
SCOPES = (
    "https://www.googleapis.com/auth/gmail.send",
    "https://www.googleapis.com/auth/gmail.readonly",
)
CALLBACK_PATH = "/oauth/google/callback"
# A token this close to its expiry is refreshed first: it could lapse in flight.
REFRESH_MARGIN = timedelta(seconds=60)
# 403s that Google documents as rate limits (retry with backoff), unlike permission refusals.
_RATE_LIMIT_REASONS = frozenset(
    {"rateLimitExceeded", "userRateLimitExceeded", "dailyLimitExceeded"}
)


@dataclass(frozen=True)
class Tokens:
    """A user's Gmail grant: plain data the caller stores encrypted; no secret in the repr."""

    access_token: str = field(repr=False)
    refresh_token: str = field(repr=False)
    expires_at: datetime
    email: str | None = None

    def as_dict(self) -> dict[str, str | None]:
        """JSON-ready fields, `expires_at` in ISO 8601; `from_dict` reads them back."""
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "expires_at": self.expires_at.isoformat(),
            "email": self.email,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Tokens:
        """The tokens `as_dict` wrote."""
        return cls(
            access_token=str(data["access_token"]),
            refresh_token=str(data["refresh_token"]),
            expires_at=datetime.fromisoformat(str(data["expires_at"])),
            email=None if data.get("email") is None else str(data["email"]),
        )


class GmailRetry(Exception):
    """The call may succeed later (429, 5xx, timeout, Google unreachable); `retry_after` in s."""

    def __init__(self, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after


class GmailFailed(Exception):
    """The call will not succeed as it is (Google refused it, the message is bad, a setting)."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class GmailAuthError(GmailFailed):
    """Google refused the user's grant (invalid_grant, or a fresh token): they must reconnect."""


def _client_credentials(settings: Settings) -> tuple[str, str]:
    if not settings.google_client_id:
        raise GmailFailed("GOOGLE_CLIENT_ID is not set: Gmail sending needs a Google OAuth client")
    if not settings.google_client_secret:
        raise GmailFailed("GOOGLE_CLIENT_SECRET is not set: Gmail sending needs the OAuth secret")
    return settings.google_client_id, settings.google_client_secret


def callback_url(settings: Settings) -> str:
    """The redirect URI registered with Google: PUBLIC_URL + /oauth/google/callback."""
    if not settings.public_url:
        raise GmailFailed("PUBLIC_URL is not set: Google needs it to send the user back")
    return settings.public_url.rstrip("/") + CALLBACK_PATH


def authorization_url(
    settings: Settings, *, state: str, redirect_uri: str, login_hint: str | None = None
) -> str:
    """Where to send the user to grant SCOPES offline (a refresh token, consent asked each time)."""
    if not settings.google_client_id:
        raise GmailFailed("GOOGLE_CLIENT_ID is not set: Gmail sending needs a Google OAuth client")
    params = {
        "client_id": settings.google_client_id,
        "redirect_uri": redirect_uri,
        "response_type": "code",
        "scope": " ".join(SCOPES),
        "access_type": "offline",
        # Google returns a refresh token only on consent: ask again, or a reconnect gets none.
        "prompt": "consent",
        "include_granted_scopes": "true",
        "state": state,
    }
    if login_hint:
        params["login_hint"] = login_hint
    base = settings.google_auth_url
    return base + ("&" if "?" in base else "?") + urlencode(params, quote_via=quote)


def _host_port(name: str, url: str) -> str:
    """`host:port` of a configured URL, for the guarded client's allowed list."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL as exc:
        raise GmailFailed(f"{name} is not a valid URL: {exc}") from None
    if parsed.scheme not in ("http", "https") or not parsed.host:
        raise GmailFailed(f"{name} must be an http(s) URL with a host")
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    host = f"[{parsed.host}]" if ":" in parsed.host else parsed.host
    return f"{host}:{port}"


def _json(response: http.Response) -> Any:
    """The body as JSON, or None when it is cut short or not JSON."""
    if response.truncated:
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def _gmail_error(what: str, response: http.Response, now: datetime) -> Exception:
    """The error a failed Gmail API answer stands for, with Google's message and reason."""
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    message, reason = "", ""
    if isinstance(error, dict):
        message = str(error.get("message") or "")
        errors = error.get("errors")
        if isinstance(errors, list) and errors and isinstance(errors[0], dict):
            reason = str(errors[0].get("reason") or "")
    detail = f"{what}: Gmail answered {response.status}"
    if message:
        detail += f": {message}"
    if reason:
        detail += f" ({reason})"
    status = response.status
    if status == 401:
        return GmailAuthError(detail + "; the user must reconnect Gmail")
    if not http.is_permanent(status) or (status == 403 and reason in _RATE_LIMIT_REASONS):
        return GmailRetry(detail, http.retry_after(response.headers, now))
    return GmailFailed(detail)


def _token_error(response: http.Response, now: datetime) -> Exception:
    """The error a failed token endpoint answer stands for (OAuth `error` and description)."""
    body = _json(response)
    code = description = ""
    if isinstance(body, dict):
        code = str(body.get("error") or "")
        description = str(body.get("error_description") or "")
    detail = f"Google's token endpoint answered {response.status}"
    if code:
        detail += f": {code}"
    if description:
        detail += f" ({description})"
    if code == "invalid_grant":
        return GmailAuthError(detail + "; the user must reconnect Gmail")
    if not http.is_permanent(response.status):
        return GmailRetry(detail, http.retry_after(response.headers, now))
    return GmailFailed(detail)


def _message_id_of(raw_message: bytes) -> str:
    """The Message-ID header of `raw_message`; GmailFailed when there is none to find it by."""
    if not raw_message.strip():
        raise GmailFailed("the message is empty")
    headers = BytesHeaderParser().parsebytes(raw_message)
    message_id = headers.get("Message-ID")
    if not message_id or not str(message_id).strip():
        # Gmail would make one up, and a crash mid-send could then not be reconciled.
        raise GmailFailed("the message has no Message-ID header")
    return str(message_id).strip()


def _search_id(message_id: str) -> str:
    """`message_id` as `<id>` for Gmail's rfc822msgid: search, refusing what would not match."""
    bare = message_id.strip().removeprefix("<").removesuffix(">")
    if not bare or any(c.isspace() or c in '<>"()' for c in bare):
        raise GmailFailed(f"{message_id!r} is not a Message-ID Gmail can search for")
    return f"<{bare}>"


class GmailClient(http.UsesClient):
    """Google's token endpoint and the Gmail API for one process; safe to share between threads."""

    def __init__(self, settings: Settings, resolver: http.Resolver, *, timeout: float = 10.0):
        self._settings = settings
        self._api = settings.gmail_api_url.rstrip("/") + "/gmail/v1/users/me/"
        allowed = [
            _host_port("GMAIL_API_URL", settings.gmail_api_url),
            _host_port("GOOGLE_TOKEN_URL", settings.google_token_url),
        ]
        # The operator configures both URLs, so they are trusted (http and private addresses
        # allowed, e.g. a local stand-in); nothing else is reachable through this client.
        self._http = http.client(allowed_hosts=allowed, resolver=resolver, timeout=timeout)

    # --- OAuth ----------------------------------------------------------------------------------

    def exchange_code(self, code: str, redirect_uri: str, now: datetime) -> Tokens:
        """Tokens for the code Google sent to `redirect_uri`, with the account's address."""
        answer = self._token_request(
            {"grant_type": "authorization_code", "code": code, "redirect_uri": redirect_uri}, now
        )
        granted = set(str(answer.get("scope") or "").split())
        missing = [scope.rsplit("/", 1)[-1] for scope in SCOPES if scope not in granted]
        if missing:
            # Google lets the user untick scopes on the consent screen.
            raise GmailFailed(f"the user did not grant {', '.join(missing)}; connect again")
        refresh_token = answer.get("refresh_token")
        if not isinstance(refresh_token, str) or not refresh_token:
            raise GmailFailed("Google returned no refresh token (the consent was not offline)")
        tokens = Tokens(
            access_token=answer["access_token"],
            refresh_token=refresh_token,
            expires_at=now + timedelta(seconds=answer["expires_in"]),
        )
        response = self._call("GET", self._api + "profile", tokens, None)
        if not 200 <= response.status < 300:
            raise _gmail_error("users.getProfile", response, now)
        profile = _json(response)
        if not isinstance(profile, dict) or not isinstance(profile.get("emailAddress"), str):
            raise GmailRetry("users.getProfile: Gmail's answer has no emailAddress")
        return Tokens(
            tokens.access_token, tokens.refresh_token, tokens.expires_at, profile["emailAddress"]
        )

    def refresh(self, tokens: Tokens, now: datetime) -> Tokens:
        """A new access token; the refresh token is kept unless Google sends a new one."""
        answer = self._token_request(
            {"grant_type": "refresh_token", "refresh_token": tokens.refresh_token}, now
        )
        new_refresh = answer.get("refresh_token")
        if not isinstance(new_refresh, str) or not new_refresh:
            new_refresh = tokens.refresh_token
        return Tokens(
            access_token=answer["access_token"],
            refresh_token=new_refresh,
            expires_at=now + timedelta(seconds=answer["expires_in"]),
            email=tokens.email,
        )

    def _token_request(self, fields: dict[str, str], now: datetime) -> dict[str, Any]:
        client_id, client_secret = _client_credentials(self._settings)
        form = urlencode({**fields, "client_id": client_id, "client_secret": client_secret})
        headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "Accept": "application/json",
        }
        response = self._request(
            "POST", self._settings.google_token_url, headers=headers, content=form.encode()
        )
        if not 200 <= response.status < 300:
            raise _token_error(response, now)
        answer = _json(response)
        if (
            not isinstance(answer, dict)
            or not isinstance(answer.get("access_token"), str)
            or not isinstance(answer.get("expires_in"), int | float)
        ):
            raise GmailRetry("Google's token endpoint answered without access_token/expires_in")
        return answer

    # --- Gmail API ------------------------------------------------------------------------------

    def send(self, tokens: Tokens, raw_message: bytes, now: datetime) -> tuple[str, Tokens]:
        """Send `raw_message` (RFC 5322, with a Message-ID): Gmail's id and the tokens used.

        A GmailRetry may come after Google accepted the message (a timeout, a 5xx): look the
        Message-ID up with `find_sent` before sending it again.
        """
        _message_id_of(raw_message)
        body = {"raw": base64.urlsafe_b64encode(raw_message).decode("ascii")}
        response, tokens = self._authorized("POST", "messages/send", tokens, now, body)
        if not 200 <= response.status < 300:
            raise _gmail_error("users.messages.send", response, now)
        answer = _json(response)
        if not isinstance(answer, dict) or not isinstance(answer.get("id"), str):
            # Sent, most likely, but without an id: the caller reconciles through find_sent.
            raise GmailRetry("users.messages.send: Gmail answered 2xx without a message id")
        return answer["id"], tokens

    def find_sent(
        self, tokens: Tokens, message_id: str, now: datetime
    ) -> tuple[str | None, Tokens]:
        """Gmail's id of the message in Sent with this Message-ID (None if absent), and tokens."""
        query = urlencode(
            {
                # Google documents `rfc822msgid:<id>` for q; SENT as a label id is exact, where
                # `in:sent` in q is a search term whose reach into the bin is not documented.
                "q": f"rfc822msgid:{_search_id(message_id)}",
                "labelIds": "SENT",
                # A message the user binned at once was still sent.
                "includeSpamTrash": "true",
                "maxResults": "1",
            },
            quote_via=quote,
        )
        response, tokens = self._authorized("GET", "messages?" + query, tokens, now, None)
        if not 200 <= response.status < 300:
            raise _gmail_error("users.messages.list", response, now)
        answer = _json(response)
        if not isinstance(answer, dict):
            raise GmailRetry("users.messages.list: Gmail's answer is not a JSON object")
        # Gmail leaves `messages` out when nothing matches.
        found = answer.get("messages") or []
        if not isinstance(found, list):
            raise GmailRetry("users.messages.list: `messages` is not a list")
        first = found[0] if found else None
        if first is not None and not (isinstance(first, dict) and isinstance(first.get("id"), str)):
            raise GmailRetry("users.messages.list: a message without an id")
        return (None if first is None else first["id"]), tokens

    def _authorized(
        self, method: str, path: str, tokens: Tokens, now: datetime, body: Any
    ) -> tuple[http.Response, Tokens]:
        """One API call with a live token: refreshed first if near expiry, and once on a 401."""
        refreshed = False
        if tokens.expires_at - now <= REFRESH_MARGIN:
            tokens, refreshed = self.refresh(tokens, now), True
        response = self._call(method, self._api + path, tokens, body)
        if response.status == 401 and not refreshed:
            # Revoked or expired early; a 401 means Gmail did nothing, so one replay is safe.
            tokens = self.refresh(tokens, now)
            response = self._call(method, self._api + path, tokens, body)
        return response, tokens

    def _call(self, method: str, url: str, tokens: Tokens, body: Any) -> http.Response:
        headers = {"Authorization": f"Bearer {tokens.access_token}", "Accept": "application/json"}
        if body is None:
            return self._request(method, url, headers=headers)
        headers["Content-Type"] = "application/json"
        return self._request(method, url, headers=headers, content=json.dumps(body).encode())

    def _request(
        self,
        method: str,
        url: str,
        *,
        headers: Mapping[str, str],
        content: bytes | None = None,
    ) -> http.Response:
        try:
            return self._http.request(method, url, headers=headers, content=content)
        except http.UrlRefused as exc:
            raise GmailFailed(f"{method} refused: {exc}") from None
        except http.TransportFailed as exc:
            raise GmailRetry(str(exc)) from None
