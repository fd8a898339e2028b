"""`/workflow import` as Block Kit: the modal's views (the document, planning, the plan with
Apply, what was done) and the plan message with its Apply button — plain data in, a view or
a message out. Every line of a plan or problem is user text, escaped; a plan of any length
fits Slack's limits (the lines past LINES_SHOWN are counted, not shown).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from blocks import kit
from blocks.import_ids import ImportAction, ImportBlock, ImportInput, ImportModal

Message = dict[str, Any]  # {"text": fallback, "blocks": [...]}
View = dict[str, Any]

TITLE = "Import workflows"
DOCUMENT_MAX = kit.INPUT_VALUE_MAX  # Slack's most for a plain_text_input
LINES_SHOWN = 50  # of a plan or a list of problems
LINE_MAX = 500  # a longer line is cut
NAME_MAX = 80  # a file name, as shown
PLACEHOLDER = "version: 1\nworkflows:\n  - name: Trial welcome"


@dataclass(frozen=True)
class ImportPlan:
    """What importing a document would do, for one user."""

    lines: Sequence[str]  # engine.workspace.Plan.lines()
    form_id: int | None  # where the document waits for Apply; None: nothing to apply
    source: str | None = None  # the file's name; None for pasted text
    refusal: str | None = None  # why this user may not apply it (plain text)


@dataclass(frozen=True)
class Applied:
    """What Apply did (the counts of engine.workspace.apply), or the problems that stopped it."""

    segments_created: int = 0
    segments_changed: int = 0
    entered: int = 0
    left: int = 0
    workflows: Sequence[str] = ()  # a line for each workflow created or changed
    enrolled: Sequence[tuple[str, int]] = ()  # (workflow, existing records enrolled)
    secrets: Sequence[tuple[str, str]] = ()  # (workflow, its new webhook signing secret)
    problems: Sequence[str] = ()  # nothing was applied


def _named(source: str | None) -> str:
    if source is None:
        return "this document"
    shown = kit.escape(kit.truncate(source, NAME_MAX).replace("`", "'"))
    return f"`{shown}`"


def _packed(texts: Sequence[str]) -> list[kit.Block]:
    """mrkdwn lines (each under SECTION_TEXT_MAX) in as few sections as hold them."""
    blocks: list[kit.Block] = []
    chunk = ""
    for text in texts:
        if chunk and len(chunk) + 1 + len(text) > kit.SECTION_TEXT_MAX:
            blocks.append(kit.section(chunk))
            chunk = ""
        chunk = f"{chunk}\n{text}" if chunk else text
    return [*blocks, kit.section(chunk)] if chunk else blocks


def _bullets(lines: Sequence[str]) -> list[kit.Block]:
    """Up to LINES_SHOWN lines, escaped, as bullets packed into sections; a context line
    counts the rest."""
    blocks = _packed(
        ["• " + kit.escape(kit.truncate(line, LINE_MAX)) for line in lines[:LINES_SHOWN]]
    )
    if len(lines) > LINES_SHOWN:
        more = len(lines) - LINES_SHOWN
        blocks.append(kit.context(f"…and {more:,} more (`workflowbot apply --dry-run` lists all)"))
    return blocks


def _plan_head(plan: ImportPlan) -> str:
    named = _named(plan.source)
    if plan.refusal is not None:
        return f":no_entry: {kit.escape(plan.refusal)}\nImporting {named} would change:"
    if plan.form_id is None:
        return f":white_check_mark: Nothing to change: the workspace already matches {named}."
    return f":clipboard: Importing {named} would change:"


def _may_apply(plan: ImportPlan) -> bool:
    return plan.form_id is not None and plan.refusal is None


def plan_message(plan: ImportPlan) -> Message:
    """The plan with Apply and Cancel (their value: the form id), or why there is none."""
    blocks = [kit.section(_plan_head(plan)), *_bullets(plan.lines)]
    if _may_apply(plan):
        value = str(plan.form_id)
        blocks.append(
            {
                "type": "actions",
                "block_id": str(ImportBlock.ACTIONS),
                "elements": [
                    kit.button("Apply", ImportAction.APPLY, value=value, style="primary"),
                    kit.button("Cancel", ImportAction.CANCEL, value=value),
                ],
            }
        )
    text = f"Import plan for {_named(plan.source)}"
    return {"text": text, "blocks": blocks[: kit.MESSAGE_BLOCKS_MAX]}


def problems_message(problems: Sequence[str], source: str | None = None) -> Message:
    """A document that cannot be imported: every problem (with its line or path)."""
    named = _named(source)
    named = named[:1].upper() + named[1:]
    return {
        "text": f"{named} cannot be imported",
        "blocks": [
            kit.section(f":warning: {named} cannot be imported:"),
            *_bullets(problems),
        ][: kit.MESSAGE_BLOCKS_MAX],
    }


def _applied_text(applied: Applied) -> str:
    if applied.problems:
        return ":warning: Nothing was applied:"
    workflows = len(applied.workflows)
    return (
        f":white_check_mark: Applied: {applied.segments_created:,} segments created, "
        f"{applied.segments_changed:,} changed ({applied.entered:,} entered, {applied.left:,} "
        f"left); {workflows:,} workflows created or changed."
    )


def _applied_blocks(applied: Applied) -> list[kit.Block]:
    lines = list(applied.problems) or list(applied.workflows)
    lines += [f'"{name}": {n:,} existing records enrolled' for name, n in applied.enrolled]
    return [kit.section(_applied_text(applied)), *_bullets(lines)]


def _secret_blocks(applied: Applied) -> list[kit.Block]:
    """Every new secret (a workflow name is at most 200 characters: a line always fits)."""
    return _packed(
        [
            f"*{kit.escape(name)}*: webhook signing secret (shown once, keep it where the "
            f"receiver verifies signatures): `{kit.escape(secret)}`"
            for name, secret in applied.secrets
        ]
    )


def applied_message(applied: Applied, *, with_secrets: bool) -> Message:
    """What Apply did, in place of the plan; new webhook secrets only `with_secrets` (an
    ephemeral message: never in one that stays in a conversation)."""
    blocks = _applied_blocks(applied) + (_secret_blocks(applied) if with_secrets else [])
    if applied.secrets and not with_secrets:
        blocks.append(kit.context("The new webhook signing secrets are shown to you alone."))
    return {"text": _applied_text(applied), "blocks": blocks[: kit.MESSAGE_BLOCKS_MAX]}


def secrets_message(applied: Applied) -> Message:
    """The new webhook signing secrets alone (sent ephemeral)."""
    return {
        "text": "New webhook signing secrets (shown once)",
        "blocks": _secret_blocks(applied)[: kit.MESSAGE_BLOCKS_MAX],
    }


# -- the modal ---------------------------------------------------------------------------------
def _modal(callback: ImportModal, blocks: list[kit.Block], *, submit: str | None = None) -> View:
    view: View = {
        "type": "modal",
        "callback_id": str(callback),
        "title": kit.plain(TITLE, kit.VIEW_TITLE_MAX),
        "close": kit.plain("Close" if submit is None else "Cancel", kit.VIEW_TITLE_MAX),
        "blocks": blocks[: kit.VIEW_BLOCKS_MAX],
    }
    if submit is not None:
        view["submit"] = kit.plain(submit, kit.VIEW_TITLE_MAX)
    return view


def input_view(text: str = "", problems: Sequence[str] = ()) -> View:
    """The document to import, typed or pasted; `problems` found once it was planned."""
    element: dict[str, Any] = {
        "type": "plain_text_input",
        "action_id": str(ImportInput.DOCUMENT),
        "multiline": True,
        "max_length": DOCUMENT_MAX,
        "placeholder": kit.plain(PLACEHOLDER, kit.PLACEHOLDER_MAX),
    }
    if text:
        element["initial_value"] = text[:DOCUMENT_MAX]
    blocks: list[kit.Block] = []
    if problems:
        blocks += [kit.section(":warning: Not planned:"), *_bullets(problems)]
    blocks.append(
        {
            "type": "input",
            "block_id": str(ImportBlock.DOCUMENT),
            "label": kit.plain("Workflow file (YAML or JSON)", kit.INPUT_LABEL_MAX),
            "element": element,
            "hint": kit.plain(
                "What `workflowbot apply` reads. Up to 3,000 characters here; share a bigger "
                ".yml file with me in a direct message.",
                kit.INPUT_LABEL_MAX,
            ),
        }
    )
    return _modal(ImportModal.INPUT, blocks, submit="Plan")


def loading_view(what: str) -> View:
    """Shown at once while the document is planned or applied."""
    return _modal(ImportModal.LOADING, [kit.section(f":hourglass_flowing_sand: {what}…")])


def plan_view(plan: ImportPlan) -> View:
    """The plan; Apply submits it (the form id in private_metadata), when there is one."""
    blocks = [kit.section(_plan_head(plan)), *_bullets(plan.lines)]
    if not _may_apply(plan):
        return _modal(ImportModal.PLAN, blocks)
    view = _modal(ImportModal.PLAN, blocks, submit="Apply")
    view["private_metadata"] = str(plan.form_id)
    return view


def done_view(text: str) -> View:
    """An outcome in a sentence (mrkdwn, user text already escaped)."""
    return _modal(ImportModal.DONE, [kit.section(text)])


def applied_view(applied: Applied) -> View:
    """What Apply did, with the new webhook signing secrets (a modal is seen by one person)."""
    return _modal(ImportModal.DONE, _applied_blocks(applied) + _secret_blocks(applied))
