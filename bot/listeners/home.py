"""The App Home: the viewer's dashboard, published on `app_home_opened` and after every change
made from it, and its own buttons (Open, Enable, Disable, Connect Gmail).

Bolt acks the event by itself; the listener then reads and publishes. A button acks first;
a modal opens at once as a loading view and is updated once its data is read. A click in the
Home has no response_url and no channel, so what a handler has to say (a refusal, a problem)
goes to the clicker in a direct message (`tell`). The drafts' buttons are the approval
message's own, answered by bot.listeners.approval; the Create button by the wizard.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from blocks import home as home_blocks
from blocks.home_ids import HomeAction
from blocks.kit import escape
from bot.authz import Admins, may_decide, may_manage
from bot.listeners import Deps
from engine import gmail_connect, slack, workflows, workspace
from engine import users as people
from engine.draft_messages import load_view
from storage.db import session_scope
from storage.queries import drafts as draft_rows
from storage.queries import users as user_rows
from storage.queries import workflows as workflow_rows
from storage.workflow_models import Workflow

log = logging.getLogger(__name__)

# Pending drafts checked for the viewer (newest first), each costing a few indexed reads.
PENDING_SCAN = 200


def from_home(body: dict[str, Any]) -> bool:
    """Whether an interaction came from a Home tab."""
    view = body.get("view")
    return isinstance(view, dict) and view.get("type") == "home"


def tell(client: WebClient, user_id: str, text: str) -> None:
    """Say `text` (mrkdwn, user text escaped) to `user_id` in the app's direct messages."""
    client.chat_postMessage(channel=slack.open_dm(client, user_id), text=text)


def _waiting(session: Session, user_id: str, admins: Admins) -> tuple[list[int], int]:
    """The pending drafts `user_id` may decide on, oldest first: the ids of those the Home
    lists, and how many there are in all."""
    pending = draft_rows.listed(session, statuses=["pending"], limit=PENDING_SCAN)
    ids = sorted(d.id for d in pending if may_decide(session, d, user_id, admins) is None)
    return ids[: home_blocks.DRAFTS_SHOWN], len(ids)


def _summary(workflow: Workflow, counts: dict[str, int]) -> home_blocks.WorkflowSummary:
    return home_blocks.WorkflowSummary(
        id=workflow.id,
        name=workflow.name,
        status=workflow.status,
        object_type=workflow.object_type,
        version=workflow.version,
        counts=counts,
    )


def dashboard(session: Session, user_id: str, admins: Admins) -> home_blocks.HomeData:
    """What `user_id`'s Home shows, read in one session."""
    shown, waiting = _waiting(session, user_id, admins)
    drafts = [view for i in shown if (view := load_view(session, draft_id=i)) is not None]
    found = workflow_rows.all_workflows(session)
    counts = workflow_rows.counts(session, workflow_ids=[w.id for w in found])
    user = user_rows.by_slack_id(session, user_id)
    gmail = user is not None and (
        user_rows.connection(session, user_id=user.id, provider="gmail") is not None
    )
    return home_blocks.HomeData(
        drafts=drafts,
        waiting=waiting,
        workflows=[_summary(w, counts[w.id]) for w in found],
        gmail_connected=gmail,
    )


def publish(deps: Deps, client: WebClient, user_id: str) -> None:
    """Read `user_id`'s dashboard and publish it as their Home tab."""
    with session_scope(deps.rt.db) as session:
        data = dashboard(session, user_id, deps.admins)
    client.views_publish(user_id=user_id, view=home_blocks.home_view(data))


def _workflow_id(body: dict[str, Any]) -> int | None:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


