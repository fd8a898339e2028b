"""The workflow-format document (workflow-format.md) as one pydantic schema.

A file defines `version`, `stages`, `health`, `segments` and `workflows` (engine.workflow_defs);
validating checks everything the document alone can tell, and `check_references` what needs
the workspace (segments, stages, webhook hosts, template names). Errors name the path of each
problem.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Literal

from jinja2 import meta
from pydantic import Field, ValidationError, field_validator, model_validator

from engine import http, lifecycle, templating
from engine.rules import RuleError, parse
from engine.rules.lifecycle import Lifecycle, LifecycleError, resolve
from engine.segments import SegmentError, check_rule
from engine.workflow_defs import (
    UNION_TAGS,
    PathError,
    SegmentTrigger,
    StageTrigger,
    StrictModel,
    WebhookStep,
    WorkflowDef,
    url_base,
)


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


# -- the sample a template is checked against ---------------------------------------------------
class OpenRecord(dict[str, Any]):
    """A mapping whose unknown names are free traits or properties (see `sample_context`)."""


_SAMPLE_TIME = datetime(2026, 1, 31, 9, 30, tzinfo=UTC)


def _user() -> dict[str, Any]:
    return {"slack_id": "U0SAMPLE1", "email": "owner@example.com", "name": "Sam Owner"}


def _record(name: str) -> OpenRecord:
    return OpenRecord(
        name=name,
        stage="Adoption",
        health_score=72,
        health="good",
        owner=_user(),
        created_at=_SAMPLE_TIME,
        last_seen_at=_SAMPLE_TIME,
        traits=OpenRecord(),
    )


def _contact() -> OpenRecord:
    contact = _record("Ada Lovelace")
    contact.update(email="ada@example.com", first_name="Ada", last_name="Lovelace")
    return contact


def _account() -> OpenRecord:
    account = _record("Acme")
    account["primary_contact"] = _contact()
    return account


def sample_context(object_type: str) -> dict[str, Any]:
    """Plain template data shaped like a real render of a workflow over `object_type`.

    In scope: `account` (with `primary_contact`), `owner` (the record's owner: slack_id, email,
    name), `event` (name, timestamp, properties, contact) and `workflow` (name, description,
    object, status); a contact workflow also has `contact` (with its `account`). An account
    workflow has no `contact`: its people are `account.primary_contact` and `event.contact`.
    Records, `traits` and `event.properties` are `OpenRecord`s: any other name under them is a
    trait or property, so `check_references` accepts it; everything else is strict.
    """
    account, contact = _account(), _contact()
    contact["account"] = account  # the record's contact, or the contact of the event
    record = account if object_type == "account" else contact
    context: dict[str, Any] = {
        "account": account,
        "owner": record["owner"],
        "event": {
            "name": "login",
            "timestamp": _SAMPLE_TIME,
            "properties": OpenRecord(),
            "contact": contact,
        },
        "workflow": {
            "name": "Sample workflow",
            "description": "",
            "object": object_type,
            "status": "live",
        },
    }
    if object_type == "contact":
        context["contact"] = contact
    return context


# -- checks that need the workspace ---------------------------------------------------------------
def check_references(
    doc: WorkspaceDef,
    *,
    segments: Mapping[str, str],
    stages: Sequence[str],
    allowed_hosts: Collection[str],
    resolver: http.Resolver,
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
        context = sample_context(workflow.object)
        for j, step in enumerate(workflow.steps):
            if isinstance(step, WebhookStep):
                where = f"{at}.steps[{j}]"
                problems += _url_problems(f"{where}.url", step.url, allowed_hosts, resolver)
                templates = {"url": step.url, "body": step.body}
                templates |= {f"headers.{name}": text for name, text in step.headers.items()}
                for field, source in templates.items():
                    if source is not None and (problem := _template_problem(source, context)):
                        problems.append(f"{where}.{field}: {problem}")
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


def _url_problems(
    path: str, url: str, allowed_hosts: Collection[str], resolver: http.Resolver
) -> list[str]:
    base = url_base(url)
    if base is None:  # refused while validating
        return []
    try:
        http.check_url(base, allowed_hosts=allowed_hosts, resolver=resolver)
    except http.UrlRefused as exc:
        return [f"{path}: {exc}"]
    except http.TransportFailed as exc:
        return [f"{path}: {exc}; try again"]
    return []


def _template_problem(source: str, context: Mapping[str, Any]) -> str | None:
    """Why `source` does not render with the sample, or None; see `sample_context` for which
    undefined names are accepted (free traits and properties, template-local names)."""
    try:
        names = templating.undefined_names(source, context)
    except templating.TemplateError as exc:
        return str(exc)
    taken = meta.find_undeclared_variables(templating.sandbox().parse(source))
    wrong = [name for name in names if _strict_name(name, context, taken)]
    return str(templating.UndefinedName(wrong)) if wrong else None


_PART = re.compile(r"\.([^.\[]+)|\[('(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"|-?[0-9]+)\]")


def _strict_name(path: str, context: Mapping[str, Any], taken: Collection[str]) -> bool:
    """Whether the undefined `path` is a mistake: not a free trait or property (a name under an
    OpenRecord) and not rooted at a name the template itself defines (loop variable, set)."""
    head = re.split(r"[.\[]", path, maxsplit=1)[0]
    rest = path[len(head) :]
    if head not in taken:
        return False
    parts: list[object] = [head]
    while rest:
        match = _PART.match(rest)
        if match is None:
            return True
        parts.append(match[1] if match[1] is not None else ast.literal_eval(match[2]))
        rest = rest[match.end() :]
    node: object = context
    for part in parts:
        if isinstance(node, dict) and part in node:
            node = node[part]
        else:
            return not isinstance(node, OpenRecord)
    return True
