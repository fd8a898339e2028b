"""The App Home as Block Kit: the viewer's dashboard, a workflow's summary modal and the
Connect Gmail modal; plain data in, a view out.

The dashboard shows first the drafts waiting for the viewer's decision (with the approval
message's own buttons), then the workflows by status with their counts and buttons. It stays
within Slack's 100 blocks by construction: drafts and workflows past their room are counted
in an "N more" line. Every user-supplied value is escaped, so a workflow or record named
`<!channel>` shows literally.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from blocks import kit
from blocks.approval import DraftView, when
from blocks.approval_ids import DraftAction
from blocks.home_ids import (
    HOME_CALLBACK,
    HomeAction,
    HomeBlock,
    draft_block_id,
    workflow_block_id,
)
from blocks.wizard_ids import WizardAction
from blocks.workflows import WorkflowSummary

View = dict[str, Any]

STATUSES = ("live", "draft", "disabled")
_STATUS_TITLES = {"live": "Live", "draft": "Drafts", "disabled": "Disabled"}
COUNTED = ("enrolled", "active", "completed", "exited", "failed")
DRAFTS_SHOWN = 10  # drafts listed on the Home (two blocks each); the rest are counted

# How much of each user-supplied value a line shows (escaped, then cut).
NAME_MAX = 300
SUBJECT_MAX = 500
TO_MAX = 500
DESCRIPTION_MAX = 2000


@dataclass(frozen=True)
class HomeData:
    """What the viewer's Home shows."""

    drafts: Sequence[DraftView]  # pending drafts the viewer may decide on, in showing order
    waiting: int  # how many such drafts there are in all (the Home lists DRAFTS_SHOWN)
    workflows: Sequence[WorkflowSummary]  # not deleted, in showing order within each status
    gmail_connected: bool


@dataclass(frozen=True)
class WorkflowDetail:
    """A workflow as its Open modal shows it."""

    workflow: WorkflowSummary
    description: str | None
    trigger: Mapping[str, Any]  # as the workflow file writes it: {"segment": "Trials"}


def _esc(value: str, limit: int) -> str:
    return kit.truncate(kit.escape(value), limit)


def _md(text: str, limit: int = kit.SECTION_TEXT_MAX) -> dict[str, Any]:
    # verbatim: no auto-linking of URLs, #names or @mentions written in user text.
    return {**kit.mrkdwn(text, limit), "verbatim": True}


def _section(text: str, accessory: Mapping[str, Any] | None = None) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": _md(text)}
    if accessory is not None:
        block["accessory"] = dict(accessory)
    return block


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [_md(text, kit.CONTEXT_TEXT_MAX)]}


def _counts(counts: Mapping[str, int]) -> str:
    return " · ".join(f"{counts.get(k, 0):,} {k}" for k in COUNTED)


# -- the dashboard ------------------------------------------------------------------------------
def _top(data: HomeData) -> dict[str, Any]:
    elements = [kit.button("Create a workflow", WizardAction.OPEN, style="primary")]
    if not data.gmail_connected:
        elements.append(kit.button("Connect Gmail", HomeAction.CONNECT_GMAIL))
    return {"type": "actions", "block_id": str(HomeBlock.TOP), "elements": elements}


def _draft_blocks(view: DraftView) -> list[dict[str, Any]]:
    record = _esc(view.record_name or f"(a {view.record_type})", NAME_MAX)
    lines = [
        f"*{_esc(view.subject or '(no subject)', SUBJECT_MAX)}*",
        f"*To:* {_esc(', '.join(view.to) or '(nobody)', TO_MAX)}",
        f"*{view.record_type.capitalize()}:* {record} · "
        f"*Workflow:* {_esc(view.workflow_name, NAME_MAX)}, step {view.step_number}",
    ]
    facts = f"draft #{view.id}" + (" (edited)" if view.edited else "")
    if view.expires_at is not None:
        facts += f" · expires {when(view.expires_at)}"
    lines.append(facts)
    to = kit.escape(", ".join(view.to))
    approve = kit.confirm(
        "Send this email?", f"It goes to {to} now, from {kit.escape(view.sender)}.", yes="Send"
    )
    approve["style"] = "primary"
    discard = kit.confirm(
        "Discard this email?",
        "It is not sent; the workflow goes on with its next step.",
        yes="Discard",
        no="Keep it",
        danger=True,
    )
    value = str(view.id)
    buttons = [
        kit.button(
            "Approve & send",
            DraftAction.APPROVE,
            value=value,
            style="primary",
            confirm_with=approve,
        ),
        kit.button("Edit", DraftAction.EDIT, value=value),
        kit.button("Discard", DraftAction.DISCARD, value=value, confirm_with=discard),
    ]
    return [
        _section("\n".join(lines)),
        {"type": "actions", "block_id": draft_block_id(view.id), "elements": buttons},
    ]


def _drafts_part(drafts: Sequence[DraftView], waiting: int) -> list[dict[str, Any]]:
    listed = drafts[:DRAFTS_SHOWN]
    waiting = max(waiting, len(drafts))
    blocks = [kit.header(f"Waiting for your decision · {waiting:,}")]
    if not listed:
        blocks.append(
            _context(
                "Nothing is waiting for you. Email drafts you may approve (as the record's "
                "owner, the workflow's admin or a Slack admin) show up here."
            )
        )
        return blocks
    for view in listed:
        blocks.extend(_draft_blocks(view))
    if waiting > len(listed):
        blocks.append(
            _context(
                f"{waiting - len(listed):,} more waiting: they show here as these are decided, "
                "and in their approval channels (`workflowbot drafts list` lists them)."
            )
        )
    return blocks


