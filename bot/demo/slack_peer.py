"""A Slack Web API stand-in on 127.0.0.1, for tests and the workers' client.

It answers the methods the product calls as Slack documents them (POST, form-encoded or
JSON, `Authorization: Bearer xoxb-…`), keeps channels, members, messages (with metadata),
users and shared files (`add_file`: files.info, and the download at `url_private_download`,
which needs the bot token as Slack's does), records every call (method, params, auth header),
and lets a test queue answers per method (`rate_limit`, `error`, `queue`), add handlers for more
methods (`on`), delay every answer (`delay`) and watch calls as they arrive (`on_call`). Point
a client at `peer.url` (SLACK_API_URL) with `peer.token` (SLACK_BOT_TOKEN).
"""

from __future__ import annotations

import base64
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import parse_qsl, urlsplit

from bot.demo.serving import QuietHandler, serving

BOT_USER = "UBOT0001"
BOT_ID = "BBOT0001"
TEAM = "T0TEST01"
FILES_PREFIX = "files-pri/"  # download paths, beside /api/ (Slack serves them from files.slack.com)
# The bot scopes slack-manifest.yml asks for; auth.test names the token's in `x-oauth-scopes`.
SCOPES = [
    "commands",
    "chat:write",
    "chat:write.public",
    "channels:read",
    "groups:read",
    "channels:join",
    "channels:history",
    "groups:history",
    "im:write",
    "users:read",
    "users:read.email",
    "usergroups:read",
    "files:write",
    "files:read",
]


class SlackFail(Exception):
    """Raised by a handler: answered `{"ok": false, "error": code}` (HTTP 200, as Slack does)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


@dataclass
class Call:
    """One request as received: `params` merges query string and body (JSON or form)."""

    method: str
    params: dict[str, Any]
    auth: str | None
    content_type: str


@dataclass
class Answer:
    """A queued answer: sent instead of the method's normal one (no state changes)."""

    status: int = 200
    body: dict[str, Any] | str = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)


@dataclass
class Channel:
    id: str
    name: str
    is_private: bool = False
    is_im: bool = False
    is_archived: bool = False
    members: set[str] = field(default_factory=set)
    messages: list[dict[str, Any]] = field(default_factory=list)

    def info(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "name": self.name,
            "is_channel": not self.is_private and not self.is_im,
            "is_group": self.is_private,
            "is_im": self.is_im,
            "is_private": self.is_private or self.is_im,
            "is_archived": self.is_archived,
            "is_member": BOT_USER in self.members,
            "num_members": len(self.members),
        }


Handler = Callable[["SlackPeer", dict[str, Any]], dict[str, Any]]


