"""The wizard (`/workflow new`, `/workflow edit NAME`, Edit and Duplicate in `/workflow
list`): its four modals (blocks.wizard, blocks.wizard_steps) and what moves between them.

What was typed travels in each view's private_metadata (blocks.wizard.WizardState); a state
that outgrows it is kept in a slack_forms row and its id travels instead. Next is each modal's
submit: its fields are checked by the file schema before the ack, so errors show on the field
(`response_action: errors`); a view that needs queries (the trigger's segments, the audience
count, the workflow being edited) is shown as a loading view and then filled by views.update.
Back, the selects that reshape a view and the step menu are buttons: ack, then views.update
with the view's hash. Saving goes through engine.workspace.apply, as `workflowbot apply` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from blocks import kit
from blocks import wizard as views
from blocks import wizard_steps as step_views
from blocks.ids import ActionId, WorkflowMenu, parse_workflow_menu_value
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from blocks.wizard_inputs import suggestions
from bot import forms
from bot.authz import may_manage
from bot.errors import UserError
from bot.listeners import Deps
from bot.listeners.manage import by_id, chose, current_version_id
from bot.workflow_names import find_workflow
from engine import control, lifecycle
from engine.definitions import DefinitionError, parse_document
from storage.db import session_scope
from storage.queries import segments as segment_rows
from storage.queries import slack_forms
from storage.queries import workflows as workflow_rows
from storage.workflow_models import Workflow

if TYPE_CHECKING:
    from bot.listeners.commands import Invocation

log = logging.getLogger(__name__)
FORM_KIND = "wizard"

Handler = Callable[..., None]


# -- opening ----------------------------------------------------------------------------------
def open_wizard(inv: Invocation) -> None:
    """`/workflow new`: the wizard, opened at once with the command's trigger_id."""
    trigger_id = _trigger_id(inv)
    if trigger_id is not None:
        _open(inv.deps, inv.client, trigger_id=trigger_id, user=inv.user_id)


def open_edit(inv: Invocation) -> None:
    """`/workflow edit NAME`: a loading modal at once, then the wizard prefilled (or why not)."""
    trigger_id = _trigger_id(inv)
    if trigger_id is None:
        return
    opened = inv.client.views_open(
        trigger_id=trigger_id, view=views.loading_view(views.WizardState(), "Reading the workflow")
    )
    try:
        with session_scope(inv.deps.rt.db) as session:
            workflow, _ = find_workflow(session, inv.args)
            workflow_id = workflow.id
    except UserError as exc:
        inv.client.views_update(view_id=opened["view"]["id"], view=views.done_view(str(exc)))
        return
    _fill(inv.deps, inv.client, opened["view"]["id"], inv.user_id, workflow_id, copy=False)


def _trigger_id(inv: Invocation) -> str | None:
    if not inv.trigger_id:
        inv.respond(response_type="ephemeral", text="The wizard could not open: no trigger_id.")
    return inv.trigger_id


def _open(deps: Deps, client: WebClient, *, trigger_id: str, user: str) -> None:
    """Open the Information modal at once; a user who may not create workflows then sees
    why in its place."""
    opened = client.views_open(trigger_id=trigger_id, view=views.info_view(views.WizardState()))
    refusal = _refusal(deps, user, None)
    if refusal is not None:
        client.views_update(
            view_id=opened["view"]["id"], view=views.done_view(f":no_entry: {refusal}")
        )


def _fill(
    deps: Deps, client: WebClient, view_id: str, user: str, workflow_id: int, *, copy: bool
) -> None:
    """Fill an opened loading view with the wizard on workflow `workflow_id`: to edit it, or
    (`copy`) to save its definition as a new draft under another name."""
    try:
        with session_scope(deps.rt.db) as session:
            workflow = by_id(session, workflow_id)
            version = workflow_rows.version(
                session, workflow_id=workflow.id, number=workflow.version
            )
            assert version is not None
            refusal = may_manage(
                session, None if copy else current_version_id(session, workflow), user, deps.admins
            )
            if refusal is not None:
                raise UserError(f":no_entry: {kit.escape(refusal.reason)}")
            state = forms.state_of(
                version.document,
                workflow_id=None if copy else workflow.id,
                status=workflow.status,
                version=workflow.version,
            )
            if copy:
                state = state.model_copy(update={"name": _copy_name(session, workflow.name)})
    except UserError as exc:
        client.views_update(view_id=view_id, view=views.done_view(str(exc)))
        return
    state = _kept(deps, state, user)
    client.views_update(view_id=view_id, view=views.info_view(state))


