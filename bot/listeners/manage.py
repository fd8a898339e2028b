"""Managing one workflow from Slack: open, enable / disable, export and delete, reached by
`/workflow SUBCOMMAND NAME` (bot.listeners.commands) and by the `/workflow list` overflow, the
open message's buttons and Delete's confirmation (registered here).

Each listener acks first and only then reads or writes; who may change a workflow is
bot.authz's `may_manage` (SLACK_ADMINS and the workflow's `admins`), and a refusal says why.
The overflow's Edit is not handled here: the wizard's listener takes it (`chose`).
"""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy.orm import Session

from blocks import kit
from blocks import stats as stats_blocks
from blocks import workflows as workflow_blocks
from blocks.ids import COMMAND, ActionId, WorkflowMenu, parse_workflow_menu_value
from bot import reports_web
from bot.authz import may_manage
from bot.errors import UserError
from bot.listeners import Deps
from engine import control, fileload, report_links, workflows, workspace
from engine import stats as engine_stats
from engine.secrets import SecretsError
from storage.db import session_scope
from storage.queries import workflows as workflow_queries
from storage.workflow_models import Workflow

log = logging.getLogger(__name__)

Message = workflow_blocks.Message
RECENT_LINES = 10  # of `open`
# Errors of files.completeUploadExternal that mean "not here": the file goes to a DM instead.
NOT_HERE = frozenset({"not_in_channel", "channel_not_found", "is_archived"})
# The menu's choices answered here; Edit and Duplicate open the wizard (bot.listeners.wizard),
# View report is bot.listeners.insight's.
MENU_CHOICES = frozenset(WorkflowMenu) - {
    WorkflowMenu.EDIT,
    WorkflowMenu.DUPLICATE,
    WorkflowMenu.REPORT,
}
OPEN_RANGE = timedelta(days=30)  # the statistics `open` shows


@contextmanager
def told(respond: Respond) -> Iterator[None]:
    """A UserError raised after the ack answered here, ephemeral, as app.error would: Bolt's
    thread runner drops an ack whose listener raises within ~10 ms of it (it resets
    `ack.response`), so Slack would get a 404 for a quick refusal left to app.error."""
    try:
        yield
    except UserError as exc:
        log.info("slack request refused: %s", exc)
        respond(text=str(exc), response_type="ephemeral", replace_original=False)


@contextmanager
def engine_errors() -> Iterator[None]:
    """The engine's one-line refusals (no such workflow or record, not live…) as UserError."""
    try:
        yield
    except (control.ControlError, workflows.WorkflowError) as exc:
        raise UserError(f":no_entry: {kit.escape(str(exc))}") from None


def by_id(session: Session, workflow_id: int) -> Workflow:
    """The workflow a button or menu carries; UserError when it is gone since."""
    found = session.get(Workflow, workflow_id)
    if found is None or found.deleted_at is not None:
        raise UserError(f"That workflow no longer exists: `{COMMAND} list` shows those that do.")
    return found


def current_version_id(session: Session, workflow: Workflow) -> int:
    version = workflow_queries.version(session, workflow_id=workflow.id, number=workflow.version)
    assert version is not None
    return version.id


def refuse_unless_admin(session: Session, deps: Deps, user: str, workflow: Workflow | None) -> None:
    """UserError saying why, unless `user` may change `workflow` (None: everything)."""
    version_id = None if workflow is None else current_version_id(session, workflow)
    refusal = may_manage(session, version_id, user, deps.admins)
    if refusal is not None:
        raise UserError(f":no_entry: {kit.escape(refusal.reason)}")


# -- what each choice does ---------------------------------------------------------------------
def report_link(deps: Deps, workflow_id: int, now: datetime) -> str:
    """A link to the workflow's report page, signed for 7 days; SecretsError without
    PUBLIC_URL or SECRET_KEY."""
    path = reports_web.WORKFLOW_PATH.format(id=workflow_id)
    return report_links.link(deps.settings, path=path, now=now)


def report_url(deps: Deps, workflow_id: int, now: datetime) -> str | None:
    """The report link, or None where reports cannot be linked (no PUBLIC_URL or SECRET_KEY):
    the statistics show without their View report button then."""
    try:
        return report_link(deps, workflow_id, now)
    except SecretsError:
        return None


