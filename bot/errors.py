"""Errors as the Slack user sees them: `UserError` for what the user should be told as is, and
the one translator behind `app.error` for everything a listener raises.

The user gets an ephemeral message (the ack's own body for a slash command, the response_url
otherwise), a pushed notice for a modal submission, or no options for a select; an unexpected
error shows only an id that is also in the log line with its stack trace, never the trace.
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from slack_bolt import BoltResponse, Respond

from blocks import kit

log = logging.getLogger(__name__)

JSON_HEADERS: dict[str, str | Sequence[str]] = {"content-type": "application/json;charset=utf-8"}


class UserError(Exception):
    """Something the user can fix or must know; its message (mrkdwn, user text in it already
    escaped) is shown to them as is."""


def describe(error: Exception) -> tuple[str, str | None]:
    """The message shown for `error`, and the id it is logged under (None for a UserError)."""
    if isinstance(error, UserError):
        return str(error), None
    error_id = secrets.token_hex(4)
    return (
        ":warning: Something went wrong on our side. It is logged as error "
        f"`{error_id}`: try again, or give that id to whoever runs Workflow Bot.",
        error_id,
    )


def _kind(body: Mapping[str, Any]) -> str:
    if "command" in body:
        return "command"
    return str(body.get("type") or "unknown")


def _user(body: Mapping[str, Any]) -> str:
    user = body.get("user")
    if isinstance(user, Mapping):
        return str(user.get("id") or "?")
    event = body.get("event")
    if isinstance(event, Mapping) and isinstance(event.get("user"), str):
        return str(event["user"])
    return str(body.get("user_id") or user or "?")


def _json(status: int, data: Mapping[str, Any]) -> BoltResponse:
    return BoltResponse(status=status, body=json.dumps(data), headers=JSON_HEADERS)


def make_handler(executor: Executor) -> Callable[..., BoltResponse | None]:
    """The app's one error handler; replies that need a call to Slack run on `executor`, so
    an error raised before `ack()` is still answered at once."""

    def handle_error(
        error: Exception,
        body: dict[str, Any],
        response: BoltResponse | None,
        respond: Respond | None,
    ) -> BoltResponse | None:
        text, error_id = describe(error)
        kind = _kind(body)
        if error_id is None:
            log.info("slack %s by %s refused: %s", kind, _user(body), text)
        else:
            log.error(
                "slack %s by %s failed (error %s)", kind, _user(body), error_id, exc_info=error
            )
        if response is not None:  # not acknowledged yet: the answer to Slack carries it
            if kind == "command":
                return _json(200, {"response_type": "ephemeral", "text": text})
            if kind == "view_submission":
                view = kit.notice_view("Workflow Bot", text)
                return _json(200, {"response_action": "push", "view": view})
            if kind == "block_suggestion":
                return _json(200, {"options": []})
        if respond is not None:
            executor.submit(_respond, respond, text)
        return BoltResponse(status=200, body="") if response is not None else None

    return handle_error


def _respond(respond: Respond, text: str) -> None:
    try:
        respond(text=text, response_type="ephemeral", replace_original=False)
    except Exception:  # the reply to an error failing too: the log line is all that is left
        log.warning("could not send the error message to Slack", exc_info=True)
