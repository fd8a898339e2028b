"""The wizard's forms: a view's `state.values` read into the wizard's state and a step
definition, and the definition checked by the same schema a workflow file goes through
(engine.definitions), its problems turned into `{block_id: message}` for
`response_action: errors`.

Nothing here reads the database or calls Slack: what the checks need from the workspace
(segments, stages, webhook hosts) is passed in as `References`.
"""

from __future__ import annotations

import re
from collections.abc import Collection, Mapping
from dataclasses import dataclass, field
from typing import Any

from blocks.wizard import WizardState
from blocks.wizard_ids import WizardBlock as B
from engine import http
from engine.definitions import DefinitionError, check_references, parse_document
from engine.settings import Settings

Values = Mapping[str, Mapping[str, Mapping[str, Any]]]

# Stand-ins for the parts a step of the wizard has not reached yet: they validate, and their
# problems would not be shown anyway (only the current view's blocks get errors).
_PLACEHOLDER_TRIGGER = {"event": "wizard placeholder"}
_PLACEHOLDER_STEP = {"action": "update", "set": {"wizard_placeholder": "1"}}

# A problem's path below `workflows[0].` → the block showing that field.
_WORKFLOW_FIELDS = {
    "name": B.NAME,
    "description": B.DESCRIPTION,
    "object": B.OBJECT,
    "trigger.segment": B.SEGMENT,
    "trigger.stage": B.STAGE,
    "trigger.when": B.WHEN,
    "trigger.health": B.HEALTH,
    "trigger.to": B.HEALTH_TO,
    "trigger.from": B.HEALTH_FROM,
    "trigger.event": B.EVENT,
    "trigger.where": B.WHERE,
    "trigger": B.KIND,
    "only_if": B.ONLY_IF,
    "enrollment": B.ENROLLMENT,
    "exit_if": B.EXIT_IF,
}
_STEP_FIELDS = {
    "action": B.STEP_ACTION,
    "to": B.EMAIL_TO,
    "subject": B.EMAIL_SUBJECT,
    "body": B.EMAIL_BODY,
    "approval": B.EMAIL_APPROVAL,
    "channel": B.SLACK_CHANNEL,
    "text": B.SLACK_TEXT,
    "url": B.WEBHOOK_URL,
    "set": B.UPDATE_FIELD,
    "assign": B.OWNER_ASSIGN,
    "users": B.OWNER_USERS,
    "notify": B.OWNER_NOTIFY,
    "due_in": B.TASK_DUE,
    "delay": B.STEP_DELAY,
    "only_if": B.STEP_ONLY_IF,
}
_PROBLEM = re.compile(r"workflows\[0\]\.(?P<path>[^:]+): (?P<message>.*)", re.S)
_STEP_PATH = re.compile(r"steps\[(?P<index>\d+)\](?:\.(?P<field>[A-Za-z_]+))?")
ERROR_MAX = 150  # Slack shows an input's error in one short line


@dataclass(frozen=True)
class References:
    """What `check_references` needs from the workspace, read by the caller."""

    segments: Mapping[str, str] = field(default_factory=dict)  # name key -> object
    stages: tuple[str, ...] = ()
    allowed_hosts: Collection[str] = ()
    resolver: http.Resolver | None = None
    settings: Settings | None = None


# -- reading a view ---------------------------------------------------------------------------
def values(view: Mapping[str, Any]) -> dict[str, str]:
    """Every input of `view` by block id, as text ("" when empty or nothing chosen)."""
    found: dict[str, str] = {}
    state: Values = view.get("state", {}).get("values", {})
    for block_id, actions in state.items():
        for element in actions.values():
            found[block_id] = _element_value(element)
    return found


def _element_value(element: Mapping[str, Any]) -> str:
    kind = element.get("type")
    if kind in ("static_select", "radio_buttons", "external_select"):
        chosen = element.get("selected_option") or {}
        return str(chosen.get("value") or "")
    if kind == "channels_select":
        return str(element.get("selected_channel") or "")
    if kind == "multi_users_select":
        return ",".join(element.get("selected_users") or [])
    if kind == "checkboxes":
        return ",".join(str(o.get("value")) for o in element.get("selected_options") or [])
    if kind == "conversations_select":
        return str(element.get("selected_conversation") or "")
    return str(element.get("value") or "")


def read_info(state: WizardState, typed: Mapping[str, str]) -> WizardState:
    return state.model_copy(
        update={
            "name": typed.get(B.NAME, state.name).strip(),
            "description": typed.get(B.DESCRIPTION, state.description).strip(),
        }
    )


def read_trigger(state: WizardState, typed: Mapping[str, str]) -> WizardState:
    """The trigger step's inputs over `state`; an input not in the view keeps its value."""
    update = {
        key: typed[block].strip()
        for key, block in (
            ("object", B.OBJECT),
            ("kind", B.KIND),
            ("segment", B.SEGMENT),
            ("stage", B.STAGE),
            ("when", B.WHEN),
            ("health", B.HEALTH),
            ("health_to", B.HEALTH_TO),
            ("health_from", B.HEALTH_FROM),
            ("event", B.EVENT),
            ("where", B.WHERE),
            ("only_if", B.ONLY_IF),
            ("enrollment", B.ENROLLMENT),
        )
        if block in typed
    }
    for key in ("health_to", "health_from"):
        if update.get(key) == "any":
            update[key] = ""
    for key in ("object", "kind", "when", "health", "enrollment"):
        if update.get(key) == "":
            del update[key]  # nothing chosen: keep the default
    return state.model_copy(update=update)


