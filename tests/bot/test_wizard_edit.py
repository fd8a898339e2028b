"""The wizard beyond a first workflow (the Slack issue, parts 2 and 3): `/workflow edit NAME`
prefilled (a live workflow's running enrollments keep their version), Duplicate from
`/workflow list`'s menu, a step edited in place, the health trigger, an owner step, the exit
condition, a workflow too big for private_metadata, and segments searched past 100 — walked
through signed requests from the views the bot sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from blocks.ids import ActionId
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from engine.runtime import Runtime
from storage.action_models import SlackForm
from storage.db import session_scope
from storage.workflow_models import Enrollment, Workflow, WorkflowVersion
from tests.bot.slack_requests import CHANNEL, USER, SlackSender, interaction, slack_web_app
from tests.bot.wizard_person import Person, assert_valid, sent_views
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.slack_peer import TEAM, SlackPeer

STRANGER = "U0STRANGER"
WELCOME: dict[str, Any] = {
    "name": "Welcome",
    "description": "Greet trials",
    "trigger": {"segment": "Trials"},
    "exit_if": 'status = "paying"',
    "on_failure": "continue",
    "steps": [
        {
            "action": "email",
            "to": ["{{ account.primary_contact.email }}"],
            "subject": "Welcome, {{ account.name }}",
            "body": "Hi!",
            "approval": "#cs-approvals",
            "approval_timeout": "3d",
        },
        {"action": "slack", "channel": "#cs-alerts", "text": "{{ account.name }} joined"},
    ],
}


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(
        update={"slack_admins": [USER], "email_from": "cs@acme.example"}
    )
    with slack_web_app(rt, peer) as sender:
        yield sender


def stored(rt: Runtime, name: str) -> tuple[Workflow, dict[str, Any]]:
    with session_scope(rt.db) as s:
        workflow = s.scalars(select(Workflow).where(Workflow.name == name)).one()
        version = s.scalars(
            select(WorkflowVersion).where(
                WorkflowVersion.workflow_id == workflow.id,
                WorkflowVersion.number == workflow.version,
            )
        ).one()
        s.expunge(workflow)
        return workflow, dict(version.document)


def welcome(rt: Runtime) -> Flow:
    """The live Welcome workflow (version 1) with Acme enrolled in it."""
    flow = Flow(rt)
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(**WELCOME)
    flow.group("acme", name="Acme", plan="trial")
    flow.evaluate()
    assert flow.enrollments("Welcome") == [("acme", "active")]
    return flow


def test_edit_a_live_workflow_prefilled_running_enrollments_keep_their_version(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    welcome(rt)
    ana = Person(slack, peer)
    ana.start("edit welcome", views=2)  # a loading view at once, then the wizard
    assert ana.view["callback_id"] == WizardModal.INFO
    assert "Edit workflow" in ana.text()
    assert "keep running version 1" in ana.text()
    assert WizardBlock.NAME not in ana.blocks()  # a workflow keeps its name
    assert '"initial_value": "Greet trials"' in ana.text()
    ana.submit()
    assert ana.view["callback_id"] == WizardModal.TRIGGER
    assert WizardBlock.OBJECT not in ana.blocks()  # nor its object
    ana.submit()
    assert ana.view["callback_id"] == WizardModal.ACTIONS
    assert 'status = \\"paying\\"' in ana.text()  # the exit condition, prefilled

    ana.click(WizardAction.STEP_MENU, value="edit:1")
    assert ana.view["callback_id"] == WizardModal.STEP
    assert "Edit step 2" in ana.text() and "Now #cs-alerts" in ana.text()
    assert '"initial_value": "{{ account.name }} joined"' in ana.text()
    assert ana.submit(**{WizardBlock.SLACK_TEXT: "{{ account.name }} is new"}) == {}
    assert ana.view["callback_id"] == WizardModal.ACTIONS
    assert "is new" in ana.text() and "joined" not in ana.text()

    ana.submit()
    assert ana.view["callback_id"] == WizardModal.ENABLE
    assert "keep it live" in ana.text()
    ana.submit()
    assert ana.view["callback_id"] == WizardModal.DONE
    assert "saved as version 2, live" in ana.text()
    assert "keep version 1" in ana.text()

    workflow, doc = stored(rt, "Welcome")
    assert (workflow.version, workflow.status) == (2, "live")
    assert doc["steps"][1] == {
        "action": "slack",
        "channel": "#cs-alerts",
        "text": "{{ account.name }} is new",
    }
    assert doc["steps"][0]["approval"] == "#cs-approvals"  # a channel the picker could not show
    assert doc["steps"][0]["approval_timeout"] == "3d"  # a field the modal does not offer
    assert doc["on_failure"] == "continue" and doc["exit_if"] == 'status = "paying"'
    with session_scope(rt.db) as s:
        enrolled = s.scalars(select(Enrollment)).one()
        first = s.get(WorkflowVersion, enrolled.version_id)
        assert first is not None and first.number == 1
    for view in [*sent_views(peer), *ana.answered]:
        assert_valid(view)


def test_edit_refuses_who_may_not_and_names_it_does_not_know(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    welcome(rt)
    stranger = Person(slack, peer, user=STRANGER)
    stranger.start("edit Welcome", views=2)
    assert "Only this workflow's admins and the Slack admins" in stranger.text()
    ana = Person(slack, peer)
    ana.start("edit Welcom", views=2)
    assert ana.view["callback_id"] == WizardModal.DONE
    assert "Welcome" in ana.text()  # the closest name
    _, doc = stored(rt, "Welcome")
    assert doc["steps"][1]["text"] == "{{ account.name }} joined"


def test_duplicate_from_the_list_menu_saves_a_new_draft(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    welcome(rt)
    original, _ = stored(rt, "Welcome")
    ana = Person(slack, peer)
    before = len(sent_views(peer))
    menu = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": USER},
        "api_app_id": "A0WFB0001",
        "token": "legacy-verification-token",
        "trigger_id": "5.6.7",
        "container": {"type": "message", "channel_id": CHANNEL},
        "channel": {"id": CHANNEL},
        "response_url": slack.response_url(),
        "actions": [
            {
                "type": "static_select",
                "action_id": str(ActionId.WORKFLOW_MENU),
                "block_id": f"workflow:{original.id}",
                "selected_option": {"value": f"duplicate:{original.id}"},
                "action_ts": "1.0",
            }
        ],
    }
    assert slack.send(interaction(menu)).status_code == 200
    wait_until(lambda: len(sent_views(peer)) >= before + 2)
    ana.view = sent_views(peer)[-1]
    assert '"initial_value": "Welcome (copy)"' in ana.text()
    ana.submit()
    ana.submit()
    ana.submit()
    assert ana.view["callback_id"] == WizardModal.ENABLE
    assert "Save as draft" in ana.text()
    ana.submit()
    assert "saved as a draft" in ana.text()
    copy, doc = stored(rt, "Welcome (copy)")
    _, first = stored(rt, "Welcome")
    assert copy.status == "draft" and copy.id != original.id
    assert doc["steps"] == first["steps"] and doc["on_failure"] == "continue"


def test_a_health_trigger_an_owner_step_and_an_exit_condition(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    ana = Person(slack, peer)
    ana.start()
    ana.submit(**{WizardBlock.NAME: "Save the account"})
    ana.click(WizardBlock.KIND, value="health")
    assert {WizardBlock.HEALTH, WizardBlock.HEALTH_TO} <= ana.blocks()
    impossible = ana.submit(**{WizardBlock.HEALTH: "rise", WizardBlock.HEALTH_TO: "bad"})
    assert impossible["response_action"] == "errors", impossible
    ana.submit(**{WizardBlock.HEALTH: "drop", WizardBlock.HEALTH_TO: "bad"})
    assert ana.view["callback_id"] == WizardModal.ACTIONS

    assert WizardBlock.EXIT_IF not in ana.blocks()  # an exit condition needs a step first
    ana.click(WizardAction.ADD_STEP)
    ana.click(WizardBlock.STEP_ACTION, value="owner")
    assert WizardBlock.OWNER_USERS in ana.blocks()
    answer = ana.submit(
        **{
            WizardBlock.OWNER_USERS: "U0AAA0001,U0AAA0002",
            WizardBlock.OWNER_ASSIGN: "round_robin",
            WizardBlock.OWNER_NOTIFY: "yes",
        }
    )
    assert answer == {}, answer
    ana.click(WizardAction.STEP_MENU, value="down:0", **{WizardBlock.EXIT_IF: "health = "})
    assert '"initial_value": "health = "' in ana.text()  # kept when the view is redrawn
    broken = ana.submit()
    assert broken["response_action"] == "errors"
    assert WizardBlock.EXIT_IF in broken["errors"]
    ana.submit(**{WizardBlock.EXIT_IF: 'health = "good"'})
    assert ana.view["callback_id"] == WizardModal.ENABLE
    assert "health drops to bad" in ana.text()
    ana.submit(**{WizardBlock.MODE: "live"})
    assert "is live" in ana.text()

    _, doc = stored(rt, "Save the account")
    assert doc["trigger"] == {"health": "drop", "to": "bad"}
    assert doc["exit_if"] == 'health = "good"'
    assert doc["steps"] == [
        {
            "action": "owner",
            "assign": "round_robin",
            "users": ["U0AAA0001", "U0AAA0002"],
            "notify": True,
        }
    ]


def test_a_workflow_too_big_for_private_metadata_travels_in_a_form_row(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    ana = Person(slack, peer)
    ana.start()
    ana.submit(**{WizardBlock.NAME: "Long letters"})
    ana.click(WizardBlock.KIND, value="event")
    ana.submit(**{WizardBlock.EVENT: "signup"})
    bodies = [f"Letter {n}: " + "Dear customer, " * 150 + "Thanks." for n in range(3)]
    for body in bodies:
        ana.click(WizardAction.ADD_STEP)
        answer = ana.submit(
            **{
                WizardBlock.EMAIL_TO: "ops@acme.example",
                WizardBlock.EMAIL_SUBJECT: "Hello",
                WizardBlock.EMAIL_BODY: body,
                WizardBlock.EMAIL_APPROVAL: CHANNEL,
            }
        )
        assert answer == {}, answer
    assert json.loads(ana.view["private_metadata"]).keys() == {"form"}
    with session_scope(rt.db) as s:
        assert s.scalars(select(SlackForm.slack_user)).all() == [USER]
    ana.submit()
    ana.submit(**{WizardBlock.MODE: "draft"})
    assert "saved as a draft" in ana.text()
    _, doc = stored(rt, "Long letters")
    assert [step["body"] for step in doc["steps"]] == bodies


def test_more_than_a_hundred_segments_are_searched_not_listed(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    flow = Flow(rt)
    for n in range(105):
        flow.segment(f"Cohort {n:03d}", f"seats = {n}")
    ana = Person(slack, peer)
    ana.start()
    ana.submit(**{WizardBlock.NAME: "Cohort 42 hello"})
    [segment] = [b for b in ana.view["blocks"] if b.get("block_id") == WizardBlock.SEGMENT]
    assert segment["element"]["type"] == "external_select"
    assert ana.suggest(WizardBlock.SEGMENT, "042") == ["Cohort 042"]
    assert len(ana.suggest(WizardBlock.SEGMENT, "")) == 100
    ana.submit(**{WizardBlock.SEGMENT: "Cohort 042"})
    assert ana.view["callback_id"] == WizardModal.ACTIONS


def test_a_wizard_whose_form_is_gone_says_so_by_direct_message(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    """A click in a modal has no response_url: the refusal, raised right after the ack, is
    a direct message, and Slack still got its answer at once."""
    ana = Person(slack, peer)
    ana.view = {
        "type": "modal",
        "callback_id": str(WizardModal.ACTIONS),
        "title": {"type": "plain_text", "text": "New workflow"},
        "blocks": [],
        "private_metadata": json.dumps({"form": 987654}),  # purged a week after
    }
    payload = ana._base() | {
        "type": "block_actions",
        "container": {"type": "view", "view_id": "V1"},
        "view": ana._payload_view({}),
        "actions": [{"action_id": str(WizardAction.BACK), "type": "button", "block_id": "x"}],
    }
    answer = slack.send(interaction(payload))
    assert answer.status_code == 200  # the ack, not lost to the error after it
    wait_until(lambda: bool(peer.calls_to("chat.postMessage")))
    [told] = peer.calls_to("chat.postMessage")
    assert told.params["channel"] == USER
    assert "This wizard has expired" in told.params["text"]


def test_an_error_right_after_the_ack_is_answered_by_the_guard_not_bolt(
    peer: SlackPeer,
) -> None:
    """Bolt's thread runner resets an ack whose listener raises within ~10 ms of it (Slack
    would then get no answer); the guard keeps the error from reaching it and tells the user."""
    from slack_bolt.context.ack import Ack
    from slack_bolt.listener.custom_listener import CustomListener
    from slack_sdk import WebClient

    from bot.errors import UserError, guard

    def refuse(ack: Ack) -> None:
        ack()
        raise UserError("Not now.")

    listener = CustomListener(
        app_name="t", ack_function=refuse, lazy_functions=[], matchers=[], middleware=[]
    )
    guard(listener)
    ack = Ack()
    body = {"type": "block_actions", "user": {"id": USER}}
    client = WebClient(token=peer.token, base_url=peer.url)
    listener.ack_function(ack=ack, body=body, respond=None, client=client)  # does not raise
    assert ack.response is not None and ack.response.status == 200
    [told] = peer.calls_to("chat.postMessage")
    assert (told.params["channel"], told.params["text"]) == (USER, "Not now.")

    def refuse_first(ack: Ack) -> None:
        raise UserError("before the ack")

    unacked = CustomListener(
        app_name="t", ack_function=refuse_first, lazy_functions=[], matchers=[], middleware=[]
    )
    guard(unacked)
    with pytest.raises(UserError):  # left to app.error, whose answer is the ack
        unacked.ack_function(ack=Ack(), body=body, respond=None, client=client)
