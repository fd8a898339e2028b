"""Requests as Slack sends them to /slack/events, signed as Slack signs them, and the web app
served on 127.0.0.1 with its Web API calls going to the Slack stand-in (tests/slack_peer.py).

- `slash_command`, `interaction` (`payload=` form field) and `event_callback` (JSON) build
  bodies shaped like Slack's;
- `signed_headers` signs one: `v0=` + HMAC-SHA256 of `v0:{timestamp}:{body}` with the
  signing secret, in `X-Slack-Signature` and `X-Slack-Request-Timestamp`;
- `slack_web_app(rt, peer)` serves the real web app (bot.web) and yields a `SlackSender`,
  whose response_urls point at the stand-in, so what a listener `respond`s is a recorded call.
"""

from __future__ import annotations

import hashlib
import hmac
import itertools
import json
import time
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import httpx

from engine.runtime import Runtime
from tests.blocks.limits import checked_blocks as checked_blocks  # its callers import it here
from tests.helpers import serve
from tests.slack_peer import TEAM, SlackPeer

SIGNING_SECRET = "d2a7f0c1e5b94c3aa8e6f1b2c3d4e5f6"
USER = "U0CSM0001"
CHANNEL = "C0CS00001"
APP_ID = "A0WFB0001"
RESPONSE_PREFIX = "response/"  # response_url paths on the stand-in

_ids = itertools.count(1)


@dataclass(frozen=True)
class SlackRequest:
    body: bytes
    content_type: str


def slash_command(
    text: str,
    *,
    response_url: str,
    command: str = "/workflow",
    user_id: str = USER,
    channel_id: str = CHANNEL,
) -> SlackRequest:
    """A slash command, form-encoded with the fields Slack sends."""
    n = next(_ids)
    fields = {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "team_domain": "acme",
        "channel_id": channel_id,
        "channel_name": "customer-success",
        "user_id": user_id,
        "user_name": "ana",
        "command": command,
        "text": text,
        "api_app_id": APP_ID,
        "is_enterprise_install": "false",
        "response_url": response_url,
        "trigger_id": f"{n}.{n * 7}.0a1b2c3d4e5f{n:04d}",
    }
    return SlackRequest(urlencode(fields).encode(), "application/x-www-form-urlencoded")


def interaction(payload: Mapping[str, Any]) -> SlackRequest:
    """An interaction (block_actions, view_submission…): its JSON in the `payload` field."""
    body = urlencode({"payload": json.dumps(payload)}).encode()
    return SlackRequest(body, "application/x-www-form-urlencoded")


def event_callback(event: Mapping[str, Any], *, event_id: str) -> SlackRequest:
    """An Events API delivery of `event`."""
    envelope = {
        "token": "legacy-verification-token",
        "team_id": TEAM,
        "api_app_id": APP_ID,
        "event": dict(event),
        "type": "event_callback",
        "event_id": event_id,
        "event_time": int(time.time()),
        "authorizations": [
            {"team_id": TEAM, "user_id": "UBOT0001", "is_bot": True, "is_enterprise_install": False}
        ],
    }
    return SlackRequest(json.dumps(envelope).encode(), "application/json")


def signature(body: bytes, timestamp: str, secret: str = SIGNING_SECRET) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def signed_headers(
    request: SlackRequest,
    *,
    secret: str = SIGNING_SECRET,
    timestamp: int | None = None,
    retry_num: int | None = None,
) -> dict[str, str]:
    """The headers Slack sends with `request` (a retry carries X-Slack-Retry-Num/-Reason)."""
    ts = str(int(time.time()) if timestamp is None else timestamp)
    headers = {
        "Content-Type": request.content_type,
        "X-Slack-Request-Timestamp": ts,
        "X-Slack-Signature": signature(request.body, ts, secret),
    }
    if retry_num is not None:
        headers["X-Slack-Retry-Num"] = str(retry_num)
        headers["X-Slack-Retry-Reason"] = "http_timeout"
    return headers


@dataclass
class SlackSender:
    """Sends signed requests to the served app's /slack/events, as Slack would."""

    http: httpx.Client
    peer: SlackPeer

    def response_url(self) -> str:
        return f"{self.peer.url}{RESPONSE_PREFIX}{next(_ids)}"

    def send(
        self, request: SlackRequest, headers: Mapping[str, str] | None = None
    ) -> httpx.Response:
        """POST `request`, signed now unless `headers` are given."""
        sent = dict(headers) if headers is not None else signed_headers(request)
        return self.http.post("/slack/events", content=request.body, headers=sent)

    def command(self, text: str, **fields: Any) -> httpx.Response:
        """`/workflow TEXT` from the default user, its response_url at the stand-in."""
        fields.setdefault("response_url", self.response_url())
        return self.send(slash_command(text, **fields))

    def responded(self) -> list[dict[str, Any]]:
        """What listeners posted to response_urls, in order."""
        return [c.params for c in self.peer.calls if c.method.startswith(RESPONSE_PREFIX)]


@contextmanager
def slack_web_app(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    """The real web app (bot.web) with the Slack app mounted, served on 127.0.0.1: its bot
    token and Web API are the stand-in's, its signing secret SIGNING_SECRET."""
    from bot.web import create_web_app
    from engine import tasks

    rt.settings = rt.settings.model_copy(
        update={
            "slack_bot_token": peer.token,
            "slack_signing_secret": SIGNING_SECRET,
            "slack_api_url": peer.url,
        }
    )
    app = create_web_app(rt, enqueue=tasks.enqueue_evaluation, inprocess_worker=False)
    with serve(app) as url, httpx.Client(base_url=url, timeout=30) as http:
        yield SlackSender(http, peer)
