"""The Slack Web API as the workers call it: a few methods over `slack_sdk.WebClient`, with
slack_sdk's errors translated here into three (rate limited, Slack's answer, unreachable).

Nothing here sleeps or retries: a 429 leaves as `SlackRateLimited(retry_after)` and the step
is rescheduled as a row (RELIABILITY 12). A posted message carries the step's idempotency key
in its metadata, so `find_posted` can tell whether an earlier claim already posted it.
"""

from __future__ import annotations

import http.client
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackRequestError
from sqlalchemy import Engine

from engine.settings import Settings
from storage.db import session_scope
from storage.queries import slack_channels

EVENT_TYPE = "workflowbot_step"
TIMEOUT_SECONDS = 15  # well under the step lease: a hung call gives up long before it
DEFAULT_RETRY_AFTER = 30.0  # when a 429 carries no readable Retry-After
LIST_PAGE = 1000  # conversations.list's largest page
MAX_LIST_PAGES = 100  # 100,000 channels; past that a name is not worth the calls
HISTORY_PAGE = 200
MAX_HISTORY_PAGES = 5
CHANNEL_TYPES = "public_channel,private_channel"


class SlackRateLimited(Exception):
    """HTTP 429: call again no sooner than `retry_after` seconds from now."""

    def __init__(self, retry_after: float) -> None:
        super().__init__(f"Slack rate limited the call; retry after {retry_after:g} s")
        self.retry_after = retry_after


class SlackError(Exception):
    """Slack answered `ok: false`; `code` is its `error` field (`channel_not_found`, ...)."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


class SlackUnavailable(Exception):
    """Slack could not be reached or failed on its side (refused, timeout, 5xx): worth a retry."""


@dataclass(frozen=True)
class SlackUser:
    """A Slack user as the engine needs one (email needs the users:read.email scope)."""

    slack_id: str
    email: str | None
    name: str
    real_name: str | None
    deleted: bool = False


def client(settings: Settings) -> WebClient:
    """A Web API client on SLACK_BOT_TOKEN and SLACK_API_URL that never retries by itself."""
    return WebClient(
        token=settings.slack_bot_token,
        base_url=settings.slack_api_url,
        timeout=TIMEOUT_SECONDS,
        retry_handlers=[],  # the defaults would sleep and call again inside a worker thread
    )


@contextmanager
def _translated() -> Iterator[None]:
    """slack_sdk's and the network's errors as this module's three."""
    try:
        yield
    except SlackApiError as exc:
        response = exc.response
        status = response.status_code
        if status == 429:
            raise SlackRateLimited(_retry_after(response.headers)) from None
        if status >= 500:
            raise SlackUnavailable(f"Slack answered HTTP {status}") from None
        data = response.data if isinstance(response.data, dict) else {}
        code = data.get("error")
        raise SlackError(str(code) if code else f"http_{status}") from None
    except SlackRequestError as exc:
        raise SlackUnavailable(str(exc)) from None
    except (OSError, http.client.HTTPException) as exc:  # refused, reset, timeout, TLS
        reason = getattr(exc, "reason", None) or exc
        raise SlackUnavailable(f"Slack is unreachable: {reason}") from None


def _retry_after(headers: Mapping[str, Any]) -> float:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            value = value[0] if isinstance(value, list) and value else value
            try:
                return max(float(value), 0.0)
            except (TypeError, ValueError):
                break
    return DEFAULT_RETRY_AFTER


def _data(response: Any) -> dict[str, Any]:
    data = response.data
    return data if isinstance(data, dict) else {}


def _next_cursor(data: Mapping[str, Any]) -> str:
    return str((data.get("response_metadata") or {}).get("next_cursor") or "")


def is_channel_id(channel: str) -> bool:
    """An id (`C…`, `G…`, `D…`) is used as is; a `#name` is resolved."""
    return not channel.startswith("#")


def resolve_channel(db: Engine, client: WebClient, channel: str, now: datetime) -> str:
    """The id of `channel` (`C…`/`G…` as is, `#name` from the cache or conversations.list,
    remembered once found); SlackError("channel_not_found") when no channel has that name."""
    if is_channel_id(channel):
        return channel
    name = channel.removeprefix("#")
    with session_scope(db) as session:
        cached = slack_channels.cached_id(session, name=name)
    if cached is not None:
        return cached
    found = _list_channel(client, name)
    if found is None:
        raise SlackError("channel_not_found")
    with session_scope(db) as session:
        slack_channels.remember(session, channel_id=found, name=name, now=now)
    return found


