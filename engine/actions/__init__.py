"""Actions by kind: every step's `action` names one of these (see base.Action)."""

from __future__ import annotations

from engine.actions.base import Action
from engine.actions.crm import HubspotTaskAction, SalesforceTaskAction
from engine.actions.email import EmailAction, TeamNotificationAction
from engine.actions.owner import OwnerAction
from engine.actions.slack import SlackAction
from engine.actions.update import UpdateAction
from engine.actions.webhook import WebhookAction
from engine.step_defs import StepDef

ACTIONS: dict[str, Action] = {
    action.kind: action
    for action in (
        EmailAction(),
        OwnerAction(),
        UpdateAction(),
        TeamNotificationAction(),
        WebhookAction(),
        SlackAction(),
        HubspotTaskAction(),
        SalesforceTaskAction(),
    )
}


def for_step(step: StepDef) -> Action:
    """The action a validated step names (the schema admits only built ones)."""
    return ACTIONS[step.action]