def detail(session: Session, deps: Deps, user: str, workflow: Workflow) -> Message:
    """`open`: the workflow, its counts and latest log lines (Enable / Disable for admins),
    then its statistics of the last 30 days with each email step's, and View report."""
    version = workflow_queries.version(session, workflow_id=workflow.id, number=workflow.version)
    assert version is not None
    counts = workflow_queries.counts(session, workflow_ids=[workflow.id])[workflow.id]
    found: list[tuple[datetime, int, str]] = []
    for timeline in control.timelines(session, name=workflow.name, limit=RECENT_LINES):
        record = f"{timeline.enrollment.object_type} {timeline.record}"
        for line in timeline.lines:
            found.append((line.at, line.id, f"{line.at:%Y-%m-%d %H:%M}  {record}  {line.message}"))
    recent = [text for _, _, text in sorted(found)[-RECENT_LINES:]]
    description = version.document.get("description")
    shown = workflow_blocks.WorkflowDetail(
        id=workflow.id,
        name=workflow.name,
        description=description if isinstance(description, str) else None,
        status=workflow.status,
        object_type=workflow.object_type,
        version=workflow.version,
        counts=counts,
        recent=recent,
    )
    manager = may_manage(session, version.id, user, deps.admins) is None
    now = deps.rt.clock.now()
    url = report_url(deps, workflow.id, now)
    figures = engine_stats.workflow_stats(
        session,
        workflow_id=workflow.id,
        range=engine_stats.Range(now - OPEN_RANGE, now),
        now=now,
        timezone=deps.settings.timezone,
    )
    return stats_blocks.open_message(
        workflow_blocks.workflow_message(shown, may_manage=manager, report_url=url), figures
    )


def change_status(
    session: Session,
    deps: Deps,
    user: str,
    workflow: Workflow,
    status: str,
    *,
    exit_all: bool = False,
) -> Message:
    """Enable (`live`: only a current version valid in today's workspace) or disable."""
    refuse_unless_admin(session, deps, user, workflow)
    name = kit.escape(workflow.name)
    if workflow.status == status and not exit_all:
        return {"text": f"*{name}* is already {status}."}
    now = deps.rt.clock.now()
    if status == "live":
        problems = workspace.current_problems(
            session, workflow=workflow, now=now, settings=deps.settings
        )
        if problems:
            shown = [p.removeprefix("workflows[0].") for p in problems]
            return workflow_blocks.cannot_go_live(workflow.name, shown)
    with engine_errors():
        changed = workflows.set_status(session, name=workflow.name, status=status, now=now)
        by = f"slack:{user}"
        exited = control.exit_all(session, workflow=workflow, by=by, now=now) if exit_all else 0
    said = workflow_blocks.status_changed_text(
        workflow.name, status, enrolled_existing=changed.enrolled_existing, exited=exited
    )
    return {"text": said}


@dataclass(frozen=True)
class ExportFile:
    filename: str
    title: str
    content: str


def export_file(session: Session, workflow: Workflow) -> ExportFile:
    """The workflow's current document as a workflow file (`workflowbot apply` reads it)."""
    with engine_errors():
        documents = workflows.export(session, names=[workflow.name])
    out = io.StringIO()
    fileload.dump({"version": 1, "workflows": documents}, out)
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", workflow.name).strip("-.")[:80] or "workflow"
    return ExportFile(f"{slug}.yml", workflow.name, out.getvalue())


def upload(client: WebClient, *, user: str, channel: str | None, file: ExportFile) -> Message:
    """Upload `file` to `channel` (where the user asked), or to a direct message with the
    user when the bot may not post there."""
    comment = workflow_blocks.export_comment(file.title, file.filename)

    def send(to: str) -> None:
        client.files_upload_v2(
            channel=to,
            content=file.content,
            filename=file.filename,
            title=file.title,
            initial_comment=comment,
        )

    if channel:
        try:
            send(channel)
            return {"text": workflow_blocks.exported_text(file.filename)}
        except SlackApiError as exc:
            if exc.response.get("error") not in NOT_HERE:
                raise
    direct = client.conversations_open(users=user)["channel"]["id"]
    send(direct)
    return {"text": workflow_blocks.exported_text(file.filename, direct=True)}


