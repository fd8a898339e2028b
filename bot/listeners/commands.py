"""`/workflow SUBCOMMAND ...`: the routing table and the subcommands that answer in a message.

Every subcommand acks first. `help`, anything unknown and a subcommand missing its arguments
are answered by the ack itself, so no call leaves before it; a subcommand that reads the
database acks empty, then answers through the response_url (`respond`), ephemeral. Workflows
and records are found as bot.workflow_names reads them.
"""

from __future__ import annotations

import difflib
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from blocks import kit
from blocks import workflows as workflow_blocks
from blocks.ids import COMMAND
from bot.errors import UserError
from bot.listeners import Deps, importing, insight, manage, segments
from bot.workflow_names import find_record, find_workflow
from engine import control, gmail_connect, runner, users
from storage.db import session_scope
from storage.queries import workflows as workflow_queries
from storage.workflow_models import Workflow

EXIT_ALL = ("--exit-all", "—exit-all")  # the second as autocorrect makes it


@dataclass(frozen=True)
class Invocation:
    """One `/workflow` request, as a subcommand sees it: `args` is the text after its name."""

    ack: Ack
    respond: Respond
    client: WebClient
    user_id: str
    args: str
    deps: Deps
    channel_id: str | None = None
    trigger_id: str | None = None  # opens a modal, within 3 seconds of the command


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str  # what follows the command: "list", "open NAME"
    summary: str
    run: Callable[[Invocation], None]


def split(text: str) -> tuple[str, str]:
    """The subcommand (lower case) and the rest of the text (after any whitespace: a YAML
    document may start on the next line)."""
    name, rest = [*text.split(maxsplit=1), "", ""][:2]
    return name.lower(), rest.strip()


def closest(name: str, names: list[str]) -> str | None:
    """The known subcommand `name` was most likely meant to be, if any is close."""
    found = difflib.get_close_matches(name, names, n=1, cutoff=0.6)
    return found[0] if found else None


def help_message(table: Mapping[str, Subcommand], unknown: str | None = None) -> dict[str, Any]:
    usages = [workflow_blocks.Usage(s.usage, s.summary) for s in table.values()]
    suggestion = closest(unknown, list(table)) if unknown else None
    return workflow_blocks.help_message(usages, unknown=unknown, suggestion=suggestion)


def _respond(inv: Invocation, message: Mapping[str, Any]) -> None:
    inv.respond(response_type="ephemeral", **message)


# -- subcommands -----------------------------------------------------------------------------------
def _list(inv: Invocation) -> None:
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


def _open(inv: Invocation) -> None:
    with session_scope(inv.deps.rt.db) as session:
        workflow, _ = find_workflow(session, inv.args)
        message = manage.detail(session, inv.deps, inv.user_id, workflow)
    _respond(inv, message)


def _status(status: str) -> Callable[[Invocation], None]:
    def run(inv: Invocation) -> None:
        args, exit_all = inv.args, False
        flag = next((f for f in EXIT_ALL if args.lower().endswith(f)), None)
        if status == "disabled" and flag is not None:
            args, exit_all = args[: -len(flag)].strip(), True
        with session_scope(inv.deps.rt.db) as session:
            workflow, _ = find_workflow(session, args)
            message = manage.change_status(
                session, inv.deps, inv.user_id, workflow, status, exit_all=exit_all
            )
        _respond(inv, message)

    return run


def _export(inv: Invocation) -> None:
    with session_scope(inv.deps.rt.db) as session:
        workflow, _ = find_workflow(session, inv.args)
        file = manage.export_file(session, workflow)
    message = manage.upload(inv.client, user=inv.user_id, channel=inv.channel_id, file=file)
    _respond(inv, message)


def _logs(inv: Invocation) -> None:
    with session_scope(inv.deps.rt.db) as session:
        workflow, rest = find_workflow(session, inv.args, rest=True)
        record = find_record(session, workflow, rest) if rest else None
        message = insight.logs_page(session, workflow, record, offset=0)
    _respond(inv, message)


def _record_command(
    act: Callable[[Session, Invocation, Workflow, tuple[str, str]], Mapping[str, Any]],
    *,
    admins_only: bool,
    usage: str,
) -> Callable[[Invocation], None]:
    """A subcommand on one workflow and one record: `NAME record`."""

    def run(inv: Invocation) -> None:
        with session_scope(inv.deps.rt.db) as session:
            workflow, rest = find_workflow(session, inv.args, rest=True)
            if not rest:
                raise UserError(
                    f"Which record? `{COMMAND} {usage}` with `account:ID`, `contact:ID` or an id."
                )
            if admins_only:
                manage.refuse_unless_admin(session, inv.deps, inv.user_id, workflow)
            record = find_record(session, workflow, rest)
            with manage.engine_errors():
                message = act(session, inv, workflow, record)
        _respond(inv, message)

    return run


def _dry_run_of(
    session: Session, inv: Invocation, workflow: Workflow, record: tuple[str, str]
) -> Mapping[str, Any]:
    lines = control.dry_run(
        session,
        name=workflow.name,
        object_type=record[0],
        external_id=record[1],
        settings=inv.deps.settings,
        now=inv.deps.rt.clock.now(),
    )
    return workflow_blocks.dry_run_message(workflow.name, record, lines)


def _enroll_record(
    session: Session, inv: Invocation, workflow: Workflow, record: tuple[str, str]
) -> Mapping[str, Any]:
    enrollment_id = control.enroll_by_hand(
        session,
        name=workflow.name,
        object_type=record[0],
        external_id=record[1],
        by=f"slack:{inv.user_id}",
        now=inv.deps.rt.clock.now(),
    )
    return {"text": workflow_blocks.enrolled_text(record, workflow.name, enrollment_id)}