# -- Enable / Disable -----------------------------------------------------------------------------
def _change_status(deps: Deps, user_id: str, workflow_id: int, status: str) -> str | None:
    """Enable (`live`) or disable the workflow as `workflowbot workflows enable|disable` does
    (going live only when its current version is valid in today's workspace), if `user_id`
    may; what to tell them (a refusal, a problem, a count), or None."""
    now = deps.rt.clock.now()
    try:
        with session_scope(deps.rt.db) as session:
            workflow = session.get(Workflow, workflow_id)
            if workflow is None or workflow.deleted_at is not None:
                return "This workflow no longer exists."
            current = workflow_rows.version(
                session, workflow_id=workflow.id, number=workflow.version
            )
            assert current is not None  # a workflow always has its current version
            if (refusal := may_manage(session, current.id, user_id, deps.admins)) is not None:
                return refusal.reason
            shown = escape(workflow.name)
            if status == "live" and (
                problems := workspace.current_problems(
                    session, workflow=workflow, now=now, settings=deps.settings
                )
            ):
                return f"*{shown}* cannot go live:\n" + "\n".join(
                    f"• {escape(p)}" for p in problems
                )
            changed = workflows.set_status(session, name=workflow.name, status=status, now=now)
    except workflows.WorkflowError as exc:
        return escape(str(exc))
    log.info("workflow #%d set %s from the App Home by %s", workflow_id, status, user_id)
    if changed.enrolled_existing:
        return f"*{shown}* is live: {changed.enrolled_existing:,} existing records enrolled."
    return None


def _toggle(deps: Deps, status: str) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user_id, workflow_id = body["user"]["id"], _workflow_id(body)
        if workflow_id is None:
            return
        said = _change_status(deps, user_id, workflow_id, status)
        if said is not None:
            tell(client, user_id, said)
        publish(deps, client, user_id)

    return handle


# -- modals ---------------------------------------------------------------------------------------
def _loading(client: WebClient, body: dict[str, Any], title: str) -> tuple[str, str]:
    """Open a loading modal on the click's trigger_id; its view id and hash."""
    opened = client.views_open(trigger_id=body["trigger_id"], view=home_blocks.loading_modal(title))
    view = opened["view"]
    return str(view["id"]), str(view.get("hash") or "")


def _update(client: WebClient, view_id: str, view_hash: str, view: dict[str, Any]) -> None:
    client.views_update(view_id=view_id, hash=view_hash or None, view=view)


def _open(deps: Deps) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        workflow_id = _workflow_id(body)
        if workflow_id is None:
            return
        view_id, view_hash = _loading(client, body, "Workflow")
        with session_scope(deps.rt.db) as session:
            workflow = session.get(Workflow, workflow_id)
            if workflow is None or workflow.deleted_at is not None:
                detail = None
            else:
                counts = workflow_rows.counts(session, workflow_ids=[workflow.id])
                current = workflow_rows.version(
                    session, workflow_id=workflow.id, number=workflow.version
                )
                document = current.document if current is not None else {}
                detail = home_blocks.WorkflowDetail(
                    workflow=_summary(workflow, counts[workflow.id]),
                    description=document.get("description"),
                    trigger=document.get("trigger") or {},
                )
        view = (
            home_blocks.workflow_modal(detail)
            if detail is not None
            else home_blocks.notice_modal("Workflow", "This workflow no longer exists.")
        )
        _update(client, view_id, view_hash, view)

    return handle


def _connect_gmail(deps: Deps) -> Callable[..., None]:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        user_id = body["user"]["id"]
        view_id, view_hash = _loading(client, body, "Connect Gmail")
        now = deps.rt.clock.now()
        try:
            with session_scope(deps.rt.db) as session:
                user = people.ensure(session, user_id, now=now)
                url = gmail_connect.link(deps.settings, user, now)
            view = home_blocks.gmail_modal(url)
        except gmail_connect.ConnectError as exc:
            view = home_blocks.notice_modal(
                "Connect Gmail",
                f"Gmail cannot be connected yet: {escape(str(exc))}.\n"
                "Ask whoever runs Workflow Bot to set it.",
            )
        _update(client, view_id, view_hash, view)

    return handle


def register(app: App, deps: Deps) -> None:
    @app.event("app_home_opened")
    def home_opened(event: dict[str, Any], client: WebClient) -> None:
        if event.get("tab") == "home" and isinstance(event.get("user"), str):
            publish(deps, client, event["user"])

    app.action(str(HomeAction.ENABLE))(_toggle(deps, "live"))
    app.action(str(HomeAction.DISABLE))(_toggle(deps, "disabled"))
    app.action(str(HomeAction.OPEN))(_open(deps))
    app.action(str(HomeAction.CONNECT_GMAIL))(_connect_gmail(deps))

    @app.action(str(HomeAction.GMAIL_LINK))
    def gmail_link(ack: Ack) -> None:
        ack()  # a url button: Slack opens the link and tells the app, which has nothing to do
