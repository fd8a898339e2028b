"""`/workflow` answers as Block Kit messages — help, list, open, logs, the dry run, the
delete confirmation, the Gmail link — plain data in, a message (`text` and `blocks`) out,
within Slack's limits, every user-supplied value escaped."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blocks import kit
from blocks.ids import (
    COMMAND,
    ActionId,
    BlockId,
    WorkflowMenu,
    workflow_block_id,
    workflow_menu_value,
)
from blocks.insight_ids import InsightAction, InsightBlock, LogsPage

Message = dict[str, Any]  # {"text": fallback, "blocks": [...]}
Block = kit.Block

STATUSES = ("live", "draft", "disabled")
_STATUS_TITLES = {"live": "Live", "draft": "Drafts", "disabled": "Disabled"}
_COUNTED = ("enrolled", "active", "completed", "exited", "failed")
UNKNOWN_SHOWN_MAX = 100  # of an unknown subcommand or workflow name, echoed back
CODE_SECTIONS_MAX = 5  # of logs or a dry run in one message: ~15,000 characters
CODE_LINE_MAX = 500  # a longer log line is cut
NAME_MAX = 300  # of a workflow name in a line of text (escaped, then cut)
PROBLEM_MAX = 500  # of each problem cannot_go_live lists (escaped, then cut)
FENCE = "```"


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


def _esc(value: str, limit: int = NAME_MAX) -> str:
    return kit.truncate(kit.escape(value), limit)


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
    blocks.append(kit.section(kit.listed(lines)))
    blocks.append(kit.context("Everyone may list and open workflows; admins change them."))
    return {"text": text, "blocks": blocks}


def _menu(workflow: WorkflowSummary) -> dict[str, Any]:
    """The workflow's menu: a select, as its seven choices are more than an overflow's five."""
    toggle = (
        (WorkflowMenu.DISABLE, "Disable")
        if workflow.status == "live"
        else (WorkflowMenu.ENABLE, "Enable")
    )
    choices = [
        (WorkflowMenu.OPEN, "Open"),
        (WorkflowMenu.REPORT, "View report"),
        (WorkflowMenu.EDIT, "Edit"),
        toggle,
        (WorkflowMenu.DUPLICATE, "Duplicate"),
        (WorkflowMenu.EXPORT, "Export"),
        (WorkflowMenu.DELETE, "Delete…"),
    ]
    return {
        "type": "static_select",
        "action_id": str(ActionId.WORKFLOW_MENU),
        "placeholder": kit.plain("Manage…", kit.PLACEHOLDER_MAX),
        "options": [
            kit.option(label, workflow_menu_value(choice, workflow.id)) for choice, label in choices
        ],
    }


def _workflow_section(workflow: WorkflowSummary) -> dict[str, Any]:
    counts = " · ".join(f"{workflow.counts.get(k, 0):,} {k}" for k in _COUNTED)
    text = (
        f"*{kit.escape(kit.truncate(workflow.name, 500))}*  "
        f"_{workflow.object_type} · v{workflow.version}_\n{counts}"
    )
    return kit.section(text, block_id=workflow_block_id(workflow.id), accessory=_menu(workflow))


def list_message(workflows: Sequence[WorkflowSummary]) -> Message:
    """Workflows grouped live, draft, disabled, each with its counts and a menu (Open, View
    report, Edit, Enable or Disable, Duplicate, Export, Delete); past Slack's 50 blocks, the
    rest are counted in a last line."""
    groups = {status: [w for w in workflows if w.status == status] for status in STATUSES}
    summary = ", ".join(f"{len(groups[s])} {s}" for s in STATUSES)
    if not workflows:
        return {
            "text": "No workflows yet",
            "blocks": [
                kit.section("No workflows yet."),
                kit.context(
                    f"`{COMMAND} new` builds one step by step; `{COMMAND} import` takes a "
                    "workflow file."
                ),
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


# -- one workflow ----------------------------------------------------------------------------
@dataclass(frozen=True)
class WorkflowDetail:
    """A workflow as `/workflow open` shows it; `recent` are its latest log lines, oldest
    first, as plain text."""

    id: int
    name: str
    description: str | None
    status: str
    object_type: str
    version: int
    counts: Mapping[str, int]
    recent: Sequence[str]


def typed(name: str) -> str:
    """How to type `name` after a subcommand, escaped for a code span (quoted if spaced)."""
    shown = kit.escape(kit.truncate(name, UNKNOWN_SHOWN_MAX).replace("`", "'"))
    return f'"{shown}"' if " " in name else shown


def code_blocks(lines: Sequence[str], most: int = CODE_SECTIONS_MAX) -> tuple[list[Block], int]:
    """`lines` shown literally in code-block sections, each within Slack's section limit, at
    most `most` of them; and how many lines did not fit."""
    room = kit.SECTION_TEXT_MAX - 2 * len(FENCE) - 2
    blocks: list[Block] = []
    current: list[str] = []
    size = 0
    for index, raw in enumerate(lines):
        # Escaped, and no ``` that would end the block early.
        line = kit.truncate(kit.escape(raw), CODE_LINE_MAX).replace(FENCE, "`\u200b`\u200b`")
        if current and size + 1 + len(line) > room:
            blocks.append(_code(current))
            current, size = [], 0
            if len(blocks) == most:
                return blocks, len(lines) - index
        size += len(line) + (1 if current else 0)
        current.append(line)
    if current:
        blocks.append(_code(current))
    return blocks, 0


def _code(lines: Sequence[str]) -> Block:
    return kit.section(FENCE + "\n" + "\n".join(lines) + "\n" + FENCE)


def _actions(*elements: dict[str, Any]) -> Block:
    return {
        "type": "actions",
        "block_id": str(BlockId.WORKFLOW_ACTIONS),
        "elements": list(elements),
    }


def workflow_message(
    workflow: WorkflowDetail, *, may_manage: bool, report_url: str | None = None
) -> Message:
    """`/workflow open`: description, status, version, the engine's counts, the latest log
    lines, for those who may change it an Enable or Disable button, and for everyone View
    report when `report_url` is given."""
    numbers = [f"*{k.capitalize()}*\n{workflow.counts.get(k, 0):,}" for k in _COUNTED]
    blocks: list[Block] = [
        kit.header(workflow.name),
        kit.section(
            kit.escape(workflow.description) if workflow.description else "_No description._"
        ),
        kit.fields(
            [
                f"*Status*\n{workflow.status}",
                f"*Follows*\n{workflow.object_type}s",
                f"*Version*\nv{workflow.version}",
                *numbers,
            ]
        ),
    ]
    if workflow.recent:
        blocks.append(kit.section("*Recent activity* (UTC)"))
        blocks += code_blocks(workflow.recent)[0]
    else:
        blocks.append(kit.context("No enrollments yet."))
    buttons = []
    if may_manage:
        value = str(workflow.id)
        buttons.append(
            kit.button("Disable", ActionId.WORKFLOW_DISABLE, value=value)
            if workflow.status == "live"
            else kit.button("Enable", ActionId.WORKFLOW_ENABLE, value=value, style="primary")
        )
    if report_url is not None:
        buttons.append(report_button(report_url))
    if buttons:
        blocks.append(_actions(*buttons))
    blocks.append(
        kit.context(f"`{COMMAND} logs {typed(workflow.name)}` shows each enrollment's timeline.")
    )
    text = f"{_esc(workflow.name)}: {workflow.status}, version {workflow.version}"
    return {"text": text, "blocks": blocks}


def report_button(url: str) -> dict[str, Any]:
    """View report: a link button to a workflow's signed report page."""
    if len(url) > kit.URL_MAX:
        raise ValueError(f"a button url is at most {kit.URL_MAX} characters")
    return {**kit.button("View report", InsightAction.REPORT_LINK), "url": url}


