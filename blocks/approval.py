"""An email draft as Slack shows it: the approval message (its buttons following the draft's
status), the full-body modal and the edit modal; plain data in, Block Kit JSON out.

Every user-supplied value (record names, addresses, subject, body, errors) is escaped for
mrkdwn, so a contact named `<!channel>` shows literally (RELIABILITY 14); in plain_text
objects it is literal anyway. Slack's limits hold by construction: each text is cut to its
object's limit (an entity is never cut in half) and the block counts are fixed or capped.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from blocks.approval_ids import DraftAction, DraftBlock, DraftInput, DraftModal
from blocks.kit import (
    BUTTON_TEXT_MAX,
    CONFIRM_BUTTON_MAX,
    CONFIRM_TEXT_MAX,
    CONFIRM_TITLE_MAX,
    CONTEXT_ELEMENTS_MAX,
    CONTEXT_TEXT_MAX,
    FALLBACK_TEXT_MAX,
    HEADER_TEXT_MAX,
    INPUT_LABEL_MAX,
    INPUT_VALUE_MAX,
    MESSAGE_BLOCKS_MAX,
    SECTION_TEXT_MAX,
    VIEW_BLOCKS_MAX,
    VIEW_TITLE_MAX,
    escape,
    truncate,
)

# The decisions after which the message keeps no button.
FINAL = frozenset({"approved", "sent", "discarded", "expired", "withdrawn", "suppressed"})

_TITLES = {
    "pending": "Email waiting for approval",
    "approved": "Email approved: sending",
    "sent": "Email sent",
    "discarded": "Email discarded",
    "expired": "Email expired",
    "withdrawn": "Email withdrawn",
    "suppressed": "Email not sent",
    "failed": "Email not sent: the provider refused it",
    "unknown": "Email may have been sent",
}
_SLACK_ID = re.compile(r"[UW][A-Z0-9]{2,}")


@dataclass(frozen=True)
class DraftView:
    """What the approval message shows of a draft, its record and its workflow."""

    id: int
    kind: str  # email | html | gmail
    status: str
    sender: str
    to: tuple[str, ...]
    cc: tuple[str, ...]
    subject: str
    body: str  # as stored (HTML for html and gmail): what the edit modal edits
    record_name: str
    record_type: str  # account | contact
    owner: str | None  # as shown: a name, an email, or a Slack id (mentioned)
    workflow_name: str
    step_number: int  # 1-based
    approval_channel: str | None
    decided_by: str | None = None  # a Slack id (mentioned), or "expiry", "exit", "cli:…"
    decided_at: datetime | None = None
    error: str | None = None
    sent_at: datetime | None = None
    edited: bool = False
    expires_at: datetime | None = None
    body_text: str | None = None  # the body as a person reads it (HTML as text); None: body
    marked_sent: bool = False  # "sent" on a person's word (Mark sent), not a provider's


# -- small pieces -------------------------------------------------------------------------------
def _esc(value: str, limit: int) -> str:
    return truncate(escape(value), limit)


def _plain(text: str, limit: int) -> dict[str, Any]:
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def _md(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    # verbatim: no auto-linking of URLs or #names in user text; our <@U…> and <!date…> stay.
    return {"type": "mrkdwn", "text": truncate(text, limit), "verbatim": True}


def _section(text: str, accessory: dict[str, Any] | None = None, **extra: Any) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "section", "text": _md(text), **extra}
    if accessory is not None:
        block["accessory"] = accessory
    return block


def _context(*texts: str) -> dict[str, Any]:
    return {
        "type": "context",
        "elements": [_md(t, CONTEXT_TEXT_MAX) for t in texts[:CONTEXT_ELEMENTS_MAX]],
    }


def _confirm(title: str, text: str, yes: str, no: str, style: str) -> dict[str, Any]:
    return {
        "title": _plain(title, CONFIRM_TITLE_MAX),
        "text": _plain(text, CONFIRM_TEXT_MAX),
        "confirm": _plain(yes, CONFIRM_BUTTON_MAX),
        "deny": _plain(no, CONFIRM_BUTTON_MAX),
        "style": style,
    }


def _button(
    action: DraftAction,
    label: str,
    draft_id: int,
    *,
    style: str | None = None,
    confirm: dict[str, Any] | None = None,
) -> dict[str, Any]:
    button: dict[str, Any] = {
        "type": "button",
        "action_id": str(action),
        "text": _plain(label, BUTTON_TEXT_MAX),
        "value": str(draft_id),
    }
    if style is not None:
        button["style"] = style
    if confirm is not None:
        button["confirm"] = confirm
    return button


def _utc(at: datetime) -> datetime:
    return at.replace(tzinfo=UTC) if at.tzinfo is None else at.astimezone(UTC)


def when(at: datetime) -> str:
    """`at` in each reader's own time zone (Slack's date token), UTC as the fallback."""
    at = _utc(at)
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} {{time}}|{at:%Y-%m-%d %H:%M} UTC>"


def who(by: str) -> str:
    """A decider as shown: a Slack user id as a mention, anything else as (escaped) text."""
    return f"<@{by}>" if _SLACK_ID.fullmatch(by) else escape(by)


def _by(view: DraftView) -> str:
    parts = []
    if view.decided_by:
        parts.append(f"by {who(view.decided_by)}")
    if view.decided_at is not None:
        parts.append(when(view.decided_at))
    return " ".join(parts)


def _shown_body(view: DraftView) -> str:
    return view.body if view.body_text is None else view.body_text


def _addresses(values: Sequence[str]) -> str:
    return ", ".join(values)


def _title(view: DraftView) -> str:
    return _TITLES.get(view.status, f"Email draft: {view.status}")


# -- the approval message -----------------------------------------------------------------------
def _summary(view: DraftView) -> dict[str, Any]:
    lines = [f"*To:* {_esc(_addresses(view.to), 1000)}"]
    if view.cc:
        lines.append(f"*Cc:* {_esc(_addresses(view.cc), 600)}")
    lines.append(f"*From:* {_esc(view.sender, 400)}")
    lines.append(f"*Subject:* {_esc(view.subject, 800)}")
    return _section("\n".join(lines))


def _facts(view: DraftView) -> dict[str, Any]:
    record = f"*{view.record_type.capitalize()}:* {_esc(view.record_name or '(no name)', 500)}"
    parts = [record]
    if view.owner:
        parts.append(f"*Owner:* {truncate(who(view.owner), 300)}")
    parts.append(f"*Workflow:* {_esc(view.workflow_name, 300)}, step {view.step_number}")
    parts.append(f"draft #{view.id}" + (" (edited)" if view.edited else ""))
    if view.status == "pending" and view.expires_at is not None:
        parts.append(f"expires {when(view.expires_at)}")
    return _context(" · ".join(parts))


def _body(view: DraftView, buttons: bool) -> dict[str, Any]:
    text = escape(_shown_body(view))
    if not text.strip():
        return _section("_(the body is empty)_", block_id=str(DraftBlock.BODY))
    cut = len(text) > SECTION_TEXT_MAX
    accessory = _button(DraftAction.SHOW_ALL, "Show all", view.id) if cut and buttons else None
    return _section(text, accessory, block_id=str(DraftBlock.BODY))


def _actions(*elements: dict[str, Any]) -> dict[str, Any]:
    return {"type": "actions", "block_id": str(DraftBlock.ACTIONS), "elements": list(elements)}


def _pending(view: DraftView) -> list[dict[str, Any]]:
    to = _addresses(view.to)
    record = view.record_name or f"this {view.record_type}"
    approve = _confirm(
        "Send this email?", f"It goes to {to} now, from {view.sender}.", "Send", "Cancel", "primary"
    )
    discard = _confirm(
        "Discard this email?",
        "It is not sent; the workflow goes on with its next step.",
        "Discard",
        "Keep it",
        "danger",
    )
    leave = _confirm(
        "End the enrollment?",
        f"{record} leaves {view.workflow_name}: this email and the steps after it are not run.",
        "End it",
        "Cancel",
        "danger",
    )
    return [
        _actions(
            _button(
                DraftAction.APPROVE, "Approve & send", view.id, style="primary", confirm=approve
            ),
            _button(DraftAction.EDIT, "Edit", view.id),
            _button(DraftAction.DISCARD, "Discard", view.id, confirm=discard),
            _button(DraftAction.EXIT, "Exit workflow", view.id, style="danger", confirm=leave),
        )
    ]


def _failed(view: DraftView) -> list[dict[str, Any]]:
    error = _esc(view.error or "no answer was kept", 2500)
    blocks = [_section(f":x: *Not sent.* The provider answered: {error}")]
    if view.decided_by or view.decided_at:
        blocks.append(_context(f"Approved {_by(view)}"))
    blocks.append(_actions(_button(DraftAction.RETRY, "Retry", view.id, style="primary")))
    return blocks


def _unknown(view: DraftView) -> list[dict[str, Any]]:
    error = f" ({_esc(view.error, 1500)})" if view.error else ""
    again = _confirm(
        "Send it again?",
        "It may already have arrived: the recipients could get it twice.",
        "Send again",
        "Cancel",
        "danger",
    )
    return [
        _section(
            f":warning: *This email may have been sent*{error}. Nothing sends it again by "
            "itself: check with the recipient or the provider, then say what happened."
        ),
        _actions(
            _button(DraftAction.MARK_SENT, "Mark sent", view.id, style="primary"),
            _button(DraftAction.SEND_AGAIN, "Send again", view.id, style="danger", confirm=again),
        ),
    ]


def outcome(view: DraftView) -> str:
    """What happened to a decided draft, by whom and when (mrkdwn; ids as mentions)."""
    by = _by(view)
    status = view.status
    if status == "sent":
        if view.marked_sent:
            return f":white_check_mark: Marked sent {by}"
        if view.decided_by == "reconciled":
            at = f" {when(view.decided_at)}" if view.decided_at else ""
            return f":white_check_mark: Sent: found in the sender's Gmail Sent folder{at}"
        sent = f" {when(view.sent_at)}" if view.sent_at else ""
        return f":white_check_mark: Sent{sent} · approved {by}".rstrip(" ·")
    if status == "approved":
        return f":hourglass_flowing_sand: Approved {by}: sending…"
    if status == "discarded":
        return f":wastebasket: Discarded {by}"
    if status == "expired":
        at = f" {when(view.decided_at)}" if view.decided_at else ""
        return f":hourglass: Expired{at}: nobody decided in time"
    if status == "withdrawn":
        at = f" {when(view.decided_at)}" if view.decided_at else ""
        person = view.decided_by not in (None, "exit")
        return f":leftwards_arrow_with_hook: Withdrawn{at}: the enrollment exited" + (
            f" ({_by(view)})" if person else ""
        )
    if status == "suppressed":
        return (
            f":no_entry_sign: Not sent: every recipient is on the suppression list · approved {by}"
        )
    return f"{escape(status)} {by}".strip()


def draft_message(view: DraftView) -> tuple[str, list[dict[str, Any]]]:
    """The approval message: (fallback text, blocks). Pending: Approve & send (confirmed),
    Edit, Discard, Exit; failed: the provider's error and Retry; unknown: "may have been
    sent", Mark sent and Send again; every other (final) state: what happened, no button."""
    final = view.status not in ("pending", "failed", "unknown")
    blocks: list[dict[str, Any]] = [
        {"type": "header", "text": _plain(_title(view), HEADER_TEXT_MAX)},
        _summary(view),
        _body(view, buttons=not final),
        _facts(view),
    ]
    if view.status == "pending":
        blocks += _pending(view)
    elif view.status == "failed":
        blocks += _failed(view)
    elif view.status == "unknown":
        blocks += _unknown(view)
    else:
        blocks.append(_context(outcome(view)))
    text = f"{_title(view)}: {escape(view.subject)} (to {escape(_addresses(view.to))})"
    assert len(blocks) <= MESSAGE_BLOCKS_MAX
    return truncate(text, FALLBACK_TEXT_MAX), blocks


