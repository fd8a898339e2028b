"""How a row of each kind (accounts, contacts, events) becomes a Segment call.

A row is a dict of the file's columns (CSV) or keys (JSON Lines). Errors name the file's own
columns, so `traits.health_score` is reported as `health_score`.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from engine.ingest import schema
from engine.ingest.schema import Change, FieldError, InvalidPayload
from engine.lifecycle import NO_STAGES, Stages


@dataclass(frozen=True, slots=True)
class Column:
    """A call field filled from the first of `keys` a row has."""

    path: str
    keys: tuple[str, ...]
    required: bool = False


@dataclass(frozen=True, slots=True)
class Kind:
    """How a row of one kind becomes a call: named fields, the rest into `bag`."""

    call: str
    columns: tuple[Column, ...]
    bag: str
    free: bool  # any other column is a trait; events take only `properties.NAME` columns

    def known(self) -> set[str]:
        return {key for column in self.columns for key in column.keys}


ACCOUNT_LINK = ("account_id", "groupId")
KINDS: dict[str, Kind] = {
    "accounts": Kind(
        "group", (Column("groupId", ("id", "account_id", "groupId"), True),), "traits", True
    ),
    "contacts": Kind(
        "identify",
        (Column("userId", ("id", "user_id", "userId"), True), Column("groupId", ACCOUNT_LINK)),
        "traits",
        True,
    ),
    "events": Kind(
        "track",
        (
            Column("userId", ("user_id", "userId"), True),
            Column("event", ("event", "name"), True),
            Column("timestamp", ("timestamp",)),
            Column("messageId", ("message_id", "messageId")),
            Column("context.groupId", ACCOUNT_LINK),
        ),
        "properties",
        False,
    ),
}


@dataclass(frozen=True, slots=True)
class Problem:
    """One thing wrong with the file, at a 1-based line (None: the file as a whole)."""

    line: int | None
    field: str | None
    message: str

    def render(self, name: str) -> str:
        """`FILE:LINE: field: problem`, leaving out what is not known."""
        where = f"{name}:{self.line}" if self.line else name
        return (
            f"{where}: {self.field}: {self.message}" if self.field else f"{where}: {self.message}"
        )


class ImportFailed(Exception):
    """The file cannot be imported at all: missing, unreadable, unknown format, bad header."""

    def __init__(self, problems: list[Problem]) -> None:
        super().__init__("; ".join(p.render("file") for p in problems))
        self.problems = problems


@dataclass(slots=True)
class Record:
    """One row as read: its first physical line, its fields, or what made it unreadable."""

    line: int
    data: dict[str, Any]
    error: FieldError | None = None


def check_header(kind: str, header: list[str], line: int) -> None:
    """Refuse a CSV header that cannot describe `kind` rows, naming every problem at once."""
    spec = KINDS[kind]
    problems: list[Problem] = []
    seen: set[str] = set()
    for index, name in enumerate(header, start=1):
        if not name.strip():
            problems.append(Problem(line, f"column {index}", "has no name"))
        elif name in seen:
            problems.append(Problem(line, name, "is named twice"))
        elif not spec.free and name not in spec.known() and not name.startswith("properties."):
            message = "is not an events column (name property columns properties.NAME)"
            problems.append(Problem(line, name, message))
        seen.add(name)
    for column in spec.columns:
        present = [key for key in column.keys if key in seen]
        if column.required and not present:
            names = ", ".join(column.keys)
            problems.append(Problem(line, column.keys[0], f"column is missing (one of: {names})"))
        if len(present) > 1:
            message = f"names the same thing as {present[0]}; keep one of them"
            problems.append(Problem(line, present[1], message))
    if problems:
        raise ImportFailed(problems)


def to_change(kind: str, record: Record, *, now: datetime, stages: Stages = NO_STAGES) -> Change:
    """Validate one row as the API would, or raise InvalidPayload naming the file's columns."""
    if record.error is not None:
        raise InvalidPayload([record.error])
    call, sources = to_call(kind, record.data)
    try:
        return schema.parse_call(call, now=now, stages=stages)
    except InvalidPayload as exc:
        errors = [FieldError(_source(e.field, sources), e.message) for e in exc.errors]
        raise InvalidPayload(errors) from None


def _source(field: str, sources: dict[str, str]) -> str:
    """The file's name for a call field path (`traits.plan` -> `plan`)."""
    parts = field.split(".")
    for end in range(len(parts), 0, -1):
        head = ".".join(parts[:end])
        if head in sources:
            return ".".join([sources[head], *parts[end:]])
    return field


def to_call(kind: str, data: dict[str, Any]) -> tuple[dict[str, Any], dict[str, str]]:
    """A row as a Segment call, and each call field's name in the file; raises InvalidPayload.

    An event without a messageId gets one derived from its content, the same on every run.
    """
    spec = KINDS[kind]
    call: dict[str, Any] = {"type": spec.call}
    sources: dict[str, str] = {}
    errors: list[FieldError] = []
    for column in spec.columns:
        present = [key for key in column.keys if key in data]
        if len(present) > 1:
            errors.append(FieldError(present[1], f"names the same thing as {present[0]}"))
        value = data[present[0]] if present else None
        if value is None or (isinstance(value, str) and not value.strip()):
            if column.required:
                errors.append(FieldError(present[0] if present else column.keys[0], "is required"))
            continue
        head, _, tail = column.path.partition(".")
        if tail:
            call.setdefault(head, {})[tail] = value
        else:
            call[head] = value
        sources[column.path] = present[0]
    bag = _bag(spec, data, sources, errors)
    if errors:
        raise InvalidPayload(errors)
    call[spec.bag] = bag
    if kind == "events" and "messageId" not in call:
        call["messageId"] = derive_message_id(kind, call)
    return call, sources


def _bag(
    spec: Kind, data: dict[str, Any], sources: dict[str, str], errors: list[FieldError]
) -> dict[str, Any]:
    """The row's traits or properties: other columns, `properties.NAME`, a nested object."""
    known = spec.known()
    bag: dict[str, Any] = {}
    prefix = f"{spec.bag}."
    for key, value in data.items():
        if key in known:
            continue
        if key == spec.bag:
            if not isinstance(value, dict):
                errors.append(FieldError(key, "must be an object"))
                continue
            items = [(f"{prefix}{name}", name, item) for name, item in value.items()]
        elif key.startswith(prefix) and not spec.free:
            items = [(key, key.removeprefix(prefix), value)]
        elif spec.free:
            items = [(key, key, value)]
        else:
            errors.append(FieldError(key, 'is not an events field (properties go in "properties")'))
            continue
        for source, name, item in items:
            if name in bag:
                errors.append(
                    FieldError(source, f"is given twice (also as {sources[prefix + name]})")
                )
                continue
            bag[name] = item
            sources[prefix + name] = source
    return bag


def derive_message_id(kind: str, call: dict[str, Any]) -> str:
    """`import-` and the SHA-256 of the kind and the call's canonical JSON."""
    canonical = json.dumps(
        [kind, call], sort_keys=True, separators=(",", ":"), ensure_ascii=False, default=str
    )
    return "import-" + hashlib.sha256(canonical.encode()).hexdigest()
