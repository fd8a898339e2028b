"""The `/workflow segment new` modal: a name, accounts or contacts, a rule, and how many
records the rule matches now (or the rule's error). Plain data in, view dicts out; what was
typed is the view's own input state, so nothing travels in private_metadata.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from blocks import kit
from blocks.segment_ids import SegmentAction, SegmentBlock, SegmentModal

TITLE = "New segment"
NAME_MAX = 200  # a segment name's length in the workflow file (engine.definitions.SegmentDef)
RULE_MAX = 3000  # plain_text_input max_length
OBJECTS = {"account": "Accounts", "contact": "Contacts"}
RULE_EXAMPLE = 'plan = "trial" and health = "bad"'
RULE_HINT = (
    f"A test on each record, like {RULE_EXAMPLE} or count(login, 7d) < 2: fields, "
    "comparisons, and, or, not, in, contains, within, count() and trend(). The rule language "
    'is in the README ("Rules"), the same as in workflow files.'
)


@dataclass(frozen=True)
class SegmentForm:
    """What the modal's inputs hold (stripped strings)."""

    name: str = ""
    object: str = "account"
    rule: str = ""


@dataclass(frozen=True)
class Count:
    """How many records of `object` the rule matched when counted, or why it could not be
    (the rule's error, `line:column: …`)."""

    object: str
    members: int | None = None
    error: str | None = None


def records(object_type: str, n: int) -> str:
    """`n` accounts or contacts, in words: "1 account", "1,204 contacts"."""
    return f"{n:,} {object_type}{'' if n == 1 else 's'}"


# -- elements ---------------------------------------------------------------------------------
def _input(block: SegmentBlock, label: str, element: dict[str, Any], **extra: Any) -> kit.Block:
    found: kit.Block = {
        "type": "input",
        "block_id": str(block),
        "label": kit.plain(label, 2000),
        "element": element,
    }
    found.update(extra)
    return found


def _text(
    block: SegmentBlock, value: str, *, limit: int, multiline: bool, placeholder: str
) -> dict[str, Any]:
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": str(block),
        "multiline": multiline,
        "max_length": limit,
        "placeholder": kit.plain(placeholder, 150),
    }
    if value:
        element["initial_value"] = value[:limit]
    return element


def _object_select(value: str) -> dict[str, Any]:
    options = [kit.option(text, key) for key, text in OBJECTS.items()]
    return {
        "type": "static_select",
        "action_id": str(SegmentBlock.OBJECT),
        "options": options,
        "initial_option": next((o for o in options if o["value"] == value), options[0]),
    }


def _count_block(count: Count) -> kit.Block:
    if count.error is not None:
        text = f":warning: The rule does not work: {kit.escape(count.error)}"
    elif count.members is not None:
        verb = "matches" if count.members == 1 else "match"
        text = f":busts_in_silhouette: *{records(count.object, count.members)}* {verb} now"
    else:
        text = "Type a rule, then count its members."
    return kit.section(text, block_id=str(SegmentBlock.COUNT))


# -- views ------------------------------------------------------------------------------------
def new_view(form: SegmentForm, count: Count | None = None) -> dict[str, Any]:
    """The modal: name, object (redraws), rule, Count members, and the last count if any."""
    blocks = [
        _input(
            SegmentBlock.NAME,
            "Name",
            _text(
                SegmentBlock.NAME,
                form.name,
                limit=NAME_MAX,
                multiline=False,
                placeholder="Quiet trials",
            ),
        ),
        _input(SegmentBlock.OBJECT, "Records", _object_select(form.object), dispatch_action=True),
        _input(
            SegmentBlock.RULE,
            "Rule",
            _text(
                SegmentBlock.RULE,
                form.rule,
                limit=RULE_MAX,
                multiline=True,
                placeholder=RULE_EXAMPLE,
            ),
            hint=kit.plain(RULE_HINT, 2000),
        ),
        {
            "type": "actions",
            "block_id": str(SegmentBlock.TOOLS),
            "elements": [kit.button("Count members", str(SegmentAction.COUNT))],
        },
    ]
    if count is not None:
        blocks.append(_count_block(count))
    return {
        "type": "modal",
        "callback_id": str(SegmentModal.NEW),
        "title": kit.plain(TITLE, kit.VIEW_TITLE_MAX),
        "submit": kit.plain("Save", kit.VIEW_TITLE_MAX),
        "close": kit.plain("Cancel", kit.VIEW_TITLE_MAX),
        "blocks": blocks,
    }


def loading_view(what: str) -> dict[str, Any]:
    """Shown at once while the segment is saved."""
    return {
        "type": "modal",
        "callback_id": str(SegmentModal.LOADING),
        "title": kit.plain(TITLE, kit.VIEW_TITLE_MAX),
        "close": kit.plain("Close", kit.VIEW_TITLE_MAX),
        "blocks": [kit.section(f":hourglass_flowing_sand: {kit.escape(what)}…")],
    }


def done_view(text: str) -> dict[str, Any]:
    """The outcome: saved, refused or failed (mrkdwn; user text already escaped)."""
    return {
        "type": "modal",
        "callback_id": str(SegmentModal.DONE),
        "title": kit.plain(TITLE, kit.VIEW_TITLE_MAX),
        "close": kit.plain("Close", kit.VIEW_TITLE_MAX),
        "blocks": [kit.section(text)],
    }


# -- words ------------------------------------------------------------------------------------
def saved_text(name: str, object_type: str, members: int) -> str:
    return (
        f":white_check_mark: Segment *{kit.escape(name)}* saved: "
        f"{records(object_type, members)} in it now; use it in `/workflow new` as a trigger."
    )


def refused_text(reason: str) -> str:
    return f":no_entry: You cannot create segments: {kit.escape(reason)}"


def not_saved_text(problem: str) -> str:
    return f":warning: Not saved: {kit.escape(problem)}"


TAKEN = "A segment of this name exists (names ignore case): pick another name."
