"""The workflow-format document (workflow-format.md) as one pydantic schema.

This part covers what a file defines for the whole workspace — `version`, `stages`,
`health` and `segments`; workflows arrive with the Workflow engine issue and are refused by
name until then, so a file is never half-applied. Errors name the path of each problem.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from engine import lifecycle
from engine.rules import RuleError
from engine.segments import SegmentError, check_rule


class DefinitionError(ValueError):
    """A document does not validate; `problems` lists one "path: message" line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class HealthDef(_Strict):
    """Thresholds: a score >= good is good, < bad is bad, else neutral."""

    good: float = Field(ge=0, le=100)
    bad: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> HealthDef:
        if self.bad > self.good:
            raise ValueError(f"bad ({self.bad:g}) must not be above good ({self.good:g})")
        return self


class SegmentDef(_Strict):
    name: str = Field(min_length=1, max_length=200)
    object: Literal["account", "contact"]
    rule: str = Field(min_length=1)

    @model_validator(mode="after")
    def _rule_parses(self) -> SegmentDef:
        try:
            check_rule(self.object, self.rule)
        except (RuleError, SegmentError) as exc:
            raise _At("rule", str(exc)) from None
        return self


class WorkspaceDef(_Strict):
    """A whole file: every key optional but `version`."""

    version: Literal[1]
    stages: list[str] | None = None
    health: HealthDef | None = None
    segments: list[SegmentDef] = []
    workflows: list[Any] | None = None

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            problems = lifecycle.validate_stages(value)
            if problems:
                raise _At(*problems[0].removeprefix("stages").split(": ", 1))
        return value

    @field_validator("workflows")
    @classmethod
    def _no_workflows_yet(cls, value: list[Any] | None) -> list[Any] | None:
        if value:
            raise ValueError("workflows are not available yet in this version; remove the key")
        return value

    @model_validator(mode="after")
    def _unique_segment_names(self) -> WorkspaceDef:
        seen: dict[str, int] = {}
        for i, segment in enumerate(self.segments):
            key = segment.name.casefold()
            if key in seen:
                raise _At(
                    f"segments[{i}].name",
                    f"{segment.name!r} repeats segments[{seen[key]}] (names are unique, "
                    "case-insensitively)",
                )
            seen[key] = i
        return self


class _At(ValueError):
    """An error found by a model validator, for a path below the model."""

    def __init__(self, path: str, message: str) -> None:
        super().__init__(f"@{path}: {message}")


def parse_document(data: object) -> WorkspaceDef:
    """Validate loaded file data; DefinitionError names the path of every problem."""
    if not isinstance(data, dict):
        raise DefinitionError(["the file must be a mapping with `version: 1` at the top"])
    try:
        return WorkspaceDef.model_validate(data)
    except ValidationError as exc:
        raise DefinitionError([_describe(e) for e in exc.errors()]) from None


def _describe(error: Any) -> str:
    path = ""
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    message = str(error["msg"]).removeprefix("Value error, ")
    if error["type"] == "extra_forbidden":
        message = "unknown key"
    elif error["type"] == "literal_error" and path == "version":
        message = f"must be 1 (this version reads format version 1), not {error['input']!r}"
    if message.startswith("@"):  # a model validator named a path below this one
        sub, _, message = message[1:].partition(": ")
        path = _join(path, sub)
    return f"{path}: {message}" if path else message


def _join(path: str, sub: str) -> str:
    if not path:
        return sub
    return path + sub if sub.startswith("[") else f"{path}.{sub}"
