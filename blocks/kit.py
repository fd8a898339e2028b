"""Small Block Kit helpers: text objects, buttons, options and menus, and the limits Slack
documents for them. User-supplied text goes through `escape` before it enters mrkdwn, and
every builder cuts what it is given to its limit, so a valid payload is built by construction.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

# Slack's documented limits (Block Kit reference); slack_sdk's models check only some of them.
MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100  # a modal or the App Home
MESSAGE_TEXT_MAX = 40_000  # a message's top-level `text`: Slack cuts a longer one
SECTION_TEXT_MAX = 3000
FIELD_TEXT_MAX = 2000
FIELDS_MAX = 10
HEADER_TEXT_MAX = 150
CONTEXT_ELEMENTS_MAX = 10
CONTEXT_TEXT_MAX = 3000
ACTIONS_ELEMENTS_MAX = 25
BUTTON_TEXT_MAX = 75
BUTTON_VALUE_MAX = 2000
URL_MAX = 3000  # a link button's or an option's url
OPTION_TEXT_MAX = 75
OPTION_VALUE_MAX = 150
OPTION_DESCRIPTION_MAX = 75
SELECT_OPTIONS_MAX = 100  # a static select's options (or option groups)
CHOICE_OPTIONS_MAX = 10  # radio buttons' or checkboxes' options
OVERFLOW_OPTIONS_MIN = 2
OVERFLOW_OPTIONS_MAX = 5
PLACEHOLDER_MAX = 150
CONFIRM_TITLE_MAX = 100
CONFIRM_TEXT_MAX = 300
CONFIRM_BUTTON_MAX = 30
INPUT_LABEL_MAX = 2000  # an input block's label, and its hint
INPUT_VALUE_MAX = 3000  # a plain_text_input's max_length, and so its initial_value
ID_MAX = 255  # action_id, block_id, callback_id
VIEW_TITLE_MAX = 24  # a modal's title, submit and close
PRIVATE_METADATA_MAX = 3000

# Ours: a message's `text` is its notification and what a screen reader says, not a copy of
# the blocks; this much is plenty (and far below MESSAGE_TEXT_MAX).
FALLBACK_TEXT_MAX = 3000

ELLIPSIS = "…"
_ENTITY_MAX = len("&amp;")

Block = dict[str, Any]


def escape(value: str) -> str:
    """`value` shown literally in mrkdwn: `&`, `<`, `>` as Slack's entities, so `<!channel>`
    or `<https://x|y>` in a record's name is text, not a mention or a link."""
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def truncate(text: str, limit: int) -> str:
    """`text` cut to `limit` characters ending in "…" when longer; an entity (`&amp;`) is
    never cut in half."""
    if len(text) <= limit:
        return text
    cut = text[: limit - len(ELLIPSIS)]
    amp = cut.rfind("&", max(len(cut) - _ENTITY_MAX, 0))
    if amp != -1 and ";" not in cut[amp:]:
        cut = cut[:amp]
    return cut + ELLIPSIS


def listed(lines: Sequence[str], limit: int = SECTION_TEXT_MAX) -> str:
    """`lines` one a line within `limit` characters: as many as fit whole (the first one cut
    if it alone is too long), then "…and N more" counting the rest."""
    room = limit - len(f"\n{ELLIPSIS}and {len(lines):,} more")
    shown: list[str] = []
    size = -1  # no newline before the first line
    for line in lines:
        cut = line if shown else truncate(line, room)
        if size + 1 + len(cut) > room:
            break
        shown.append(cut)
        size += 1 + len(cut)
    hidden = len(lines) - len(shown)
    return "\n".join([*shown, f"{ELLIPSIS}and {hidden:,} more"] if hidden else shown)


def _checked_id(value: str) -> str:
    """An id is ours, never user text: one too long is a bug, not something to cut."""
    if not value or len(value) > ID_MAX:
        raise ValueError(f"a Block Kit id must be 1 to {ID_MAX} characters: {value!r}")
    return value


