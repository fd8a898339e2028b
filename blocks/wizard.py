"""The `/workflow new` wizard's modals: Information → Trigger → Actions (with a pushed step
modal) → Enable. Plain data in, view dicts out; what was typed travels in private_metadata
as a `WizardState`, which refuses to grow past Slack's 3,000 characters.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from blocks import kit
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal

TITLE = "New workflow"
OPTIONS_MAX = 100  # a static_select's options
STEPS_SHOWN_MAX = 80  # listed steps, leaving room for the other blocks of a modal
INPUT_MAX = 3000  # plain_text_input max_length
OBJECTS = {"account": "Accounts", "contact": "Contacts"}
KINDS = {
    "segment": "Enters or leaves a segment",
    "stage": "Stage changes",
    "event": "Performs an event",
}
WHENS = {"enter": "Enters", "leave": "Leaves"}
ENROLLMENTS = {"once": "Once per record", "every_time": "Every time the trigger fires"}
ACTIONS = {
    "email": "Send an email (approved in Slack)",
    "slack": "Post in a Slack channel",
    "webhook": "Call a webhook",
    "update": "Update a field of the record",
}
MODES = {"draft": "Save as draft", "live": "Enable now"}


class MetadataTooLarge(ValueError):
    """The wizard's state does not fit in a view's private_metadata."""


class WizardState(BaseModel):
    """Everything typed so far, as the form holds it (strings; steps as definition dicts)."""

    name: str = ""
    description: str = ""
    object: str = "account"
    kind: str = "segment"
    segment: str = ""
    stage: str = ""
    when: str = "enter"
    event: str = ""
    where: str = ""
    only_if: str = ""
    enrollment: str = "once"
    steps: list[dict[str, Any]] = []
    mode: str = "live"

    def dump(self) -> str:
        """The state as private_metadata; MetadataTooLarge past Slack's limit."""
        text = self.model_dump_json(exclude_defaults=True)
        if len(text) > kit.PRIVATE_METADATA_MAX:
            raise MetadataTooLarge(
                f"the workflow is {len(text):,} characters, more than the wizard can carry "
                f"({kit.PRIVATE_METADATA_MAX:,}): shorten it, or write it as a file for "
                "`workflowbot apply`"
            )
        return text

    @classmethod
    def load(cls, metadata: str | None) -> WizardState:
        return cls.model_validate_json(metadata) if metadata else cls()


@dataclass(frozen=True)
class TriggerChoices:
    """What the trigger step offers: the stored segments (name, object) and stages."""

    segments: Sequence[tuple[str, str]] = ()
    stages: Sequence[str] = ()


@dataclass(frozen=True)
class Reach:
    """The audience right now, or why it could not be counted."""

    count: int | None
    what: str = ""
    problems: list[str] = field(default_factory=list)


# -- elements ---------------------------------------------------------------------------------
def _text_input(
    block: WizardBlock,
    label: str,
    value: str,
    *,
    optional: bool = False,
    multiline: bool = False,
    placeholder: str | None = None,
    hint: str | None = None,
) -> kit.Block:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": str(block),
        "multiline": multiline,
        "max_length": INPUT_MAX,
    }
    if value:
        element["initial_value"] = value[:INPUT_MAX]
    if placeholder:
        element["placeholder"] = kit.plain(placeholder, 150)
    return _input(block, label, element, optional=optional, hint=hint)


