"""The buttons of a draft's approval message (blocks.approval) and its edit modal.

Each button acks first, then checks who clicked (bot.authz: the record's owner, the
workflow's admins, SLACK_ADMINS) and takes the engine's guarded transition (engine.drafts):
of ten people clicking Approve at once one moves the draft and the others are told, in an
ephemeral message, who approved when. The message itself is redrawn by the scheduler's pass
(engine.draft_messages) within a tick, whoever or whatever decided: a button, the CLI, an
expiry or an exit. The same buttons sit on the App Home (bot.listeners.home), whose clicks
carry no response_url: there the answer goes in a direct message, and the Home is published
again after the decision.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App, Respond
from slack_sdk import WebClient

from blocks.approval import edit_modal, full_body_modal
from blocks.approval_ids import DraftAction, DraftBlock, DraftInput, DraftModal
from blocks.kit import escape
from bot.authz import may_decide
from bot.listeners import Deps, home
from engine import drafts, enrollment
from engine.draft_messages import load_view
from storage.db import session_scope
from storage.queries import drafts as draft_rows

log = logging.getLogger(__name__)

Decide = Callable[..., drafts.Decision]
# What each decision button does, and how its ephemeral confirmation reads.
DECISIONS: dict[DraftAction, tuple[Decide, str]] = {
    DraftAction.APPROVE: (drafts.approve, "approved: it is sent within seconds"),
    DraftAction.DISCARD: (drafts.discard, "discarded: the workflow goes on without it"),
    DraftAction.RETRY: (drafts.send_again, "is sent again within seconds"),
    DraftAction.SEND_AGAIN: (drafts.send_again, "is sent again within seconds"),
    DraftAction.MARK_SENT: (drafts.mark_sent, "marked sent: the workflow goes on"),
}
# An edit modal's error, by the field the engine names first in its message.
FIELD_BLOCKS = {
    "to": DraftBlock.EDIT_TO,
    "cc": DraftBlock.EDIT_CC,
    "subject": DraftBlock.EDIT_SUBJECT,
    "body": DraftBlock.EDIT_BODY,
}


Say = Callable[[str], None]


def _teller(body: dict[str, Any], respond: Respond, client: WebClient) -> Say:
    """How a handler answers the clicker: ephemeral through the response_url, or, for a click
    in the App Home (which has none), in a direct message."""

    def say(text: str) -> None:
        if respond.response_url:
            respond(text=text, response_type="ephemeral", replace_original=False)
        else:
            home.tell(client, body["user"]["id"], text)

    return say


def _draft_id(body: dict[str, Any]) -> int | None:
    try:
        return int(body["actions"][0]["value"])
    except (KeyError, IndexError, ValueError, TypeError):
        return None


def _refused(deps: Deps, draft_id: int, user: str) -> str | None:
    """Why `user` may not decide on the draft (or that it is gone), else None."""
    with session_scope(deps.rt.db) as session:
        draft = draft_rows.get(session, draft_id=draft_id)
        if draft is None:
            return f"Draft #{draft_id} no longer exists."
        refusal = may_decide(session, draft, user, deps.admins)
        return None if refusal is None else refusal.reason


def _decision(deps: Deps, action: DraftAction) -> Callable[..., None]:
    decide, said = DECISIONS[action]

    def run(body: dict[str, Any], say: Say) -> None:
        user, draft_id = body["user"]["id"], _draft_id(body)
        if draft_id is None:
            return
        if (refusal := _refused(deps, draft_id, user)) is not None:
            say(refusal)
            return
        try:
            with session_scope(deps.rt.db) as session:
                decide(session, draft_id, by=user, now=deps.rt.clock.now())
        except drafts.DraftError as exc:
            say(escape(str(exc)))
            return
        say(f"Draft #{draft_id} {said}.")

    def handle(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        run(body, _teller(body, respond, client))
        if home.from_home(body):
            home.publish(deps, client, body["user"]["id"])

    return handle


def _exit(deps: Deps) -> Callable[..., None]:
    def run(body: dict[str, Any], say: Say) -> None:
        user, draft_id = body["user"]["id"], _draft_id(body)
        if draft_id is None:
            return
        if (refusal := _refused(deps, draft_id, user)) is not None:
            say(refusal)
            return
        with session_scope(deps.rt.db) as session:
            draft = draft_rows.get(session, draft_id=draft_id)
            assert draft is not None
            ended = enrollment.exit_enrollments(
                session,
                exits=[(draft.enrollment_id, f"exited from Slack by {user}")],
                now=deps.rt.clock.now(),
            )
        if ended:
            say(f"The record left the workflow; draft #{draft_id} is withdrawn.")
        else:
            say("The record's enrollment had already ended.")

    def handle(ack: Ack, body: dict[str, Any], respond: Respond, client: WebClient) -> None:
        ack()
        run(body, _teller(body, respond, client))
        if home.from_home(body):
            home.publish(deps, client, body["user"]["id"])

    return handle


def _open(deps: Deps, action: DraftAction) -> Callable[..., None]:
    """Show all (anyone in the channel) and Edit (approvers) open a modal at once."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient, respond: Respond) -> None:
        ack()
        say = _teller(body, respond, client)
        user, draft_id = body["user"]["id"], _draft_id(body)
        if draft_id is None:
            return
        if action is DraftAction.EDIT and (refusal := _refused(deps, draft_id, user)):
            say(refusal)
            return
        with session_scope(deps.rt.db) as session:
            view = load_view(session, draft_id=draft_id)
        if view is None:
            say(f"Draft #{draft_id} no longer exists.")
            return
        if action is DraftAction.EDIT and view.status != "pending":
            say(f"Draft #{draft_id} is {view.status}: only a pending draft is edited.")
            return
        modal = edit_modal(view) if action is DraftAction.EDIT else full_body_modal(view)
        client.views_open(trigger_id=body["trigger_id"], view=modal)

    return handle


