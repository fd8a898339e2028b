"""A record notification as a Block Kit message: the rendered text, the record's key facts
and its owner, within Slack's limits, every user-supplied value escaped for mrkdwn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blocks.kit import escape, truncate

SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_MAX = 10
CONTEXT_TEXT_MAX = 3000


def escape_strings(value: Any) -> Any:
    """A copy of plain data with every string leaf escaped (keys kept as they are)."""
    if isinstance(value, str):
        return escape(value)
    if isinstance(value, Mapping):
        return {key: escape_strings(item) for key, item in value.items()}
    if isinstance(value, list | tuple):
        return [escape_strings(item) for item in value]
    return value


def _mrkdwn(text: str) -> dict[str, Any]:
    return {"type": "mrkdwn", "text": text}


def notification_text(text: str) -> str:
    """The message's plain `text` fallback (notifications, screen readers)."""
    return truncate(text, SECTION_TEXT_MAX)


def notification_blocks(
    text: str,
    facts: Sequence[tuple[str, str]],
    owner: str | None,
    record_link: str | None = None,
) -> list[dict[str, Any]]:
    """The message's blocks: `text` (mrkdwn, already rendered; escaped values in it are the
    caller's job), a fields section of `facts` (label, value; values escaped here, at most
    ten), and a context line with `owner` (escaped) and `record_link`."""
    blocks: list[dict[str, Any]] = []
    if text.strip():
        blocks.append({"type": "section", "text": _mrkdwn(truncate(text, SECTION_TEXT_MAX))})
    fields = [
        _mrkdwn(truncate(f"*{escape(label)}*\n{escape(value)}", FIELD_TEXT_MAX))
        for label, value in facts[:FIELDS_MAX]
    ]
    if fields:
        blocks.append({"type": "section", "fields": fields})
    context = []
    if owner:
        context.append(_mrkdwn(truncate(f"Owner: {escape(owner)}", CONTEXT_TEXT_MAX)))
    if record_link:
        url = escape(record_link).replace("|", "%7C")
        context.append(_mrkdwn(truncate(f"<{url}|Open the record>", CONTEXT_TEXT_MAX)))
    if context:
        blocks.append({"type": "context", "elements": context})
    return blocks
