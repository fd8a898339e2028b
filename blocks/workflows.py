"""`/workflow help` and `/workflow list` as Block Kit messages: plain data in, a message
(`text` and `blocks`) out, within Slack's limits, every user-supplied value escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blocks import kit
from blocks.ids import COMMAND, ActionId, WorkflowMenu, workflow_block_id, workflow_menu_value

Message = dict[str, Any]  # {"text": fallback, "blocks": [...]}

STATUSES = ("live", "draft", "disabled")
_STATUS_TITLES = {"live": "Live", "draft": "Drafts", "disabled": "Disabled"}
_COUNTED = ("enrolled", "active", "completed", "exited", "failed")
UNKNOWN_SHOWN_MAX = 100  # of an unknown subcommand, echoed back


@dataclass(frozen=True)
class Usage:
    """One subcommand as help lists it: `/workflow list` — what it does."""

    usage: str  # after the command: "list", "open NAME"
    summary: str


@dataclass(frozen=True)
class WorkflowSummary:
    """A workflow as `/workflow list` shows it."""

    id: int
    name: str
    status: str  # live | draft | disabled
    object_type: str  # account | contact
    version: int
    counts: Mapping[str, int]


def help_message(
    usages: Sequence[Usage], *, unknown: str | None = None, suggestion: str | None = None
) -> Message:
    """The list of subcommands, one line each; after an unknown subcommand, first what was
    not understood and the closest known one."""
    blocks: list[dict[str, Any]] = []
    text = f"{COMMAND} subcommands"
    if unknown is not None:
        # Escaped, and without backticks so it stays inside its code span.
        shown = kit.escape(kit.truncate(unknown, UNKNOWN_SHOWN_MAX).replace("`", "'"))
        line = f":thinking_face: `{COMMAND} {shown}` is not a command I know."
        if suggestion is not None:
            line += f" Did you mean `{COMMAND} {suggestion}`?"
        blocks.append(kit.section(line))
        text = f"Unknown subcommand {shown}"
        if suggestion is not None:
            text += f"; did you mean {COMMAND} {suggestion}?"
    blocks.append(kit.header("Workflow Bot"))
    lines = [f"`{COMMAND} {u.usage}` — {u.summary}" for u in usages]
    blocks.append(kit.section("\n".join(lines)))
    blocks.append(kit.context("Everyone may list and open workflows; admins change them."))
    return {"text": text, "blocks": blocks}


def _menu(workflow: WorkflowSummary) -> dict[str, Any]:
    toggle = (
        (WorkflowMenu.DISABLE, "Disable")
        if workflow.status == "live"
        else (WorkflowMenu.ENABLE, "Enable")
    )
    choices = [
        (WorkflowMenu.OPEN, "Open"),
        (WorkflowMenu.EDIT, "Edit"),
        toggle,
        (WorkflowMenu.EXPORT, "Export"),
        (WorkflowMenu.DELETE, "Delete…"),
    ]
    return kit.overflow(
        ActionId.WORKFLOW_MENU,
        [kit.option(label, workflow_menu_value(choice, workflow.id)) for choice, label in choices],
    )


def _workflow_section(workflow: WorkflowSummary) -> dict[str, Any]:
    counts = " · ".join(f"{workflow.counts.get(k, 0):,} {k}" for k in _COUNTED)
    text = (
        f"*{kit.escape(kit.truncate(workflow.name, 500))}*  "
        f"_{workflow.object_type} · v{workflow.version}_\n{counts}"
    )
    return kit.section(text, block_id=workflow_block_id(workflow.id), accessory=_menu(workflow))


def list_message(workflows: Sequence[WorkflowSummary]) -> Message:
    """Workflows grouped live, draft, disabled, each with its counts and an overflow menu
    (Open, Edit, Enable or Disable, Export, Delete); past Slack's 50 blocks, the rest are
    counted in a last line."""
    groups = {status: [w for w in workflows if w.status == status] for status in STATUSES}
    summary = ", ".join(f"{len(groups[s])} {s}" for s in STATUSES)
    if not workflows:
        return {
            "text": "No workflows yet",
            "blocks": [
                kit.section("No workflows yet."),
                kit.context("`workflowbot apply FILE` creates them from a workflow file."),
            ],
        }
    blocks: list[dict[str, Any]] = []
    room = kit.MESSAGE_BLOCKS_MAX - 1  # the last one for "… more"
    shown = 0
    for status in STATUSES:
        members = groups[status]
        if not members or len(blocks) + 2 > room:
            continue
        blocks.append(kit.header(f"{_STATUS_TITLES[status]} · {len(members)}"))
        for workflow in members:
            if len(blocks) >= room:
                break
            blocks.append(_workflow_section(workflow))
            shown += 1
    if shown < len(workflows):
        blocks.append(
            kit.context(
                f"{len(workflows) - shown:,} more not shown here: "
                "`workflowbot workflows list` lists them all."
            )
        )
    return {"text": f"Workflows: {summary}", "blocks": blocks}
