"""The workflow-format document (workflow-format.md) as one pydantic schema.

A file defines `version`, `stages`, `health`, `segments` and `workflows` (engine.workflow_defs);
validating checks everything the document alone can tell, and `check_references` what needs
the workspace (segments, stages, webhook hosts, template names). Errors name the path of each
problem.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import Any, Literal

from pydantic import Field, ValidationError, field_validator, model_validator

from engine import actions, http, lifecycle
from engine.actions.base import SaveChecks
from engine.def_types import PathError, StrictModel
from engine.rules import RuleError, parse
from engine.rules.lifecycle import Lifecycle, LifecycleError, resolve
from engine.segments import SegmentError, check_rule
from engine.settings import Settings
from engine.step_defs import UpdateStep
from engine.template_checks import sample_context
from engine.workflow_defs import UNION_TAGS, SegmentTrigger, StageTrigger, WorkflowDef


class DefinitionError(ValueError):
    """A document does not validate; `problems` lists one "path: message" line each."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("\n".join(problems))
        self.problems = problems


class HealthDef(StrictModel):
    """Thresholds: a score >= good is good, < bad is bad, else neutral."""

    good: float = Field(ge=0, le=100)
    bad: float = Field(ge=0, le=100)

    @model_validator(mode="after")
    def _ordered(self) -> HealthDef:
        if self.bad > self.good:
            raise ValueError(f"bad ({self.bad:g}) must not be above good ({self.good:g})")
        return self


class SegmentDef(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    object: Literal["account", "contact"]
    rule: str = Field(min_length=1)

    @model_validator(mode="after")
    def _rule_parses(self) -> SegmentDef:
        try:
            check_rule(self.object, self.rule)
        except (RuleError, SegmentError) as exc:
            raise PathError("rule", str(exc)) from None
        return self


class WorkspaceDef(StrictModel):
    """A whole file: every key optional but `version`."""

    version: Literal[1]
    stages: list[str] | None = None
    health: HealthDef | None = None
    segments: list[SegmentDef] = []
    workflows: list[WorkflowDef] = []

    @field_validator("stages")
    @classmethod
    def _stages(cls, value: list[str] | None) -> list[str] | None:
        if value is not None:
            problems = lifecycle.validate_stages(value)
            if problems:
                raise PathError(*problems[0].removeprefix("stages").split(": ", 1))
        return value

    @field_validator("workflows", mode="before")
    @classmethod
    def _empty_workflows(cls, value: object) -> object:
        return [] if value is None else value  # `workflows:` with nothing under it

    @model_validator(mode="after")
    def _unique_names(self) -> WorkspaceDef:
        _unique("segments", self.segments)
        _unique("workflows", self.workflows)
        return self


def _unique(key: str, items: Sequence[SegmentDef | WorkflowDef]) -> None:
    seen: dict[str, int] = {}
    for i, item in enumerate(items):
        name_key = item.name.casefold()
        if name_key in seen:
            raise PathError(
                f"{key}[{i}].name",
                f"{item.name!r} repeats {key}[{seen[name_key]}] (names are unique, "
                "case-insensitively)",
            )
        seen[name_key] = i


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
    loc = error["loc"]
    for i, part in enumerate(loc):
        if part in UNION_TAGS and _is_union(loc[:i]):
            continue  # the member pydantic chose for a trigger or step is not part of the path
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


def _is_union(before: tuple[Any, ...]) -> bool:
    """Whether the loc `before` is a workflow's trigger or one of its steps."""
    return before[:1] == ("workflows",) and (
        before[2:] == ("trigger",) or (len(before) == 4 and before[2] == "steps")
    )


def _join(path: str, sub: str) -> str:
    if not path:
        return sub
    return path + sub if sub.startswith("[") else f"{path}.{sub}"


# -- checks that need the workspace ---------------------------------------------------------------
def check_references(
    doc: WorkspaceDef,
    *,
    segments: Mapping[str, str],
    stages: Sequence[str],
    allowed_hosts: Collection[str],
    resolver: http.Resolver,
    settings: Settings | None = None,
) -> list[str]:
    """Problems of `doc`'s workflows against the workspace, one "path: problem" line each.

    `segments` maps the stored segments' name keys (stripped, casefolded) to their object and
    `stages` is the stored stage list (empty: any stage); the document's own segments and stages
    take precedence. Checks: a trigger's segment exists and is over the workflow's object, a
    trigger's stage is listed, rules name listed stages and real health buckets, a webhook's
    host passes `http.check_url` (the part before a template, for a templated path), and every
    template renders against `sample_context` without an undefined name. No database access.
    """
    known = dict(segments) | {s.name.strip().casefold(): s.object for s in doc.segments}
    names = tuple(doc.stages if doc.stages is not None else stages)
    problems: list[str] = []
    for i, workflow in enumerate(doc.workflows):
        at = f"workflows[{i}]"
        problems += _trigger_problems(at, workflow, known, lifecycle.Stages(names))
        rules = {"only_if": workflow.only_if, "exit_if": workflow.exit_if}
        rules |= {f"steps[{j}].only_if": step.only_if for j, step in enumerate(workflow.steps)}
        for path, rule in rules.items():
            if rule is not None:
                try:
                    resolve(parse(rule), Lifecycle(names), strict=True)
                except LifecycleError as exc:
                    problems.append(f"{at}.{path}: {exc}")
        checks = SaveChecks(
            context=sample_context(workflow.object),
            allowed_hosts=allowed_hosts,
            resolver=resolver,
            settings=settings if settings is not None else Settings.model_construct(),
        )
        for j, step in enumerate(workflow.steps):
            stage = step.set.get("stage") if isinstance(step, UpdateStep) else None
            listed = lifecycle.Stages(names)
            if (
                isinstance(stage, str)
                and "{" not in stage
                and names
                and not listed.canonical(stage)
            ):
                problems.append(
                    f'{at}.steps[{j}].set.stage: "{stage}" is not a stage; the stages are '
                    f"{listed.allowed()}"
                )
            problems += actions.for_step(step).problems(step, f"{at}.steps[{j}]", checks)
    return problems


def _trigger_problems(
    at: str, workflow: WorkflowDef, segments: Mapping[str, str], stages: lifecycle.Stages
) -> list[str]:
    trigger = workflow.trigger
    if isinstance(trigger, SegmentTrigger):
        found = segments.get(trigger.segment.strip().casefold())
        if found is None:
            return [f'{at}.trigger.segment: no segment is named "{trigger.segment}"']
        if found != workflow.object:
            return [
                f'{at}.trigger.segment: "{trigger.segment}" is a segment of {found}s; '
                f"this workflow is over {workflow.object}s"
            ]
    if isinstance(trigger, StageTrigger) and stages.canonical(trigger.stage) is None:
        return [
            f'{at}.trigger.stage: "{trigger.stage}" is not a stage; '
            f"the stages are {stages.allowed()}"
        ]
    return []
