"""Which workflow and which record a `/workflow` command names.

A workflow is named quoted (`"Trial welcome" acme`, typographic quotes too) or as typed: an
unquoted name is the longest existing name the text starts with, case-insensitive, followed by
a space or the end. An unknown name is a UserError naming the closest existing ones. A record
is `account:ID`, `contact:ID`, or a bare id tried as the workflow's kind of record, then the
other.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Sequence

from sqlalchemy.orm import Session

from blocks import kit
from blocks import workflows as workflow_blocks
from bot.errors import UserError
from engine import control
from storage.queries import workflows as workflow_queries
from storage.workflow_models import Workflow

# Opening quote -> closing quote; typographic ones too, as phones and some keyboards type them.
QUOTES = {'"': '"', "'": "'", "\u201c": "\u201d", "\u2018": "\u2019", "«": "»"}
OBJECTS = ("account", "contact")
# A link Slack made of what was typed (an email, a URL): `<mailto:a@b.c|a@b.c>` -> its label.
SLACK_LINK = re.compile(r"<(?:[^<>|]*)\|([^<>]*)>")
CLOSE_ENOUGH = 0.6


def as_typed(text: str) -> str:
    """The text the user typed: Slack's entities for `&`, `<`, `>` and the links it made of
    emails and URLs undone."""
    text = SLACK_LINK.sub(r"\1", text)
    return text.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&").strip()


def quoted(text: str) -> tuple[str, str] | None:
    """A quoted name at the start of `text` and the rest after it, if it opens with a quote."""
    if not text or text[0] not in QUOTES:
        return None
    closing = {text[0], QUOTES[text[0]]}
    end = next((i for i in range(1, len(text)) if text[i] in closing), None)
    return None if end is None else (text[1:end].strip(), text[end + 1 :].strip())


def match_name(text: str, names: Sequence[str], *, rest: bool) -> tuple[str, str] | None:
    """The existing name `text` names and what follows it: a quoted name, else the longest
    name the text starts with (followed by a space or the end; case-insensitive). Without
    `rest` nothing may follow."""
    found = quoted(text)
    if found is not None:
        key, after = found[0].casefold(), found[1]
        name = next((n for n in names if n.casefold() == key), None)
        if name is not None and (rest or not after):
            return name, after
        # else maybe a name that itself starts with a quote, typed as is
    best: str | None = None
    for name in names:
        head, after = text[: len(name)], text[len(name) :]
        fits = not after if not rest else not after or after[0].isspace()
        if fits and head.casefold() == name.casefold() and len(name) > len(best or ""):
            best = name
    return None if best is None else (best, text[len(best) :].strip())


def closest_names(
    text: str, names: Sequence[str], *, rest: bool = False, most: int = 3
) -> list[str]:
    """The existing names `text` was most likely meant to be, closest first; with `rest`, the
    text may go on after the name (a record), so its first words are compared too."""
    typed, words = text.casefold(), text.casefold().split()
    scored = []
    for name in names:
        key = name.casefold()
        tried = (typed, " ".join(words[: len(key.split())])) if rest else (typed,)
        score = max(difflib.SequenceMatcher(None, t, key).ratio() for t in tried)
        if len(typed) >= 3 and key.startswith(typed):
            score = max(score, 0.9)
        if score >= CLOSE_ENOUGH:
            scored.append((-score, name))
    return [name for _, name in sorted(scored)[:most]]


def find_workflow(session: Session, args: str, *, rest: bool = False) -> tuple[Workflow, str]:
    """The workflow `args` names and the text after its name; UserError naming the closest."""
    text = as_typed(args)
    known = workflow_queries.all_workflows(session)
    names = [w.name for w in known]
    found = match_name(text, names, rest=rest)
    if found is None:
        meant = (quoted(text) or (text, ""))[0]
        raise UserError(
            workflow_blocks.unknown_workflow(
                meant, closest_names(meant, names, rest=rest), any_exist=bool(names)
            )
        )
    return next(w for w in known if w.name == found[0]), found[1]


def find_record(session: Session, workflow: Workflow, text: str) -> tuple[str, str]:
    """(object type, external id) of `account:ID`, `contact:ID`, or a bare id tried as the
    workflow's kind of record first, then the other."""
    kind, colon, external_id = text.partition(":")
    if colon and kind.strip().lower() in OBJECTS and external_id.strip():
        return kind.strip().lower(), external_id.strip()
    other = next(o for o in OBJECTS if o != workflow.object_type)
    for object_type in (workflow.object_type, other):
        try:
            control.record_id(session, object_type, text)
        except control.ControlError:
            continue
        return object_type, text
    raise UserError(f":thinking_face: No account or contact has the id “{kit.escape(text)}”.")
