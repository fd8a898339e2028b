"""A stand-in for Google on 127.0.0.1: the OAuth token endpoint and the parts of Gmail we call.

It checks each request as Google documents it and answers Google-shaped errors otherwise:
the token endpoint wants a form with our client id and secret and a known code (once, with its
redirect URI) or refresh token; the Gmail API wants a bearer token it issued, unexpired at the
peer's clock and carrying the scope the method needs, and for `messages/send` a JSON body whose
`raw` is base64url of an RFC 5322 message with From, To, Subject and Message-ID. Sent messages
land in a Sent folder that `messages?q=rfc822msgid:<id>&labelIds=SENT` searches. A test may
queue answers (`fail_next`) that replace the next answer of a route, after it is recorded.
"""

from __future__ import annotations

import base64
import binascii
import email
import email.policy
import json
import re
import secrets
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import EmailMessage
from typing import Any, cast
from urllib.parse import parse_qs, urlsplit

from bot.demo.serving import QuietHandler, serving

SEND_SCOPE = "https://www.googleapis.com/auth/gmail.send"
READ_SCOPE = "https://www.googleapis.com/auth/gmail.readonly"
TOKEN_PATH = "/token"
API = "/gmail/v1/users/me/"
TOKEN_LIFETIME = 3599
_BASE64URL = re.compile(r"[A-Za-z0-9_-]*={0,2}")


@dataclass
class Request:
    method: str
    path: str  # without the query
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: bytes

    @property
    def route(self) -> str:
        """`token`, `send`, `list`, `profile` or `other`."""
        return _route(self.method, self.path)


@dataclass
class SentMessage:
    id: str
    account: str
    message_id: str  # with its angle brackets, as in the header
    message: EmailMessage


@dataclass
class _Access:
    account: str
    scopes: frozenset[str]
    expires_at: datetime