@dataclass
class SlackPeer:
    url: str = ""
    token: str = "fake-bot-token-for-tests"
    channels: dict[str, Channel] = field(default_factory=dict)
    users: dict[str, dict[str, Any]] = field(default_factory=dict)
    # A shared file's id -> (what files.info says, its bytes).
    files: dict[str, tuple[dict[str, Any], bytes]] = field(default_factory=dict)
    calls: list[Call] = field(default_factory=list)
    answers: dict[str, list[Answer]] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    # conversations.list answers at most this many per page, whatever `limit` says.
    list_page_cap: int = 1000
    scopes: list[str] = field(default_factory=lambda: list(SCOPES))
    delay: float = 0.0
    on_call: Callable[[Call], None] | None = None
    now: Callable[[], float] = time.time
    lock: threading.RLock = field(default_factory=threading.RLock)
    _ids: Iterator[int] = field(default_factory=lambda: itertools.count(1))
    _last_ts: float = 0.0

    # -- set-up and inspection ----------------------------------------------------------------
    def add_channel(
        self, name: str, *, private: bool = False, member: bool = True, archived: bool = False
    ) -> str:
        with self.lock:
            channel_id = f"{'G' if private else 'C'}{next(self._ids):08d}"
            members = {BOT_USER} if member else set()
            self.channels[channel_id] = Channel(channel_id, name, private, False, archived, members)
            return channel_id

    def add_user(self, name: str, email: str | None = None, real_name: str | None = None) -> str:
        with self.lock:
            user_id = f"U{next(self._ids):08d}"
            profile = {"real_name": real_name or name, "display_name": name}
            if email is not None:
                profile["email"] = email
            self.users[user_id] = {
                "id": user_id,
                "team_id": TEAM,
                "name": name,
                "real_name": real_name or name,
                "deleted": False,
                "is_bot": False,
                "profile": profile,
            }
            return user_id

    def add_file(self, name: str, content: bytes, *, user: str, filetype: str = "yaml") -> str:
        """A file `user` shared: files.info describes it, its `url_private_download` serves
        `content` to the bot token only; its id."""
        with self.lock:
            file_id = f"F{next(self._ids):08d}"
            base = self.url.removesuffix("api/")
            download = f"{base}{FILES_PREFIX}{TEAM}-{file_id}/download/{name}"
            info = {
                "id": file_id,
                "name": name,
                "title": name,
                "filetype": filetype,
                "size": len(content),
                "user": user,
                "url_private": download.replace("/download/", "/"),
                "url_private_download": download,
            }
            self.files[file_id] = (info, content)
            return file_id

    def download(self, path: str, auth: str | None) -> tuple[int, bytes]:
        """A file's bytes for the bot token; else a redirect to the sign-in page, as Slack."""
        file_id = path.removeprefix(FILES_PREFIX).split("/", 1)[0].removeprefix(f"{TEAM}-")
        with self.lock:
            found = self.files.get(file_id)
        if auth != f"Bearer {self.token}":
            return 302, b"<html>sign in</html>"
        if found is None:
            return 404, b"<html>not found</html>"
        return 200, found[1]

    def queue(self, method: str, answer: Answer) -> None:
        """Answer the next call to `method` with `answer` (answers queue up in order)."""
        with self.lock:
            self.answers.setdefault(method, []).append(answer)

    def error(self, method: str, code: str) -> None:
        self.queue(method, Answer(body={"ok": False, "error": code}))

    def rate_limit(self, method: str, retry_after: int) -> None:
        self.queue(
            method,
            Answer(429, {"ok": False, "error": "ratelimited"}, {"Retry-After": str(retry_after)}),
        )

    def unavailable(self, method: str, status: int = 503) -> None:
        self.queue(method, Answer(status, "<html>upstream unavailable</html>"))

    def on(self, method: str, handler: Handler) -> None:
        """Answer `method` with `handler(peer, params)` (raise SlackFail for an error)."""
        self.handlers[method] = handler

    def calls_to(self, method: str) -> list[Call]:
        with self.lock:
            return [c for c in self.calls if c.method == method]

    def messages(self, channel_id: str) -> list[dict[str, Any]]:
        with self.lock:
            return list(self.channels[channel_id].messages)

    # -- the HTTP side ------------------------------------------------------------------------
    def answer(self, method: str, params: dict[str, Any], auth: str | None) -> Answer:
        with self.lock:
            queued = self.answers.get(method)
            if queued:
                return queued.pop(0)
        token = auth.removeprefix("Bearer ").strip() if auth else params.get("token")
        if not token:
            return Answer(body={"ok": False, "error": "not_authed"})
        if token != self.token:
            return Answer(body={"ok": False, "error": "invalid_auth"})
        handler = self.handlers.get(method) or _METHODS.get(method)
        if handler is None:
            return Answer(404, {"ok": False, "error": "unknown_method"})
        try:
            with self.lock:
                body = handler(self, params)
        except SlackFail as exc:
            return Answer(body={"ok": False, "error": exc.code})
        # Slack names a token's scopes in a header of every answer; auth.test is where we read it.
        headers = {"x-oauth-scopes": ",".join(self.scopes)} if method == "auth.test" else {}
        return Answer(body={"ok": True, **body}, headers=headers)

    def next_ts(self) -> str:
        with self.lock:
            ts = max(self.now(), self._last_ts + 0.000001)
            self._last_ts = ts
            return f"{ts:.6f}"

    def channel(self, params: dict[str, Any]) -> Channel:
        ref = str(params.get("channel") or "")
        if not ref:
            raise SlackFail("channel_not_found")
        found = self.channels.get(ref)
        if found is None:
            name = ref.removeprefix("#")
            found = next((c for c in self.channels.values() if c.name == name), None)
        if found is None:
            raise SlackFail("channel_not_found")
        return found


