"""The `workflows:` part of the workflow-format document: durations, triggers, steps, workflows.

Every check that needs nothing but the document runs here, while validating; checks that need
the workspace (segments, stages, URLs, template names) are `definitions.check_references`.
Errors are raised so that `definitions._describe` names the full path of each problem; a
`PathError` names a path below the field or model that raised it.
"""

from __future__ import annotations

import json
import re
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine import rules, templating
from engine.rules import RuleError, parse
from engine.rules.analysis import leaves
from engine.rules.ast import AggregateCompare, Duration
from engine.rules.ast import Field as RuleField
from engine.segments import SegmentError, check_rule

Bucket = Literal["bad", "neutral", "good"]
BUCKETS: tuple[Bucket, ...] = ("bad", "neutral", "good")
TRIGGER_KINDS = ("segment", "stage", "health", "event")
BUILT_ACTIONS = (
    "email",
    "slack",
    "owner",
    "update",
    "team_notification",
    "webhook",
    "hubspot_task",
    "salesforce_task",
)
# A trigger index key matching every key of its signal kind (`health: change`).
ANY_KEY = "*"
MAX_DURATION_SECONDS = 3650 * 86400  # ten years: past that a timestamp sum may overflow


class PathError(ValueError):
    """An error for a path below the field or model whose validator raised it."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"@{path}: {message}")


class StrictModel(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


def _shown(value: object) -> str:
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
        raise ValueError(f"{_shown(text)} is not a duration (use 30m, 4h, 3d or 2w)")
    if duration.seconds > MAX_DURATION_SECONDS:
        raise ValueError(f"{_shown(text)} is longer than ten years")
    return duration


def duration_seconds(text: str | None) -> int:
    """The seconds a stored duration string means; None (no delay) is 0."""
    return 0 if text is None else parse_duration(text).seconds


def _duration_text(value: object) -> str:
    if not isinstance(value, str):
        raise ValueError(f"{_shown(value)} is not a duration (use 30m, 4h, 3d or 2w)")
    parse_duration(value)
    return value.strip()


# Kept as written (an export writes back what the user wrote); `duration_seconds` reads it.
DurationText = Annotated[str, BeforeValidator(_duration_text)]


# -- rules and templates ------------------------------------------------------------------------
def _rule_syntax(text: str | None) -> str | None:
    if text is not None:
        try:
            parse(text)
        except RuleError as exc:
            raise ValueError(str(exc)) from None
    return text


def _object_rule(object_type: str | None, text: str | None, path: str = "") -> None:
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


def _template(text: str) -> str:
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


# -- triggers -----------------------------------------------------------------------------------
class SegmentTrigger(StrictModel):
    """The record enters or leaves the segment."""

    segment: str = Field(min_length=1, max_length=200)
    when: Literal["enter", "leave"] = "enter"


class StageTrigger(StrictModel):
    """The record's stage becomes, or stops being, `stage` (case-insensitively)."""

    stage: str = Field(min_length=1, max_length=100)
    when: Literal["enter", "leave"] = "enter"


class HealthTrigger(StrictModel):
    """The health bucket moves down, up or at all; `to` / `from` (optional) name buckets."""

    health: Literal["drop", "rise", "change"]
    to: Bucket | None = None
    from_: Bucket | None = Field(default=None, alias="from")

    @model_validator(mode="after")
    def _possible(self) -> HealthTrigger:
        lowest, highest = BUCKETS[0], BUCKETS[-1]
        if self.health == "rise" and self.to == lowest:
            raise PathError("to", f"health cannot rise to {lowest} (the lowest bucket)")
        if self.health == "drop" and self.to == highest:
            raise PathError("to", f"health cannot drop to {highest} (the highest bucket)")
        if self.health == "rise" and self.from_ == highest:
            raise PathError("from", f"health cannot rise from {highest} (the highest bucket)")
        if self.health == "drop" and self.from_ == lowest:
            raise PathError("from", f"health cannot drop from {lowest} (the lowest bucket)")
        if self.from_ is not None and self.from_ == self.to:
            raise PathError(
                "to", "the same as from: a health trigger fires when the bucket changes"
            )
        return self