def _input(
    block: WizardBlock,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str | None = None,
    dispatch: bool = False,
) -> kit.Block:
    found: kit.Block = {
        "type": "input",
        "block_id": str(block),
        "label": kit.plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        found["hint"] = kit.plain(hint, 2000)
    if dispatch:
        found["dispatch_action"] = True
    return found


def _choice(
    block: WizardBlock,
    label: str,
    choices: dict[str, str],
    value: str,
    *,
    kind: str = "static_select",
    dispatch: bool = False,
    optional: bool = False,
) -> kit.Block:
    options = [kit.option(text, key) for key, text in list(choices.items())[:OPTIONS_MAX]]
    element: dict[str, Any] = {"type": kind, "action_id": str(block), "options": options}
    if kind == "static_select":
        element["placeholder"] = kit.plain("Choose…", 150)
    initial = next((o for o in options if o["value"] == value), None)
    if initial is not None:
        element["initial_option"] = initial
    return _input(block, label, element, dispatch=dispatch, optional=optional)


def _channel(block: WizardBlock, label: str, value: str, *, optional: bool = False) -> kit.Block:
    element: dict[str, Any] = {"type": "channels_select", "action_id": str(block)}
    if value and not value.startswith("#"):
        element["initial_channel"] = value
    return _input(block, label, element, optional=optional)


def _modal(
    callback: WizardModal,
    state: WizardState,
    blocks: list[kit.Block],
    *,
    submit: str | None = "Next",
    title: str = TITLE,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": str(callback),
        "title": kit.plain(title, kit.VIEW_TITLE_MAX),
        "close": kit.plain("Cancel", kit.VIEW_TITLE_MAX),
        "blocks": blocks[: kit.VIEW_BLOCKS_MAX],
        "private_metadata": state.dump(),
    }
    if submit is not None:
        view["submit"] = kit.plain(submit, kit.VIEW_TITLE_MAX)
    return view


def _progress(step: int, name: str) -> kit.Block:
    marks = " → ".join(
        f"*{label}*" if i == step else label
        for i, label in enumerate(("Information", "Trigger", "Actions", "Enable"), 1)
    )
    return kit.context(
        f"Step {step} of 4 · {marks}" if name == "" else f"{marks} · {kit.escape(name)}"
    )


def _nav(*buttons: dict[str, Any]) -> kit.Block:
    return {"type": "actions", "block_id": str(WizardBlock.NAV), "elements": list(buttons)}


def _back() -> dict[str, Any]:
    return kit.button("Back", str(WizardAction.BACK))


# -- the steps --------------------------------------------------------------------------------
def info_view(state: WizardState) -> dict[str, Any]:
    """Step 1: the workflow's name and description."""
    blocks = [
        _progress(1, ""),
        _text_input(WizardBlock.NAME, "Name", state.name, placeholder="Trial welcome series"),
        _text_input(
            WizardBlock.DESCRIPTION,
            "Description",
            state.description,
            optional=True,
            multiline=True,
        ),
    ]
    return _modal(WizardModal.INFO, state, blocks)


def loading_view(state: WizardState, what: str) -> dict[str, Any]:
    """Shown at once while the next step's data is read; it keeps the state."""
    return _modal(
        WizardModal.LOADING, state, [kit.section(f":hourglass_flowing_sand: {what}…")], submit=None
    )


def done_view(text: str, *, title: str = TITLE) -> dict[str, Any]:
    """The outcome: saved, refused or failed (mrkdwn; user text already escaped)."""
    return {
        "type": "modal",
        "callback_id": str(WizardModal.DONE),
        "title": kit.plain(title, kit.VIEW_TITLE_MAX),
        "close": kit.plain("Close", kit.VIEW_TITLE_MAX),
        "blocks": [kit.section(text)],
    }


def trigger_view(state: WizardState, choices: TriggerChoices) -> dict[str, Any]:
    """Step 2: who (object), when (the trigger kind and its fields), only if, how often."""
    blocks = [
        _progress(2, state.name),
        _choice(WizardBlock.OBJECT, "Records", OBJECTS, state.object, dispatch=True),
        _choice(WizardBlock.KIND, "Trigger", KINDS, state.kind, dispatch=True),
    ]
    blocks += _trigger_fields(state, choices)
    blocks += [
        _text_input(
            WizardBlock.ONLY_IF,
            "Only if",
            state.only_if,
            optional=True,
            multiline=True,
            placeholder='status = "trial" and count(login, 7d) < 2',
            hint="A rule checked when the trigger fires; empty: every record.",
        ),
        _choice(
            WizardBlock.ENROLLMENT,
            "Enroll a record",
            ENROLLMENTS,
            state.enrollment,
            kind="radio_buttons",
        ),
        _nav(_back()),
    ]
    return _modal(WizardModal.TRIGGER, state, blocks)


def _trigger_fields(state: WizardState, choices: TriggerChoices) -> list[kit.Block]:
    if state.kind == "segment":
        names = {n: n for n, obj in choices.segments if obj == state.object}
        if not names:
            return [
                kit.section(
                    f":information_source: There is no {state.object} segment yet: create one "
                    "with a workflow file (`workflowbot apply`), then come back."
                )
            ]
        return [
            _choice(WizardBlock.SEGMENT, "Segment", names, state.segment),
            _choice(WizardBlock.WHEN, "When the record", WHENS, state.when, kind="radio_buttons"),
        ]
    if state.kind == "stage":
        stage = (
            _choice(WizardBlock.STAGE, "Stage", {s: s for s in choices.stages}, state.stage)
            if choices.stages
            else _text_input(WizardBlock.STAGE, "Stage", state.stage, placeholder="Onboarding")
        )
        return [
            stage,
            _choice(WizardBlock.WHEN, "When the record", WHENS, state.when, kind="radio_buttons"),
        ]
    return [
        _text_input(WizardBlock.EVENT, "Event", state.event, placeholder="Order Completed"),
        _text_input(
            WizardBlock.WHERE,
            "Where",
            state.where,
            optional=True,
            placeholder='properties.plan = "pro"',
            hint="A rule on the event's properties; empty: every such event.",
        ),
    ]


def actions_view(state: WizardState) -> dict[str, Any]:
    """Step 3: the steps so far, each with a menu (move, remove), and Add a step; Next only
    once there is a step."""
    blocks: list[kit.Block] = [_progress(3, state.name)]
    if not state.steps:
        blocks.append(kit.section("No steps yet: add the first one."))
    for i, step in enumerate(state.steps[:STEPS_SHOWN_MAX]):
        menu = [kit.option("Move up", f"up:{i}"), kit.option("Move down", f"down:{i}")]
        menu.append(kit.option("Remove", f"remove:{i}"))
        blocks.append(
            kit.section(
                f"*{i + 1}.* {describe_step(step)}",
                block_id=f"wz_step_{i}",
                accessory=kit.overflow(str(WizardAction.STEP_MENU), menu),
            )
        )
    if len(state.steps) > STEPS_SHOWN_MAX:
        blocks.append(kit.context(f"…and {len(state.steps) - STEPS_SHOWN_MAX} more steps."))
    blocks.append(
        _nav(_back(), kit.button("Add a step", str(WizardAction.ADD_STEP), style="primary"))
    )
    return _modal(WizardModal.ACTIONS, state, blocks, submit="Next" if state.steps else None)


def step_view(
    state: WizardState, action: str, typed: dict[str, str] | None = None
) -> dict[str, Any]:
    """The pushed modal adding one step of `action`; `typed` keeps what was already typed
    (by block id) when the action is changed."""
    typed = typed or {}
    blocks = [_choice(WizardBlock.STEP_ACTION, "Action", ACTIONS, action, dispatch=True)]
    blocks += _action_fields(action, typed)
    blocks += [
        _text_input(
            WizardBlock.STEP_DELAY,
            "Wait before this step",
            typed.get(WizardBlock.STEP_DELAY, ""),
            optional=True,
            placeholder="3d",
            hint="30m, 4h, 3d or 2w; empty: at once.",
        ),
        _text_input(
            WizardBlock.STEP_ONLY_IF,
            "Only if",
            typed.get(WizardBlock.STEP_ONLY_IF, ""),
            optional=True,
            multiline=True,
            placeholder="count(login, 3d) < 1",
            hint="False skips this step (and the log says why).",
        ),
    ]
    return _modal(WizardModal.STEP, state, blocks, submit="Add", title="Add a step")


def _action_fields(action: str, typed: dict[str, str]) -> list[kit.Block]:
    def text(block: WizardBlock, label: str, **options: Any) -> kit.Block:
        return _text_input(block, label, typed.get(block, ""), **options)

    if action == "email":
        return [
            text(
                WizardBlock.EMAIL_TO,
                "To",
                placeholder="{{ account.primary_contact.email }}",
                hint="Addresses or templates, separated by commas.",
            ),
            text(WizardBlock.EMAIL_SUBJECT, "Subject"),
            text(WizardBlock.EMAIL_BODY, "Body", multiline=True),
            _channel(
                WizardBlock.EMAIL_APPROVAL,
                "Approve drafts in",
                typed.get(WizardBlock.EMAIL_APPROVAL, ""),
                optional=True,
            ),
        ]
    if action == "slack":
        return [
            _channel(
                WizardBlock.SLACK_CHANNEL, "Channel", typed.get(WizardBlock.SLACK_CHANNEL, "")
            ),
            text(WizardBlock.SLACK_TEXT, "Message", multiline=True),
        ]
    if action == "webhook":
        return [text(WizardBlock.WEBHOOK_URL, "URL", placeholder="https://hooks.example.com/cs")]
    return [
        text(WizardBlock.UPDATE_FIELD, "Field", placeholder="stage"),
        text(WizardBlock.UPDATE_VALUE, "New value", placeholder="Adoption"),
    ]


def enable_view(state: WizardState, reach: Reach) -> dict[str, Any]:
    """Step 4: what the workflow does, who it would reach now, draft or live."""
    blocks: list[kit.Block] = [_progress(4, state.name), kit.section(summary(state))]
    for i, step in enumerate(state.steps[:STEPS_SHOWN_MAX]):
        blocks.append(kit.section(f"*{i + 1}.* {describe_step(step)}"))
    if reach.count is not None:
        blocks.append(
            kit.context(f":busts_in_silhouette: {reach.count:,} {kit.escape(reach.what)} right now")
        )
    else:
        blocks.append(
            kit.context(
                ":warning: The audience could not be counted: "
                + kit.escape("; ".join(reach.problems))
            )
        )
    blocks += [
        _choice(WizardBlock.MODE, "When saved", MODES, state.mode, kind="radio_buttons"),
        _nav(_back()),
    ]
    return _modal(WizardModal.ENABLE, state, blocks, submit="Save")


# -- words ------------------------------------------------------------------------------------
def describe_trigger(state: WizardState) -> str:
    if state.kind == "segment":
        return f'{WHENS.get(state.when, state.when).lower()} the segment "{state.segment}"'
    if state.kind == "stage":
        return f'{WHENS.get(state.when, state.when).lower()} the stage "{state.stage}"'
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
    return "\n".join(lines)


def describe_step(step: dict[str, Any]) -> str:
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
    else:
        what = str(action)
    text = kit.truncate(kit.escape(what), 400)
    if step.get("delay"):
        text = f"_after {kit.escape(str(step['delay']))}_ · " + text
    if step.get("only_if"):
        text += f" · only if `{kit.truncate(kit.escape(str(step['only_if'])), 200)}`"
    return text
