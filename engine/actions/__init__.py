"""Actions by kind: every step's `action` names one of these (see base.Action)."""

from __future__ import annotations

from engine.actions.base import Action
from engine.actions.update import UpdateAction
from engine.actions.webhook import WebhookAction
from engine.workflow_defs import StepDef

ACTIONS: dict[str, Action] = {action.kind: action for action in (WebhookAction(), UpdateAction())}


def for_step(step: StepDef) -> Action:
    """The action a validated step names (the schema admits only built ones)."""
    return ACTIONS[step.action]
