"""What the wizard's listeners share (bot.listeners.wizard, bot.listeners.wizard_nav): the
reads a view needs (segments, stages, who may save, the audience now) and the wizard's state
between requests — in a view's private_metadata, or in a slack_forms row once it outgrows it.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from blocks import wizard as views
from bot import forms
from bot.authz import may_manage
from bot.errors import UserError
from bot.listeners import Deps
from bot.listeners.manage import current_version_id
from engine import control, lifecycle
from engine.definitions import DefinitionError, parse_document
from storage.db import session_scope
from storage.queries import segments as segment_rows
from storage.queries import slack_forms
from storage.queries import workflows as workflow_rows
from storage.workflow_models import Workflow

FORM_KIND = "wizard"


# -- reads ------------------------------------------------------------------------------------
def refusal(deps: Deps, user: str, state: views.WizardState | None) -> str | None:
    with session_scope(deps.rt.db) as session:
        version_id = None
        if state is not None and state.editing is not None:
            workflow = session.get(Workflow, state.editing)
            if workflow is not None:
                version_id = current_version_id(session, workflow)
        found = may_manage(session, version_id, user, deps.admins)
    return None if found is None else found.reason


def choices(deps: Deps) -> views.TriggerChoices:
    with session_scope(deps.rt.db) as session:
        return views.TriggerChoices(
            segments=[(s.name, s.object_type) for s in segment_rows.all_segments(session)],
            stages=lifecycle.stages(session).names,
        )


def references(deps: Deps) -> forms.References:
    with session_scope(deps.rt.db) as session:
        return forms.References(
            segments={s.name_key: s.object_type for s in segment_rows.all_segments(session)},
            stages=lifecycle.stages(session).names,
            allowed_hosts=deps.settings.webhook_allowed_hosts,
            settings=deps.settings,
        )


def name_taken(deps: Deps, state: views.WizardState) -> bool:
    if state.editing is not None:
        return False  # its own name
    with session_scope(deps.rt.db) as session:
        return workflow_rows.by_name(session, name=state.name) is not None


def taken_message(name: str) -> str:
    return f'A workflow named "{name}" exists: pick another name (or `/workflow edit` it).'


def reach(deps: Deps, state: views.WizardState) -> views.Reach:
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
def state(deps: Deps, view: Mapping[str, Any], user: str) -> views.WizardState:
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


def kept(deps: Deps, state: views.WizardState, user: str) -> views.WizardState:
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


def user(body: Mapping[str, Any]) -> str:
    return str(body["user"]["id"])
