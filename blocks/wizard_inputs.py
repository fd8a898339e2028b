"""The input elements the wizard's modals are made of (blocks.wizard, blocks.wizard_steps):
text inputs, selects that turn into searches past Slack's 100 options, channel and user
pickers, each in an input block whose id is the element's action_id."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from blocks import kit
from blocks.wizard_ids import WizardAction, WizardBlock

OPTIONS_MAX = 100  # a static_select's options
INPUT_MAX = 3000  # plain_text_input max_length


def text_input(
    block: WizardBlock,
    label: str,
    value: str,
    *,
    optional: bool = False,
    multiline: bool = False,
    placeholder: str | None = None,
    hint: str | None = None,
) -> kit.Block:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": str(block),
        "multiline": multiline,
        "max_length": INPUT_MAX,
    }
    if value:
        element["initial_value"] = value[:INPUT_MAX]
    if placeholder:
        element["placeholder"] = kit.plain(placeholder, 150)
    return input_block(block, label, element, optional=optional, hint=hint)


def input_block(
    block: WizardBlock,
    label: str,
    element: dict[str, Any],
    *,
    optional: bool = False,
    hint: str | None = None,
    dispatch: bool = False,
) -> kit.Block:
    found: kit.Block = {
        "type": "input",
        "block_id": str(block),
        "label": kit.plain(label, 2000),
        "element": element,
        "optional": optional,
    }
    if hint:
        found["hint"] = kit.plain(hint, 2000)
    if dispatch:
        found["dispatch_action"] = True
    return found


def choice(
    block: WizardBlock,
    label: str,
    choices: Mapping[str, str],
    value: str,
    *,
    kind: str = "static_select",
    dispatch: bool = False,
    optional: bool = False,
    hint: str | None = None,
) -> kit.Block:
    """A select (or radio buttons) of `choices` (value -> label). A static select of more
    than 100 choices becomes an external select: the listener answers what is typed."""
    options = [kit.option(text, key) for key, text in choices.items()]
    initial = next((o for o in options if o["value"] == value), None)
    element: dict[str, Any] = {"type": kind, "action_id": str(block)}
    if kind == "static_select" and len(options) > OPTIONS_MAX:
        element = {"type": "external_select", "action_id": str(block), "min_query_length": 0}
    else:
        element["options"] = options
    if element["type"] != "radio_buttons":
        element["placeholder"] = kit.plain("Choose…", 150)
    if initial is not None:
        element["initial_option"] = initial
    return input_block(block, label, element, dispatch=dispatch, optional=optional, hint=hint)


def suggestions(names: Sequence[str], typed: str) -> list[dict[str, Any]]:
    """An external select's options for what was typed: names containing it, first those
    starting with it, at most 100."""
    needle = typed.strip().casefold()
    found = [n for n in names if needle in n.casefold()]
    found.sort(key=lambda n: (not n.casefold().startswith(needle), n.casefold()))
    return [kit.option(n, n) for n in found[:OPTIONS_MAX]]


def channel(block: WizardBlock, label: str, value: str, *, optional: bool = False) -> kit.Block:
    """A channel picker. A channel kept by name (`#cs-alerts`, as files write it) cannot be
    preselected: the hint says so and an empty pick keeps it (bot.forms.read_step)."""
    element: dict[str, Any] = {"type": "channels_select", "action_id": str(block)}
    hint = None
    if value.startswith("C") and " " not in value:
        element["initial_channel"] = value
    elif value:
        hint, optional = f"Now {value}: pick a channel to change it.", True
    return input_block(block, label, element, optional=optional, hint=hint)


def users(block: WizardBlock, label: str, value: Sequence[str]) -> kit.Block:
    """A people picker; people named by email (as files may) are kept and listed in the hint."""
    element: dict[str, Any] = {"type": "multi_users_select", "action_id": str(block)}
    ids = [u for u in value if u.startswith(("U", "W")) and "@" not in u]
    emails = [u for u in value if u not in ids]
    if ids:
        element["initial_users"] = ids
    hint = f"Also kept: {', '.join(emails)}" if emails else None
    return input_block(block, label, element, optional=bool(emails), hint=hint)


def checkbox(block: WizardBlock, label: str, text: str, checked: bool) -> kit.Block:
    option = kit.option(text, "yes")
    element: dict[str, Any] = {"type": "checkboxes", "action_id": str(block), "options": [option]}
    if checked:
        element["initial_options"] = [option]
    return input_block(block, label, element, optional=True)


def nav(*buttons: dict[str, Any]) -> kit.Block:
    return {"type": "actions", "block_id": str(WizardBlock.NAV), "elements": list(buttons)}


def back() -> dict[str, Any]:
    return kit.button("Back", str(WizardAction.BACK))
