"""The Segment-spec payloads we accept, and their reduction to a `Change` storage can apply."""

from __future__ import annotations

import json
import math
import re
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

import pydantic_core
from pydantic import (
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    ValidationError,
)

from engine.lifecycle import NO_STAGES, Stages
from engine.rules.values import as_timestamp

MAX_MESSAGE_BYTES = 32 * 1024
MAX_BATCH_BYTES = 500 * 1024

# \Z, not $: `$` also matches before a trailing newline. users.slack_id holds 32 characters.
SLACK_USER_ID = re.compile(r"^[UW][A-Z0-9]{2,31}\Z")
EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\Z")
MAX_EMAIL_CHARS = 320  # users.email and contacts.email
MAX_STAGE_CHARS = 100  # accounts.stage and contacts.stage


def _coerce_id(value: object) -> object:
    # Segment accepts numbers as ids; a boolean is never an id.
    if isinstance(value, bool):
        raise ValueError("must be a string or a number")
    if isinstance(value, int):
        return str(value)  # not through float: a 400-digit int overflows it
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError("must be a finite number")
        return str(int(value)) if value.is_integer() else str(value)
    return value


Id = Annotated[
    str,
    BeforeValidator(_coerce_id),
    StringConstraints(strip_whitespace=True, min_length=1, max_length=200),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]


class Context(BaseModel):
    model_config = ConfigDict(extra="allow")

    groupId: Id | None = None


class _Call(BaseModel):
    model_config = ConfigDict(extra="allow")

    messageId: Name | None = None
    userId: Id | None = None
    anonymousId: Id | None = None
    timestamp: datetime | None = None
    context: Context | None = None


class Identify(_Call):
    type: Literal["identify"] = "identify"
    traits: dict[str, Any] = Field(default_factory=dict)
    groupId: Id | None = None


class Group(_Call):
    type: Literal["group"] = "group"
    groupId: Id
    traits: dict[str, Any] = Field(default_factory=dict)


class Track(_Call):
    type: Literal["track"] = "track"
    event: Name
    properties: dict[str, Any] = Field(default_factory=dict)


class Page(_Call):
    """`page` and `screen` calls are stored as events named `page` / `screen`."""

    type: Literal["page", "screen"]
    name: str | None = None
    properties: dict[str, Any] = Field(default_factory=dict)


class Alias(_Call):
    """Accepted so pipelines can forward everything; merging identities is not supported."""

    type: Literal["alias"]
    previousId: Id | None = None


Call = Annotated[Identify | Group | Track | Page | Alias, Field(discriminator="type")]


SINGLE: dict[str, TypeAdapter[Any]] = {
    "identify": TypeAdapter(Identify),
    "group": TypeAdapter(Group),
    "track": TypeAdapter(Track),
}
CALL: TypeAdapter[Any] = TypeAdapter(Call)
CALL_TYPES = ("identify", "group", "track", "page", "screen", "alias")


@dataclass(slots=True)
class Change:
    """One accepted call, reduced to the records it touches and what it writes to them."""

    call: str
    message_id: str
    at: datetime
    contact: str | None = None
    account: str | None = None
    contact_traits: dict[str, Any] | None = None
    account_traits: dict[str, Any] | None = None
    link: bool = False
    event: str | None = None
    properties: dict[str, Any] | None = None
    generated_id: bool = False  # no messageId was sent: one was made up, never to repeat

    @property
    def anonymous(self) -> bool:
        """True when the call names no record: counted, never stored."""
        return self.contact is None and self.account is None


@dataclass(slots=True)
class FieldError:
    """A bad field: a dotted path (`batch[3].traits.owner`) and what is wrong with it."""

    field: str
    message: str

    def as_dict(self) -> dict[str, str]:
        return {"field": self.field, "message": self.message}


class InvalidPayload(Exception):
    """The payload was refused; `errors` names each bad field."""

    def __init__(self, errors: list[FieldError]) -> None:
        super().__init__("; ".join(f"{e.field}: {e.message}" for e in errors))
        self.errors = errors


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    """`('batch', 3, 'track', 'userId')` -> `batch[3].userId` (the union tag dropped)."""
    out = prefix
    skip_tag = True
    for part in loc:
        if isinstance(part, int):
            out += f"[{part}]"
            skip_tag = True
            continue
        if skip_tag and part in CALL_TYPES:
            skip_tag = False
            continue
        skip_tag = False
        if part.startswith("function-"):
            continue
        out = f"{out}.{part}" if out else str(part)
    return out or "body"


