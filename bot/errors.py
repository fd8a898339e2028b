"""Errors as the Slack user sees them: `UserError` for what the user should be told as is, and
the one translator behind `app.error` for everything a listener raises.

The user gets an ephemeral message (the ack's own body for a slash command, the response_url
otherwise, a direct message where there is none: a click in the App Home or in a modal), a
pushed notice for a modal submission, or no options for a select; an unexpected error shows
only an id that is also in the log line with its stack trace, never the trace.

`guard` wraps every listener: an error raised after the listener acked is answered here, not
left to Bolt, whose thread runner then resets the ack it had (Slack would see no answer).
"""

from __future__ import annotations

import json
import logging
import secrets
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Executor
from typing import Any

from slack_bolt import BoltResponse, Respond
from slack_bolt.listener import Listener
from slack_bolt.listener.custom_listener import CustomListener
from slack_sdk import WebClient

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


def _logged(error: Exception, body: Mapping[str, Any]) -> str:
    """Log `error` (a refusal as info, anything else with its trace); the text for the user."""
    text, error_id = describe(error)
    kind = _kind(body)
    if error_id is None:
        log.info("slack %s by %s refused: %s", kind, _user(body), text)
    else:
        log.error("slack %s by %s failed (error %s)", kind, _user(body), error_id, exc_info=error)
    return text


def make_handler(executor: Executor) -> Callable[..., BoltResponse | None]:
    """The app's one error handler; replies that need a call to Slack run on `executor`, so
    an error raised before `ack()` is still answered at once."""

    def handle_error(
        error: Exception,
        body: dict[str, Any],
        response: BoltResponse | None,
        respond: Respond | None,
        client: WebClient | None = None,
    ) -> BoltResponse | None:
        text = _logged(error, body)
        kind = _kind(body)
        if response is not None:  # not acknowledged yet: the answer to Slack carries it
            if kind == "command":
                return _json(200, {"response_type": "ephemeral", "text": text})
            if kind == "view_submission":
                view = kit.notice_view("Workflow Bot", text)
                return _json(200, {"response_action": "push", "view": view})
            if kind == "block_suggestion":
                return _json(200, {"options": []})
        executor.submit(tell, body, text, respond, client)
        return BoltResponse(status=200, body="") if response is not None else None

    return handle_error


def tell(
    body: Mapping[str, Any], text: str, respond: Respond | None, client: WebClient | None
) -> None:
    """`text` to the user of `body`: ephemeral through the response_url, else by direct
    message (the App Home and modals have no response_url)."""
    user = _user(body)
    try:
        if respond is not None and respond.response_url:
            respond(text=text, response_type="ephemeral", replace_original=False)
        elif client is not None and user != "?":
            client.chat_postMessage(channel=user, text=text)
        else:
            log.warning("no way to tell %s: %s", user, text)
    except Exception:  # the reply to an error failing too: the log line is all that is left
        log.warning("could not send the error message to Slack", exc_info=True)


# What `guard` needs of every request, besides what the listener itself asks for.
_GUARD_ARGS = ("ack", "body", "respond", "client")


def guard(listener: Listener) -> None:
    """Make `listener` answer its own errors raised after its ack (logged, then told to the
    user as app.error would); an error before the ack still goes to app.error, whose answer
    is the ack. Bolt passes a listener the arguments it names, so the guard names its own
    needs too and hands the listener only what it asked for."""
    if not isinstance(listener, CustomListener):
        return  # not one of ours
    run, wanted = listener.ack_function, list(listener.arg_names)

    def guarded(**kwargs: Any) -> Any:
        try:
            return run(**{name: kwargs[name] for name in wanted if name in kwargs})
        except Exception as error:
            if kwargs["ack"].response is None:
                raise
            text = _logged(error, kwargs["body"])
            tell(kwargs["body"], text, kwargs.get("respond"), kwargs.get("client"))
            return None

    listener.ack_function = guarded
    listener.arg_names = list(dict.fromkeys([*wanted, *_GUARD_ARGS]))
