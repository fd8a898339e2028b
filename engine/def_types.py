"""The building blocks of the definition format's models: a strict base model, errors that
name a path, durations, rule and template checks, URL bases, user references."""

from __future__ import annotations

import json
import re
from typing import Annotated

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
)

from engine import rules, templating
from engine.rules import RuleError, parse
from engine.rules.analysis import leaves
from engine.rules.ast import AggregateCompare, Duration
from engine.rules.ast import Field as RuleField
from engine.segments import SegmentError, check_rule

MAX_DURATION_SECONDS = 3650 * 86400  # ten years: past that a timestamp sum may overflow


class PathError(ValueError):
    """An error for a path below the field or model whose validator raised it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"@{path}: {message}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def shown(value: object) -> str:
    """A value as the user wrote it: strings in double quotes, others as JSON prints them."""
    try:
        return json.dumps(value, ensure_ascii=False)
    except (TypeError, ValueError):
        return repr(value)


# -- durations ----------------------------------------------------------------------------------
def parse_duration(text: str) -> Duration:
    """`30m`, `4h`, `3d`, `2w` as a Duration (`.seconds`), or ValueError saying what to write."""
    duration = rules.parse_duration(text.strip())  # the rule language's grammar, one place
    if duration is None:
        raise ValueError(f"{shown(text)} is not a duration (use 30m, 4h, 3d or 2w)")
    if duration.seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{shown(text)} is longer than ten years")
    return duration


def duration_seconds(text: str | None) -> int:
    """The seconds a stored duration string means; None (no delay) is 0."""
    return 0 if text is None else parse_duration(text).seconds


def _duration_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{shown(value)} is not a duration (use 30m, 4h, 3d or 2w)")
    parse_duration(value)
    return value.strip()


# Kept as written (an export writes back what the user wrote); `duration_seconds` reads it.
DurationText = Annotated[str, BeforeValidator(_duration_text)]


# -- rules and templates ------------------------------------------------------------------------
def rule_syntax(text: str | None) -> str | None:
    if text is not None:
        try:
            parse(text)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
    return text


def object_rule(object_type: str | None, text: str | None, path: str = "") -> None:
    """The checks of `segments.check_rule` (`account.` fields only in contact rules)."""
    if object_type is None or text is None:
        return  # the object's own error is reported; a syntax error already was
    try:
        check_rule(object_type, text)
    except (RuleError, SegmentError) as exc:
        raise (PathError(path, str(exc)) if path else ValueError(str(exc))) from None


def check_event_where(text: str) -> None:
    """An event trigger's `where`: a rule over the event's `properties.*` and `timestamp` only,
    without aggregates, as inside `count(E where R, D)`; ValueError (or RuleError) says why."""
    for leaf in leaves(parse(text)):
        if isinstance(leaf, AggregateCompare):
            raise ValueError(f"{leaf.aggregate.function}(...) cannot be used in an event's where")
        field = getattr(leaf, "field", None)
        path = field.path if isinstance(field, RuleField) else ()
        if not ((len(path) >= 2 and path[0] == "properties") or path == ("timestamp",)):
            raise ValueError(f"only properties.NAME and timestamp are known here, not '{field}'")


def template_text(text: str) -> str:
    try:
        templating.check(text)
    except templating.TemplateError as exc:
        raise ValueError(str(exc)) from None
    return text


_TEMPLATE_START = re.compile(r"\{[{%#]")
_AUTHORITY = re.compile(r"([A-Za-z][A-Za-z0-9+.-]*)://([^/?#]*)[/?#]")


def url_base(url: str) -> str | None:
    """`scheme://host[:port]/` of a URL whose path or query holds a template; the URL itself
    when it holds none; None when a template reaches into the scheme or host."""
    start = _TEMPLATE_START.search(url)
    if start is None:
        return url
    found = _AUTHORITY.match(url[: start.start()])
    return f"{found[1]}://{found[2]}/" if found else None


# -- users ----------------------------------------------------------------------------------------
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _user_ref(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if _SLACK_USER.fullmatch(text) or _EMAIL.fullmatch(text):
            return text
    raise ValueError(f"{shown(value)} is not a Slack user id (U… or W…) or an email address")


# A user as a workflow file writes one: a Slack id or an email address.
UserRef = Annotated[str, BeforeValidator(_user_ref)]


def template_list(values: list[str]) -> list[str]:
    for i, text in enumerate(values):
        try:
            template_text(text)
        except ValueError as exc:
            raise PathError(f"[{i}]", str(exc)) from None
    return values
