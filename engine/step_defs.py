"""A workflow's steps (workflow-format.md): what every step has, and each action's fields.
Every check that needs nothing but the document runs here; the workspace checks are each
action's `problems` (engine.actions)."""

from __future__ import annotations

import re
from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    field_validator,
    model_validator,
)

from engine.def_types import (
    DurationText,
    PathError,
    StrictModel,
    UserRef,
    duration_seconds,
    rule_syntax,
    shown,
    template_list,
    template_text,
    url_base,
)

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
        return rule_syntax(value)

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
        return value if value is None else template_text(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        template_text(value)
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
                raise ValueError(f"{shown(name)} is not a valid header name")
            if name.casefold() in _CLIENT_HEADERS:
                raise PathError(name, "is set by the client and cannot be given")
            if "\n" in text or "\r" in text:
                raise PathError(name, "a header value is one line")
            try:
                template_text(text)
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
                raise ValueError(f"{shown(name)} is not a field name")
            if name in _NOT_SETTABLE:
                why = "use the owner action" if name == "owner" else "it is derived"
                raise PathError(name, f"cannot be set by update ({why})")
            if isinstance(given, str):
                try:
                    template_text(given)
                except ValueError as exc:
                    raise PathError(name, str(exc)) from None
        return value


APPROVAL_AUTO = "auto"
_CHANNEL = re.compile(r"#[a-z0-9][a-z0-9_-]{0,79}|[CG][A-Z0-9]{2,}")


def _channel(value: str) -> str:
    if not _CHANNEL.fullmatch(value):
        raise ValueError(f"{shown(value)} is not a channel: write #name (lowercase) or its id (C…)")
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
        return value if value is None else template_text(value)

    @field_validator("to", "cc")
    @classmethod
    def _many_templates(cls, value: list[str]) -> list[str]:
        return template_list(value)

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
        return template_text(value)


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
        return template_text(value)

    @field_validator("to")
    @classmethod
    def _many_templates(cls, value: list[str]) -> list[str]:
        return template_list(value)


class TaskStep(StepDef):
    subject: str = Field(min_length=1, max_length=255)
    body: str = Field(default="", max_length=30_000)
    due_in: DurationText = "1d"
    owner: UserRef | None = None  # default: the record's owner

    @field_validator("subject", "body")
    @classmethod
    def _one_template(cls, value: str) -> str:
        return template_text(value)

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
        "action", f"unknown action {shown(action)} (one of: {', '.join(BUILT_ACTIONS)})"
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