def _copy_name(session: Session, name: str) -> str:
    """`NAME (copy)`, or `(copy 2)`… — a name no workflow has."""
    for n in range(1, 100):
        candidate = f"{name} (copy)" if n == 1 else f"{name} (copy {n})"
        if workflow_rows.by_name(session, name=candidate, deleted=True) is None:
            return candidate
    return f"{name} (copy)"


def _menu_clicked(deps: Deps) -> Handler:
    """Edit or Duplicate in a workflow's menu (`/workflow list`)."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        choice, workflow_id = parse_workflow_menu_value(
            body["actions"][0]["selected_option"]["value"]
        )
        what = "Copying" if choice is WorkflowMenu.DUPLICATE else "Reading"
        opened = client.views_open(
            trigger_id=body["trigger_id"],
            view=views.loading_view(views.WizardState(), f"{what} the workflow"),
        )
        _fill(
            deps,
            client,
            opened["view"]["id"],
            body["user"]["id"],
            workflow_id,
            copy=choice is WorkflowMenu.DUPLICATE,
        )

    return handle


def _open_clicked(deps: Deps) -> Handler:
    """A "New workflow" button (App Home, help) opens the same wizard."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        _open(deps, client, trigger_id=body["trigger_id"], user=body["user"]["id"])

    return handle


# -- reads ------------------------------------------------------------------------------------
def _refusal(deps: Deps, user: str, state: views.WizardState | None) -> str | None:
    with session_scope(deps.rt.db) as session:
        version_id = None
        if state is not None and state.editing is not None:
            workflow = session.get(Workflow, state.editing)
            if workflow is not None:
                version_id = current_version_id(session, workflow)
        found = may_manage(session, version_id, user, deps.admins)
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


def _name_taken(deps: Deps, state: views.WizardState) -> bool:
    if state.editing is not None:
        return False  # its own name
    with session_scope(deps.rt.db) as session:
        return workflow_rows.by_name(session, name=state.name) is not None


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


# -- the state between requests ---------------------------------------------------------------
def _state(deps: Deps, view: Mapping[str, Any], user: str) -> views.WizardState:
    """The wizard's state a view carries: in its private_metadata, or in its form row."""
    state = views.WizardState.load(view.get("private_metadata"))
    if not state.pointer():
        return state
    assert state.form is not None
    with session_scope(deps.rt.db) as session:
        data = slack_forms.get(session, state.form, kind=FORM_KIND, user=user)
    if data is None:
        raise UserError("This wizard has expired (a week untouched): start it again.")
    kept = views.WizardState.model_validate(data)
    return kept.model_copy(update={"form": state.form, "step_at": state.step_at})


def _kept(deps: Deps, state: views.WizardState, user: str) -> views.WizardState:
    """`state`, stored in its form row when it no longer fits in private_metadata."""
    if state.fits():
        return state
    data = state.model_dump(mode="json", exclude={"form", "step_at"})
    now = deps.rt.clock.now()
    with session_scope(deps.rt.db) as session:
        if state.form is not None and slack_forms.replace(
            session, state.form, kind=FORM_KIND, user=user, data=data, now=now
        ):
            return state
        form = slack_forms.put(session, kind=FORM_KIND, user=user, data=data, now=now)
    return state.model_copy(update={"form": form})


def _user(body: Mapping[str, Any]) -> str:
    return str(body["user"]["id"])


# -- the submissions (Next) -------------------------------------------------------------------
def _info_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = _user(body)
        state = forms.read_info(_state(deps, view, user), forms.values(view))
        problems = forms.problems(
            forms.definition(state, with_trigger=False, with_steps=False), None
        )
        found = forms.errors(problems, forms.shown_blocks(view))
        if not found and _name_taken(deps, state):
            found = {str(WizardBlock.NAME): _taken_message(state.name)}
        if found:
            ack(response_action="errors", errors=found)
            return
        state = _kept(deps, state, user)
        ack(response_action="update", view=views.loading_view(state, "Reading segments and stages"))
        client.views_update(view_id=view["id"], view=views.trigger_view(state, _choices(deps)))

    return handle


