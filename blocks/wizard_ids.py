"""The ids of the `/workflow new` wizard's modals, shared by the builders (blocks.wizard), the
form reader (bot.forms) and the handlers (bot.listeners.wizard).

Every input block's element has the block's own id as its action_id, so a select that
redraws the view (`dispatch_action`) is routed by the same name the form reads it by.
"""

from __future__ import annotations

from enum import StrEnum


class WizardModal(StrEnum):
    """callback_id of each modal of the wizard; all carry the wizard's state in
    private_metadata (blocks.wizard.WizardState)."""

    INFO = "wizard_info"  # 1: name, description
    TRIGGER = "wizard_trigger"  # 2: object, trigger kind and its fields, only_if, enrollment
    ACTIONS = "wizard_actions"  # 3: the list of steps
    STEP = "wizard_step"  # pushed over 3: one step, new or edited
    ENABLE = "wizard_enable"  # 4: summary, audience, draft or live
    LOADING = "wizard_loading"  # shown while a view that needs queries is built
    DONE = "wizard_done"  # the outcome (saved, refused, failed)


class WizardBlock(StrEnum):
    """block_id (and the action_id of its element) of the wizard's inputs."""

    NAME = "wz_name"
    DESCRIPTION = "wz_description"
    OBJECT = "wz_object"  # dispatches: the segment list depends on it
    KIND = "wz_kind"  # dispatches: the fields shown depend on it
    SEGMENT = "wz_segment"  # a static select, or an external one past 100 segments
    STAGE = "wz_stage"  # the same
    WHEN = "wz_when"
    HEALTH = "wz_health"  # drop, rise or change
    HEALTH_TO = "wz_health_to"
    HEALTH_FROM = "wz_health_from"
    EVENT = "wz_event"
    WHERE = "wz_where"
    ONLY_IF = "wz_only_if"
    ENROLLMENT = "wz_enrollment"
    EXIT_IF = "wz_exit_if"  # on the Actions modal: ends an enrollment whenever it holds
    STEP_ACTION = "wz_step_action"  # dispatches: the fields shown depend on it
    # A field of the same name is the same block whatever the action (to, subject, body):
    # what was typed survives a change of action, and an error finds its field.
    EMAIL_TO = "wz_email_to"
    EMAIL_SUBJECT = "wz_email_subject"
    EMAIL_BODY = "wz_email_body"
    EMAIL_APPROVAL = "wz_email_approval"
    SLACK_CHANNEL = "wz_slack_channel"
    SLACK_TEXT = "wz_slack_text"
    WEBHOOK_URL = "wz_webhook_url"
    UPDATE_FIELD = "wz_update_field"
    UPDATE_VALUE = "wz_update_value"
    OWNER_ASSIGN = "wz_owner_assign"
    OWNER_USERS = "wz_owner_users"
    OWNER_NOTIFY = "wz_owner_notify"
    TASK_DUE = "wz_task_due"
    STEP_DELAY = "wz_step_delay"
    STEP_ONLY_IF = "wz_step_only_if"
    MODE = "wz_mode"  # draft or live
    NAV = "wz_nav"  # the actions block holding Back / Add a step


class WizardAction(StrEnum):
    """action_id of the wizard's buttons and menus."""

    OPEN = "wizard_open"  # a "New workflow" button anywhere (App Home, help): opens the wizard
    BACK = "wizard_back"
    ADD_STEP = "wizard_add_step"  # pushes the step modal
    # The overflow of a listed step: value "edit:3", "up:3", "down:3" or "remove:3".
    STEP_MENU = "wizard_step_menu"
