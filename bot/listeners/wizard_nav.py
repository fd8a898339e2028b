"""The wizard's buttons and selects: Back, the selects that reshape a view, the segment and
stage searches, Add a step and each step's menu. Each acks, then redraws the view with
views.update and the view's hash (or pushes the step modal)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from slack_bolt import Ack, App
from slack_sdk import WebClient

from blocks import kit
from blocks import wizard as views
from blocks import wizard_steps as step_views
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from blocks.wizard_inputs import suggestions
from bot import forms
from bot.listeners import Deps
from bot.listeners import wizard_shared as shared

Handler = Callable[..., None]


def _redraw(deps: Deps, state: views.WizardState, callback: str) -> dict[str, Any]:
    if callback == WizardModal.TRIGGER:
        return views.trigger_view(state, shared.choices(deps))
    if callback == WizardModal.ACTIONS:
        return step_views.actions_view(state)
    return views.info_view(state)


def _back(deps: Deps) -> Handler:
    """Back: what was typed on this view is kept (unchecked), the previous view drawn."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view, user = body["view"], shared.user(body)
        typed, state = forms.values(view), shared.state(deps, view, user)
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
            view=_redraw(deps, shared.kept(deps, state, user), previous),
        )

    return handle


def _trigger_changed(deps: Deps) -> Handler:
    """The object or the trigger kind was picked: the view shows that kind's fields."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view, user = body["view"], shared.user(body)
        state = forms.read_trigger(shared.state(deps, view, user), forms.values(view))
        client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=views.trigger_view(shared.kept(deps, state, user), shared.choices(deps)),
        )

    return handle


def _suggest(deps: Deps, block: WizardBlock) -> Handler:
    """An external select (more than 100 segments or stages): the names matching what is typed."""

    def handle(ack: Ack, body: dict[str, Any]) -> None:
        typed = str(body.get("value") or "")
        state = views.WizardState.load(body.get("view", {}).get("private_metadata"))
        choices = shared.choices(deps)
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
    state = shared.state(deps, view, shared.user(body))
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
        state = shared.state(deps, view, shared.user(body))
        client.views_update(
            view_id=view["id"],
            hash=view.get("hash"),
            view=step_views.step_view(state, action, typed),
        )

    return handle


def _add_step(deps: Deps) -> Handler:
    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        state = shared.kept(deps, _with_exit_if(deps, body), shared.user(body))
        client.views_push(trigger_id=body["trigger_id"], view=step_views.step_view(state, "email"))

    return handle


def _step_menu(deps: Deps) -> Handler:
    """Edit a step (the step modal pushed, filled), move it up or down, or remove it."""

    def handle(ack: Ack, body: dict[str, Any], client: WebClient) -> None:
        ack()
        view, user = body["view"], shared.user(body)
        state = _with_exit_if(deps, body)
        what, _, at = str(body["actions"][0]["selected_option"]["value"]).partition(":")
        steps, i = list(state.steps), int(at)
        if what == "edit" and i < len(steps):
            editing = shared.kept(deps, state.model_copy(update={"step_at": i}), user)
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
        state = shared.kept(deps, state.model_copy(update={"steps": steps}), user)
        client.views_update(
            view_id=view["id"], hash=view.get("hash"), view=step_views.actions_view(state)
        )

    return handle


def register(app: App, deps: Deps) -> None:
    app.action(str(WizardAction.BACK))(_back(deps))
    for select in (WizardBlock.OBJECT, WizardBlock.KIND):
        app.action(str(select))(_trigger_changed(deps))
    for searched in (WizardBlock.SEGMENT, WizardBlock.STAGE):
        app.options(str(searched))(_suggest(deps, searched))
    app.action(str(WizardBlock.STEP_ACTION))(_step_action_changed(deps))
    app.action(str(WizardAction.ADD_STEP))(_add_step(deps))
    app.action(str(WizardAction.STEP_MENU))(_step_menu(deps))
