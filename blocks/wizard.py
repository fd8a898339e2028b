"""The wizard's modals (`/workflow new`, `/workflow edit`, Duplicate): Information → Trigger →
Actions (with a pushed step modal, blocks.wizard_steps) → Enable. Plain data in, view dicts
out. What was typed travels in private_metadata as a `WizardState`; a state past Slack's 3,000
characters is kept in a slack_forms row by the listener and only its id travels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from blocks import kit
from blocks.wizard_ids import WizardBlock, WizardModal
from blocks.wizard_inputs import back, choice, nav, text_input
from blocks.wizard_words import ENROLLMENTS, WHENS, describe_step, summary

STEPS_SHOWN_MAX = 80  # listed steps, leaving room for the other blocks of a modal
OBJECTS = {"account": "Accounts", "contact": "Contacts"}
KINDS = {
    "segment": "Enters or leaves a segment",
    "stage": "Stage changes",
    "health": "Health changes",
    "event": "Performs an event",
}
HEALTH_MOVES = {"drop": "Drops", "rise": "Rises", "change": "Changes"}
BUCKETS = {"any": "Any", "good": "Good", "neutral": "Neutral", "bad": "Bad"}
NEW_MODES = {"draft": "Save as draft", "live": "Enable now"}
EDIT_MODES = {
    "draft": {"draft": "Save, still a draft", "live": "Save and enable"},
    "live": {"live": "Save, keep it live", "disabled": "Save and disable"},
    "disabled": {"disabled": "Save, still disabled", "live": "Save and enable"},
}


class MetadataTooLarge(ValueError):
    """The wizard's state does not fit in a view's private_metadata, and has no form row."""


class WizardState(BaseModel):
    """Everything typed so far, as the form holds it (strings; steps as definition dicts)."""

    name: str = ""
    description: str = ""
    object: str = "account"
    kind: str = "segment"
    segment: str = ""
    stage: str = ""
    when: str = "enter"
    health: str = "drop"
    health_to: str = ""
    health_from: str = ""
    event: str = ""
    where: str = ""
    only_if: str = ""
    enrollment: str = "once"
    exit_if: str = ""
    steps: list[dict[str, Any]] = []
    mode: str = "live"
    # Editing: the workflow's id, its status and version when the wizard opened, and the
    # fields of its definition the wizard does not show (admins, on_failure…), kept as they were.
    editing: int | None = None
    status: str = ""
    version: int = 0
    extra: dict[str, Any] = {}
    step_at: int | None = None  # the step modal: which step it edits (None: a new one)
    form: int | None = None  # the slack_forms row holding this state, once it outgrew metadata

    def fits(self) -> bool:
        return len(self._full()) <= kit.PRIVATE_METADATA_MAX

    def _full(self) -> str:
        return self.model_dump_json(exclude_defaults=True)

    def dump(self) -> str:
        """The state as private_metadata: all of it when it fits, else the id of its form
        row (MetadataTooLarge when there is none)."""
        text = self._full()
        if len(text) <= kit.PRIVATE_METADATA_MAX:
            return text
        if self.form is None:
            raise MetadataTooLarge(
                f"the workflow is {len(text):,} characters, more than a modal can carry "
                f"({kit.PRIVATE_METADATA_MAX:,})"
            )
        return WizardState(form=self.form, step_at=self.step_at).model_dump_json(
            exclude_defaults=True
        )

    def pointer(self) -> bool:
        """True when this was loaded from a dump that holds only the form row's id."""
        return self.form is not None and not self.name

    @classmethod
    def load(cls, metadata: str | None) -> WizardState:
        return cls.model_validate_json(metadata) if metadata else cls()

    def title(self) -> str:
        return "Edit workflow" if self.editing is not None else "New workflow"


@dataclass(frozen=True)
class TriggerChoices:
    """What the trigger step offers: the stored segments (name, object) and stages."""

    segments: Sequence[tuple[str, str]] = ()
    stages: Sequence[str] = ()


