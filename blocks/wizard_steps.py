"""The wizard's Actions modal (the list of steps, each with a menu, and the exit condition)
and the step modal pushed over it to add or edit one step, with the fields of each action."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blocks import kit
from blocks.wizard import STEPS_SHOWN_MAX, WizardState, modal, progress
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from blocks.wizard_inputs import back, channel, checkbox, choice, nav, text_input, users
from blocks.wizard_words import describe_step

ACTIONS = {
    "email": "Send an email (approved in Slack)",
    "slack": "Post in a Slack channel",
    "owner": "Assign an owner",
    "update": "Update a field of the record",
    "team_notification": "Email the team (no approval)",
    "webhook": "Call a webhook",
    "hubspot_task": "Create a HubSpot task",
    "salesforce_task": "Create a Salesforce task",
}
ASSIGN = {"fixed": "Always the first person", "round_robin": "Take turns (round robin)"}


def actions_view(state: WizardState, typed: Mapping[str, str] | None = None) -> dict[str, Any]:
    """Step 3: the steps so far, each with a menu (edit, move, remove), Add a step, and (once
    there is a step, with Next) when an enrollment ends early. `typed` keeps an exit condition
    typed but not yet submitted when the view is redrawn."""
    blocks: list[kit.Block] = [progress(3, state.name)]
    if not state.steps:
        blocks.append(kit.section("No steps yet: add the first one."))
    for i, step in enumerate(state.steps[:STEPS_SHOWN_MAX]):
        menu = [
            kit.option("Edit", f"edit:{i}"),
            kit.option("Move up", f"up:{i}"),
            kit.option("Move down", f"down:{i}"),
            kit.option("Remove", f"remove:{i}"),
        ]
        blocks.append(
            kit.section(
                f"*{i + 1}.* {describe_step(step)}",
                block_id=f"wz_step_{i}",
                accessory=kit.overflow(str(WizardAction.STEP_MENU), menu),
            )
        )
    if len(state.steps) > STEPS_SHOWN_MAX:
        blocks.append(
            kit.context(
                f"…and {len(state.steps) - STEPS_SHOWN_MAX} more steps (edit them in the "
                "workflow file: `/workflow export`, then `/workflow import`)."
            )
        )
    blocks.append(
        nav(back(), kit.button("Add a step", str(WizardAction.ADD_STEP), style="primary"))
    )
    if state.steps:  # an input needs the submit button, which needs a step
        blocks.append(
            text_input(
                WizardBlock.EXIT_IF,
                "Exit when",
                (typed or {}).get(WizardBlock.EXIT_IF, state.exit_if),
                optional=True,
                multiline=True,
                placeholder='status = "paying"',
                hint="Checked before every step and whenever the record changes: an "
                "enrollment ends as soon as it holds. Empty: only the steps end it.",
            )
        )
    return modal(WizardModal.ACTIONS, state, blocks, submit="Next" if state.steps else None)


def step_view(
    state: WizardState, action: str, typed: Mapping[str, str] | None = None
) -> dict[str, Any]:
    """The pushed modal for one step of `action`: a new one, or `state.step_at` being edited.
    `typed` is what the inputs hold (by block id): the edited step's fields, or what was
    typed before the action was changed."""
    typed = typed or {}
    editing = state.step_at is not None
    blocks = [choice(WizardBlock.STEP_ACTION, "Action", ACTIONS, action, dispatch=True)]
    blocks += _action_fields(action, typed)
    blocks += [
        text_input(
            WizardBlock.STEP_DELAY,
            "Wait before this step",
            typed.get(WizardBlock.STEP_DELAY, ""),
            optional=True,
            placeholder="3d",
            hint="30m, 4h, 3d or 2w; empty: at once.",
        ),
        text_input(
            WizardBlock.STEP_ONLY_IF,
            "Only if",
            typed.get(WizardBlock.STEP_ONLY_IF, ""),
            optional=True,
            multiline=True,
            placeholder="count(login, 3d) < 1",
            hint="False skips this step (and the log says why).",
        ),
    ]
    return modal(
        WizardModal.STEP,
        state,
        blocks,
        submit="Save" if editing else "Add",
        title=f"Edit step {state.step_at + 1}" if state.step_at is not None else "Add a step",
    )


def _action_fields(action: str, typed: Mapping[str, str]) -> list[kit.Block]:
    def text(block: WizardBlock, label: str, **options: Any) -> kit.Block:
        return text_input(block, label, typed.get(block, ""), **options)

    def addresses(block: WizardBlock, placeholder: str) -> kit.Block:
        return text(
            block,
            "To",
            placeholder=placeholder,
            hint="Addresses or templates, separated by commas.",
        )

    if action == "email":
        return [
            addresses(WizardBlock.EMAIL_TO, "{{ account.primary_contact.email }}"),
            text(WizardBlock.EMAIL_SUBJECT, "Subject"),
            text(WizardBlock.EMAIL_BODY, "Body", multiline=True),
            channel(
                WizardBlock.EMAIL_APPROVAL,
                "Approve drafts in",
                typed.get(WizardBlock.EMAIL_APPROVAL, ""),
                optional=True,
            ),
        ]
    if action == "slack":
        return [
            channel(WizardBlock.SLACK_CHANNEL, "Channel", typed.get(WizardBlock.SLACK_CHANNEL, "")),
            text(WizardBlock.SLACK_TEXT, "Message", multiline=True),
        ]
    if action == "owner":
        people = [u for u in typed.get(WizardBlock.OWNER_USERS, "").split(",") if u]
        return [
            choice(
                WizardBlock.OWNER_ASSIGN,
                "Assign",
                ASSIGN,
                typed.get(WizardBlock.OWNER_ASSIGN, "round_robin"),
                kind="radio_buttons",
            ),
            users(WizardBlock.OWNER_USERS, "People", people),
            checkbox(
                WizardBlock.OWNER_NOTIFY,
                "Tell them",
                "Send the new owner a direct message about the record",
                typed.get(WizardBlock.OWNER_NOTIFY) == "yes",
            ),
        ]
    if action == "team_notification":
        return [
            addresses(WizardBlock.EMAIL_TO, "cs-team@example.com"),
            text(WizardBlock.EMAIL_SUBJECT, "Subject"),
            text(WizardBlock.EMAIL_BODY, "Body", multiline=True),
        ]
    if action == "webhook":
        return [text(WizardBlock.WEBHOOK_URL, "URL", placeholder="https://hooks.example.com/cs")]
    if action in ("hubspot_task", "salesforce_task"):
        return [
            text(WizardBlock.EMAIL_SUBJECT, "Subject", placeholder="Call {{ account.name }}"),
            text(WizardBlock.EMAIL_BODY, "Notes", optional=True, multiline=True),
            text(
                WizardBlock.TASK_DUE,
                "Due in",
                optional=True,
                placeholder="2d",
                hint="From when the step runs; empty: 1d. The record's owner gets the task.",
            ),
        ]
    return [
        text(WizardBlock.UPDATE_FIELD, "Field", placeholder="stage"),
        text(WizardBlock.UPDATE_VALUE, "New value", placeholder="Adoption"),
    ]