# -- the modals ---------------------------------------------------------------------------------
def _modal_title(prefix: str, draft_id: int) -> dict[str, Any]:
    return _plain(f"{prefix} #{draft_id}", VIEW_TITLE_MAX)


def chunks(text: str, size: int) -> Iterator[str]:
    """`text` (escaped mrkdwn) in pieces of at most `size`, cut at a line break or a space
    when one is near the end, never inside an entity (`&amp;`); blank pieces are dropped."""
    rest = text
    while rest:
        if len(rest) <= size:
            piece = rest
        else:
            piece = rest[:size]
            for sep in ("\n", " "):
                at = piece.rfind(sep)
                if at >= size // 2:
                    piece = piece[: at + 1]
                    break
            amp = piece.rfind("&", max(len(piece) - len("&amp;"), 0))
            if amp > 0 and ";" not in piece[amp:]:
                piece = piece[:amp]
        rest = rest[len(piece) :]
        if piece.strip():
            yield piece


def full_body_modal(view: DraftView) -> dict[str, Any]:
    """A modal with the whole body, over as many sections as it takes (at most Slack's 100
    blocks: a longer body says where the rest can be read)."""
    head = [_summary(view), {"type": "divider"}]
    room = VIEW_BLOCKS_MAX - len(head) - 1  # one for the notice of a body cut short
    pieces = list(chunks(escape(_shown_body(view)), SECTION_TEXT_MAX))
    body = [_section(piece) for piece in pieces[:room]]
    if not body:
        body = [_section("_(the body is empty)_")]
    if len(pieces) > room:
        shown = sum(len(p) for p in pieces[:room])
        body.append(
            _context(
                f"The body is longer than Slack can show here; the first {shown:,} characters "
                f"are shown. `workflowbot drafts show {view.id}` prints all of it."
            )
        )
    return {
        "type": "modal",
        "callback_id": str(DraftModal.BODY),
        "title": _modal_title("Draft", view.id),
        "close": _plain("Close", VIEW_TITLE_MAX),
        "private_metadata": str(view.id),
        "blocks": head + body,
    }


