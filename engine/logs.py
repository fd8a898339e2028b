"""Log lines for people (text) or for a log pipeline (JSON, one object a line), carrying the
ids of the work at hand: `with log_context(workflow_id=..., step_run_id=...)` around a step
run, an enrollment's evaluation, a Slack request.

Context holds ids only (numbers and short tokens, checked on entry); a message or traceback
that carries a Slack token or a configured secret prints it as `[redacted]`.
"""

from __future__ import annotations

import json
import logging
import re
import sys
import traceback
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from datetime import UTC, datetime
from types import MappingProxyType
from typing import Any, Literal

TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
FIELDS = frozenset(
    ["workflow_id", "enrollment_id", "step_run_id", "slack_request_id", "request_id"]
)
_ID = re.compile(r"[A-Za-z0-9._:-]{1,120}")
# Slack tokens (bot, user, app, config, refresh) and HTTP credentials, whatever logged them.
_TOKENS = re.compile(
    r"\b(?:xox[abposre]|xapp|xoxe\.xox[bp])-[A-Za-z0-9-]+"
    r"|(?i:\b(?:bearer|basic)\s+)[A-Za-z0-9._~+/=-]{8,}"
)
REDACTED = "[redacted]"

_NONE: Mapping[str, str | int] = MappingProxyType({})
_context: ContextVar[Mapping[str, str | int]] = ContextVar("workflowbot_log_context", default=_NONE)
_secrets: tuple[str, ...] = ()


def current() -> Mapping[str, str | int]:
    """The ids in force in this thread or task."""
    return _context.get()


@contextmanager
def log_context(**ids: str | int | None) -> Iterator[None]:
    """Add these ids to every line logged inside the block (None values are left out); an
    unknown field or a value that is not an id is a programming error."""
    fresh: dict[str, str | int] = {}
    for name, value in ids.items():
        if name not in FIELDS:
            raise ValueError(f"log context field {name!r} is not one of {sorted(FIELDS)}")
        if value is None:
            continue
        if not is_id(value):
            raise ValueError(f"log context field {name!r} takes an id, not {type(value).__name__}")
        fresh[name] = value
    token = _context.set({**_context.get(), **fresh})
    try:
        yield
    finally:
        _context.reset(token)


def is_id(value: object) -> bool:
    """Whether `value` may go in the log context (a number or a short token)."""
    if isinstance(value, bool):
        return False
    return isinstance(value, int) or (isinstance(value, str) and bool(_ID.fullmatch(value)))


def redact(text: str) -> str:
    """`text` with Slack tokens, HTTP credentials and the configured secrets blotted out."""
    for secret in _secrets:
        text = text.replace(secret, REDACTED)
    return _TOKENS.sub(REDACTED, text)


class TextFormatter(logging.Formatter):
    """The human format, with context ids appended and secrets redacted."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        ids = " ".join(f"{k}={v}" for k, v in current().items())
        return redact(f"{line} [{ids}]" if ids else line)


class JsonFormatter(logging.Formatter):
    """One JSON object a line: ts, level, logger, message, the context ids, and `exc` (the
    traceback) when an exception is logged."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": redact(record.getMessage()),
            **current(),
        }
        if record.exc_info:
            entry["exc"] = redact("".join(traceback.format_exception(*record.exc_info)).rstrip())
        elif record.exc_text:
            entry["exc"] = redact(record.exc_text)
        if record.stack_info:
            entry["stack"] = redact(record.stack_info)
        return json.dumps(entry, default=str, ensure_ascii=False)


def formatter(fmt: Literal["text", "json"]) -> logging.Formatter:
    return JsonFormatter() if fmt == "json" else TextFormatter()


def setup(
    fmt: Literal["text", "json"],
    *,
    level: int | None = None,
    secrets: Iterable[str | None] = (),
) -> None:
    """Format every line of this process as `fmt`: with no root handler, a stderr one is
    added; handlers already there (Dramatiq's own, in a worker) are reformatted for JSON and
    left alone for text (as `logging.basicConfig` would). `secrets` are redacted from then on."""
    global _secrets
    _secrets = tuple(sorted({s for s in secrets if s and len(s) >= 8}, key=len, reverse=True))
    root = logging.getLogger()
    if not root.handlers:
        stream = logging.StreamHandler(sys.stderr)
        stream.setFormatter(formatter(fmt))
        root.addHandler(stream)
    elif fmt == "json":  # a pipeline reads every line: reformat the handlers already there
        for handler in root.handlers:
            handler.setFormatter(formatter(fmt))
    if level is not None:
        root.setLevel(level)


def secrets_of(settings: Any) -> list[str]:
    """The settings' secret values, to redact from every line."""
    found: list[str] = [*settings.secret_key, *settings.ingest_write_keys]
    for name in (
        "slack_bot_token",
        "slack_signing_secret",
        "slack_app_token",
        "google_client_secret",
        "salesforce_client_secret",
        "salesforce_refresh_token",
        "hubspot_token",
        "webhook_secret",
    ):
        value = getattr(settings, name, None)
        if value:
            found.append(value)
    return found
