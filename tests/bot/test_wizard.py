"""`/workflow new` (the Slack issue, part 2): the wizard walked like a person would, through
signed requests to the real web app, reading each view from what the bot sent to the Slack
stand-in (views.open / push / update, or the submission's own answer) and filling its inputs.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.models.views import View
from sqlalchemy import select

from blocks import kit
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from engine.runtime import Runtime
from storage.db import session_scope
from storage.workflow_models import Workflow, WorkflowVersion
from tests.bot.slack_requests import CHANNEL, USER, SlackSender, interaction, slack_web_app
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.slack_peer import TEAM, SlackPeer, slack_peer

STRANGER = "U0STRANGER"
VIEW_METHODS = ("views.open", "views.push", "views.update")
_hashes = itertools.count(1)


def _answer_view(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    pushed = "trigger_id" in params and peer.calls_to("views.open")
    view_id = params.get("view_id") or ("V2" if pushed else "V1")
    return {"view": {"id": view_id, "hash": f"h{next(_hashes)}"}}


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer() as found:
        for method in VIEW_METHODS:
            found.on(method, _answer_view)
        yield found


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


def sent_views(peer: SlackPeer) -> list[dict[str, Any]]:
    """Every view the bot sent through the Web API, in order."""
    found = []
    for call in peer.calls:
        if call.method in VIEW_METHODS:
            view = call.params["view"]
            found.append(json.loads(view) if isinstance(view, str) else view)
    return found


class Person:
    """Someone in front of the wizard: sees the current view, types, clicks, submits."""

    def __init__(self, slack: SlackSender, peer: SlackPeer, user: str = USER) -> None:
        self.slack, self.peer, self.user = slack, peer, user
        self.view: dict[str, Any] = {}
        self.view_id = "V1"
        self.answered: list[dict[str, Any]] = []  # views sent in a submission's answer

    def _await_sent(self, before: int) -> dict[str, Any]:
        wait_until(lambda: len(sent_views(self.peer)) > before)
        return sent_views(self.peer)[-1]

    def start(self) -> None:
        """`/workflow new`, as a person types it."""
        before = len(sent_views(self.peer))
        assert self.slack.command("new", user_id=self.user).status_code == 200
        self.view = self._await_sent(before)

    def state(self, answers: dict[str, str]) -> dict[str, Any]:
        """The view's inputs as Slack reports them: typed `answers`, else what was prefilled."""
        values: dict[str, Any] = {}
        for block in self.view["blocks"]:
            if block["type"] != "input":
                continue
            element, block_id = block["element"], block["block_id"]
            given = answers.get(block_id)
            kind = element["type"]
            if kind == "plain_text_input":
                text = given if given is not None else element.get("initial_value")
                entry: dict[str, Any] = {"type": kind, "value": text or None}
            elif kind in ("static_select", "radio_buttons"):
                chosen = element.get("initial_option")
                if given is not None:
                    [chosen] = [o for o in element["options"] if o["value"] == given]
                entry = {"type": kind, "selected_option": chosen}
            elif kind == "channels_select":
                entry = {"type": kind, "selected_channel": given or element.get("initial_channel")}
            else:
                raise AssertionError(f"an input this person cannot fill: {kind}")
            values[block_id] = {element["action_id"]: entry}
        return {"values": values}

    def _payload_view(self, answers: dict[str, str]) -> dict[str, Any]:
        view = dict(self.view)
        view.update(
            id=self.view_id,
            team_id=TEAM,
            hash="h0",
            state=self.state(answers),
            previous_view_id="V1" if self.view_id == "V2" else None,
        )
        return view

    def _base(self) -> dict[str, Any]:
        return {
            "team": {"id": TEAM},
            "user": {"id": self.user},
            "api_app_id": "A0WFB0001",
            "token": "legacy-verification-token",
            "trigger_id": f"9.{next(_hashes)}.abc",
        }

    def submit(self, **answers: str) -> dict[str, Any]:
        """Press the modal's submit; the answer (errors, or the next view) and the view now."""
        before = len(sent_views(self.peer))
        payload = self._base() | {"type": "view_submission", "view": self._payload_view(answers)}
        response = self.slack.send(interaction(payload))
        assert response.status_code == 200
        answer = response.json() if response.content.strip() else {}
        if answer.get("response_action") == "errors":
            return answer
        if answer.get("response_action") == "update":
            self.answered.append(answer["view"])
            self.view = answer["view"]
            if self.view["callback_id"] == WizardModal.LOADING:
                self.view = self._await_sent(before)
        else:  # closed: the pushed step modal; the view under it is redrawn
            self.view_id = "V1"
            self.view = self._await_sent(before)
        return answer

    def click(self, action_id: str, *, value: str | None = None, **answers: str) -> None:
        """Click a button (or pick `value` in a dispatching select / the step menu)."""
        before = len(sent_views(self.peer))
        action: dict[str, Any] = {"action_id": action_id, "block_id": "x", "action_ts": "1.0"}
        if action_id == WizardAction.STEP_MENU:
            action |= {"type": "overflow", "selected_option": {"value": value}}
        elif value is not None:
            action |= {"type": "static_select", "selected_option": {"value": value}}
            answers[action_id] = value
        else:
            action |= {"type": "button"}
        payload = self._base() | {
            "type": "block_actions",
            "container": {"type": "view", "view_id": self.view_id},
            "view": self._payload_view(answers),
            "actions": [action],
        }
        assert self.slack.send(interaction(payload)).status_code == 200
        wait_until(lambda: len(sent_views(self.peer)) > before)
        call = [c for c in self.peer.calls if c.method in VIEW_METHODS][-1]
        if call.method == "views.push":
            self.view_id = "V2"
        self.view = sent_views(self.peer)[-1]

    def blocks(self) -> set[str]:
        return {b.get("block_id", "") for b in self.view["blocks"]}

    def text(self) -> str:
        return json.dumps(self.view)


def assert_valid(view: dict[str, Any]) -> None:
    View(**view).validate_json()
    assert len(view["blocks"]) <= kit.VIEW_BLOCKS_MAX
    assert len(view.get("private_metadata", "")) <= kit.PRIVATE_METADATA_MAX


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