@dataclass
class GooglePeer:
    url: str = ""
    client_id: str = "client-123.apps.googleusercontent.com"
    client_secret: str = "client-secret-456"
    now: datetime = field(default_factory=lambda: datetime(2025, 1, 6, 9, 0, tzinfo=UTC))
    # A refresh also returns a new refresh token (Google may rotate them).
    rotate_refresh_tokens: bool = False
    requests: list[Request] = field(default_factory=list)
    sent: list[SentMessage] = field(default_factory=list)
    _codes: dict[str, tuple[str, str, frozenset[str]]] = field(default_factory=dict)
    _refresh: dict[str, tuple[str, frozenset[str]]] = field(default_factory=dict)
    _access: dict[str, _Access] = field(default_factory=dict)
    _queued: dict[str, list[tuple[int, dict[str, str], bytes]]] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)

    # --- What a test sets up -------------------------------------------------------------------

    def grant(
        self,
        account: str,
        redirect_uri: str,
        scopes: tuple[str, ...] = (SEND_SCOPE, READ_SCOPE),
    ) -> str:
        """A one-time code, as Google's consent screen would send it to `redirect_uri`."""
        code = "4/0A" + secrets.token_urlsafe(12)
        with self.lock:
            self._codes[code] = (account, redirect_uri, frozenset(scopes))
        return code

    def expire_access_tokens(self) -> None:
        """Forget every access token (Google may invalidate them before `expires_in`)."""
        with self.lock:
            self._access.clear()

    def revoke(self) -> None:
        """The user removed our access: every token, refresh tokens included, is refused."""
        with self.lock:
            self._access.clear()
            self._refresh.clear()

    def fail_next(
        self, route: str, status: int, body: Any = None, headers: dict[str, str] | None = None
    ) -> None:
        """Answer the next request of `route` with this (a dict body is sent as JSON)."""
        raw = json.dumps(body).encode() if isinstance(body, dict) else (body or b"")
        with self.lock:
            self._queued.setdefault(route, []).append((status, headers or {}, raw))

    def routes(self) -> list[str]:
        with self.lock:
            return [r.route for r in self.requests]

    def grant_types(self) -> list[str]:
        with self.lock:
            return [
                parse_qs(r.body.decode())["grant_type"][0]
                for r in self.requests
                if r.route == "token"
            ]

    # --- Serving -------------------------------------------------------------------------------

    def handle(self, request: Request) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            self.requests.append(request)
            queued = self._queued.get(request.route)
            if queued:
                return queued.pop(0)
            if request.route == "token":
                return _answer(*self._token(request))
            if request.route == "other":
                return _answer(*google_error(404, "Requested entity was not found.", "notFound"))
            access = self._authenticate(request)
            if isinstance(access, tuple):
                return _answer(*access)
            if request.route == "profile":
                return _answer(*self._profile(request, access))
            if request.route == "send":
                return _answer(*self._send(request, access))
            return _answer(*self._list(request, access))

    def _token(self, request: Request) -> tuple[int, dict[str, Any]]:
        if request.headers.get("content-type", "").split(";")[0] != (
            "application/x-www-form-urlencoded"
        ):
            return _oauth_error(400, "invalid_request", "Expected a form body.")
        try:
            form = parse_qs(request.body.decode(), keep_blank_values=True, strict_parsing=True)
        except (UnicodeDecodeError, ValueError):
            return _oauth_error(400, "invalid_request", "The form cannot be read.")
        if any(len(values) != 1 for values in form.values()):
            return _oauth_error(400, "invalid_request", "A parameter is repeated.")
        fields = {k: v[0] for k, v in form.items()}
        if request.query:
            return _oauth_error(400, "invalid_request", "Parameters belong in the body.")
        if fields.get("client_id") != self.client_id:
            return _oauth_error(401, "invalid_client", "The OAuth client was not found.")
        if fields.get("client_secret") != self.client_secret:
            return _oauth_error(401, "invalid_client", "Unauthorized")
        grant_type = fields.get("grant_type")
        if grant_type == "authorization_code":
            if set(fields) != {"client_id", "client_secret", "grant_type", "code", "redirect_uri"}:
                return _oauth_error(400, "invalid_request", f"Unexpected fields {sorted(fields)}")
            granted = self._codes.pop(fields["code"], None)  # a code works once
            if granted is None:
                return _oauth_error(400, "invalid_grant", "Bad Request")
            account, redirect_uri, scopes = granted
            if fields["redirect_uri"] != redirect_uri:
                return _oauth_error(400, "redirect_uri_mismatch", "Bad Request")
            refresh_token = "1//0" + secrets.token_urlsafe(16)
            self._refresh[refresh_token] = (account, scopes)
            return 200, {**self._issue(account, scopes), "refresh_token": refresh_token}
        if grant_type == "refresh_token":
            if set(fields) != {"client_id", "client_secret", "grant_type", "refresh_token"}:
                return _oauth_error(400, "invalid_request", f"Unexpected fields {sorted(fields)}")
            known = self._refresh.get(fields["refresh_token"])
            if known is None:
                return _oauth_error(400, "invalid_grant", "Token has been expired or revoked.")
            answer = self._issue(*known)
            if self.rotate_refresh_tokens:
                del self._refresh[fields["refresh_token"]]
                answer["refresh_token"] = "1//0" + secrets.token_urlsafe(16)
                self._refresh[answer["refresh_token"]] = known
            return 200, answer
        return _oauth_error(400, "unsupported_grant_type", f"Invalid grant_type: {grant_type}")

    def _issue(self, account: str, scopes: frozenset[str]) -> dict[str, Any]:
        token = "ya29." + secrets.token_urlsafe(24)
        expires_at = self.now + timedelta(seconds=TOKEN_LIFETIME)
        self._access[token] = _Access(account, scopes, expires_at)
        return {
            "access_token": token,
            "expires_in": TOKEN_LIFETIME,
            "scope": " ".join(sorted(scopes)),
            "token_type": "Bearer",
        }

    def _authenticate(self, request: Request) -> _Access | tuple[int, dict[str, Any]]:
        header = request.headers.get("authorization", "")
        token = header.removeprefix("Bearer ") if header.startswith("Bearer ") else None
        access = self._access.get(token) if token else None
        if access is None or access.expires_at <= self.now:
            return google_error(
                401,
                "Request had invalid authentication credentials. Expected OAuth 2 access token,"
                " login cookie or other valid authentication credential.",
                "authError",
            )
        needed = SEND_SCOPE if request.route == "send" else READ_SCOPE
        if needed not in access.scopes:
            return google_error(
                403, "Request had insufficient authentication scopes.", "insufficientPermissions"
            )
        return access

    def _profile(self, request: Request, access: _Access) -> tuple[int, dict[str, Any]]:
        if request.method != "GET" or request.query or request.body:
            return google_error(400, "users.getProfile takes no parameters", "badRequest")
        mine = [m for m in self.sent if m.account == access.account]
        return 200, {
            "emailAddress": access.account,
            "messagesTotal": len(mine),
            "threadsTotal": len(mine),
            "historyId": str(1000 + len(mine)),
        }

    def _send(self, request: Request, access: _Access) -> tuple[int, dict[str, Any]]:
        if request.headers.get("content-type", "").split(";")[0] != "application/json":
            return google_error(400, "Expected a JSON message resource", "badRequest")
        try:
            resource = json.loads(request.body)
        except ValueError:
            return google_error(400, "Invalid JSON payload received.", "badRequest")
        if not isinstance(resource, dict) or not isinstance(resource.get("raw"), str):
            return google_error(
                400,
                "'raw' RFC822 payload message string or uploading message via /upload/* URL"
                " required",
                "invalidArgument",
            )
        if set(resource) - {"raw", "threadId"}:
            return google_error(400, f"Unknown fields {sorted(resource)}", "invalidArgument")
        raw = resource["raw"]
        if not _BASE64URL.fullmatch(raw):
            return google_error(400, "Invalid value for ByteString: not base64url", "badRequest")
        try:
            data = base64.urlsafe_b64decode(raw + "=" * (-len(raw) % 4))
        except (binascii.Error, ValueError):
            return google_error(400, "Invalid value for ByteString", "badRequest")
        message = cast(EmailMessage, email.message_from_bytes(data, policy=email.policy.default))
        if not message["To"]:
            return google_error(400, "Recipient address required", "invalidArgument")
        for name in ("From", "Subject", "Message-ID"):
            if not message[name]:
                # Gmail itself would fill From and Message-ID in; we never rely on that.
                return google_error(400, f"Stand-in: the message has no {name}", "invalidArgument")
        gmail_id = secrets.token_hex(8)
        self.sent.append(SentMessage(gmail_id, access.account, str(message["Message-ID"]), message))
        return 200, {"id": gmail_id, "threadId": gmail_id, "labelIds": ["SENT"]}

    def _list(self, request: Request, access: _Access) -> tuple[int, dict[str, Any]]:
        known = {"q", "labelIds", "includeSpamTrash", "maxResults", "pageToken"}
        if request.method != "GET" or set(request.query) - known or request.body:
            return google_error(400, f"Unexpected parameters {sorted(request.query)}", "badRequest")
        labels = request.query.get("labelIds", [])
        query = request.query.get("q", [""])
        if len(query) != 1:
            return google_error(400, "q is repeated", "badRequest")
        wanted: str | None = None
        in_sent = "SENT" in labels and set(labels) <= {"SENT"}
        for term in query[0].split():
            if term.startswith("rfc822msgid:"):
                wanted = term.removeprefix("rfc822msgid:")
            elif term == "in:sent":
                in_sent = True
            else:
                return google_error(400, f"Stand-in: unsupported search term {term}", "badRequest")
        if wanted is None or not in_sent:
            return google_error(400, "Stand-in: search Sent by rfc822msgid", "badRequest")
        bare = wanted.removeprefix("<").removesuffix(">")
        found = [
            {"id": m.id, "threadId": m.id}
            for m in self.sent
            if m.account == access.account and m.message_id.strip("<>") == bare
        ]
        if not found:
            return 200, {"resultSizeEstimate": 0}  # Gmail leaves `messages` out
        return 200, {"messages": found, "resultSizeEstimate": len(found)}


