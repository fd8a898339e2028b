"""The wizard's words: a trigger, a workflow and a step in a line or a few of mrkdwn, user
text escaped and cut to fit a section."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from blocks import kit

if TYPE_CHECKING:
    from blocks.wizard import WizardState

WHENS = {"enter": "Enters", "leave": "Leaves"}
ENROLLMENTS = {"once": "Once per record", "every_time": "Every time the trigger fires"}
MOVES = {"drop": "drops", "rise": "rises", "change": "changes"}


def describe_trigger(state: WizardState) -> str:
    if state.kind == "segment":
        return f'{WHENS.get(state.when, state.when).lower()} the segment "{state.segment}"'
    if state.kind == "stage":
        return f'{WHENS.get(state.when, state.when).lower()} the stage "{state.stage}"'
    if state.kind == "health":
        move = MOVES.get(state.health, "moves")
        words = f"health {move}"
        if state.health_from:
            words += f" from {state.health_from}"
        if state.health_to:
            words += f" to {state.health_to}"
        return words
    where = f" where `{state.where}`" if state.where else ""
    return f'performs "{state.event}"{where}'


def summary(state: WizardState) -> str:
    """The workflow in a few lines of mrkdwn (user text escaped)."""
    lines = [f"*{kit.escape(state.name)}*"]
    if state.description:
        lines.append(kit.escape(state.description))
    lines.append(
        f"When {'an' if state.object == 'account' else 'a'} {state.object} "
        f"{kit.escape(describe_trigger(state))}"
    )
    if state.only_if:
        lines.append(f"Only if `{kit.escape(state.only_if)}`")
    lines.append(ENROLLMENTS.get(state.enrollment, state.enrollment))
    if state.exit_if:
        lines.append(f"Leaves the workflow as soon as `{kit.escape(state.exit_if)}`")
    return "\n".join(lines)


def describe_step(step: Mapping[str, Any]) -> str:
    """One line of mrkdwn for a step definition (user text escaped, cut to fit a section)."""
    action = step.get("action")
    if action == "email":
        what = f"Email “{step.get('subject', '')}” to {', '.join(step.get('to', []))}"
    elif action == "slack":
        what = f"Post in {step.get('channel', '')}: {step.get('text', '')}"
    elif action == "webhook":
        what = f"Call {step.get('url', '')}"
    elif action == "update":
        what = "Set " + ", ".join(f"{k} to {v}" for k, v in dict(step.get("set", {})).items())
    elif action == "owner":
        how = "in turn" if step.get("assign") == "round_robin" else "always"
        what = f"Assign an owner ({how}): {', '.join(map(str, step.get('users', [])))}"
    elif action == "team_notification":
        what = f"Email the team “{step.get('subject', '')}” to {', '.join(step.get('to', []))}"
    elif action in ("hubspot_task", "salesforce_task"):
        crm = "HubSpot" if action == "hubspot_task" else "Salesforce"
        what = f"{crm} task “{step.get('subject', '')}”, due in {step.get('due_in', '1d')}"
    else:
        what = str(action)
    text = kit.truncate(kit.escape(what), 400)
    if step.get("delay"):
        text = f"_after {kit.escape(str(step['delay']))}_ · " + text
    if step.get("only_if"):
        text += f" · only if `{kit.truncate(kit.escape(str(step['only_if'])), 200)}`"
    return text