def _lines_message(title: str, lines: Sequence[str], *, empty: str, cli: str) -> Message:
    """A title (mrkdwn, escaped) over `lines` in code blocks; what does not fit is counted,
    naming the `cli` command that prints everything."""
    blocks: list[Block] = [kit.section(title)]
    shown, left = code_blocks(lines)
    blocks += shown or [kit.context(empty)]
    if left:
        blocks.append(kit.context(f"{left:,} more lines not shown here: `{cli}` prints them all."))
    return {"text": kit.truncate(title, kit.FALLBACK_TEXT_MAX), "blocks": blocks}


def _record(record: tuple[str, str]) -> str:
    return f"{record[0]} “{kit.escape(kit.truncate(record[1], UNKNOWN_SHOWN_MAX))}”"


@dataclass(frozen=True)
class Paging:
    """Where a page of `/workflow logs` sits: it shows `count` enrollments from `offset`
    (newest first), `more` says a next page exists."""

    workflow_id: int
    offset: int
    count: int
    size: int  # enrollments a page shows
    more: bool


def logs_message(
    name: str,
    record: tuple[str, str] | None,
    lines: Sequence[str],
    paging: Paging | None = None,
) -> Message:
    """`/workflow logs`: the latest enrollments' timelines (of one record: object, id); with
    `paging`, which ones they are and Previous / Next buttons where there is a page to go to."""
    about = f" of {_record(record)}" if record else ""
    title = f"*{_esc(name)}*: the latest enrollments{about}"
    if paging is not None and paging.offset > 0 and paging.count:
        first, last = paging.offset + 1, paging.offset + paging.count
        title = f"*{_esc(name)}*: enrollments {first:,} to {last:,}{about}, newest first"
    empty = "No enrollments yet." if paging is None or paging.offset == 0 else "No more."
    message = _lines_message(title, lines, empty=empty, cli="workflowbot logs")
    if paging is not None:
        buttons = []
        if paging.offset > 0:
            back = LogsPage(paging.workflow_id, record, max(paging.offset - paging.size, 0))
            buttons.append(kit.button("Previous", InsightAction.LOGS_PREVIOUS, value=back.value()))
        if paging.more:
            ahead = LogsPage(paging.workflow_id, record, paging.offset + paging.size)
            buttons.append(kit.button("Next", InsightAction.LOGS_NEXT, value=ahead.value()))
        if buttons:
            message["blocks"].append(
                {"type": "actions", "block_id": str(InsightBlock.LOGS_PAGES), "elements": buttons}
            )
    return message