def _route(method: str, path: str) -> str:
    if path == TOKEN_PATH and method == "POST":
        return "token"
    if path == API + "messages/send" and method == "POST":
        return "send"
    if path == API + "messages" and method == "GET":
        return "list"
    if path == API + "profile" and method == "GET":
        return "profile"
    return "other"


_STATUS = {
    400: "INVALID_ARGUMENT",
    401: "UNAUTHENTICATED",
    403: "PERMISSION_DENIED",
    404: "NOT_FOUND",
    429: "RESOURCE_EXHAUSTED",
    500: "INTERNAL",
    503: "UNAVAILABLE",
}


def google_error(code: int, message: str, reason: str) -> tuple[int, dict[str, Any]]:
    """A Google API error as Gmail sends it."""
    return code, {
        "error": {
            "code": code,
            "message": message,
            "errors": [{"message": message, "domain": "global", "reason": reason}],
            "status": _STATUS.get(code, "UNKNOWN"),
        }
    }


def _oauth_error(code: int, error: str, description: str) -> tuple[int, dict[str, Any]]:
    return code, {"error": error, "error_description": description}


def _answer(status: int, body: dict[str, Any]) -> tuple[int, dict[str, str], bytes]:
    return status, {"Content-Type": "application/json; charset=UTF-8"}, json.dumps(body).encode()


@contextmanager
def google_peer() -> Iterator[GooglePeer]:
    """A GooglePeer serving on a free 127.0.0.1 port until the block ends."""
    peer = GooglePeer()

    class Handler(QuietHandler):
        def do_GET(self) -> None:
            self._handle()

        def do_POST(self) -> None:
            self._handle()

        def _handle(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            split = urlsplit(self.path)
            request = Request(
                self.command,
                split.path,
                parse_qs(split.query, keep_blank_values=True),
                {k.lower(): v for k, v in self.headers.items()},
                self.rfile.read(length),
            )
            status, headers, body = peer.handle(request)
            self.send_response(status)
            for name, value in headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

    with serving(Handler) as url:
        peer.url = url
        yield peer
