"""`/workflow new` (the Slack issue, part 2): the wizard walked like a person would, through
signed requests to the real web app, reading each view from what the bot sent to the Slack
stand-in (views.open / push / update, or the submission's own answer) and filling its inputs.
"""

from __future__ import annotations

import json
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from engine.runtime import Runtime
from storage.db import session_scope
from storage.workflow_models import Workflow, WorkflowVersion
from tests.bot.slack_requests import CHANNEL, USER, SlackSender, slack_web_app
from tests.bot.wizard_person import Person, assert_valid, sent_views
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.slack_peer import SlackPeer

STRANGER = "U0STRANGER"


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(
        update={
            "slack_admins": [USER],
            "approval_channel": "#cs-approvals",
            "email_from": "cs@acme.example",
        }
    )
    with slack_web_app(rt, peer) as sender:
        yield sender


def test_the_wizard_from_workflow_new_to_a_live_workflow(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    flow = Flow(rt)
    flow.segment("Trials", 'plan = "trial"')
    flow.group("acme", name="Acme", plan="trial", status="trial")
    flow.group("globex", name="Globex", plan="trial", status="paying")
    flow.evaluate()
    ana = Person(slack, peer)

    ana.start()
    assert ana.view["callback_id"] == WizardModal.INFO
    missing = ana.submit()
    assert missing["response_action"] == "errors"
    assert WizardBlock.NAME in missing["errors"]
    ana.submit(**{WizardBlock.NAME: "Trial welcome", WizardBlock.DESCRIPTION: "Say hello"})

    assert ana.view["callback_id"] == WizardModal.TRIGGER
    ana.click(WizardBlock.KIND, value="event")
    assert WizardBlock.EVENT in ana.blocks() and WizardBlock.SEGMENT not in ana.blocks()
    ana.click(WizardBlock.KIND, value="segment")
    bad = ana.submit(**{WizardBlock.SEGMENT: "Trials", WizardBlock.ONLY_IF: "status = "})
    assert bad["response_action"] == "errors"
    assert bad["errors"][WizardBlock.ONLY_IF].startswith("1:9: expected a value")

    ana.click(WizardAction.BACK, **{WizardBlock.SEGMENT: "Trials", WizardBlock.ONLY_IF: "status ="})
    assert ana.view["callback_id"] == WizardModal.INFO
    assert "Trial welcome" in ana.text() and "Say hello" in ana.text()  # Back keeps them
    ana.submit()
    assert ana.view["callback_id"] == WizardModal.TRIGGER
    assert '"initial_value": "status ="' in ana.text()  # and what the trigger step had
    ana.submit(**{WizardBlock.ONLY_IF: 'status = "trial"'})

    assert ana.view["callback_id"] == WizardModal.ACTIONS
    assert "submit" not in ana.view  # no Next before a step
    ana.click(WizardAction.ADD_STEP)
    assert ana.view["callback_id"] == WizardModal.STEP
    email = {
        WizardBlock.EMAIL_TO: "{{ account.primary_contact.email }}, cs@acme.example",
        WizardBlock.EMAIL_SUBJECT: "Welcome, {{ account.name",
        WizardBlock.EMAIL_BODY: "Hi {{ account.name }} team",
    }
    broken = ana.submit(**email)
    assert WizardBlock.EMAIL_SUBJECT in broken["errors"]
    fixed = ana.submit(**email | {WizardBlock.EMAIL_SUBJECT: "Welcome, {{ account.name }}"})
    assert fixed == {}, fixed
    assert ana.view["callback_id"] == WizardModal.ACTIONS
    assert "Welcome, {{ account.name }}" in ana.text()

    ana.click(WizardAction.ADD_STEP)
    ana.click(WizardBlock.STEP_ACTION, value="update")
    ana.submit(**{WizardBlock.UPDATE_FIELD: "stage", WizardBlock.UPDATE_VALUE: "Adoption"})
    ana.click(WizardAction.ADD_STEP)
    ana.click(WizardBlock.STEP_ACTION, value="slack")
    ana.submit(
        **{
            WizardBlock.SLACK_CHANNEL: CHANNEL,
            WizardBlock.SLACK_TEXT: ":wave: {{ account.name }} started a trial",
            WizardBlock.STEP_DELAY: "3d",
        }
    )
    listed = [b.get("block_id", "") for b in ana.view["blocks"]]
    assert [b for b in listed if b.startswith("wz_step_")] == [
        "wz_step_0",
        "wz_step_1",
        "wz_step_2",
    ]
    ana.click(WizardAction.STEP_MENU, value="up:2")  # the Slack post before the update
    assert ana.text().index("Post in") < ana.text().index("Set stage")
    ana.click(WizardAction.STEP_MENU, value="remove:2")  # and no update at all
    assert "Set stage" not in ana.text()

    ana.submit()
    assert ana.view["callback_id"] == WizardModal.ENABLE
    assert "1 accounts in segment" in ana.text() or ":busts_in_silhouette: 1 " in ana.text()
    ana.submit(**{WizardBlock.MODE: "live"})
    assert ana.view["callback_id"] == WizardModal.DONE
    assert "is live" in ana.text()

    with session_scope(rt.db) as s:
        workflow = s.scalars(select(Workflow)).one()
        version = s.scalars(select(WorkflowVersion)).one()
        assert (workflow.name, workflow.status, workflow.object_type) == (
            "Trial welcome",
            "live",
            "account",
        )
        assert workflow.live_since is not None
        document = version.document
    assert document["trigger"] == {"segment": "Trials", "when": "enter"}
    assert document["only_if"] == 'status = "trial"'
    assert [step["action"] for step in document["steps"]] == ["email", "slack"]
    assert document["steps"][1]["delay"] == "3d"

    for view in [*sent_views(peer), *ana.answered]:
        assert_valid(view)


def test_someone_who_is_not_an_admin_is_told_why(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    stranger = Person(slack, peer, user=STRANGER)
    stranger.start()
    wait_until(lambda: bool(peer.calls_to("views.update")))
    assert "Only Slack admins" in json.dumps(sent_views(peer)[-1])


def test_a_name_in_use_is_refused_on_the_name_field(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    flow = Flow(rt)
    flow.workflow(
        name="Taken",
        trigger={"event": "signup"},
        steps=[{"action": "update", "set": {"stage": "Adoption"}}],
    )
    ana = Person(slack, peer)
    ana.start()
    answer = ana.submit(**{WizardBlock.NAME: "taken"})
    assert "exists" in answer["errors"][WizardBlock.NAME]
