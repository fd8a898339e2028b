"""The ids that tie a Block Kit element to its handler (callback_id, action_id, block_id and
the values menus carry), shared by the builders in blocks/ and the listeners in bot/."""

from __future__ import annotations

from enum import StrEnum

COMMAND = "/workflow"  # the slash command, as slack-manifest.yml declares it


class ActionId(StrEnum):
    WORKFLOW_MENU = "workflow_menu"  # the overflow of each workflow in `/workflow list`
    # Buttons whose value is a workflow id: `/workflow open`'s, and Delete's confirmation.
    WORKFLOW_ENABLE = "workflow_enable"
    WORKFLOW_DISABLE = "workflow_disable"
    WORKFLOW_DELETE = "workflow_delete"
    WORKFLOW_DELETE_CANCEL = "workflow_delete_cancel"
    GMAIL_LINK = "gmail_connect_link"  # a link button: Slack still sends the click, only acked


class BlockId(StrEnum):
    WORKFLOW = "workflow"  # a workflow's section: "workflow:<id>"
    WORKFLOW_ACTIONS = "workflow_actions"  # the buttons under one workflow


class WorkflowMenu(StrEnum):
    """The choices of a workflow's overflow menu; an option's value is "<choice>:<id>"."""

    OPEN = "open"
    EDIT = "edit"
    DUPLICATE = "duplicate"
    REPORT = "report"
    ENABLE = "enable"
    DISABLE = "disable"
    EXPORT = "export"
    DELETE = "delete"


def workflow_block_id(workflow_id: int) -> str:
    return f"{BlockId.WORKFLOW}:{workflow_id}"


def workflow_menu_value(choice: WorkflowMenu, workflow_id: int) -> str:
    return f"{choice}:{workflow_id}"


def parse_workflow_menu_value(value: str) -> tuple[WorkflowMenu, int]:
    """The choice and workflow id an overflow option carries; ValueError if it is not ours."""
    choice, _, workflow_id = value.partition(":")
    if not workflow_id.isdigit():
        raise ValueError(f"not a workflow menu value: {value!r}")
    return WorkflowMenu(choice), int(workflow_id)
