"""`POST /slack/events`: slash commands, interactions and Events API deliveries, over HTTP.

The signature is checked on the raw body before anything reads it (a bad or missing
signature, or a timestamp more than 5 minutes away: 401). The sync Bolt app then runs in a
worker thread, so the event loop never waits on a listener; its answer (status, headers,
body) is Slack's answer.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence

from slack_bolt import App, BoltRequest, BoltResponse
from slack_sdk.signature import SignatureVerifier
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import PlainTextResponse, Response
from starlette.routing import Route

from bot.app import create_app
from engine.runtime import Runtime

log = logging.getLogger(__name__)

PATH = "/slack/events"
MAX_BODY_BYTES = 1024 * 1024  # Slack's payloads are a few KB; a view with 100 blocks, ~100 KB


class _TooLarge(Exception):
    pass


async def _read_body(request: Request) -> bytes:
    declared = request.headers.get("content-length")
    if declared and declared.isdigit() and int(declared) > MAX_BODY_BYTES:
        raise _TooLarge
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_BODY_BYTES:
            raise _TooLarge
    return bytes(body)


def verified(verifier: SignatureVerifier, body: bytes, timestamp: str, signature: str) -> bool:
    """Whether Slack signed `body` at `timestamp` (within 5 minutes of now) with our secret."""
    if not timestamp.isdigit() or not signature:
        return False
    try:
        return verifier.is_valid(body, timestamp, signature)
    except UnicodeDecodeError:  # a body that is not UTF-8 was not signed by Slack
        return False


def _starlette(response: BoltResponse) -> Response:
    return Response(
        content=response.body,
        status_code=response.status,
        headers=response.first_headers_without_set_cookie(),
    )


def make_routes(rt: Runtime, *, app: App | None = None) -> list[Route]:
    """The Slack endpoint, dispatching to `app` (by default `create_app` on rt's settings)."""
    secret = rt.settings.slack_signing_secret
    if not secret:
        raise ValueError("SLACK_SIGNING_SECRET: required when SLACK_BOT_TOKEN is set")
    verifier = SignatureVerifier(secret)
    slack_app = app or create_app(rt.settings, rt=rt)

    def dispatch(body: str, query: str, headers: dict[str, str | Sequence[str]]) -> Response:
        bolt_request = BoltRequest(body=body, query=query, headers=headers)
        return _starlette(slack_app.dispatch(bolt_request))

    async def events(request: Request) -> Response:
        try:
            body = await _read_body(request)
        except _TooLarge:
            return PlainTextResponse("request too large", 413)
        timestamp = request.headers.get("x-slack-request-timestamp", "")
        signature = request.headers.get("x-slack-signature", "")
        if not verified(verifier, body, timestamp, signature):
            log.warning("slack request refused: bad or missing signature, or a stale timestamp")
            return PlainTextResponse("invalid signature", 401)
        headers: dict[str, str | Sequence[str]] = dict(request.headers.items())
        return await run_in_threadpool(dispatch, body.decode("utf-8"), request.url.query, headers)

    return [Route(PATH, events, methods=["POST"])]
