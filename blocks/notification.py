"""A record notification as a Block Kit message: the rendered text, the record's key facts
and its owner, within Slack's limits, every user-supplied value escaped for mrkdwn."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blocks.kit import (
    CONTEXT_TEXT_MAX,
    FALLBACK_TEXT_MAX,
    FIELD_TEXT_MAX,
    FIELDS_MAX,
    SECTION_TEXT_MAX,
    escape,
    truncate,
)


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
    return truncate(text, FALLBACK_TEXT_MAX)


def notification_blocks(
    text: str,
    facts: Sequence[tuple[str, str]],
    owner: str | None,
    record_link: str | None = None,
) -> list[dict[str, Any]]:
    """The message's blocks: `text` (mrkdwn, already rendered; escaped values in it are the
    caller's job), a fields section of `facts` (label, value; values escaped here, at most
    ten), and a context line with `owner` (escaped) and `record_link` (left out when too long
    for Slack: a link cut short would show as text)."""
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
    link = f"<{escape(record_link).replace('|', '%7C')}|Open the record>" if record_link else ""
    if link and len(link) <= CONTEXT_TEXT_MAX:
        context.append(_mrkdwn(link))
    if context:
        blocks.append({"type": "context", "elements": context})
    return blocks