def _trigger_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = _user(body)
        state = forms.read_trigger(_state(deps, view, user), forms.values(view))
        problems = forms.problems(forms.definition(state, with_steps=False), _references(deps))
        found = forms.errors(problems, forms.shown_blocks(view), fallback=str(WizardBlock.KIND))
        if found:
            ack(response_action="errors", errors=found)
            return
        ack(response_action="update", view=step_views.actions_view(_kept(deps, state, user)))

    return handle


def _step_submitted(deps: Deps) -> Handler:
    """The pushed step modal: checked with the whole workflow (templates see its object),
    then closed, and the Actions modal under it redrawn with the step added or changed."""

    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = _user(body)
        state = _state(deps, view, user)
        steps, index = list(state.steps), state.step_at
        if index is not None and index < len(steps):
            steps[index] = forms.read_step(forms.values(view), base=steps[index])
        else:
            index = len(steps)
            steps.append(forms.read_step(forms.values(view)))
        grown = state.model_copy(update={"steps": steps, "step_at": None})
        # The exit condition is the Actions modal's, checked when it is submitted.
        checked = grown.model_copy(update={"exit_if": ""})
        problems = forms.problems(forms.definition(checked), _references(deps))
        found = forms.errors(
            problems, forms.shown_blocks(view), step=index, fallback=str(WizardBlock.STEP_ACTION)
        )
        if found:
            ack(response_action="errors", errors=found)
            return
        ack()
        actions = step_views.actions_view(_kept(deps, grown, user))
        client.views_update(view_id=view["previous_view_id"], view=actions)

    return handle


def _actions_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = _user(body)
        typed = forms.values(view)
        state = _state(deps, view, user)
        state = state.model_copy(update={"exit_if": typed.get(WizardBlock.EXIT_IF, "").strip()})
        found = forms.errors(forms.problems(forms.definition(state), None), {WizardBlock.EXIT_IF})
        if found:
            ack(response_action="errors", errors=found)
            return
        state = _kept(deps, state, user)
        ack(response_action="update", view=views.loading_view(state, "Counting the audience"))
        client.views_update(view_id=view["id"], view=views.enable_view(state, _reach(deps, state)))

    return handle


def _enable_submitted(deps: Deps) -> Handler:
    """Save: checked before the ack (errors on the save choice), then applied as a workflow
    file is, by someone who may."""

    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = _user(body)
        state = _state(deps, view, user)
        state = state.model_copy(
            update={"mode": forms.values(view).get(WizardBlock.MODE) or state.mode}
        )
        problems = forms.problems(forms.definition(state), _references(deps))
        if not problems and _name_taken(deps, state):
            problems = [_taken_message(state.name)]
        if problems:
            ack(response_action="errors", errors={str(WizardBlock.MODE): forms.short(problems[0])})
            return
        ack(response_action="update", view=views.loading_view(state, "Saving"))
        client.views_update(view_id=view["id"], view=views.done_view(_save(deps, state, user)))

    return handle


def _save(deps: Deps, state: views.WizardState, user: str) -> str:
    """Apply the wizard's workflow; what to tell the user."""
    refusal = _refusal(deps, user, state)
    if refusal is not None:
        return f":no_entry: Not saved. {kit.escape(refusal)}"
    doc = parse_document(forms.document(forms.definition(state)))
    try:
        with session_scope(deps.rt.db) as session:
            done = deps.apply(session, doc, user)
            saved = workflow_rows.by_name(session, name=state.name)
            version = saved.version if saved is not None else 0
    except DefinitionError as exc:
        return ":warning: Not saved:\n" + kit.escape("\n".join(exc.problems))
    [plan] = done.workflows
    name = kit.escape(state.name)
    if state.editing is not None:
        if plan.action == "unchanged" and plan.status == state.status:
            return f":ok_hand: *{name}* had no changes: it is still version {version}."
        running = (
            f" Enrollments already running keep version {state.version}."
            if state.status == "live"
            else ""
        )
        return f":white_check_mark: *{name}* is saved as version {version}, {plan.status}.{running}"
    if plan.status == "live":
        return f":white_check_mark: *{name}* is live: it enrolls records from now on."
    return f":memo: *{name}* is saved as a draft: enable it with `/workflow enable {name}`."


# -- buttons and selects ----------------------------------------------------------------------
def _redraw(deps: Deps, state: views.WizardState, callback: str) -> dict[str, Any]:
    if callback == WizardModal.TRIGGER:
        return views.trigger_view(state, _choices(deps))
    if callback == WizardModal.ACTIONS:
        return step_views.actions_view(state)
    return views.info_view(state)


