"""`/workflow new`: the wizard's four modals (blocks.wizard) and what moves between them.

What was typed travels in each view's private_metadata (blocks.wizard.WizardState). Next is
each modal's submit: its fields are checked by the file schema before the ack, so errors
show on the field (`response_action: errors`); a view that needs queries (the trigger's
segments, the audience count) is acked as a loading view and then filled by views.update.
Back, the selects that reshape a view and the step menu are buttons: ack, then views.update
with the view's hash. Saving goes through engine.workspace.apply, as `workflowbot apply` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from blocks import kit
from blocks import wizard as views
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from bot import forms
from bot.authz import may_manage
from bot.listeners import Deps
from engine import control, lifecycle, workspace
from engine.definitions import DefinitionError, parse_document
from storage.db import session_scope
from storage.queries import segments as segment_rows
from storage.queries import workflows as workflow_rows

if TYPE_CHECKING:
    from bot.listeners.commands import Invocation

log = logging.getLogger(__name__)
# Reads before an ack must be quick (STYLE habit 1): they are the ack's own content.
ACK_READ_TIMEOUT_MS = 1000

Handler = Callable[..., None]


def open_wizard(inv: Invocation) -> None:
    """`/workflow new`: the wizard, opened at once with the command's trigger_id."""
    inv.ack()
    trigger_id = inv.trigger_id
    if not trigger_id:
        inv.respond(response_type="ephemeral", text="The wizard could not open: no trigger_id.")
        return
    _open(inv.deps, inv.client, trigger_id=trigger_id, user=inv.user_id)


def _open(deps: Deps, client: WebClient, *, trigger_id: str, user: str) -> None:
    """Open the Information modal at once; a user who may not create workflows then sees
    why in its place."""
    opened = client.views_open(trigger_id=trigger_id, view=views.info_view(views.WizardState()))
    refusal = _refusal(deps, user)
    if refusal is not None:
        client.views_update(
            view_id=opened["view"]["id"], view=views.done_view(f":no_entry: {refusal}")
        )