def _errors(exc: ValidationError, prefix: str = "") -> list[FieldError]:
    errors = []
    for err in exc.errors(include_url=False):
        message = str(err["msg"]).removeprefix("Value error, ")
        loc = tuple(err["loc"])
        if err["type"] == "union_tag_invalid":
            message, loc = f"must be one of {', '.join(CALL_TYPES)}", (*loc, "type")
        elif err["type"] == "union_tag_not_found":
            message, loc = f"is required, one of {', '.join(CALL_TYPES)}", (*loc, "type")
        errors.append(FieldError(field_path(loc, prefix), message))
    return errors


def parse_single(
    call: str, body: bytes | str, *, now: datetime, stages: Stages = NO_STAGES
) -> Change:
    """Validate one identify/group/track body and reduce it, or raise InvalidPayload."""
    try:
        model = SINGLE[call].validate_json(body)
    except ValidationError as exc:
        raise InvalidPayload(_errors(exc)) from None
    return reduce(model, now=now, stages=stages)


def parse_batch(body: bytes | str, *, now: datetime, stages: Stages = NO_STAGES) -> list[Change]:
    """Validate a batch body, all-or-nothing, and reduce every call, or raise InvalidPayload.

    Every bad message is reported, each under `batch[INDEX]`.
    """
    try:
        data = pydantic_core.from_json(body)
    except ValueError as exc:
        raise InvalidPayload([FieldError("body", f"Invalid JSON: {exc}")]) from None
    if not isinstance(data, dict):
        raise InvalidPayload([FieldError("body", "must be a JSON object with a batch list")])
    items = data.get("batch")
    if not isinstance(items, list):
        raise InvalidPayload([FieldError("batch", "must be a list of calls")])
    if not items:
        raise InvalidPayload([FieldError("batch", "must hold at least one call")])
    shared_context = data.get("context")
    changes: list[Change] = []
    errors: list[FieldError] = []
    for index, item in enumerate(items):
        if isinstance(item, dict) and "context" not in item and isinstance(shared_context, dict):
            item = {**item, "context": shared_context}
        try:
            changes.append(parse_call(item, now=now, stages=stages))
        except InvalidPayload as exc:
            errors += [FieldError(f"batch[{index}]{_join(e.field)}", e.message) for e in exc.errors]
    if errors:
        raise InvalidPayload(errors)
    return changes


def _join(field: str) -> str:
    return "" if field == "body" else f".{field}"


def parse_call(data: object, *, now: datetime, stages: Stages = NO_STAGES) -> Change:
    """Validate one call given as a dict with its `type` (batch items, import rows)."""
    try:
        model = CALL.validate_python(data)
    except ValidationError as exc:
        raise InvalidPayload(_errors(exc)) from None
    return reduce(model, now=now, stages=stages)


def _utc(value: datetime | None, now: datetime) -> datetime:
    if value is None:
        return now
    try:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)
    except OverflowError:
        raise InvalidPayload([FieldError("timestamp", "is out of range")]) from None


def check_values(value: object, path: str, errors: list[FieldError]) -> None:
    """Refuse what no database stores faithfully: NUL characters and non-finite numbers."""
    if isinstance(value, str):
        if "\x00" in value:
            errors.append(FieldError(path, "must not contain the NUL character"))
    elif isinstance(value, float):
        if not math.isfinite(value):
            errors.append(FieldError(path, "must be a finite number"))
    elif isinstance(value, dict):
        for key, item in value.items():
            if "\x00" in key:
                errors.append(FieldError(path, "has a key with the NUL character"))
            check_values(item, f"{path}.{key}", errors)
    elif isinstance(value, list):
        for index, item in enumerate(value):
            check_values(item, f"{path}[{index}]", errors)