def _back(deps: Deps) -> Handler:
    """Back: what was typed on this view is kept (unchecked), the previous view drawn."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view, user = body["view"], _user(body)
        typed, state = forms.values(view), _state(deps, view, user)
        callback = view.get("callback_id")
        if callback == WizardModal.TRIGGER:
            state, previous = forms.read_trigger(state, typed), WizardModal.INFO
        elif callback == WizardModal.ACTIONS:
            state = state.model_copy(update={"exit_if": typed.get(WizardBlock.EXIT_IF, "")})
            previous = WizardModal.TRIGGER
        else:
            state = state.model_copy(update={"mode": typed.get(WizardBlock.MODE) or state.mode})
            previous = WizardModal.ACTIONS
        client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=_redraw(deps, _kept(deps, state, user), previous),
        )

    return handle


def _trigger_changed(deps: Deps) -> Handler:
    """The object or the trigger kind was picked: the view shows that kind's fields."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view, user = body["view"], _user(body)
        state = forms.read_trigger(_state(deps, view, user), forms.values(view))
        client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=views.trigger_view(_kept(deps, state, user), _choices(deps)),
        )

    return handle


def _suggest(deps: Deps, block: WizardBlock) -> Handler:
    """An external select (more than 100 segments or stages): the names matching what is typed."""

    def handle(ack: Ack, body: dict[str, Any]) -> None:
        typed = str(body.get("value") or "")
        state = views.WizardState.load(body.get("view", {}).get("private_metadata"))
        choices = _choices(deps)
        if block == WizardBlock.SEGMENT:
            names = [n for n, obj in choices.segments if obj == state.object or state.pointer()]
            names = [n for n in names if len(n) <= kit.OPTION_VALUE_MAX]
        else:
            names = list(choices.stages)
        ack(options=suggestions(names, typed))

    return handle


def _with_exit_if(deps: Deps, body: dict[str, Any]) -> views.WizardState:
    """The Actions view's state with the exit condition typed there (not yet submitted)."""
    view = body["view"]
    state = _state(deps, view, _user(body))
    typed = forms.values(view)
    if WizardBlock.EXIT_IF in typed:
        state = state.model_copy(update={"exit_if": typed[WizardBlock.EXIT_IF]})
    return state


def _step_action_changed(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view = body["view"]
        typed = forms.values(view)
        action = typed.get(WizardBlock.STEP_ACTION) or "email"
        state = _state(deps, view, _user(body))
        client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=step_views.step_view(state, action, typed),
        )

    return handle


def _add_step(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        state = _kept(deps, _with_exit_if(deps, body), _user(body))
        client.views_push(trigger_id=body["trigger_id"], view=step_views.step_view(state, "email"))

    return handle


def _step_menu(deps: Deps) -> Handler:
    """Edit a step (the step modal pushed, filled), move it up or down, or remove it."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view, user = body["view"], _user(body)
        state = _with_exit_if(deps, body)
        what, _, at = str(body["actions"][0]["selected_option"]["value"]).partition(":")
        steps, i = list(state.steps), int(at)
        if what == "edit" and i < len(steps):
            editing = _kept(deps, state.model_copy(update={"step_at": i}), user)
            action = str(steps[i].get("action", "email"))
            client.views_push(
                trigger_id=body["trigger_id"],
                view=step_views.step_view(editing, action, forms.step_typed(steps[i])),
            )
            return
        if i < len(steps):
            if what == "remove":
                del steps[i]
            elif what == "up" and i > 0:
                steps[i - 1], steps[i] = steps[i], steps[i - 1]
            elif what == "down" and i + 1 < len(steps):
                steps[i + 1], steps[i] = steps[i], steps[i + 1]
        state = _kept(deps, state.model_copy(update={"steps": steps}), user)
        client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=step_views.actions_view(state)
        )

    return handle


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
    for searched in (WizardBlock.SEGMENT, WizardBlock.STAGE):
        app.options(str(searched))(_suggest(deps, searched))
    app.action(str(WizardBlock.STEP_ACTION))(_step_action_changed(deps))
    app.action(str(WizardAction.ADD_STEP))(_add_step(deps))
    app.action(str(WizardAction.STEP_MENU))(_step_menu(deps))
    edit_or_copy = chose(WorkflowMenu.EDIT, WorkflowMenu.DUPLICATE)
    app.action(str(ActionId.WORKFLOW_MENU), matchers=[edit_or_copy])(_menu_clicked(deps))