def _addresses(text: str | None) -> list[str]:
    return [part.strip() for part in (text or "").split(",") if part.strip()]


def _edited(deps: Deps) -> Callable[..., None]:
    """The edit modal's submission: fields checked before the answer (errors shown on the
    field, STYLE habit 1), then the guarded edit; a draft decided meanwhile is said in a DM."""

    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        draft_id = int(view["private_metadata"])
        values = view["state"]["values"]

        def field(block: DraftBlock, name: DraftInput) -> str | None:
            found = values.get(str(block), {}).get(str(name))
            return None if found is None else (found.get("value") or "")

        to, cc = field(DraftBlock.EDIT_TO, DraftInput.TO), field(DraftBlock.EDIT_CC, DraftInput.CC)
        changes: dict[str, Any] = {
            "to": None if to is None else _addresses(to),
            "cc": None if cc is None else _addresses(cc),
            "subject": field(DraftBlock.EDIT_SUBJECT, DraftInput.SUBJECT),
            "body": field(DraftBlock.EDIT_BODY, DraftInput.BODY),
        }
        try:
            drafts.edit_values(**changes)
        except drafts.DraftError as exc:
            block = FIELD_BLOCKS.get(str(exc).partition(":")[0], DraftBlock.EDIT_SUBJECT)
            ack(response_action="errors", errors={str(block): str(exc)})
            return
        ack()
        problem = _refused(deps, draft_id, user)
        if problem is None:
            try:
                with session_scope(deps.rt.db) as session:
                    drafts.edit(session, draft_id, by=user, now=deps.rt.clock.now(), **changes)
                    draft_rows.resync_slack(session, draft_id=draft_id)
                return
            except drafts.DraftError as exc:
                problem = str(exc)
        client.chat_postMessage(
            channel=user, text=f"Your edit of draft #{draft_id} was not saved: {escape(problem)}"
        )

    return handle


def register(app: App, deps: Deps) -> None:
    for action in DECISIONS:
        app.action(str(action))(_decision(deps, action))
    app.action(str(DraftAction.EXIT))(_exit(deps))
    for action in (DraftAction.EDIT, DraftAction.SHOW_ALL):
        app.action(str(action))(_open(deps, action))
    app.view(str(DraftModal.EDIT))(_edited(deps))

    @app.event("subteam_members_changed")
    def members_changed(event: dict[str, Any]) -> None:
        deps.admins.forget(event.get("subteam_id"))