def reduce(
    model: Identify | Group | Track | Page | Alias, *, now: datetime, stages: Stages = NO_STAGES
) -> Change:
    """Turn a validated call into a Change, checking the built-in traits it sets."""
    if model.userId is None and model.anonymousId is None and not isinstance(model, Group):
        raise InvalidPayload([FieldError("userId", "userId or anonymousId is required")])
    at = _utc(model.timestamp, now)
    errors: list[FieldError] = []
    for name in ("traits", "properties", "userId", "messageId", "event", "groupId"):
        check_values(getattr(model, name, None), name, errors)
    if model.context is not None:
        check_values(model.context.groupId, "context.groupId", errors)
    if isinstance(model, Page):
        check_values(model.name, "name", errors)  # stored in the event's properties
    if errors:
        raise InvalidPayload(errors)
    message_id = model.messageId or f"generated-{uuid.uuid4()}"
    context_group = model.context.groupId if model.context else None
    change = Change(
        call=model.type,
        message_id=message_id,
        at=at,
        contact=model.userId,
        generated_id=model.messageId is None,
    )
    if isinstance(model, Identify):
        traits = check_traits(model.traits, "contact", "traits", stages=stages)
        company = traits.get("company")
        company_id = company.get("id") if isinstance(company, dict) else None
        change.account = model.groupId or context_group or _as_id(company_id)
        change.contact_traits = traits
        change.link = change.account is not None
    elif isinstance(model, Group):
        change.account_traits = check_traits(model.traits, "account", "traits", stages=stages)
        change.account = model.groupId
        change.link = change.contact is not None
    elif isinstance(model, Track | Page):
        change.account = context_group
        change.event = model.event if isinstance(model, Track) else model.type
        properties = dict(model.properties)
        if isinstance(model, Page) and model.name is not None:
            properties.setdefault("name", model.name)
        change.properties = properties
    else:
        change.contact = None
    if change.contact is None and not isinstance(model, Group):
        change.account = None
    return change


def _as_id(value: object) -> str | None:
    if value is None or isinstance(value, bool | dict | list):
        return None
    try:
        text = str(_coerce_id(value)).strip()
    except ValueError:
        return None
    return text[:200] or None


def check_traits(
    traits: dict[str, Any], object_type: str, prefix: str, *, stages: Stages = NO_STAGES
) -> dict[str, Any]:
    """Refuse built-in traits of the wrong shape and unlisted stages, naming each one.

    Returns the traits with `stage` in its listed spelling; null always clears a trait.
    """
    problems = _trait_problems(traits, object_type, stages)
    errors = [FieldError(f"{prefix}.{key}", problem) for key, problem in problems]
    if errors:
        raise InvalidPayload(errors)
    stage = traits.get("stage")
    if not isinstance(stage, str) or not stages.names:
        return traits  # no list applied: the stage is kept as sent
    return {**traits, "stage": stages.canonical(stage)}


def _trait_problems(
    traits: dict[str, Any], object_type: str, stages: Stages
) -> list[tuple[str, str]]:
    problems = []
    for key, value in traits.items():
        if value is None:
            continue
        if key == "health_score":
            number = as_number(value)
            if number is None or not 0 <= number <= 100:
                problems.append((key, "must be a number from 0 to 100"))
        elif key == "owner":
            if not isinstance(value, str) or not (SLACK_USER_ID.match(value) or EMAIL.match(value)):
                problems.append((key, "must be an email address or a Slack user id (U…)"))
            elif len(value.strip().lower()) > MAX_EMAIL_CHARS:
                problems.append((key, f"must be at most {MAX_EMAIL_CHARS} characters"))
        elif key in ("created_at", "createdAt"):
            if parse_timestamp(value) is None:
                problems.append((key, "must be an ISO-8601 timestamp"))
        elif key == "stage":
            if not isinstance(value, str) or not value.strip():
                problems.append((key, "must be a non-empty string"))
            elif len(value.strip()) > MAX_STAGE_CHARS:
                problems.append((key, f"must be at most {MAX_STAGE_CHARS} characters"))
            elif stages.canonical(value) is None:
                sent = json.dumps(value, ensure_ascii=False)
                problems.append((key, f"{sent} is not a stage; the stages are {stages.allowed()}"))
        elif key in ("name", "first_name", "firstName", "last_name", "lastName"):
            if not isinstance(value, str):
                problems.append((key, "must be a string"))
        elif key == "email" and object_type == "contact":
            if not (isinstance(value, str) and EMAIL.match(value)):
                problems.append((key, "must be an email address"))
            elif len(value.strip().lower()) > MAX_EMAIL_CHARS:
                problems.append((key, f"must be at most {MAX_EMAIL_CHARS} characters"))
    return problems


def as_number(value: object) -> float | None:
    """A JSON number, or a string that parses whole as a decimal; else None."""
    if isinstance(value, bool):
        return None
    try:
        if isinstance(value, int | float):
            return float(value)
        if isinstance(value, str):
            return float(value.strip()) if value.strip() else None
    except (ValueError, OverflowError):  # OverflowError: an int beyond a double's range
        return None
    return None


def parse_timestamp(value: object) -> datetime | None:
    """A timestamp as the rule language reads one (ISO-8601), aware UTC; else None."""
    return as_timestamp(value)
