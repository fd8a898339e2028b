"""Insight in Slack: `/workflow logs` paged by its Next / Previous buttons, `/workflow stats
[NAME] [--since 7d|30d|90d]` and `/workflow report NAME` (routed by bot.listeners.commands),
and the View report link.

Everyone may see logs, statistics and reports. Each listener acks first, then reads, then
answers through the response_url: a page button replaces the message it was clicked in.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App, Respond
from sqlalchemy.orm import Session

from blocks import kit
from blocks import stats as stats_blocks
from blocks import workflows as workflow_blocks
from blocks.ids import ActionId, WorkflowMenu, parse_workflow_menu_value
from blocks.insight_ids import InsightAction, LogsPage
from bot.errors import UserError
from bot.listeners import Deps, manage
from bot.workflow_names import find_workflow
from engine import control
from engine import stats as engine_stats
from engine.secrets import SecretsError
from storage.db import session_scope
from storage.workflow_models import Workflow

if TYPE_CHECKING:
    from bot.listeners.commands import Invocation

LOGS_PAGE = 10  # enrollments a page of `/workflow logs` shows
RANGES = {"7d": 7, "30d": 30, "90d": 90}
DEFAULT_RANGE = "30d"
# `--since 30d` at the end of the arguments; `—since` as autocorrect makes it.
SINCE = re.compile(r"(?:^|\s)(?:--|—)since(?:\s+(\S+))?\s*$", re.IGNORECASE)


# -- logs ----------------------------------------------------------------------------------------
def timeline_lines(found: Sequence[control.Timeline]) -> list[str]:
    """Timelines as `workflowbot logs` prints them."""
    return [line for timeline in found for line in timeline.text()]


def logs_page(
    session: Session, workflow: Workflow, record: tuple[str, str] | None, offset: int
) -> workflow_blocks.Message:
    """A page of the workflow's enrollments (of one record), newest first, from `offset`."""
    with manage.engine_errors():
        found = control.timelines(
            session,
            name=workflow.name,
            object_type=record[0] if record else None,
            external_id=record[1] if record else None,
            limit=LOGS_PAGE + 1,  # one more says whether there is a next page
            offset=offset,
        )
    shown = found[:LOGS_PAGE]
    paging = workflow_blocks.Paging(
        workflow_id=workflow.id,
        offset=offset,
        count=len(shown),
        size=LOGS_PAGE,
        more=len(found) > LOGS_PAGE,
    )
    return workflow_blocks.logs_message(workflow.name, record, timeline_lines(shown), paging)


# -- stats ---------------------------------------------------------------------------------------
def stats_range(args: str, now: datetime) -> tuple[str, engine_stats.Range]:
    """The arguments without `--since N`, and the range it names (30 days by default, up to
    `now`); UserError for a length we do not offer."""
    found = SINCE.search(args)
    since = DEFAULT_RANGE
    if found is not None:
        since = (found.group(1) or "").lower()
        if since not in RANGES:
            offered = ", ".join(f"`{r}`" for r in RANGES)
            raise UserError(f":thinking_face: `--since` takes {offered}.")
        args = args[: found.start()].strip()
    return args, engine_stats.Range(start=now - timedelta(days=RANGES[since]), end=now)


def stats(inv: Invocation) -> None:
    """`/workflow stats [NAME] [--since 7d|30d|90d]`: every workflow's line, or one's stats."""
    now = inv.deps.rt.clock.now()
    args, in_range = stats_range(inv.args, now)
    with session_scope(inv.deps.rt.db) as session:
        if not args:
            found = engine_stats.summaries(session, range=in_range, now=now)
            message = stats_blocks.stats_list_message(found, in_range)
        else:
            workflow, _ = find_workflow(session, args)
            one = engine_stats.workflow_stats(
                session,
                workflow_id=workflow.id,
                range=in_range,
                now=now,
                timezone=inv.deps.settings.timezone,
            )
            message = stats_blocks.stats_message(
                one, report_url=manage.report_url(inv.deps, workflow.id, now)
            )
    inv.respond(response_type="ephemeral", **message)


def report(inv: Invocation) -> None:
    """`/workflow report NAME`: the signed link to its report page."""
    now = inv.deps.rt.clock.now()
    with session_scope(inv.deps.rt.db) as session:
        workflow, _ = find_workflow(session, inv.args)
        name, workflow_id = workflow.name, workflow.id
    try:
        url = manage.report_link(inv.deps, workflow_id, now)
    except SecretsError as exc:
        raise UserError(f":no_entry: No report link: {kit.escape(str(exc))}") from None
    inv.respond(response_type="ephemeral", **stats_blocks.report_message(name, url))


# -- listeners -----------------------------------------------------------------------------------
def register(app: App, deps: Deps) -> None:
    db = deps.rt.db

    def page(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        ack()
        with manage.told(respond):
            try:
                wanted = LogsPage.parse(body["actions"][0]["value"])
            except (KeyError, IndexError, ValueError):
                raise UserError("That button is not one of mine.") from None
            with session_scope(db) as session:
                workflow = manage.by_id(session, wanted.workflow_id)
                message = logs_page(session, workflow, wanted.record, wanted.offset)
            manage.say(respond, message, replace=True)

    app.action(str(InsightAction.LOGS_NEXT))(page)
    app.action(str(InsightAction.LOGS_PREVIOUS))(page)

    @app.action(str(ActionId.WORKFLOW_MENU), matchers=[manage.chose(WorkflowMenu.REPORT)])
    def report_chosen(ack: Ack, body: dict[str, Any], respond: Respond) -> None:
        """View report in a workflow's menu (`/workflow list`)."""
        ack()
        _, workflow_id = parse_workflow_menu_value(body["actions"][0]["selected_option"]["value"])
        with manage.told(respond):
            with session_scope(db) as session:
                name = manage.by_id(session, workflow_id).name
            try:
                url = manage.report_link(deps, workflow_id, deps.rt.clock.now())
            except SecretsError as exc:
                raise UserError(f":no_entry: No report link: {kit.escape(str(exc))}") from None
            manage.say(respond, stats_blocks.report_message(name, url))

    @app.action(str(InsightAction.REPORT_LINK))
    def report_opened(ack: Ack) -> None:
        ack()  # the link opens in the browser; Slack still reports the click
