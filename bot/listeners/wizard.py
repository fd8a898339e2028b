"""The wizard (`/workflow new`, `/workflow edit NAME`, Edit and Duplicate in `/workflow
list`): its four modals (blocks.wizard, blocks.wizard_steps) and what moves between them.

What was typed travels in each view's private_metadata (blocks.wizard.WizardState); a state
that outgrows it is kept in a slack_forms row and its id travels instead. Next is each modal's
submit: its fields are checked by the file schema before the ack, so errors show on the field
(`response_action: errors`); a view that needs queries (the trigger's segments, the audience
count, the workflow being edited) is shown as a loading view and then filled by views.update.
The buttons and selects are bot.listeners.wizard_nav's; what both share, wizard_shared's.
Saving goes through engine.workspace.apply, as `workflowbot apply` does.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from slack_bolt import Ack, App
from slack_sdk import WebClient
from sqlalchemy.orm import Session

from blocks import kit
from blocks import wizard as views
from blocks import wizard_steps as step_views
from blocks.ids import ActionId, WorkflowMenu, parse_workflow_menu_value
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from bot import forms
from bot.authz import may_manage
from bot.errors import UserError
from bot.listeners import Deps, wizard_nav
from bot.listeners import wizard_shared as shared
from bot.listeners.manage import by_id, chose, current_version_id
from bot.workflow_names import find_workflow
from engine.definitions import DefinitionError, parse_document
from storage.db import session_scope
from storage.queries import workflows as workflow_rows

if TYPE_CHECKING:
    from bot.listeners.commands import Invocation

log = logging.getLogger(__name__)

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
    refusal = shared.refusal(deps, user, None)
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
    state = shared.kept(deps, state, user)
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


# -- the submissions (Next) -------------------------------------------------------------------
def _info_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = shared.user(body)
        state = forms.read_info(shared.state(deps, view, user), forms.values(view))
        problems = forms.problems(
            forms.definition(state, with_trigger=False, with_steps=False), None
        )
        found = forms.errors(problems, forms.shown_blocks(view))
        if not found and shared.name_taken(deps, state):
            found = {str(WizardBlock.NAME): shared.taken_message(state.name)}
        if found:
            ack(response_action="errors", errors=found)
            return
        state = shared.kept(deps, state, user)
        ack(response_action="update", view=views.loading_view(state, "Reading segments and stages"))
        client.views_update(
            view_id=view["id"], view=views.trigger_view(state, shared.choices(deps))
        )

    return handle


def _trigger_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any]) -> None:
        user = shared.user(body)
        state = forms.read_trigger(shared.state(deps, view, user), forms.values(view))
        problems = forms.problems(
            forms.definition(state, with_steps=False), shared.references(deps)
        )
        found = forms.errors(problems, forms.shown_blocks(view), fallback=str(WizardBlock.KIND))
        if found:
            ack(response_action="errors", errors=found)
            return
        ack(response_action="update", view=step_views.actions_view(shared.kept(deps, state, user)))

    return handle


def _step_submitted(deps: Deps) -> Handler:
    """The pushed step modal: checked with the whole workflow (templates see its object),
    then closed, and the Actions modal under it redrawn with the step added or changed."""

    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = shared.user(body)
        state = shared.state(deps, view, user)
        steps, index = list(state.steps), state.step_at
        if index is not None and index < len(steps):
            steps[index] = forms.read_step(forms.values(view), base=steps[index])
        else:
            index = len(steps)
            steps.append(forms.read_step(forms.values(view)))
        grown = state.model_copy(update={"steps": steps, "step_at": None})
        # The exit condition is the Actions modal's, checked when it is submitted.
        checked = grown.model_copy(update={"exit_if": ""})
        problems = forms.problems(forms.definition(checked), shared.references(deps))
        found = forms.errors(
            problems, forms.shown_blocks(view), step=index, fallback=str(WizardBlock.STEP_ACTION)
        )
        if found:
            ack(response_action="errors", errors=found)
            return
        ack()
        actions = step_views.actions_view(shared.kept(deps, grown, user))
        client.views_update(view_id=view["previous_view_id"], view=actions)

    return handle


def _actions_submitted(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = shared.user(body)
        typed = forms.values(view)
        state = shared.state(deps, view, user)
        state = state.model_copy(update={"exit_if": typed.get(WizardBlock.EXIT_IF, "").strip()})
        found = forms.errors(forms.problems(forms.definition(state), None), {WizardBlock.EXIT_IF})
        if found:
            ack(response_action="errors", errors=found)
            return
        state = shared.kept(deps, state, user)
        ack(response_action="update", view=views.loading_view(state, "Counting the audience"))
        client.views_update(
            view_id=view["id"], view=views.enable_view(state, shared.reach(deps, state))
        )

    return handle


def _enable_submitted(deps: Deps) -> Handler:
    """Save: checked before the ack (errors on the save choice), then applied as a workflow
    file is, by someone who may."""

    def handle(ack: Ack, body: dict[str, Any], view: dict[str, Any], client: WebClient) -> None:
        user = shared.user(body)
        state = shared.state(deps, view, user)
        state = state.model_copy(
            update={"mode": forms.values(view).get(WizardBlock.MODE) or state.mode}
        )
        problems = forms.problems(forms.definition(state), shared.references(deps))
        if not problems and shared.name_taken(deps, state):
            problems = [shared.taken_message(state.name)]
        if problems:
            ack(response_action="errors", errors={str(WizardBlock.MODE): forms.short(problems[0])})
            return
        ack(response_action="update", view=views.loading_view(state, "Saving"))
        client.views_update(view_id=view["id"], view=views.done_view(_save(deps, state, user)))

    return handle


def _save(deps: Deps, state: views.WizardState, user: str) -> str:
    """Apply the wizard's workflow; what to tell the user."""
    refusal = shared.refusal(deps, user, state)
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


def register(app: App, deps: Deps) -> None:
    app.view(str(WizardModal.INFO))(_info_submitted(deps))
    app.view(str(WizardModal.TRIGGER))(_trigger_submitted(deps))
    app.view(str(WizardModal.STEP))(_step_submitted(deps))
    app.view(str(WizardModal.ACTIONS))(_actions_submitted(deps))
    app.view(str(WizardModal.ENABLE))(_enable_submitted(deps))
    app.action(str(WizardAction.OPEN))(_open_clicked(deps))
    edit_or_copy = chose(WorkflowMenu.EDIT, WorkflowMenu.DUPLICATE)
    app.action(str(ActionId.WORKFLOW_MENU), matchers=[edit_or_copy])(_menu_clicked(deps))
    wizard_nav.register(app, deps)