@dataclass(frozen=True)
class Reach:
    """The audience right now, or why it could not be counted."""

    count: int | None
    what: str = ""
    problems: list[str] = field(default_factory=list)


def modal(
    callback: WizardModal,
    state: WizardState,
    blocks: list[kit.Block],
    *,
    submit: str | None = "Next",
    title: str | None = None,
) -> dict[str, Any]:
    view: dict[str, Any] = {
        "type": "modal",
        "callback_id": str(callback),
        "title": kit.plain(title or state.title(), kit.VIEW_TITLE_MAX),
        "close": kit.plain("Cancel", kit.VIEW_TITLE_MAX),
        "blocks": blocks[: kit.VIEW_BLOCKS_MAX],
        "private_metadata": state.dump(),
    }
    if submit is not None:
        view["submit"] = kit.plain(submit, kit.VIEW_TITLE_MAX)
    return view


def progress(step: int, name: str) -> kit.Block:
    marks = " → ".join(
        f"*{label}*" if i == step else label
        for i, label in enumerate(("Information", "Trigger", "Actions", "Enable"), 1)
    )
    return kit.context(
        f"Step {step} of 4 · {marks}" if name == "" else f"{marks} · {kit.escape(name)}"
    )


def _editing_note(state: WizardState) -> list[kit.Block]:
    if state.editing is None or state.status != "live":
        return []
    return [
        kit.context(
            f":information_source: This workflow is live. Records already enrolled keep "
            f"running version {state.version}; records enrolled after you save follow the new "
            "version."
        )
    ]


# -- the steps --------------------------------------------------------------------------------
def info_view(state: WizardState) -> dict[str, Any]:
    """Step 1: the workflow's name and description. An edited workflow keeps its name (files
    and commands refer to it): Duplicate makes one under another name."""
    if state.editing is None:
        name = text_input(WizardBlock.NAME, "Name", state.name, placeholder="Trial welcome series")
    else:
        name = kit.section(f"*Name*\n{kit.escape(state.name)}")
    blocks = [
        progress(1, "" if state.editing is None else state.name),
        *_editing_note(state),
        name,
        text_input(
            WizardBlock.DESCRIPTION,
            "Description",
            state.description,
            optional=True,
            multiline=True,
        ),
    ]
    return modal(WizardModal.INFO, state, blocks)


def loading_view(state: WizardState, what: str) -> dict[str, Any]:
    """Shown at once while the next step's data is read; it keeps the state."""
    return modal(
        WizardModal.LOADING, state, [kit.section(f":hourglass_flowing_sand: {what}…")], submit=None
    )


def done_view(text: str, *, title: str = "Workflow") -> dict[str, Any]:
    """The outcome: saved, refused or failed (mrkdwn; user text already escaped)."""
    return {
        "type": "modal",
        "callback_id": str(WizardModal.DONE),
        "title": kit.plain(title, kit.VIEW_TITLE_MAX),
        "close": kit.plain("Close", kit.VIEW_TITLE_MAX),
        "blocks": [kit.section(kit.truncate(text, kit.SECTION_TEXT_MAX))],
    }


def trigger_view(state: WizardState, choices: TriggerChoices) -> dict[str, Any]:
    """Step 2: who (object), when (the trigger kind and its fields), only if, how often."""
    if state.editing is None:
        records = choice(WizardBlock.OBJECT, "Records", OBJECTS, state.object, dispatch=True)
    else:  # the engine keeps a workflow on one object
        records = kit.section(f"*Records*\n{OBJECTS.get(state.object, state.object)}")
    blocks = [
        progress(2, state.name),
        records,
        choice(WizardBlock.KIND, "Trigger", KINDS, state.kind, dispatch=True),
    ]
    blocks += _trigger_fields(state, choices)
    blocks += [
        text_input(
            WizardBlock.ONLY_IF,
            "Only if",
            state.only_if,
            optional=True,
            multiline=True,
            placeholder='status = "trial" and count(login, 7d) < 2',
            hint="A rule checked when the trigger fires; empty: every record.",
        ),
        choice(
            WizardBlock.ENROLLMENT,
            "Enroll a record",
            ENROLLMENTS,
            state.enrollment,
            kind="radio_buttons",
        ),
        nav(back()),
    ]
    return modal(WizardModal.TRIGGER, state, blocks)