def _list_channel(client: WebClient, name: str) -> str | None:
    cursor = ""
    for _ in range(MAX_LIST_PAGES):
        with _translated():
            response = client.conversations_list(
                types=CHANNEL_TYPES, exclude_archived=True, limit=LIST_PAGE, cursor=cursor or None
            )
        data = _data(response)
        for found in data.get("channels") or []:
            if found.get("name") == name:
                return str(found["id"])
        cursor = _next_cursor(data)
        if not cursor:
            break
    return None


def post(
    client: WebClient,
    channel_id: str,
    text: str,
    blocks: Sequence[Mapping[str, Any]],
    metadata_key: str,
) -> str:
    """chat.postMessage with `metadata_key` in the message's metadata; the message's ts."""
    with _translated():
        response = client.chat_postMessage(
            channel=channel_id,
            text=text,
            blocks=[dict(b) for b in blocks],
            metadata={"event_type": EVENT_TYPE, "event_payload": {"key": metadata_key}},
            unfurl_links=False,
        )
    return str(_data(response)["ts"])


def update(
    client: WebClient,
    channel_id: str,
    ts: str,
    text: str,
    blocks: Sequence[Mapping[str, Any]],
) -> None:
    """chat.update: the message at `ts` now shows `text` and `blocks` (its metadata stays)."""
    with _translated():
        client.chat_update(channel=channel_id, ts=ts, text=text, blocks=[dict(b) for b in blocks])


def find_posted(
    client: WebClient, channel_id: str, metadata_key: str, oldest: datetime
) -> str | None:
    """The ts of our message carrying `metadata_key` posted since `oldest` (a few pages of
    history at most), or None; None too when the bot is not in the channel (it cannot have
    posted there)."""
    cursor = ""
    for _ in range(MAX_HISTORY_PAGES):
        try:
            with _translated():
                response = client.conversations_history(
                    channel=channel_id,
                    oldest=f"{oldest.timestamp():.6f}",
                    include_all_metadata=True,
                    limit=HISTORY_PAGE,
                    cursor=cursor or None,
                )
        except SlackError as exc:
            if exc.code == "not_in_channel":
                return None
            raise
        data = _data(response)
        for message in data.get("messages") or []:
            metadata = message.get("metadata") or {}
            payload = metadata.get("event_payload") or {}
            if metadata.get("event_type") == EVENT_TYPE and payload.get("key") == metadata_key:
                return str(message["ts"])
        cursor = _next_cursor(data)
        if not cursor or not data.get("has_more", True):
            break
    return None


def join(client: WebClient, channel_id: str) -> None:
    """conversations.join (a public channel; a private one answers with a SlackError)."""
    with _translated():
        client.conversations_join(channel=channel_id)


def _user(data: Mapping[str, Any]) -> SlackUser:
    profile = data.get("profile") or {}
    return SlackUser(
        slack_id=str(data["id"]),
        email=profile.get("email") or None,
        name=str(data.get("name") or ""),
        real_name=data.get("real_name") or profile.get("real_name") or None,
        deleted=bool(data.get("deleted")),
    )


def users_info(client: WebClient, user_id: str) -> SlackUser | None:
    """users.info, or None when Slack knows no such user."""
    try:
        with _translated():
            response = client.users_info(user=user_id)
    except SlackError as exc:
        if exc.code == "user_not_found":
            return None
        raise
    return _user(_data(response)["user"])


def lookup_by_email(client: WebClient, email: str) -> SlackUser | None:
    """users.lookupByEmail, or None when no user has that address."""
    try:
        with _translated():
            response = client.users_lookupByEmail(email=email)
    except SlackError as exc:
        if exc.code == "users_not_found":
            return None
        raise
    return _user(_data(response)["user"])


def open_dm(client: WebClient, user_id: str) -> str:
    """conversations.open with one user: the id of the bot's direct-message channel."""
    with _translated():
        response = client.conversations_open(users=user_id)
    return str(_data(response)["channel"]["id"])
