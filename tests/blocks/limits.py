"""Slack's Block Kit rules as test assertions, for whatever a builder returns: each block
parsed by slack_sdk's models (valid, nothing lost or renamed on the way) and within the limits
Slack documents that those models do not all check (blocks per surface, text lengths, option
counts, id lengths, private_metadata, a message's `text`); and user text escaped in mrkdwn.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from typing import Any

from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from blocks import kit

Json = Mapping[str, Any]

# The `<…>` a builder writes into mrkdwn itself: mentions and date tokens (a builder that
# writes its own links passes a pattern for them too).
OUR_TOKENS = re.compile(r"<@[UW][A-Z0-9]+>|<!date\^\d+\^[^|>]+\|[^>]+>")
_BARE_AMPERSAND = re.compile(r"&(?!amp;|lt;|gt;)")


def _text(obj: Json, most: int, *, kinds: tuple[str, ...] = ("plain_text", "mrkdwn")) -> None:
    assert obj["type"] in kinds, obj
    assert 1 <= len(obj["text"]) <= most, (len(obj["text"]), most, obj["text"][:80])


def _id(value: str | None) -> None:
    assert value is None or 1 <= len(value) <= kit.ID_MAX, value


def _confirm(dialog: Json) -> None:
    _text(dialog["title"], kit.CONFIRM_TITLE_MAX, kinds=("plain_text",))
    _text(dialog["text"], kit.CONFIRM_TEXT_MAX)
    for key in ("confirm", "deny"):
        if key in dialog:
            _text(dialog[key], kit.CONFIRM_BUTTON_MAX, kinds=("plain_text",))


def _option(option: Json) -> None:
    _text(option["text"], kit.OPTION_TEXT_MAX)
    assert 1 <= len(option["value"]) <= kit.OPTION_VALUE_MAX, option["value"]
    if "description" in option:
        _text(option["description"], kit.OPTION_DESCRIPTION_MAX)
    assert len(option.get("url", "")) <= kit.URL_MAX


def _options(element: Json, most: int, least: int = 1) -> None:
    if "option_groups" in element:
        groups = element["option_groups"]
        assert 1 <= len(groups) <= most
        options = [o for g in groups for o in g["options"]]
        assert all(1 <= len(g["options"]) <= most for g in groups)
    else:
        options = element["options"]
        assert least <= len(options) <= most, (element["type"], len(options))
    for option in options:
        _option(option)
    values = [o["value"] for o in options]
    assert len(values) == len(set(values)), f"repeated option values in {element['type']}"


def _element(element: Json) -> None:
    kind = element["type"]
    _id(element.get("action_id"))
    if "placeholder" in element:
        _text(element["placeholder"], kit.PLACEHOLDER_MAX, kinds=("plain_text",))
    if "confirm" in element:
        _confirm(element["confirm"])
    if kind == "button":
        _text(element["text"], kit.BUTTON_TEXT_MAX, kinds=("plain_text",))
        assert len(element.get("value", "")) <= kit.BUTTON_VALUE_MAX
        assert len(element.get("url", "")) <= kit.URL_MAX
    elif kind == "overflow":
        _options(element, kit.OVERFLOW_OPTIONS_MAX, least=kit.OVERFLOW_OPTIONS_MIN)
    elif kind in ("static_select", "multi_static_select"):
        _options(element, kit.SELECT_OPTIONS_MAX)
    elif kind in ("radio_buttons", "checkboxes"):
        _options(element, kit.CHOICE_OPTIONS_MAX)
    elif kind == "plain_text_input":
        most = element.get("max_length", kit.INPUT_VALUE_MAX)
        assert most <= kit.INPUT_VALUE_MAX
        assert len(element.get("initial_value", "")) <= most


def _block(block: Json) -> None:
    kind = block["type"]
    if kind == "section":
        assert "text" in block or "fields" in block, block
        if "text" in block:
            _text(block["text"], kit.SECTION_TEXT_MAX)
        if "fields" in block:
            assert 1 <= len(block["fields"]) <= kit.FIELDS_MAX
            for field in block["fields"]:
                _text(field, kit.FIELD_TEXT_MAX)
        if "accessory" in block:
            _element(block["accessory"])
    elif kind == "header":
        _text(block["text"], kit.HEADER_TEXT_MAX, kinds=("plain_text",))
    elif kind == "context":
        assert 1 <= len(block["elements"]) <= kit.CONTEXT_ELEMENTS_MAX
        for element in block["elements"]:
            if element["type"] != "image":
                _text(element, kit.CONTEXT_TEXT_MAX)
    elif kind == "actions":
        assert 1 <= len(block["elements"]) <= kit.ACTIONS_ELEMENTS_MAX
        ids = [e["action_id"] for e in block["elements"] if "action_id" in e]
        assert len(ids) == len(set(ids)), f"repeated action_id in {block.get('block_id')}"
        for element in block["elements"]:
            _element(element)
    elif kind == "input":
        _text(block["label"], kit.INPUT_LABEL_MAX, kinds=("plain_text",))
        if "hint" in block:
            _text(block["hint"], kit.INPUT_LABEL_MAX, kinds=("plain_text",))
        _element(block["element"])
    else:
        assert kind in ("divider", "image"), f"no limits known for a {kind} block"


def checked_blocks(blocks: list[dict[str, Any]], most: int = kit.MESSAGE_BLOCKS_MAX) -> list[Block]:
    """Every block parsed by slack_sdk's models and within Slack's limits (text lengths,
    option counts, id lengths; block_ids unique), none lost or renamed on the way, 1 to `most`
    of them."""
    assert 0 < len(blocks) <= most, (len(blocks), most)
    ids = [b["block_id"] for b in blocks if "block_id" in b]
    assert len(ids) == len(set(ids)), "repeated block_id"
    parsed = []
    for raw in blocks:
        block = Block.parse(raw)
        assert block is not None, raw
        block.validate_json()
        assert block.to_dict() == raw
        _id(raw.get("block_id"))
        _block(raw)
        parsed.append(block)
    return parsed


def checked_message(message: Json, most: int = kit.MESSAGE_BLOCKS_MAX) -> list[Block]:
    """A message (`text` and `blocks`) as chat.postMessage or a response_url takes it: its
    blocks checked, and a fallback `text` within Slack's limit."""
    assert 1 <= len(message["text"]) <= kit.MESSAGE_TEXT_MAX, len(message["text"])
    return checked_blocks(message["blocks"], most)


