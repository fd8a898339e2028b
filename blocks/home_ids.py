"""The ids of the App Home's own buttons, shared by blocks.home and bot.listeners.home.

A workflow button's `value` is the workflow id (`str(workflow.id)`). The drafts on the Home
carry the approval message's own buttons (blocks.approval_ids.DraftAction, value the draft
id), so bot.listeners.approval answers them wherever they are clicked; its "Create a
workflow" button is the wizard's own (blocks.wizard_ids.WizardAction.OPEN).
"""

from __future__ import annotations

from enum import StrEnum

HOME_CALLBACK = "home"  # the published view's callback_id


class HomeAction(StrEnum):
    """action_id of the Home's buttons."""

    CONNECT_GMAIL = "home_connect_gmail"  # the viewer has no Gmail connection: get the link
    GMAIL_LINK = "home_gmail_link"  # the link button in the Connect Gmail modal (a url button)
    OPEN = "home_workflow_open"
    ENABLE = "home_workflow_enable"
    DISABLE = "home_workflow_disable"


class HomeBlock(StrEnum):
    """block_id prefixes: each block that holds buttons names its draft or workflow, so ids
    stay unique within the view (Slack refuses a view with a repeated block_id)."""

    TOP = "home_top"
    DRAFT = "home_draft"  # "home_draft:<id>"
    WORKFLOW = "home_workflow"  # "home_workflow:<id>"


def draft_block_id(draft_id: int) -> str:
    return f"{HomeBlock.DRAFT}:{draft_id}"


def workflow_block_id(workflow_id: int) -> str:
    return f"{HomeBlock.WORKFLOW}:{workflow_id}"