def _when(state: WizardState) -> kit.Block:
    return choice(WizardBlock.WHEN, "When the record", WHENS, state.when, kind="radio_buttons")


def _trigger_fields(state: WizardState, choices: TriggerChoices) -> list[kit.Block]:
    if state.kind == "segment":
        names = [n for n, obj in choices.segments if obj == state.object]
        pickable = {n: n for n in names if len(n) <= kit.OPTION_VALUE_MAX}
        if not names:
            return [
                kit.section(
                    f":information_source: There is no {state.object} segment yet: create one "
                    "with `/workflow segment new`, then come back."
                )
            ]
        found = [choice(WizardBlock.SEGMENT, "Segment", pickable, state.segment), _when(state)]
        if len(pickable) < len(names):
            found.append(
                kit.context(
                    f"{len(names) - len(pickable)} segments have names longer than Slack "
                    f"menus allow ({kit.OPTION_VALUE_MAX}): rename them to pick them here."
                )
            )
        return found
    if state.kind == "stage":
        stage = (
            choice(WizardBlock.STAGE, "Stage", {s: s for s in choices.stages}, state.stage)
            if choices.stages
            else text_input(WizardBlock.STAGE, "Stage", state.stage, placeholder="Onboarding")
        )
        return [stage, _when(state)]
    if state.kind == "health":
        return [
            choice(
                WizardBlock.HEALTH,
                "The health score",
                HEALTH_MOVES,
                state.health,
                kind="radio_buttons",
            ),
            choice(WizardBlock.HEALTH_TO, "To", BUCKETS, state.health_to or "any", optional=True),
            choice(
                WizardBlock.HEALTH_FROM, "From", BUCKETS, state.health_from or "any", optional=True
            ),
        ]
    return [
        text_input(WizardBlock.EVENT, "Event", state.event, placeholder="Order Completed"),
        text_input(
            WizardBlock.WHERE,
            "Where",
            state.where,
            optional=True,
            placeholder='properties.plan = "pro"',
            hint="A rule on the event's properties; empty: every such event.",
        ),
    ]


def enable_view(state: WizardState, reach: Reach) -> dict[str, Any]:
    """Step 4: what the workflow does, who it would reach now, how it is saved."""
    blocks: list[kit.Block] = [
        progress(4, state.name),
        *_editing_note(state),
        kit.section(kit.truncate(summary(state), kit.SECTION_TEXT_MAX)),
    ]
    for i, step in enumerate(state.steps[:STEPS_SHOWN_MAX]):
        blocks.append(kit.section(f"*{i + 1}.* {describe_step(step)}"))
    if len(state.steps) > STEPS_SHOWN_MAX:
        blocks.append(kit.context(f"…and {len(state.steps) - STEPS_SHOWN_MAX} more steps."))
    if reach.count is not None:
        blocks.append(
            kit.context(f":busts_in_silhouette: {reach.count:,} {kit.escape(reach.what)} right now")
        )
    else:
        blocks.append(
            kit.context(
                kit.truncate(
                    ":warning: The audience could not be counted: "
                    + kit.escape("; ".join(reach.problems)),
                    kit.CONTEXT_TEXT_MAX,
                )
            )
        )
    modes = NEW_MODES if state.editing is None else EDIT_MODES.get(state.status, NEW_MODES)
    blocks += [
        choice(WizardBlock.MODE, "When saved", modes, state.mode, kind="radio_buttons"),
        nav(back()),
    ]
    return modal(WizardModal.ENABLE, state, blocks, submit="Save")