def _open_clicked(deps: Deps) -> Handler:
    """A "New workflow" button (App Home, help) opens the same wizard."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _open(deps, client, trigger_id=body["trigger_id"], user=body["user"]["id"])

    return handle


# -- reads ------------------------------------------------------------------------------------
def _refusal(deps: Deps, user: str) -> str | None:
    with session_scope(deps.rt.db) as session:
        found = may_manage(session, None, user, deps.admins)
    return None if found is None else found.reason


def _choices(deps: Deps) -> views.TriggerChoices:
    with session_scope(deps.rt.db) as session:
        return views.TriggerChoices(
            segments=[(s.name, s.object_type) for s in segment_rows.all_segments(session)],
            stages=lifecycle.stages(session).names,
        )


def _references(deps: Deps) -> forms.References:
    with session_scope(deps.rt.db) as session:
        return forms.References(
            segments={s.name_key: s.object_type for s in segment_rows.all_segments(session)},
            stages=lifecycle.stages(session).names,
            allowed_hosts=deps.settings.webhook_allowed_hosts,
            settings=deps.settings,
        )


def _name_taken(deps: Deps, name: str) -> bool:
    with session_scope(deps.rt.db) as session:
        return workflow_rows.by_name(session, name=name) is not None


def _taken_message(name: str) -> str:
    return f'A workflow named "{name}" exists: pick another name (or `/workflow edit` it).'


def _reach(deps: Deps, state: views.WizardState) -> views.Reach:
    try:
        doc = parse_document(forms.document(forms.definition(state)))
        with session_scope(deps.rt.db) as session:
            found = control.audience(session, definition=doc.workflows[0], now=deps.rt.clock.now())
    except DefinitionError as exc:
        return views.Reach(None, problems=exc.problems)
    except control.ControlError as exc:
        return views.Reach(None, problems=[str(exc)])
    return views.Reach(found.count, found.what)


# -- the submissions (Next) -------------------------------------------------------------------
def _state(view: dict[str, Any]) -> views.WizardState:
    return views.WizardState.load(view.get("private_metadata"))


def _info_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, view: dict[str, Any], client: WebClient) -> None:
        state = forms.read_info(_state(view), forms.values(view))
        problems = forms.problems(
            forms.definition(state, with_trigger=False, with_steps=False), None
        )
        found = forms.errors(problems, forms.shown_blocks(view))
        if not found and _name_taken(deps, state.name):
            found = {str(WizardBlock.NAME): _taken_message(state.name)}
        if found:
            ack(response_action="errors", errors=found)
            return
        ack(response_action="update", view=views.loading_view(state, "Reading segments and stages"))
        client.views_update(view_id=view["id"], view=views.trigger_view(state, _choices(deps)))

    return handle


def _trigger_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, view: dict[str, Any]) -> None:
        state = forms.read_trigger(_state(view), forms.values(view))
        problems = forms.problems(forms.definition(state, with_steps=False), _references(deps))
        found = forms.errors(problems, forms.shown_blocks(view), fallback=str(WizardBlock.KIND))
        if found:
            ack(response_action="errors", errors=found)
            return
        ack(response_action="update", view=views.actions_view(state))

    return handle


def _step_submitted(deps: Deps) -> Handler:
    """The pushed step modal: checked with the whole workflow (templates see its object),
    then closed, and the Actions modal under it redrawn with the new step."""

    def handle(ack: Ack, view: dict[str, Any], client: WebClient) -> None:
        state = _state(view)
        step = forms.read_step(forms.values(view))
        grown = state.model_copy(update={"steps": [*state.steps, step]})
        problems = forms.problems(forms.definition(grown), _references(deps))
        index = len(state.steps)
        found = forms.errors(
            problems, forms.shown_blocks(view), step=index, fallback=str(WizardBlock.STEP_ACTION)
        )
        actions = None
        if not found:
            try:
                actions = views.actions_view(grown)
            except views.MetadataTooLarge as exc:
                biggest = (
                    WizardBlock.EMAIL_BODY if step["action"] == "email" else WizardBlock.STEP_ACTION
                )
                found = {str(biggest): forms.short(str(exc))}
        if found or actions is None:
            ack(response_action="errors", errors=found)
            return
        ack()
        client.views_update(view_id=view["previous_view_id"], view=actions)

    return handle


def _actions_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, view: dict[str, Any], client: WebClient) -> None:
        state = _state(view)
        ack(response_action="update", view=views.loading_view(state, "Counting the audience"))
        client.views_update(view_id=view["id"], view=views.enable_view(state, _reach(deps, state)))

    return handle


def _enable_submitted(deps: Deps) -> Handler:
    """Save: checked before the ack (errors on the draft-or-live choice), then applied as a
    workflow file is, by an admin only."""

    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = body["user"]["id"]
        state = _state(view).model_copy(
            update={"mode": forms.values(view).get(WizardBlock.MODE) or "draft"}
        )
        problems = forms.problems(forms.definition(state), _references(deps))
        if not problems and _name_taken(deps, state.name):
            problems = [_taken_message(state.name)]
        if problems:
            ack(response_action="errors", errors={str(WizardBlock.MODE): forms.short(problems[0])})
            return
        ack(response_action="update", view=views.loading_view(state, "Saving"))
        client.views_update(view_id=view["id"], view=views.done_view(_save(deps, state, user)))

    return handle


def _save(deps: Deps, state: views.WizardState, user: str) -> str:
    """Apply the wizard's workflow; what to tell the user."""
    refusal = _refusal(deps, user)
    if refusal is not None:
        return f":no_entry: Not saved. {refusal}"
    doc = parse_document(forms.document(forms.definition(state)))
    try:
        with session_scope(deps.rt.db) as session:
            done = workspace.apply(
                session,
                doc,
                now=deps.rt.clock.now(),
                by=f"slack:{user}",
                allowed_hosts=deps.settings.webhook_allowed_hosts,
                settings=deps.settings,
            )
    except DefinitionError as exc:
        return ":warning: Not saved:\n" + kit.escape("\n".join(exc.problems))
    [saved] = done.workflows
    name = kit.escape(state.name)
    if saved.status == "live":
        return f":white_check_mark: *{name}* is live: it enrolls records from now on."
    return f":memo: *{name}* is saved as a draft: enable it with `/workflow enable {name}`."