def _toggle(workflow: WorkflowSummary) -> dict[str, Any]:
    value = str(workflow.id)
    name = kit.escape(workflow.name)
    if workflow.status == "live":
        sure = kit.confirm(
            "Disable this workflow?",
            f"*{name}* stops enrolling records; steps already due wait until it is enabled again.",
            yes="Disable",
            danger=True,
        )
        return kit.button("Disable", HomeAction.DISABLE, value=value, confirm_with=sure)
    sure = kit.confirm(
        "Enable this workflow?",
        f"*{name}* goes live: records that meet its trigger from now on are enrolled.",
        yes="Enable",
    )
    return kit.button("Enable", HomeAction.ENABLE, value=value, style="primary", confirm_with=sure)


def _workflow_blocks(workflow: WorkflowSummary) -> list[dict[str, Any]]:
    text = (
        f"*{_esc(workflow.name, NAME_MAX)}*  _{workflow.object_type} · v{workflow.version}_\n"
        f"{_counts(workflow.counts)}"
    )
    buttons = [
        kit.button("Open", HomeAction.OPEN, value=str(workflow.id)),
        _toggle(workflow),
    ]
    return [
        _section(text),
        {"type": "actions", "block_id": workflow_block_id(workflow.id), "elements": buttons},
    ]


def _workflows_part(workflows: Sequence[WorkflowSummary], room: int) -> list[dict[str, Any]]:
    """The workflows grouped by status in at most `room` blocks, the last one saying how many
    did not fit."""
    if not workflows:
        return [
            _section("*No workflows yet.*"),
            _context("*Create a workflow* above, or `workflowbot apply FILE` from a file."),
        ]
    blocks: list[dict[str, Any]] = []
    room -= 1  # for "N more"
    hidden: dict[str, int] = {}
    for status in STATUSES:
        members = [w for w in workflows if w.status == status]
        shown = 0
        if members and len(blocks) + 3 <= room:  # a header alone is not worth it
            blocks.append(kit.header(f"{_STATUS_TITLES[status]} · {len(members):,}"))
            for workflow in members:
                if len(blocks) + 2 > room:
                    break
                blocks.extend(_workflow_blocks(workflow))
                shown += 1
        if shown < len(members):
            hidden[status] = len(members) - shown
    if hidden:
        which = ", ".join(f"{n:,} {status}" for status, n in hidden.items())
        blocks.append(
            _context(
                f"{sum(hidden.values()):,} more workflows not shown here ({which}): "
                "`/workflow list` or `workflowbot workflows list` lists them all."
            )
        )
    return blocks


def home_view(data: HomeData) -> View:
    """The viewer's Home tab: the Create (and Connect Gmail) buttons, the drafts waiting for
    their decision, then the workflows live, draft and disabled; at most 100 blocks."""
    blocks = [_top(data), *_drafts_part(data.drafts, data.waiting), kit.divider()]
    blocks += _workflows_part(data.workflows, kit.VIEW_BLOCKS_MAX - len(blocks))
    return {"type": "home", "callback_id": HOME_CALLBACK, "blocks": blocks}


# -- modals -------------------------------------------------------------------------------------
def _modal(title: str, blocks: list[dict[str, Any]]) -> View:
    return {
        "type": "modal",
        "title": kit.plain(title, kit.VIEW_TITLE_MAX),
        "close": kit.plain("Close", kit.VIEW_TITLE_MAX),
        "blocks": blocks,
    }


def loading_modal(title: str) -> View:
    """Opened at once (a trigger_id lives three seconds), then updated with what it shows."""
    return _modal(title, [_section(":hourglass_flowing_sand: Loading…")])


def workflow_modal(detail: WorkflowDetail) -> View:
    """A workflow's summary (the Home's Open): status, trigger, description and counts."""
    workflow = detail.workflow
    trigger = ", ".join(f"{key}: {value}" for key, value in detail.trigger.items()) or "none"
    blocks = [
        _section(
            f"*{_esc(workflow.name, NAME_MAX)}*\n"
            f"{_STATUS_TITLES.get(workflow.status, workflow.status)} · {workflow.object_type} · "
            f"v{workflow.version} · trigger: {_esc(trigger, NAME_MAX)}"
        ),
    ]
    if detail.description:
        blocks.append(_section(_esc(detail.description, DESCRIPTION_MAX)))
    blocks.append(_context(_counts(workflow.counts)))
    blocks.append(
        _context(
            f"`/workflow open {_esc(workflow.name, NAME_MAX)}` shows its recent logs; "
            "`workflowbot workflows history` its versions."
        )
    )
    return _modal("Workflow", blocks)


def gmail_modal(url: str) -> View:
    """The Connect Gmail modal: the consent link, valid for an hour."""
    if len(url) > kit.URL_MAX:
        raise ValueError(f"a button url is at most {kit.URL_MAX} characters")
    link = kit.button("Connect Gmail", HomeAction.GMAIL_LINK, style="primary")
    link["url"] = url
    return _modal(
        "Connect Gmail",
        [
            _section(
                "Workflows can send email from your Gmail once you allow it. The link is "
                "yours alone and works for an hour.",
                link,
            )
        ],
    )


def notice_modal(title: str, text: str) -> View:
    """A modal that only says `text` (mrkdwn, user text already escaped)."""
    return kit.notice_view(title, text)