def checked_view(view: Json) -> View:
    """A modal or Home tab parsed by slack_sdk's models and within Slack's limits."""
    parsed = View(**view)
    parsed.validate_json()
    checked_blocks(view["blocks"], kit.VIEW_BLOCKS_MAX)
    _id(view.get("callback_id"))
    _id(view.get("external_id"))
    assert len(view.get("private_metadata", "")) <= kit.PRIVATE_METADATA_MAX
    if view["type"] == "modal":
        _text(view["title"], kit.VIEW_TITLE_MAX, kinds=("plain_text",))
        for key in ("submit", "close"):
            if key in view:
                _text(view[key], kit.VIEW_TITLE_MAX, kinds=("plain_text",))
        if any(b["type"] == "input" for b in view["blocks"]):
            assert "submit" in view, "a modal with inputs needs a submit button"
    else:
        assert view["type"] == "home", view["type"]
    return parsed


def texts(value: Any, kind: str) -> Iterator[str]:
    """The text of every `kind` ("mrkdwn" or "plain_text") text object in `value`."""
    if isinstance(value, Mapping):
        if value.get("type") == kind and isinstance(value.get("text"), str):
            yield value["text"]
        for item in value.values():
            yield from texts(item, kind)
    elif isinstance(value, list | tuple):
        for item in value:
            yield from texts(item, kind)


def assert_escaped(shown: Iterable[str], ours: re.Pattern[str] = OUR_TOKENS) -> None:
    """No control sequence in mrkdwn `shown` but the builders' own (`ours`): every other `<`,
    `>` and `&` is an entity, so user text such as `<!channel>` is shown literally."""
    for text in shown:
        rest = ours.sub("", text)
        assert "<" not in rest and ">" not in rest, text[:200]
        assert not _BARE_AMPERSAND.search(rest), text[:200]