# -- buttons and selects ----------------------------------------------------------------------
def _redraw(deps: Deps, state: views.WizardState, callback: str) -> dict[str, Any]:
    if callback == WizardModal.TRIGGER:
        return views.trigger_view(state, _choices(deps))
    if callback == WizardModal.ACTIONS:
        return views.actions_view(state)
    return views.info_view(state)


def _back(deps: Deps) -> Handler:
    """Back: what was typed on this view is kept (unchecked), the previous view drawn."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = body["view"]
        typed, state = forms.values(view), _state(view)
        callback = view.get("callback_id")
        if callback == WizardModal.TRIGGER:
            state, previous = forms.read_trigger(state, typed), WizardModal.INFO
        elif callback == WizardModal.ACTIONS:
            previous = WizardModal.TRIGGER
        else:
            state = state.model_copy(update={"mode": typed.get(WizardBlock.MODE) or state.mode})
            previous = WizardModal.ACTIONS
        client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=_redraw(deps, state, previous)
        )

    return handle


def _trigger_changed(deps: Deps) -> Handler:
    """The object or the trigger kind was picked: the view shows that kind's fields."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = body["view"]
        state = forms.read_trigger(_state(view), forms.values(view))
        client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=views.trigger_view(state, _choices(deps)),
        )

    return handle


def _step_action_changed(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    ack()
    view = body["view"]
    typed = forms.values(view)
    action = typed.get(WizardBlock.STEP_ACTION) or "email"
    client.views_update(
        view_id=view["id"], hash=view.get("hash"), view=views.step_view(_state(view), action, typed)
    )


def _add_step(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    ack()
    client.views_push(
        trigger_id=body["trigger_id"], view=views.step_view(_state(body["view"]), "email")
    )


def _step_menu(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
    """Move a step up or down, or remove it."""
    ack()
    view = body["view"]
    state = _state(view)
    what, _, at = str(body["actions"][0]["selected_option"]["value"]).partition(":")
    steps, i = list(state.steps), int(at)
    if i < len(steps):
        if what == "remove":
            del steps[i]
        elif what == "up" and i > 0:
            steps[i - 1], steps[i] = steps[i], steps[i - 1]
        elif what == "down" and i + 1 < len(steps):
            steps[i + 1], steps[i] = steps[i], steps[i + 1]
    state = state.model_copy(update={"steps": steps})
    client.views_update(view_id=view["id"], hash=view.get("hash"), view=views.actions_view(state))


def register(app: App, deps: Deps) -> None:
    app.view(str(WizardModal.INFO))(_info_submitted(deps))
    app.view(str(WizardModal.TRIGGER))(_trigger_submitted(deps))
    app.view(str(WizardModal.STEP))(_step_submitted(deps))
    app.view(str(WizardModal.ACTIONS))(_actions_submitted(deps))
    app.view(str(WizardModal.ENABLE))(_enable_submitted(deps))
    app.action(str(WizardAction.OPEN))(_open_clicked(deps))
    app.action(str(WizardAction.BACK))(_back(deps))
    for select in (WizardBlock.OBJECT, WizardBlock.KIND):
        app.action(str(select))(_trigger_changed(deps))
    app.action(str(WizardBlock.STEP_ACTION))(_step_action_changed)
    app.action(str(WizardAction.ADD_STEP))(_add_step)
    app.action(str(WizardAction.STEP_MENU))(_step_menu)