def _input(
    block: DraftBlock,
    action: DraftInput,
    label: str,
    value: str,
    *,
    draft_id: int,
    flag: str,
    multiline: bool = False,
    optional: bool = False,
    hint: str | None = None,
) -> dict[str, Any]:
    """A plain-text input prefilled with `value`, or, when `value` is longer than an input
    may hold, a note saying so (the field is then left as it is)."""
    if len(value) > INPUT_VALUE_MAX:
        return _section(
            f"*{label}* is {len(value):,} characters, more than a Slack input holds "
            f"({INPUT_VALUE_MAX:,}), so it cannot be edited here and stays as it is: "
            f"`workflowbot drafts edit {draft_id} {flag} …`"
        )
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": str(action),
        "multiline": multiline,
        "max_length": INPUT_VALUE_MAX,
    }
    if value:
        element["initial_value"] = value
    block_json: dict[str, Any] = {
        "type": "input",
        "block_id": str(block),
        "label": _plain(label, INPUT_LABEL_MAX),
        "element": element,
        "optional": optional,
    }
    if hint:
        block_json["hint"] = _plain(hint, INPUT_LABEL_MAX)
    return block_json


def edit_modal(view: DraftView) -> dict[str, Any]:
    """The edit modal: To and Cc (comma-separated), Subject and Body prefilled; submitted
    with `callback_id` DraftModal.EDIT and the draft id in `private_metadata`."""
    html = view.kind in ("html", "gmail")
    record = _esc(view.record_name or f"(a {view.record_type})", 500)
    workflow = _esc(view.workflow_name, 300)
    blocks = [
        _context(f"{record} · *{workflow}*, step {view.step_number}"),
        _input(
            DraftBlock.EDIT_TO,
            DraftInput.TO,
            "To",
            _addresses(view.to),
            draft_id=view.id,
            flag="--to",
            hint="Addresses separated by commas",
        ),
        _input(
            DraftBlock.EDIT_CC,
            DraftInput.CC,
            "Cc",
            _addresses(view.cc),
            draft_id=view.id,
            flag="--cc",
            optional=True,
            hint="Addresses separated by commas",
        ),
        _input(
            DraftBlock.EDIT_SUBJECT,
            DraftInput.SUBJECT,
            "Subject",
            view.subject,
            draft_id=view.id,
            flag="--subject",
        ),
        _input(
            DraftBlock.EDIT_BODY,
            DraftInput.BODY,
            "Body (HTML)" if html else "Body",
            view.body,
            draft_id=view.id,
            flag="--body-file",
            multiline=True,
        ),
    ]
    return {
        "type": "modal",
        "callback_id": str(DraftModal.EDIT),
        "title": _modal_title("Edit draft", view.id),
        "submit": _plain("Save", VIEW_TITLE_MAX),
        "close": _plain("Cancel", VIEW_TITLE_MAX),
        "private_metadata": str(view.id),
        "blocks": blocks,
    }