def ask_delete(session: Session, deps: Deps, user: str, workflow: Workflow) -> Message:
    refuse_unless_admin(session, deps, user, workflow)
    return workflow_blocks.delete_confirmation(workflow.id, workflow.name, workflow.status)


def delete(session: Session, deps: Deps, user: str, workflow: Workflow) -> Message:
    """Soft delete (engine.workflows.delete), after the confirmation."""
    refuse_unless_admin(session, deps, user, workflow)
    with engine_errors():
        workflows.delete(session, name=workflow.name, now=deps.rt.clock.now())
    return {
        "text": f":wastebasket: *{kit.escape(workflow.name)}* is deleted; its history stays.",
    }


# -- listeners -----------------------------------------------------------------------------------
def say(respond: Respond, message: Message, *, replace: bool = False) -> None:
    """Answer ephemeral: a new message, or in place of the one clicked (`replace`)."""
    respond(response_type="ephemeral", replace_original=replace, **message)


def chose(*choices: WorkflowMenu) -> Callable[..., bool]:
    """A listener matcher: the `/workflow list` overflow option picked is one of `choices`
    (the wizard registers Edit and Duplicate with `chose(...)`)."""
    wanted = frozenset(choices)

    def matches(body: dict[str, Any]) -> bool:
        try:
            choice, _ = parse_workflow_menu_value(body["actions"][0]["selected_option"]["value"])
        except (KeyError, IndexError, TypeError, ValueError):
            return False
        return choice in wanted

    return matches


def _button_id(body: dict[str, Any]) -> int:
    return int(body["actions"][0]["value"])


def _channel(body: dict[str, Any]) -> str | None:
    channel = body.get("channel") or {}
    return channel.get("id") if isinstance(channel, dict) else None


def register(app: App, deps: Deps) -> None:
    db = deps.rt.db

    @app.action(str(ActionId.WORKFLOW_MENU), matchers=[chose(*MENU_CHOICES)])
    def menu(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        user = body["user"]["id"]
        choice, workflow_id = parse_workflow_menu_value(
            body["actions"][0]["selected_option"]["value"]
        )
        with told(respond):
            with session_scope(db) as session:
                workflow = by_id(session, workflow_id)
                if choice is WorkflowMenu.EXPORT:
                    file = export_file(session, workflow)
                elif choice is WorkflowMenu.OPEN:
                    message = detail(session, deps, user, workflow)
                elif choice is WorkflowMenu.DELETE:
                    message = ask_delete(session, deps, user, workflow)
                else:
                    status = "live" if choice is WorkflowMenu.ENABLE else "disabled"
                    message = change_status(session, deps, user, workflow, status)
            if choice is WorkflowMenu.EXPORT:
                message = upload(client, user=user, channel=_channel(body), file=file)
            say(respond, message)

    def status_button(status: str) -> Callable[..., None]:
        def handle(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
            ack()
            with told(respond):
                with session_scope(db) as session:
                    workflow = by_id(session, _button_id(body))
                    message = change_status(session, deps, body["user"]["id"], workflow, status)
                say(respond, message)

        return handle

    app.action(str(ActionId.WORKFLOW_ENABLE))(status_button("live"))
    app.action(str(ActionId.WORKFLOW_DISABLE))(status_button("disabled"))

    @app.action(str(ActionId.WORKFLOW_DELETE))
    def delete_confirmed(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        with told(respond):
            with session_scope(db) as session:
                workflow = by_id(session, _button_id(body))
                message = delete(session, deps, body["user"]["id"], workflow)
            say(respond, message, replace=True)

    @app.action(str(ActionId.WORKFLOW_DELETE_CANCEL))
    def delete_cancelled(ack: Ack, respond: Respond) -> None:
        ack()
        respond(delete_original=True)

    @app.action(str(ActionId.GMAIL_LINK))
    def gmail_link_opened(ack: Ack) -> None:
        ack()  # the link opens in the browser; Slack still reports the click
