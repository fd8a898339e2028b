"""`/workflow segment new`: the segment modal (blocks.segments) and what happens in it.

The modal opens at once with the command's trigger_id; for someone who may not create
segments it then says why in its place. Count members and a change of the object ack, count
the records the rule matches now (as `workflowbot apply` plans a new segment) and redraw the
view with its hash. Save checks the name and the rule before the ack (errors on the field),
then acks with a loading view and saves through engine.workspace.apply, as the CLI does, so
membership is stored exactly as for a segment of a workflow file.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from blocks import segments as views
from blocks.segment_ids import SegmentAction, SegmentBlock, SegmentModal
from bot import forms
from bot.authz import may_manage
from bot.listeners import Deps
from engine import lifecycle
from engine import segments as segment_engine
from engine.definitions import DefinitionError, parse_document
from engine.rules import RuleError
from engine.rules.lifecycle import LifecycleError
from storage.db import session_scope
from storage.queries import segments as segment_rows

if TYPE_CHECKING:
    from bot.listeners.commands import Invocation

log = logging.getLogger(__name__)
# Reads before an ack must be quick (STYLE habit 1): they are the ack's own content.
ACK_READ_TIMEOUT_MS = 1000
RULE_ERRORS = (RuleError, segment_engine.SegmentError, LifecycleError)

Handler = Callable[..., None]


def fits(args: str) -> bool:
    """Whether the text after `/workflow segment` asks for the modal."""
    return args.strip().lower() == "new"


def open_modal(inv: Invocation) -> None:
    """`/workflow segment new`, acked already: the modal, opened at once with the trigger_id;
    someone who may not create segments then sees why in its place."""
    if not inv.trigger_id:
        inv.respond(response_type="ephemeral", text="The segment modal could not open.")
        return
    new = views.new_view(views.SegmentForm())
    opened = inv.client.views_open(trigger_id=inv.trigger_id, view=new)["view"]
    refusal = _refusal(inv.deps, inv.user_id)
    if refusal is not None:
        refused = views.done_view(views.refused_text(refusal))
        _update(inv.client, opened, refused)


# -- reads ------------------------------------------------------------------------------------
def _refusal(deps: Deps, user: str) -> str | None:
    with session_scope(deps.rt.db) as session:
        found = may_manage(session, None, user, deps.admins)
    return None if found is None else found.reason


def _form(view: dict[str, Any]) -> views.SegmentForm:
    typed = forms.values(view)
    return views.SegmentForm(
        name=typed.get(SegmentBlock.NAME, "").strip(),
        object=typed.get(SegmentBlock.OBJECT) or "account",
        rule=typed.get(SegmentBlock.RULE, ""),  # as typed: an error's line:column is in it
    )


def _count(deps: Deps, form: views.SegmentForm) -> views.Count:
    """How many records match the rule now, as `workspace.plan` counts a new segment."""
    if not form.rule.strip():
        return views.Count(form.object)
    try:
        with session_scope(deps.rt.db) as session:
            segment_engine.check_rule(form.object, form.rule, lifecycle.current(session))
            members = segment_engine.count_matching(
                session, object_type=form.object, rule=form.rule, now=deps.rt.clock.now()
            )
    except RULE_ERRORS as exc:
        return views.Count(form.object, error=str(exc))
    return views.Count(form.object, members=members)


def _quick(session: Session) -> None:
    """Bound this transaction's statements: it runs before Slack gets its answer."""
    if session.get_bind().dialect.name == "postgresql":
        session.execute(text(f"SET LOCAL statement_timeout = {ACK_READ_TIMEOUT_MS}"))


def _problems(deps: Deps, form: views.SegmentForm) -> dict[str, str]:
    """`{block_id: message}` for what Save cannot take: no name, a name in use, a rule that
    does not parse or names an unknown stage or health bucket. Indexed reads only."""
    errors: dict[str, str] = {}
    if not form.name:
        errors[SegmentBlock.NAME] = "Give the segment a name."
    elif len(form.name) > views.NAME_MAX:
        errors[SegmentBlock.NAME] = f"At most {views.NAME_MAX} characters."
    if not form.rule.strip():
        errors[SegmentBlock.RULE] = f"Write the rule its records match, like {views.RULE_EXAMPLE}."
    with session_scope(deps.rt.db) as session:
        _quick(session)
        if SegmentBlock.NAME not in errors and segment_rows.by_name(session, name=form.name):
            errors[SegmentBlock.NAME] = views.TAKEN
        if SegmentBlock.RULE not in errors:
            try:
                segment_engine.check_rule(form.object, form.rule, lifecycle.current(session))
            except RULE_ERRORS as exc:
                errors[SegmentBlock.RULE] = forms.short(str(exc))
    return {str(block): message for block, message in errors.items()}


# -- Save -------------------------------------------------------------------------------------
def _submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        form = _form(view)
        errors = _problems(deps, form)
        if errors:
            ack(response_action="errors", errors=errors)
            return
        ack(response_action="update", view=views.loading_view("Saving the segment"))
        outcome = _save(deps, form, body["user"]["id"])
        client.views_update(view_id=view["id"], view=views.done_view(outcome))

    return handle


def _save(deps: Deps, form: views.SegmentForm, user: str) -> str:
    """Create the segment as a workflow file's segment is created, by an admin only; what to
    tell the user."""
    refusal = _refusal(deps, user)
    if refusal is not None:
        return views.refused_text(refusal)
    segment = {"name": form.name, "object": form.object, "rule": form.rule.strip()}
    try:
        doc = parse_document({"version": 1, "segments": [segment]})
        with session_scope(deps.rt.db) as session:
            if segment_rows.by_name(session, name=form.name) is not None:
                return views.not_saved_text(views.TAKEN)  # apply would change its rule
            done = deps.apply(session, doc, user)
    except DefinitionError as exc:
        return views.not_saved_text("; ".join(exc.problems))
    except IntegrityError:  # the same name saved by someone else a moment ago
        return views.not_saved_text(views.TAKEN)
    [saved] = done.segments
    return views.saved_text(form.name, form.object, saved.members)


# -- Count members and the object select ------------------------------------------------------
def _update(client: WebClient, view: dict[str, Any], new: dict[str, Any]) -> None:
    """views.update guarded by the view's hash; a newer view already shown stays."""
    try:
        client.views_update(view_id=view["id"], hash=view.get("hash"), view=new)
    except SlackApiError as exc:
        if exc.response.get("error") != "hash_conflict":
            raise
        log.info("segment modal %s changed meanwhile: not redrawn", view["id"])


def _count_clicked(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        form = _form(body["view"])
        _update(client, body["view"], views.new_view(form, _count(deps, form)))

    return handle


def _object_changed(deps: Deps) -> Handler:
    """Accounts or contacts was picked: the count is for the new object (none without a rule)."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        form = _form(body["view"])
        count = _count(deps, form) if form.rule.strip() else None
        _update(client, body["view"], views.new_view(form, count))

    return handle


def register(app: App, deps: Deps) -> None:
    app.view(str(SegmentModal.NEW))(_submitted(deps))
    app.action(str(SegmentAction.COUNT))(_count_clicked(deps))
    app.action(str(SegmentBlock.OBJECT))(_object_changed(deps))