def _exit_record(
    session: Session, inv: Invocation, workflow: Workflow, record: tuple[str, str]
) -> Mapping[str, Any]:
    left = control.exit_record(
        session,
        name=workflow.name,
        object_type=record[0],
        external_id=record[1],
        by=f"slack:{inv.user_id}",
        now=inv.deps.rt.clock.now(),
    )
    return {"text": workflow_blocks.exited_text(record, workflow.name, left=bool(left))}


_dry_run = _record_command(_dry_run_of, admins_only=False, usage="test NAME record")
_enroll = _record_command(_enroll_record, admins_only=True, usage="enroll NAME record")
_exit = _record_command(_exit_record, admins_only=True, usage="exit NAME record")


def _pause_all(inv: Invocation) -> None:
    with session_scope(inv.deps.rt.db) as session:
        manage.refuse_unless_admin(session, inv.deps, inv.user_id, None)
        paused = runner.pause_all(session, by=f"slack:{inv.user_id}", now=inv.deps.rt.clock.now())
    _respond(inv, {"text": workflow_blocks.paused_text(paused)})


def _resume_all(inv: Invocation) -> None:
    with session_scope(inv.deps.rt.db) as session:
        manage.refuse_unless_admin(session, inv.deps, inv.user_id, None)
        released = runner.resume_all(session, now=inv.deps.rt.clock.now())
    _respond(inv, {"text": workflow_blocks.resumed_text(released)})


def _connect(inv: Invocation) -> None:
    now = inv.deps.rt.clock.now()
    try:
        with session_scope(inv.deps.rt.db) as session:
            user = users.ensure(session, inv.user_id, now=now)
            link = gmail_connect.link(inv.deps.settings, user, now)
    except gmail_connect.ConnectError as exc:
        raise UserError(
            f":no_entry: Gmail cannot be connected yet: {kit.escape(str(exc))}"
        ) from None
    _respond(inv, workflow_blocks.gmail_link_message(link))


def _is_gmail(args: str) -> bool:
    return args.strip().lower() == "gmail"


# -- the table -----------------------------------------------------------------------------------
def _acked(
    usage: str, run: Callable[[Invocation], None], fits: Callable[[str], bool]
) -> Callable[[Invocation], None]:
    """Ack first: empty, then `run`; or, when the arguments do not fit, with the usage."""

    def acked(inv: Invocation) -> None:
        if not fits(inv.args):
            inv.ack(response_type="ephemeral", text=f"Usage: `{COMMAND} {usage}`")
            return
        inv.ack()
        with manage.told(inv.respond):
            run(inv)

    return acked


def table() -> dict[str, Subcommand]:
    """The subcommands, in the order help lists them."""
    found: dict[str, Subcommand] = {}

    def add(
        usage: str,
        summary: str,
        run: Callable[[Invocation], None],
        fits: Callable[[str], bool] | None = None,
    ) -> None:
        name, _, needs = usage.partition(" ")
        if fits is None:
            fits = bool if needs else lambda args: True
        found[name] = Subcommand(name, usage, summary, _acked(usage, run, fits))

    add("new", "create a workflow, step by step (admins)", _new)
    add(
        "segment new",
        "a segment: a rule and how many records it matches now (admins)",
        segments.open_modal,
        segments.fits,
    )
    add("list", "every workflow, live, draft and disabled, with its counts and a menu", _list)
    add("open NAME", "its description, counts and latest log lines", _open)
    add("edit NAME", "change it in the wizard (admins)", _edit)
    add("enable NAME", "make it live (admins)", _status("live"))
    add("disable NAME [--exit-all]", "stop new enrollments (admins)", _status("disabled"))
    add(
        "logs NAME [record]",
        "the latest enrollments' timelines, or one record's, with Next / Previous",
        _logs,
    )
    add(
        "stats [NAME] [--since 7d|30d|90d]",
        "every workflow's numbers and trend, or one's funnel, steps and emails (30 days)",
        insight.stats,
        lambda args: True,
    )
    add("report NAME", "a link to its report page", insight.report)
    add("test NAME record", "what it would do for a record now, sending nothing", _dry_run)
    add("enroll NAME record", "enroll a record by hand (admins)", _enroll)
    add("exit NAME record", "end a record's enrollment in it (admins)", _exit)
    add("export NAME", "its workflow file, uploaded here", _export)
    add(
        "import [YAML]",
        "a workflow file: pasted after it, in a form, or shared with me; its plan, then Apply "
        "(admins)",
        importing.command,
        lambda args: True,
    )
    add("pause-all", "hold every send until resume-all (Slack admins)", _pause_all)
    add("resume-all", "let the held sends go (Slack admins)", _resume_all)
    add("connect gmail", "connect the Gmail your emails go from", _connect, _is_gmail)
    found["help"] = Subcommand("help", "help", "this list", lambda inv: _help(inv, found))
    return found


def _new(inv: Invocation) -> None:
    from bot.listeners import wizard  # imports this module's Invocation

    wizard.open_wizard(inv)


def _edit(inv: Invocation) -> None:
    from bot.listeners import wizard

    wizard.open_edit(inv)


def register(app: App, deps: Deps) -> None:
    """The command, and with it the listeners of the messages it answers (bot.listeners.manage:
    the list's menu, the open message's buttons, Delete's confirmation)."""
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
        channel_id = str(command.get("channel_id") or "") or None
        trigger_id = str(command.get("trigger_id") or "") or None
        found.run(Invocation(ack, respond, client, user_id, args, deps, channel_id, trigger_id))

    manage.register(app, deps)