# The fields each action's modal shows; an edited step keeps its others (from, headers…).
STEP_FIELDS = {
    "email": ("to", "subject", "body", "approval"),
    "slack": ("channel", "text"),
    "owner": ("assign", "users", "notify"),
    "update": ("set",),
    "team_notification": ("to", "subject", "body"),
    "webhook": ("url",),
    "hubspot_task": ("subject", "body", "due_in"),
    "salesforce_task": ("subject", "body", "due_in"),
}
_KEPT_WHEN_EMPTY = ("approval", "channel")  # pickers that cannot show a channel kept by name


def read_step(typed: Mapping[str, str], base: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The step definition the step modal's inputs describe (empty fields left out). Editing
    `base` of the same action, the fields the modal does not show are kept, and a channel
    picker left empty keeps the channel it could not show."""
    action = typed.get(B.STEP_ACTION) or "email"
    step: dict[str, Any] = {"action": action}
    if base is not None and base.get("action") == action:
        shown = {*STEP_FIELDS.get(action, ()), "delay", "only_if"}
        step.update({k: v for k, v in base.items() if k not in shown or k in _KEPT_WHEN_EMPTY})

    def put(key: str, block: B) -> None:
        if text := typed.get(block, "").strip():
            step[key] = text

    def listed(block: B) -> list[str]:
        return [a.strip() for a in typed.get(block, "").split(",") if a.strip()]

    if action in ("email", "team_notification"):
        step["to"] = listed(B.EMAIL_TO)
        put("subject", B.EMAIL_SUBJECT)
        put("body", B.EMAIL_BODY)
        if action == "email":
            put("approval", B.EMAIL_APPROVAL)
    elif action == "slack":
        put("channel", B.SLACK_CHANNEL)
        put("text", B.SLACK_TEXT)
    elif action == "owner":
        step["assign"] = typed.get(B.OWNER_ASSIGN) or "round_robin"
        kept = [u for u in (base or {}).get("users", []) if "@" in str(u)]
        step["users"] = [
            *listed(B.OWNER_USERS),
            *(kept if base and base.get("action") == action else []),
        ]
        if typed.get(B.OWNER_NOTIFY) == "yes":
            step["notify"] = True
        else:
            step.pop("notify", None)
    elif action == "webhook":
        put("url", B.WEBHOOK_URL)
    elif action in ("hubspot_task", "salesforce_task"):
        put("subject", B.EMAIL_SUBJECT)
        put("body", B.EMAIL_BODY)
        put("due_in", B.TASK_DUE)
    elif action == "update":
        name = typed.get(B.UPDATE_FIELD, "").strip()
        step["set"] = {name: typed.get(B.UPDATE_VALUE, "").strip()} if name else {}
    put("delay", B.STEP_DELAY)
    put("only_if", B.STEP_ONLY_IF)
    return step


def step_typed(step: Mapping[str, Any]) -> dict[str, str]:
    """A step definition back as the step modal's inputs (the inverse of `read_step`)."""
    typed = {
        B.STEP_ACTION: str(step.get("action", "")),
        B.EMAIL_TO: ", ".join(map(str, step.get("to", []))),
        B.EMAIL_SUBJECT: str(step.get("subject", "")),
        B.EMAIL_BODY: str(step.get("body", "")),
        B.EMAIL_APPROVAL: str(step.get("approval", "")),
        B.SLACK_CHANNEL: str(step.get("channel", "")),
        B.SLACK_TEXT: str(step.get("text", "")),
        B.WEBHOOK_URL: str(step.get("url", "")),
        B.OWNER_ASSIGN: str(step.get("assign", "")),
        B.OWNER_USERS: ",".join(map(str, step.get("users", []))),
        B.OWNER_NOTIFY: "yes" if step.get("notify") else "",
        B.TASK_DUE: str(step.get("due_in", "")),
        B.STEP_DELAY: str(step.get("delay", "")),
        B.STEP_ONLY_IF: str(step.get("only_if", "")),
    }
    for name, value in dict(step.get("set", {})).items():
        typed[B.UPDATE_FIELD], typed[B.UPDATE_VALUE] = name, str(value)
    return {str(k): v for k, v in typed.items() if v}


# -- the definition ---------------------------------------------------------------------------
def trigger(state: WizardState) -> dict[str, Any]:
    if state.kind == "segment":
        return {"segment": state.segment, "when": state.when}
    if state.kind == "stage":
        return {"stage": state.stage, "when": state.when}
    if state.kind == "health":
        moved: dict[str, Any] = {"health": state.health}
        if state.health_to:
            moved["to"] = state.health_to
        if state.health_from:
            moved["from"] = state.health_from
        return moved
    found: dict[str, Any] = {"event": state.event}
    if state.where:
        found["where"] = state.where
    return found


def definition(
    state: WizardState, *, with_trigger: bool = True, with_steps: bool = True
) -> dict[str, Any]:
    """The workflow-format definition of what the wizard holds (workflow-format.md), with
    what an edited workflow had that the wizard does not show."""
    found: dict[str, Any] = {
        **state.extra,
        "name": state.name,
        "object": state.object,
        "trigger": trigger(state) if with_trigger else _PLACEHOLDER_TRIGGER,
        "enrollment": state.enrollment,
        "status": state.mode,
        "steps": list(state.steps) if with_steps else [_PLACEHOLDER_STEP],
    }
    if state.description:
        found["description"] = state.description
    if state.only_if and with_trigger:
        found["only_if"] = state.only_if
    if state.exit_if and with_steps:
        found["exit_if"] = state.exit_if
    return found


_SHOWN = ("name", "description", "object", "trigger", "only_if", "enrollment", "exit_if")


def state_of(
    document: Mapping[str, Any], *, workflow_id: int | None, status: str, version: int
) -> WizardState:
    """The wizard's state for a stored workflow document: to edit it (`workflow_id` set) or
    to start a copy (None: a new draft of the same definition)."""
    trig = dict(document.get("trigger", {}))
    kind = next((k for k in ("segment", "stage", "health", "event") if k in trig), "segment")
    state = WizardState(
        name=str(document.get("name", "")),
        description=str(document.get("description", "")),
        object=str(document.get("object", "account")),
        kind=kind,
        segment=str(trig.get("segment", "")),
        stage=str(trig.get("stage", "")),
        when=str(trig.get("when", "enter")),
        health=str(trig.get("health", "drop")),
        health_to=str(trig.get("to") or ""),
        health_from=str(trig.get("from") or ""),
        event=str(trig.get("event", "")),
        where=str(trig.get("where") or ""),
        only_if=str(document.get("only_if") or ""),
        enrollment=str(document.get("enrollment", "once")),
        exit_if=str(document.get("exit_if") or ""),
        steps=[dict(step) for step in document.get("steps", [])],
        extra={k: v for k, v in document.items() if k not in (*_SHOWN, "steps", "status")},
    )
    if workflow_id is None:
        return state.model_copy(update={"mode": "draft"})
    return state.model_copy(
        update={"editing": workflow_id, "status": status, "version": version, "mode": status}
    )


def document(workflow: Mapping[str, Any]) -> dict[str, Any]:
    return {"version": 1, "workflows": [dict(workflow)]}


def problems(workflow: Mapping[str, Any], refs: References | None) -> list[str]:
    """Every "path: message" the file schema (and, given `refs`, the workspace) finds."""
    try:
        doc = parse_document(document(workflow))
    except DefinitionError as exc:
        return exc.problems
    if refs is None:
        return []
    return check_references(
        doc,
        segments=refs.segments,
        stages=refs.stages,
        allowed_hosts=refs.allowed_hosts,
        resolver=refs.resolver or http.SystemResolver(),
        settings=refs.settings,
    )


def block_of(problem: str, *, step: int | None = None) -> tuple[str | None, str]:
    """The block showing the field `problem` is about (None: none of ours) and its message.
    A step's fields map to the step modal's blocks only for step number `step`."""
    matched = _PROBLEM.fullmatch(problem)
    if matched is None:
        return None, problem
    path, message = matched["path"], matched["message"]
    if path.startswith("steps"):
        in_step = _STEP_PATH.match(path)
        if in_step is None or step is None or int(in_step["index"]) != step:
            return None, f"{path}: {message}"
        name = in_step["field"] or "action"
        if path.startswith(f"steps[{step}].set.stage"):
            return str(B.UPDATE_VALUE), message
        if name not in _STEP_FIELDS:  # a field the modal does not offer (from, headers…)
            return None, f"{name}: {message}"
        return str(_STEP_FIELDS[name]), message
    for prefix, block in _WORKFLOW_FIELDS.items():
        if path == prefix or path.startswith(prefix + ".") or path.startswith(prefix + "["):
            return str(block), message
    return None, f"{path}: {message}"


def errors(
    found: list[str],
    shown: Collection[str],
    *,
    step: int | None = None,
    fallback: str | None = None,
) -> dict[str, str]:
    """`found` problems as `{block_id: message}` for the blocks `shown` in the view; a
    problem of a field not shown goes to `fallback` (if given), else is left out."""
    result: dict[str, str] = {}
    for problem in found:
        block, message = block_of(problem, step=step)
        if block not in shown:
            block = fallback
        if block is not None and block not in result:
            result[block] = short(message)
    return result


def short(message: str) -> str:
    message = message.strip()
    return message if len(message) <= ERROR_MAX else message[: ERROR_MAX - 1] + "…"


def shown_blocks(view: Mapping[str, Any]) -> set[str]:
    """The input blocks of `view` (only they can carry an error)."""
    return {str(b["block_id"]) for b in view.get("blocks", []) if b.get("type") == "input"}