class EventTrigger(StrictModel):
    """The record performs the event; `where` filters on its `properties.*` (and timestamp)."""

    event: str = Field(min_length=1, max_length=200)
    where: str | None = Field(default=None, min_length=1)

    @field_validator("where")
    @classmethod
    def _where(cls, value: str | None) -> str | None:
        if value is not None:
            try:
                check_event_where(value)
            except ValueError as exc:  # RuleError is one
                raise ValueError(str(exc)) from None
        return value


def _refuse_trigger(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("must be a mapping such as {segment: NAME, when: enter}")
    raise ValueError(f"give exactly one of {', '.join(TRIGGER_KINDS)}")


def _trigger_kind(value: Any) -> str:
    kinds = [kind for kind in TRIGGER_KINDS if kind in value] if isinstance(value, dict) else []
    return f"trigger={kinds[0]}" if len(kinds) == 1 else "trigger=?"


Trigger = Annotated[
    Annotated[SegmentTrigger, Tag("trigger=segment")]
    | Annotated[StageTrigger, Tag("trigger=stage")]
    | Annotated[HealthTrigger, Tag("trigger=health")]
    | Annotated[EventTrigger, Tag("trigger=event")]
    | Annotated[Any, BeforeValidator(_refuse_trigger), Tag("trigger=?")],
    Discriminator(_trigger_kind),
]


# -- users ----------------------------------------------------------------------------------------
_SLACK_USER = re.compile(r"[UW][A-Z0-9]{2,}")
_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")


def _user_ref(value: object) -> object:
    if isinstance(value, str):
        text = value.strip()
        if _SLACK_USER.fullmatch(text) or _EMAIL.fullmatch(text):
            return text
    raise ValueError(f"{_shown(value)} is not a Slack user id (U… or W…) or an email address")


# A user as a workflow file writes one: a Slack id or an email address.
UserRef = Annotated[str, BeforeValidator(_user_ref)]


def _templates(values: list[str]) -> list[str]:
    for i, text in enumerate(values):
        try:
            _template(text)
        except ValueError as exc:
            raise PathError(f"[{i}]", str(exc)) from None
    return values


# -- steps --------------------------------------------------------------------------------------
class StepDef(StrictModel):
    """What every step has: its action, an optional name, `delay` before it and `only_if`."""

    action: str
    name: str | None = Field(default=None, min_length=1, max_length=200)
    delay: DurationText | None = None
    only_if: str | None = Field(default=None, min_length=1)

    @field_validator("only_if")
    @classmethod
    def _only_if(cls, value: str | None) -> str | None:
        return _rule_syntax(value)

    @property
    def delay_seconds(self) -> int:
        return duration_seconds(self.delay)


_HEADER_NAME = re.compile(r"[!#$%&'*+.^_`|~0-9A-Za-z-]+")
# Set by the HTTP client from the pinned connection and the body; a header may not override them.
_CLIENT_HEADERS = frozenset(["host", "content-length", "transfer-encoding", "connection"])


class WebhookStep(StepDef):
    """POST to `url` with `headers`; `body` is a template, else the engine's default JSON."""

    action: Literal["webhook"]
    url: str = Field(min_length=1, max_length=2000)
    headers: dict[str, str] = {}
    body: str | None = None

    @field_validator("body")
    @classmethod
    def _body(cls, value: str | None) -> str | None:
        return value if value is None else _template(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        _template(value)
        if url_base(value) is None:
            raise ValueError(
                "a template may be used only in the URL's path or query, after "
                "https://HOST/ (the host is checked when the workflow is saved)"
            )
        return value

    @field_validator("headers")
    @classmethod
    def _headers(cls, value: dict[str, str]) -> dict[str, str]:
        for name, text in value.items():
            if not _HEADER_NAME.fullmatch(name):
                raise ValueError(f"{_shown(name)} is not a valid header name")
            if name.casefold() in _CLIENT_HEADERS:
                raise PathError(name, "is set by the client and cannot be given")
            if "\n" in text or "\r" in text:
                raise PathError(name, "a header value is one line")
            try:
                _template(text)
            except ValueError as exc:
                raise PathError(name, str(exc)) from None
        return value


# Fields `update` may not set: the owner is a user (the `owner` action), the rest is derived.
_NOT_SETTABLE = frozenset(["owner", "health", "created_at", "last_seen_at", "account", "email"])
_TRAIT_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_ .-]{0,99}")


class UpdateStep(StepDef):
    """Set fields of the record: `stage`, `name`, `health_score` or any trait; a string
    value is a template. A change like any other: segments and workflows see it."""

    action: Literal["update"]
    set: dict[str, str | int | float | bool | None] = Field(min_length=1)

    @field_validator("set")
    @classmethod
    def _set(
        cls, value: dict[str, str | int | float | bool | None]
    ) -> dict[str, str | int | float | bool | None]:
        for name, given in value.items():
            if not _TRAIT_NAME.fullmatch(name):
                raise ValueError(f"{_shown(name)} is not a field name")
            if name in _NOT_SETTABLE:
                why = "use the owner action" if name == "owner" else "it is derived"
                raise PathError(name, f"cannot be set by update ({why})")
            if isinstance(given, str):
                try:
                    _template(given)
                except ValueError as exc:
                    raise PathError(name, str(exc)) from None
        return value


APPROVAL_AUTO = "auto"
_CHANNEL = re.compile(r"#[a-z0-9][a-z0-9_-]{0,79}|[CG][A-Z0-9]{2,}")


def _channel(value: str) -> str:
    if not _CHANNEL.fullmatch(value):
        raise ValueError(
            f"{_shown(value)} is not a channel: write #name (lowercase) or its id (C…)"
        )
    return value


class EmailStep(StepDef):
    """An email drafted from templates, approved in a channel (or sent at once with
    `approval: auto`), sent through the provider (`email`, `html`) or the sender's Gmail."""

    action: Literal["email"]
    kind: Literal["gmail", "email", "html"] = "email"
    from_: str | None = Field(default=None, alias="from", min_length=1, max_length=400)
    to: list[str] = Field(min_length=1, max_length=50)
    cc: list[str] = Field(default=[], max_length=50)
    reply_to: str | None = Field(default=None, min_length=1, max_length=400)
    subject: str = Field(min_length=1, max_length=1000)
    body: str = Field(min_length=1, max_length=100_000)
    approval: str | None = None
    approval_timeout: DurationText = "7d"

    @field_validator("subject", "body", "from_", "reply_to")
    @classmethod
    def _one_template(cls, value: str | None) -> str | None:
        return value if value is None else _template(value)

    @field_validator("to", "cc")
    @classmethod
    def _many_templates(cls, value: list[str]) -> list[str]:
        return _templates(value)

    @field_validator("approval")
    @classmethod
    def _approval(cls, value: str | None) -> str | None:
        if value is None or value == APPROVAL_AUTO:
            return value
        return _channel(value)

    @model_validator(mode="after")
    def _gmail_sender(self) -> EmailStep:
        if self.kind == "gmail" and self.from_ is None:
            raise PathError(
                "from",
                "a gmail email is sent from a user's Gmail: name the user (Slack id, "
                "email or a template such as '{{ owner.email }}')",
            )
        return self

    @property
    def approval_timeout_seconds(self) -> int:
        return duration_seconds(self.approval_timeout)


class SlackStep(StepDef):
    """Post `text` (a template, Slack mrkdwn) to a channel with the record's key facts."""

    action: Literal["slack"]
    channel: str
    text: str = Field(min_length=1, max_length=3000)

    @field_validator("channel")
    @classmethod
    def _channel(cls, value: str) -> str:
        return _channel(value)

    @field_validator("text")
    @classmethod
    def _text(cls, value: str) -> str:
        return _template(value)


class OwnerStep(StepDef):
    """Make a user the record's owner: `fixed` (one user) or `round_robin` over `users`."""

    action: Literal["owner"]
    assign: Literal["fixed", "round_robin"]
    users: list[UserRef] = Field(min_length=1, max_length=200)
    notify: StrictBool = False  # DM the new owner with the record's facts

    @model_validator(mode="after")
    def _count(self) -> OwnerStep:
        if self.assign == "fixed" and len(self.users) != 1:
            raise PathError("users", "assign: fixed takes exactly one user")
        if len({u.casefold() for u in self.users}) != len(self.users):
            raise PathError("users", "a user is listed twice")
        return self


class TeamNotificationStep(StepDef):
    """A plain-text email to the team's addresses through the provider: no approval."""

    action: Literal["team_notification"]
    to: list[str] = Field(min_length=1, max_length=50)
    subject: str = Field(min_length=1, max_length=1000)
    body: str = Field(min_length=1, max_length=100_000)

    @field_validator("subject", "body")
    @classmethod
    def _one_template(cls, value: str) -> str:
        return _template(value)

    @field_validator("to")
    @classmethod
    def _many_templates(cls, value: list[str]) -> list[str]:
        return _templates(value)


class TaskStep(StepDef):
    subject: str = Field(min_length=1, max_length=255)
    body: str = Field(default="", max_length=30_000)
    due_in: DurationText = "1d"
    owner: UserRef | None = None  # default: the record's owner

    @field_validator("subject", "body")
    @classmethod
    def _one_template(cls, value: str) -> str:
        return _template(value)

    @property
    def due_in_seconds(self) -> int:
        return duration_seconds(self.due_in)


class HubspotTaskStep(TaskStep):
    """A task in HubSpot on the record's company or contact."""

    action: Literal["hubspot_task"]


class SalesforceTaskStep(TaskStep):
    """A task in Salesforce on the record's Account (WhatId) or Contact (WhoId)."""

    action: Literal["salesforce_task"]


def _refuse_action(value: Any) -> Any:
    if not isinstance(value, dict):
        raise ValueError("a step must be a mapping with an action")
    if "action" not in value:
        raise PathError("action", "Field required")
    action = value["action"]
    raise PathError(
        "action", f"unknown action {_shown(action)} (one of: {', '.join(BUILT_ACTIONS)})"
    )


def _action_kind(value: Any) -> str:
    action = value.get("action") if isinstance(value, dict) else None
    return f"action={action}" if action in BUILT_ACTIONS else "action=?"


Step = Annotated[
    Annotated[EmailStep, Tag("action=email")]
    | Annotated[SlackStep, Tag("action=slack")]
    | Annotated[OwnerStep, Tag("action=owner")]
    | Annotated[UpdateStep, Tag("action=update")]
    | Annotated[TeamNotificationStep, Tag("action=team_notification")]
    | Annotated[WebhookStep, Tag("action=webhook")]
    | Annotated[HubspotTaskStep, Tag("action=hubspot_task")]
    | Annotated[SalesforceTaskStep, Tag("action=salesforce_task")]
    | Annotated[Any, BeforeValidator(_refuse_action), Tag("action=?")],
    Discriminator(_action_kind),
]
UNION_TAGS = frozenset(
    [f"trigger={kind}" for kind in (*TRIGGER_KINDS, "?")]
    + [f"action={action}" for action in (*BUILT_ACTIONS, "?")]
)


# -- a workflow ---------------------------------------------------------------------------------


class WorkflowDef(StrictModel):
    """One workflow, keys exactly as workflow-format.md names them; durations kept as written."""

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=3000)
    object: Literal["account", "contact"]
    trigger: Trigger
    only_if: str | None = Field(default=None, min_length=1)
    enrollment: Literal["once", "every_time"] = "once"
    reenroll_after: DurationText | None = None
    enroll_existing: StrictBool = False
    exit_if: str | None = Field(default=None, min_length=1)
    on_failure: Literal["stop", "continue"] = "stop"
    admins: list[UserRef] = []
    status: Literal["draft", "live", "disabled"] = "draft"
    resume_window: DurationText = "24h"
    steps: list[Step]

    @field_validator("only_if", "exit_if")
    @classmethod
    def _rule(cls, value: str | None, info: ValidationInfo) -> str | None:
        _rule_syntax(value)
        _object_rule(info.data.get("object"), value)
        return value

    @field_validator("reenroll_after")
    @classmethod
    def _reenroll(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is not None and info.data.get("enrollment") == "once":
            raise ValueError("only meaningful with enrollment: every_time (it spaces enrollments)")
        return value

    @field_validator("steps")
    @classmethod
    def _steps(cls, value: list[StepDef], info: ValidationInfo) -> list[StepDef]:
        if not value:
            raise ValueError("a workflow needs at least one step")
        for i, step in enumerate(value):
            _object_rule(info.data.get("object"), step.only_if, f"[{i}].only_if")
        return value

    @property
    def resume_window_seconds(self) -> int:
        return duration_seconds(self.resume_window)

    @property
    def reenroll_after_seconds(self) -> int:
        return duration_seconds(self.reenroll_after)