# -- the methods ------------------------------------------------------------------------------
def _json_param(value: Any) -> Any:
    """A structured argument: JSON bodies carry it as is, forms as a JSON string."""
    if isinstance(value, str):
        try:
            return json.loads(value)
        except ValueError:
            raise SlackFail("invalid_arguments") from None
    return value


def _flag(value: Any) -> bool:
    return value in (True, 1, "1", "true", "True")


def _cursor(offset: int) -> str:
    return base64.b64encode(f"offset:{offset}".encode()).decode()


def _offset(cursor: Any) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.b64decode(str(cursor)).decode().removeprefix("offset:"))
    except ValueError:
        raise SlackFail("invalid_cursor") from None


def _limit(params: dict[str, Any], default: int, most: int) -> int:
    try:
        return max(1, min(int(params.get("limit") or default), most))
    except ValueError:
        raise SlackFail("invalid_limit") from None


def _post_message(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    channel = peer.channel(params)
    if channel.is_archived:
        raise SlackFail("is_archived")
    if BOT_USER not in channel.members:
        raise SlackFail("not_in_channel")
    text = params.get("text")
    blocks = _json_param(params["blocks"]) if params.get("blocks") else None
    if not text and not blocks:
        raise SlackFail("no_text")
    if blocks is not None and (
        not isinstance(blocks, list)
        or len(blocks) > 50
        or not all(isinstance(b, dict) and b.get("type") for b in blocks)
    ):
        raise SlackFail("invalid_blocks")
    message: dict[str, Any] = {
        "type": "message",
        "user": BOT_USER,
        "bot_id": BOT_ID,
        "text": text or "",
        "ts": peer.next_ts(),
    }
    if blocks is not None:
        message["blocks"] = blocks
    if params.get("metadata"):
        metadata = _json_param(params["metadata"])
        if not isinstance(metadata, dict) or "event_type" not in metadata:
            raise SlackFail("invalid_metadata_format")
        message["metadata"] = dict(metadata)
    if params.get("thread_ts"):
        message["thread_ts"] = params["thread_ts"]
    for name in ("unfurl_links", "unfurl_media"):
        if name in params:
            message[name] = _flag(params[name])
    channel.messages.append(message)
    return {"channel": channel.id, "ts": message["ts"], "message": message}


def _update(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    channel = peer.channel(params)
    message = next((m for m in channel.messages if m["ts"] == params.get("ts")), None)
    if message is None:
        raise SlackFail("message_not_found")
    if "text" in params:
        message["text"] = params["text"]
    if params.get("blocks"):
        message["blocks"] = _json_param(params["blocks"])
    return {"channel": channel.id, "ts": message["ts"], "text": message["text"]}


def _history(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    channel = peer.channel(params)
    if BOT_USER not in channel.members:
        raise SlackFail("not_in_channel")
    oldest = float(params.get("oldest") or 0)
    latest = float(params.get("latest") or "inf")
    found = [m for m in channel.messages if oldest < float(m["ts"]) < latest]
    found.sort(key=lambda m: float(m["ts"]), reverse=True)
    start, size = _offset(params.get("cursor")), _limit(params, 100, 999)
    page = found[start : start + size]
    if not _flag(params.get("include_all_metadata")):
        page = [{k: v for k, v in m.items() if k != "metadata"} for m in page]
    more = start + size < len(found)
    return {
        "messages": page,
        "has_more": more,
        "response_metadata": {"next_cursor": _cursor(start + size) if more else ""},
    }


def _list(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    types = set(str(params.get("types") or "public_channel").split(","))
    wanted = [
        c
        for c in peer.channels.values()
        if not c.is_im
        and ("private_channel" if c.is_private else "public_channel") in types
        and not (c.is_archived and _flag(params.get("exclude_archived")))
        # A private channel is listed only to its members.
        and (not c.is_private or BOT_USER in c.members)
    ]
    start = _offset(params.get("cursor"))
    size = min(_limit(params, 100, 1000), peer.list_page_cap)
    page = wanted[start : start + size]
    more = start + size < len(wanted)
    return {
        "channels": [c.info() for c in page],
        "response_metadata": {"next_cursor": _cursor(start + size) if more else ""},
    }


def _join(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    channel = peer.channel(params)
    if channel.is_private or channel.is_im:
        raise SlackFail("method_not_supported_for_channel_type")
    if channel.is_archived:
        raise SlackFail("is_archived")
    channel.members.add(BOT_USER)
    return {"channel": channel.info()}


def _info(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    channel = peer.channel(params)
    if channel.is_private and BOT_USER not in channel.members:
        raise SlackFail("channel_not_found")
    return {"channel": channel.info()}


def _open(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    users = [u for u in str(params.get("users") or "").split(",") if u]
    if not users:
        raise SlackFail("users_list_not_supplied")
    if len(users) > 1:  # a group DM: not needed by the product, so not kept here
        raise SlackFail("method_not_supported_by_stand_in")
    [user] = users
    if user not in peer.users:
        raise SlackFail("user_not_found")
    dm_id = f"D{user[1:]}"
    if dm_id not in peer.channels:
        peer.channels[dm_id] = Channel(dm_id, "", is_im=True, members={BOT_USER, user})
    return {"channel": {"id": dm_id}}


def _user_info(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    user = peer.users.get(str(params.get("user") or ""))
    if user is None:
        raise SlackFail("user_not_found")
    return {"user": user}


def _lookup(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    email = str(params.get("email") or "").lower()
    for user in peer.users.values():
        if str(user["profile"].get("email", "")).lower() == email:
            return {"user": user}
    raise SlackFail("users_not_found")


def _file_info(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    found = peer.files.get(str(params.get("file") or ""))
    if found is None:
        raise SlackFail("file_not_found")
    return {"file": dict(found[0])}


def _auth_test(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    return {
        "url": "https://test.slack.com/",
        "team_id": TEAM,
        "user_id": BOT_USER,
        "bot_id": BOT_ID,
    }


_METHODS: dict[str, Handler] = {
    "auth.test": _auth_test,
    "chat.postMessage": _post_message,
    "chat.update": _update,
    "conversations.history": _history,
    "conversations.list": _list,
    "conversations.join": _join,
    "conversations.info": _info,
    "conversations.open": _open,
    "files.info": _file_info,
    "users.info": _user_info,
    "users.lookupByEmail": _lookup,
}


def _params(query: str, content_type: str, body: bytes) -> dict[str, Any]:
    params: dict[str, Any] = dict(parse_qsl(query))
    if content_type.startswith("application/json") and body:
        loaded = json.loads(body)
        if isinstance(loaded, dict):
            params.update(loaded)
    elif content_type.startswith("application/x-www-form-urlencoded"):
        params.update(parse_qsl(body.decode()))
    return params


@contextmanager
def slack_peer(**options: Any) -> Iterator[SlackPeer]:
    """Serve a SlackPeer on 127.0.0.1 for the duration of the block."""
    peer = SlackPeer(**options)

    class Handler(QuietHandler):
        def do_POST(self) -> None:  # the Web API takes POST for every method
            self._serve()

        def do_GET(self) -> None:
            self._serve()

        def _serve(self) -> None:
            split = urlsplit(self.path)
            method = split.path.removeprefix("/api/").strip("/")
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length)
            content_type = self.headers.get("Content-Type") or ""
            call = Call(
                method,
                _params(split.query, content_type, body),
                self.headers.get("Authorization"),
                content_type,
            )
            with peer.lock:
                peer.calls.append(call)
            if peer.on_call is not None:
                peer.on_call(call)
            if peer.delay:
                time.sleep(peer.delay)
            if method.startswith(FILES_PREFIX):
                status, data = peer.download(method, call.auth)
                self.send_response(status)
                kind = "application/octet-stream" if status == 200 else "text/html"
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
                return
            answer = peer.answer(method, call.params, call.auth)
            raw = answer.body if isinstance(answer.body, str) else json.dumps(answer.body)
            data = raw.encode()
            self.send_response(answer.status)
            kind = "text/html" if isinstance(answer.body, str) else "application/json"
            self.send_header("Content-Type", f"{kind}; charset=utf-8")
            for name, value in answer.headers.items():
                self.send_header(name, value)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

    with serving(Handler) as url:
        peer.url = f"{url}/api/"
        yield peer
