"""The Slack app: one Bolt `App` per process, its listeners from bot/listeners/, one error
handler, and the rule that an event Slack delivers twice runs once.

Served over HTTP by bot/slack_web.py (`/slack/events`) or over Socket Mode (`workflowbot
socket`); both dispatch to the same app.
"""

from __future__ import annotations

import contextvars
import logging
import uuid
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from slack_bolt import App, BoltResponse
from slack_bolt.authorization import AuthorizeResult
from slack_sdk import WebClient

from bot import errors
from bot.authz import Admins
from bot.listeners import Deps, register_all
from engine import logs, slack
from engine import runtime as runtime_mod
from engine.runtime import Runtime
from engine.settings import Settings
from storage.db import session_scope
from storage.queries import slack_events

log = logging.getLogger(__name__)

# Listeners run here after their ack (answers through response_url, views.update…); enough
# that a few slow ones never keep a new request from being acked within 3 seconds.
LISTENER_THREADS = 16
# Recording an event id happens before Slack gets its answer: it must not eat the 3 seconds.
RECORD_TIMEOUT_MS = 1000


class _KnownNotes(logging.Filter):
    """Drop Bolt's start-up notes that `token` is unused: we pass it on purpose through
    `authorize` (see `create_app`), and the notes would read as a misconfiguration."""

    PREFIXES = ("As you gave `client` as well", "As `installation_store` or `authorize`")

    def filter(self, record: logging.LogRecord) -> bool:
        return not record.getMessage().startswith(self.PREFIXES)


def _quiet_known_notes() -> None:
    bolt_log = logging.getLogger("slack_bolt.App")
    if not any(isinstance(f, _KnownNotes) for f in bolt_log.filters):
        bolt_log.addFilter(_KnownNotes())


def _authorize(token: str) -> Callable[..., AuthorizeResult]:
    """The single workspace's bot token, with no call to Slack.

    Bolt's own single-token mode calls auth.test on the first request, before any listener
    can ack it; this one never calls out (the bot's own user id is then unknown to Bolt)."""

    def authorize(
        enterprise_id: str | None, team_id: str | None, user_id: str | None
    ) -> AuthorizeResult:
        return AuthorizeResult(
            enterprise_id=enterprise_id, team_id=team_id, user_id=user_id, bot_token=token
        )

    return authorize


class _ContextExecutor(ThreadPoolExecutor):
    """Runs each listener in a copy of the submitting thread's context, so its log lines
    carry the Slack request's id (engine.logs)."""

    def submit(self, fn: Callable[..., Any], /, *args: Any, **kwargs: Any) -> Any:
        return super().submit(contextvars.copy_context().run, fn, *args, **kwargs)


def _request_id(body: dict[str, Any], next_: Callable[[], None]) -> None:
    """Middleware: every line logged for this request carries `slack_request_id` (the
    body's trigger_id, else event_id, else a fresh id; Socket Mode's envelope id is not in
    the body)."""
    found = body.get("trigger_id") or body.get("event_id")
    rid = found if logs.is_id(found) else f"local-{uuid.uuid4().hex[:16]}"
    with logs.log_context(slack_request_id=rid):
        next_()


def _once_per_event(rt: Runtime) -> Callable[..., BoltResponse | None]:
    """Middleware: an Events API delivery whose event_id is already recorded (Slack's retry,
    or a duplicate reaching another process) is answered 200 and goes no further."""

    def once_per_event(body: dict[str, Any], next_: Callable[[], None]) -> BoltResponse | None:
        event_id = body.get("event_id") if body.get("type") == "event_callback" else None
        if isinstance(event_id, str) and event_id:
            with session_scope(rt.db) as session:
                first = slack_events.record(
                    session, event_id=event_id, now=rt.clock.now(), timeout_ms=RECORD_TIMEOUT_MS
                )
            if not first:
                log.info("slack event %s seen before: answered, not run again", event_id)
                return BoltResponse(status=200, body="")
        next_()
        return None

    return once_per_event


def create_app(
    settings: Settings, client: WebClient | None = None, *, rt: Runtime | None = None
) -> App:
    """The Bolt app on SLACK_BOT_TOKEN, calling SLACK_API_URL through `client` (by default one
    that never retries by itself), with every listener of bot/listeners registered. `rt` (the
    database, clock…) defaults to this process's runtime."""
    if not settings.slack_bot_token:
        raise ValueError("SLACK_BOT_TOKEN: required by the Slack app")
    rt = rt or runtime_mod.get()
    executor = _ContextExecutor(LISTENER_THREADS, thread_name_prefix="slack-listener")
    _quiet_known_notes()
    app = App(
        name="workflowbot",
        client=client or slack.client(settings),
        authorize=_authorize(settings.slack_bot_token),
        signing_secret=settings.slack_signing_secret or "",
        # Socket Mode needs no signing secret; over HTTP, slack_web verifies before dispatch.
        request_verification_enabled=bool(settings.slack_signing_secret),
        listener_executor=executor,
    )
    app.use(_request_id)
    app.use(_once_per_event(rt))
    app.error(errors.make_handler(executor))
    web = app.client

    def members_of(group_id: str) -> list[str]:
        return list(web.usergroups_users_list(usergroup=group_id).get("users") or [])

    admins = Admins(settings.slack_admins, members_of)
    register_all(app, Deps(settings=settings, rt=rt, admins=admins))
    for listener in app._listeners:  # Bolt keeps them here; no public way to wrap them all
        errors.guard(listener)
    return app
