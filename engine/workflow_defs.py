"""The `workflows:` part of the workflow-format document: triggers and workflows (their
steps: engine.step_defs; the building blocks: engine.def_types).

Every check that needs nothing but the document runs here, while validating; checks that need
the workspace (segments, stages, URLs, template names) are `definitions.check_references`.
Errors are raised so that `definitions._describe` names the full path of each problem; a
`PathError` names a path below the field or model that raised it.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import (
    BeforeValidator,
    Discriminator,
    Field,
    StrictBool,
    Tag,
    ValidationInfo,
    field_validator,
    model_validator,
)

from engine.def_types import (
    DurationText,
    PathError,
    StrictModel,
    UserRef,
    check_event_where,
    duration_seconds,
    object_rule,
    rule_syntax,
)
from engine.step_defs import BUILT_ACTIONS, Step, StepDef

Bucket = Literal["bad", "neutral", "good"]
BUCKETS: tuple[Bucket, ...] = ("bad", "neutral", "good")
TRIGGER_KINDS = ("segment", "stage", "health", "event")
# A trigger index key matching every key of its signal kind (`health: change`).
ANY_KEY = "*"


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
        rule_syntax(value)
        object_rule(info.data.get("object"), value)
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
            object_rule(info.data.get("object"), step.only_if, f"[{i}].only_if")
        return value

    @property
    def resume_window_seconds(self) -> int:
        return duration_seconds(self.resume_window)

    @property
    def reenroll_after_seconds(self) -> int:
        return duration_seconds(self.reenroll_after)