def dry_run_message(name: str, record: tuple[str, str], lines: Sequence[str]) -> Message:
    """`/workflow test`: what the workflow would do for the record now."""
    title = f"*{_esc(name)}* for {_record(record)}: a dry run"
    return _lines_message(title, lines, empty="Nothing to show.", cli="workflowbot workflows test")


def unknown_workflow(text: str, suggestions: Sequence[str], *, any_exist: bool) -> str:
    """What to say when no workflow is named `text` (mrkdwn): the closest names, if any."""
    shown = kit.escape(kit.truncate(text, UNKNOWN_SHOWN_MAX))
    said = f":thinking_face: No workflow is named “{shown}”."
    if suggestions:
        names = " or ".join(f"*{_esc(s, UNKNOWN_SHOWN_MAX)}*" for s in suggestions)
        said += f" Did you mean {names}?"
    elif not any_exist:
        return said + " There are no workflows yet."
    return said + f" `{COMMAND} list` shows them all."


def cannot_go_live(name: str, problems: Sequence[str]) -> Message:
    """Enable refused: the problems of the current version, one per line (as many as fit,
    then how many more)."""
    head = f":no_entry: *{_esc(name)}* cannot go live:"
    lines = [f"• {_esc(p, PROBLEM_MAX)}" for p in problems]
    listed = kit.listed(lines, kit.SECTION_TEXT_MAX - len(head) - 1)
    return {
        "text": f"{_esc(name)} cannot go live",
        "blocks": [kit.section(f"{head}\n{listed}")],
    }


def delete_confirmation(workflow_id: int, name: str, status: str) -> Message:
    """Delete asks first: what deleting does, Delete and Cancel."""
    live = " It is live: it stops enrolling at once." if status == "live" else ""
    text = (
        f":wastebasket: Delete *{_esc(name)}*?{live} It leaves every list; its history "
        "stays, and saving a workflow of the same name brings it back."
    )
    value = str(workflow_id)
    return {
        "text": f"Delete {_esc(name)}?",
        "blocks": [
            kit.section(text),
            _actions(
                kit.button("Delete", ActionId.WORKFLOW_DELETE, value=value, style="danger"),
                kit.button("Cancel", ActionId.WORKFLOW_DELETE_CANCEL, value=value),
            ),
        ],
    }


def gmail_link_message(url: str) -> Message:
    """The viewer's own Gmail consent link, as a link button."""
    if len(url) > kit.URL_MAX:
        raise ValueError(f"a button url is at most {kit.URL_MAX} characters")
    button = {**kit.button("Connect Gmail", ActionId.GMAIL_LINK, style="primary"), "url": url}
    text = (
        "Connect the Gmail account your email steps send from as you. The link is yours "
        "alone and works for an hour."
    )
    return {"text": "Connect Gmail", "blocks": [kit.section(text, accessory=button)]}


# -- the one-line answers of the management subcommands ---------------------------------------
def status_changed_text(
    name: str, status: str, *, enrolled_existing: int = 0, exited: int = 0
) -> str:
    """`enable` / `disable` done (and what came with it)."""
    shown = _esc(name)
    if status == "live":
        said = f":large_green_circle: *{shown}* is live: signals from now on enroll records."
        if enrolled_existing:
            said += f" {enrolled_existing:,} existing records enrolled (enroll_existing)."
    else:
        said = (
            f":double_vertical_bar: *{shown}* is {status}: no new enrollments; pending steps "
            "wait until it is enabled again."
        )
    if exited:
        said += f" {exited:,} active enrollments exited."
    return said


def enrolled_text(record: tuple[str, str], name: str, enrollment_id: int) -> str:
    return (
        f":inbox_tray: {_record(record)} is enrolled in *{_esc(name)}* (enrollment "
        f"#{enrollment_id}); its first step is scheduled."
    )


def exited_text(record: tuple[str, str], name: str, *, left: bool) -> str:
    if not left:
        return f"{_record(record)} has no active enrollment in *{_esc(name)}*."
    return f":outbox_tray: {_record(record)} left *{_esc(name)}*; its pending steps are cancelled."


def export_comment(title: str, filename: str) -> str:
    """The comment of `/workflow export`'s uploaded file."""
    return f"*{_esc(title)}* as a workflow file: `workflowbot apply {filename}`"


def exported_text(filename: str, *, direct: bool = False) -> str:
    if direct:
        return (
            f":page_facing_up: I may not post files here: `{filename}` is in our direct messages."
        )
    return f":page_facing_up: `{filename}` is in this conversation."


def paused_text(paused: bool) -> str:
    if not paused:
        return "Sends were already paused."
    return (
        ":octagonal_sign: Every send is paused: steps coming due wait, nothing is lost, until "
        f"`{COMMAND} resume-all`."
    )


def resumed_text(released: int) -> str:
    return f":arrow_forward: Sends resumed; {released:,} waiting steps scheduled."
