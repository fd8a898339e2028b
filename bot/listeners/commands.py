"""`/workflow SUBCOMMAND ...`: the routing table and the subcommands that answer in a message.

Every subcommand acks first. `help` (and anything unknown) is answered by the ack itself, so
no call leaves before it; a subcommand that reads the database acks empty, then answers
through the response_url (`respond`), ephemeral.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from blocks import workflows as workflow_blocks
from blocks.ids import COMMAND
from bot.listeners import Deps
from storage.db import session_scope
from storage.queries import workflows as workflow_queries


@dataclass(frozen=True)
class Invocation:
    """One `/workflow` request, as a subcommand sees it: `args` is the text after its name."""

    ack: Ack
    respond: Respond
    client: WebClient
    user_id: str
    args: str
    deps: Deps


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str  # what follows the command: "list", "open NAME"
    summary: str
    run: Callable[[Invocation], None]


def split(text: str) -> tuple[str, str]:
    """The subcommand (lower case) and the rest of the text."""
    name, _, rest = text.strip().partition(" ")
    return name.lower(), rest.strip()


def closest(name: str, names: list[str]) -> str | None:
    """The known subcommand `name` was most likely meant to be, if any is close."""
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return found[0] if found else None


def help_message(table: Mapping[str, Subcommand], unknown: str | None = None) -> dict[str, Any]:
    usages = [workflow_blocks.Usage(s.usage, s.summary) for s in table.values()]
    suggestion = closest(unknown, list(table)) if unknown else None
    return workflow_blocks.help_message(usages, unknown=unknown, suggestion=suggestion)


def _list(inv: Invocation) -> None:
    inv.ack()
    with session_scope(inv.deps.rt.db) as session:
        found = workflow_queries.all_workflows(session)
        counts = workflow_queries.counts(session, workflow_ids=[w.id for w in found])
        rows = [
            workflow_blocks.WorkflowSummary(
                id=w.id,
                name=w.name,
                status=w.status,
                object_type=w.object_type,
                version=w.version,
                counts=counts[w.id],
            )
            for w in found
        ]
    inv.respond(response_type="ephemeral", **workflow_blocks.list_message(rows))


def _help(inv: Invocation, subcommands: Mapping[str, Subcommand]) -> None:
    inv.ack(response_type="ephemeral", **help_message(subcommands))


def table() -> dict[str, Subcommand]:
    """The subcommands, in the order help lists them."""
    found: dict[str, Subcommand] = {}

    def add(name: str, usage: str, summary: str, run: Callable[[Invocation], None]) -> None:
        found[name] = Subcommand(name, usage, summary, run)

    add(
        "list",
        "list",
        "every workflow, live, draft and disabled, with its counts and a menu",
        _list,
    )
    add("help", "help", "this list", lambda inv: _help(inv, found))
    return found


def register(app: App, deps: Deps) -> None:
    subcommands = table()

    @app.command(COMMAND)
    def workflow_command(
        ack: Ack, command: dict[str, Any], respond: Respond, client: WebClient
    ) -> None:
        name, args = split(str(command.get("text") or ""))
        found = subcommands.get(name)
        if found is None:
            ack(response_type="ephemeral", **help_message(subcommands, unknown=name or None))
            return
        user_id = str(command.get("user_id") or "")
        found.run(Invocation(ack, respond, client, user_id, args, deps))