def plain(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    """A plain_text object (emoji shortcodes rendered), cut to `limit`."""
    return {"type": "plain_text", "text": truncate(text, limit), "emoji": True}


def mrkdwn(text: str, limit: int = SECTION_TEXT_MAX) -> dict[str, Any]:
    """A mrkdwn object, cut to `limit`; user text in it must already be `escape`d."""
    return {"type": "mrkdwn", "text": truncate(text, limit)}


def section(
    text: str, *, block_id: str | None = None, accessory: Mapping[str, Any] | None = None
) -> Block:
    """A section of mrkdwn `text` with an optional accessory (a button, an overflow…)."""
    block: Block = {"type": "section", "text": mrkdwn(text)}
    if block_id is not None:
        block["block_id"] = _checked_id(block_id)
    if accessory is not None:
        block["accessory"] = dict(accessory)
    return block


def fields(pairs: Sequence[str]) -> Block:
    """A section of up to ten mrkdwn fields (extra ones are dropped)."""
    return {"type": "section", "fields": [mrkdwn(p, FIELD_TEXT_MAX) for p in pairs[:FIELDS_MAX]]}


def header(text: str) -> Block:
    return {"type": "header", "text": plain(text, HEADER_TEXT_MAX)}


def context(*texts: str) -> Block:
    """A context line of mrkdwn elements (up to ten)."""
    return {
        "type": "context",
        "elements": [mrkdwn(t, CONTEXT_TEXT_MAX) for t in texts[:CONTEXT_ELEMENTS_MAX]],
    }


def divider() -> Block:
    return {"type": "divider"}


def confirm(
    title: str, text: str, *, yes: str = "Yes", no: str = "Cancel", danger: bool = False
) -> dict[str, Any]:
    """A confirmation dialog for a button or menu."""
    dialog: dict[str, Any] = {
        "title": plain(title, CONFIRM_TITLE_MAX),
        "text": mrkdwn(text, CONFIRM_TEXT_MAX),
        "confirm": plain(yes, CONFIRM_BUTTON_MAX),
        "deny": plain(no, CONFIRM_BUTTON_MAX),
    }
    if danger:
        dialog["style"] = "danger"
    return dialog


def button(
    text: str,
    action_id: str,
    *,
    value: str | None = None,
    style: str | None = None,
    confirm_with: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """A button; `style` is "primary" or "danger"; `value` must fit (it is ours, not cut)."""
    element: dict[str, Any] = {
        "type": "button",
        "text": plain(text, BUTTON_TEXT_MAX),
        "action_id": _checked_id(action_id),
    }
    if value is not None:
        if len(value) > BUTTON_VALUE_MAX:
            raise ValueError(f"a button value is at most {BUTTON_VALUE_MAX} characters")
        element["value"] = value
    if style is not None:
        element["style"] = style
    if confirm_with is not None:
        element["confirm"] = dict(confirm_with)
    return element


def option(text: str, value: str, *, description: str | None = None) -> dict[str, Any]:
    """An option of a menu or select; `value` must fit (it is ours, not cut)."""
    if not value or len(value) > OPTION_VALUE_MAX:
        raise ValueError(f"an option value must be 1 to {OPTION_VALUE_MAX} characters")
    found: dict[str, Any] = {"text": plain(text, OPTION_TEXT_MAX), "value": value}
    if description is not None:
        found["description"] = plain(description, OPTION_TEXT_MAX)
    return found


def overflow(action_id: str, options: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An overflow menu ("…") of two to five options."""
    if not OVERFLOW_OPTIONS_MIN <= len(options) <= OVERFLOW_OPTIONS_MAX:
        raise ValueError(
            f"an overflow menu holds {OVERFLOW_OPTIONS_MIN} to {OVERFLOW_OPTIONS_MAX} options"
        )
    return {
        "type": "overflow",
        "action_id": _checked_id(action_id),
        "options": [dict(o) for o in options],
    }


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A modal that only says `text` (mrkdwn) and closes; pushed over a form, closing it
    returns to the form as the user left it."""
    return {
        "type": "modal",
        "title": plain(title, VIEW_TITLE_MAX),
        "close": plain("Close", VIEW_TITLE_MAX),
        "blocks": [section(text)],
    }
