"""`/workflow segment new`: the segment modal used like a person would, through signed
requests to the real web app, reading each view from what the bot sent to the Slack
stand-in (views.open / views.update, or a submission's own answer)."""

from __future__ import annotations

import itertools
import json
from collections.abc import Iterator
from typing import Any

import pytest
from sqlalchemy import select

from blocks import segments as views
from blocks.segment_ids import SegmentAction, SegmentBlock, SegmentModal
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Segment
from tests.blocks.limits import checked_view
from tests.bot.slack_requests import USER, SlackSender, interaction, slack_web_app
from tests.bot.wizard_person import VIEW_METHODS, typed_values
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.slack_peer import TEAM, SlackPeer

STRANGER = "U0STRANGER"
_n = itertools.count(1)


def sent(peer: SlackPeer) -> list[tuple[str, dict[str, Any]]]:
    """Every views.* call the bot made, in order: (method, params with the view parsed)."""
    found = []
    for call in peer.calls:
        if call.method in VIEW_METHODS:
            params = dict(call.params)
            if isinstance(params["view"], str):
                params["view"] = json.loads(params["view"])
            found.append((call.method, params))
    return found


def assert_valid(view: dict[str, Any]) -> None:
    """slack_sdk's checks and every limit tests/blocks/limits.py knows."""
    checked_view(view)


class Admin:
    """Someone in front of the segment modal: types, picks, clicks, saves."""

    def __init__(self, slack: SlackSender, peer: SlackPeer, user: str = USER) -> None:
        self.slack, self.peer, self.user = slack, peer, user
        self.view: dict[str, Any] = {}
        self.answered: list[dict[str, Any]] = []
        self.hash = ""

    def _next_sent(self, before: int) -> dict[str, Any]:
        wait_until(lambda: len(sent(self.peer)) > before)
        return sent(self.peer)[-1][1]

    def start(self) -> None:
        before = len(sent(self.peer))
        response = self.slack.command("segment new", user_id=self.user)
        assert response.status_code == 200 and not response.content.strip()  # acked empty
        self.view = self._next_sent(before)["view"]

    def _payload_view(self, answers: dict[str, str]) -> dict[str, Any]:
        values = typed_values(self.view, answers)["values"]
        self.hash = f"hash-{next(_n)}"
        return self.view | {
            "id": "V1",
            "team_id": TEAM,
            "hash": self.hash,
            "state": {"values": values},
        }

    def _base(self) -> dict[str, Any]:
        return {
            "team": {"id": TEAM},
            "user": {"id": self.user},
            "api_app_id": "A0WFB0001",
            "token": "legacy-verification-token",
            "trigger_id": f"9.{next(_n)}.abc",
        }

    def click(self, action_id: str, *, value: str | None = None, **answers: str) -> dict[str, Any]:
        """Click Count members (or pick `value` in the object select); the views.update call."""
        before = len(sent(self.peer))
        action: dict[str, Any] = {"action_id": action_id, "block_id": "x", "action_ts": "1.0"}
        if value is not None:
            action |= {"type": "static_select", "selected_option": {"value": value}}
            answers[action_id] = value
        else:
            action |= {"type": "button"}
        payload = self._base() | {
            "type": "block_actions",
            "container": {"type": "view", "view_id": "V1"},
            "view": self._payload_view(answers),
            "actions": [action],
        }
        assert self.slack.send(interaction(payload)).status_code == 200
        update = self._next_sent(before)
        self.view = update["view"]
        return update

    def submit(self, **answers: str) -> dict[str, Any]:
        """Press Save; the answer (errors, or the loading view) — the view now is the last sent."""
        before = len(sent(self.peer))
        payload = self._base() | {"type": "view_submission", "view": self._payload_view(answers)}
        response = self.slack.send(interaction(payload))
        assert response.status_code == 200
        answer: dict[str, Any] = response.json() if response.content.strip() else {}
        if answer.get("response_action") == "update":
            self.answered.append(answer["view"])
            assert answer["view"]["callback_id"] == SegmentModal.LOADING
            self.view = self._next_sent(before)["view"]
        return answer

    def count_text(self) -> str:
        [count] = [b for b in self.view["blocks"] if b.get("block_id") == SegmentBlock.COUNT]
        return str(count["text"]["text"])

    def text(self) -> str:
        return json.dumps(self.view)


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(update={"slack_admins": [USER]})
    with slack_web_app(rt, peer) as sender:
        yield sender


def segments(rt: Runtime) -> list[tuple[str, str, str]]:
    with session_scope(rt.db) as s:
        return [(x.name, x.object_type, x.rule) for x in s.scalars(select(Segment))]


def test_count_members_then_save_a_segment_that_triggers_workflows(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    flow = Flow(rt)
    flow.group("acme", name="Acme", plan="trial")
    flow.group("globex", name="Globex", plan="trial")
    flow.group("initech", name="Initech", plan="pro")
    flow.identify("u-ana", email="ana@acme.example", plan="trial")
    ana = Admin(slack, peer)

    ana.start()
    assert ana.view["callback_id"] == SegmentModal.NEW
    assert [b.get("block_id") for b in ana.view["blocks"]] == [
        SegmentBlock.NAME,
        SegmentBlock.OBJECT,
        SegmentBlock.RULE,
        SegmentBlock.TOOLS,
    ]
    assert 'plan = \\"trial\\" and health = \\"bad\\"' in ana.text()  # the rule's example

    trial = 'plan = "trial"'
    update = ana.click(
        SegmentAction.COUNT, **{SegmentBlock.NAME: "Trials", SegmentBlock.RULE: trial}
    )
    assert update["hash"] == ana.hash  # redrawn only over the view clicked
    assert "*2 accounts* match now" in ana.count_text()
    assert f'"initial_value": {json.dumps(trial)}' in ana.text()  # what was typed stays

    ana.click(SegmentBlock.OBJECT, value="contact")
    assert "*1 contact* matches now" in ana.count_text()
    ana.click(SegmentBlock.OBJECT, value="account")
    assert "*2 accounts* match now" in ana.count_text()

    ana.click(SegmentAction.COUNT, **{SegmentBlock.RULE: 'plan = "trial" and\nmrr >'})
    assert "2:6: expected a value" in ana.count_text()
    bad = ana.submit(**{SegmentBlock.RULE: "plan = "})
    assert bad["response_action"] == "errors"
    assert bad["errors"][SegmentBlock.RULE].startswith("1:8: expected a value")
    assert set(bad["errors"]) == {SegmentBlock.RULE}
    unknown = ana.submit(**{SegmentBlock.RULE: 'health = "great"'})
    assert "not a health bucket" in unknown["errors"][SegmentBlock.RULE]
    assert segments(rt) == []

    assert ana.submit(**{SegmentBlock.RULE: trial}) == {
        "response_action": "update",
        "view": ana.answered[-1],
    }
    assert ana.view["callback_id"] == SegmentModal.DONE
    assert (
        "Segment *Trials* saved: 2 accounts in it now; use it in `/workflow new` as a trigger."
        in ana.text()
    )
    assert segments(rt) == [("Trials", "account", trial)]
    assert flow.members("Trials") == {"acme", "globex"}

    flow.workflow(
        name="Trial welcome",
        trigger={"segment": "Trials", "when": "enter"},
        steps=[{"action": "update", "set": {"stage": "Adoption"}}],
    )
    flow.group("hooli", name="Hooli", plan="trial")
    flow.evaluate()
    assert flow.members("Trials") == {"acme", "globex", "hooli"}
    assert [e for e, _ in flow.enrollments("Trial welcome")] == ["hooli"]

    for _, params in sent(peer):
        assert_valid(params["view"])
    for view in ana.answered:
        assert_valid(view)


def test_a_name_in_use_is_refused_on_the_name_field(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    Flow(rt).segment("Trials", 'plan = "trial"')
    ana = Admin(slack, peer)
    ana.start()
    answer = ana.submit(**{SegmentBlock.NAME: "  TRIALS ", SegmentBlock.RULE: 'plan = "pro"'})
    assert answer["response_action"] == "errors"
    assert "exists" in answer["errors"][SegmentBlock.NAME]
    assert len(answer["errors"][SegmentBlock.NAME]) <= 150
    assert segments(rt) == [("Trials", "account", 'plan = "trial"')]


def test_someone_who_is_not_an_admin_is_told_why(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    stranger = Admin(slack, peer, user=STRANGER)
    stranger.start()
    wait_until(lambda: any(m == "views.update" for m, _ in sent(peer)))
    method, params = sent(peer)[-1]
    assert method == "views.update"
    assert params["view"]["callback_id"] == SegmentModal.DONE
    assert "cannot create segments" in json.dumps(params["view"])
    assert "Only Slack admins" in json.dumps(params["view"])

    stranger.view = sent(peer)[0][1]["view"]  # a Save sent from the form anyway is refused too
    stranger.submit(**{SegmentBlock.NAME: "Trials", SegmentBlock.RULE: 'plan = "trial"'})
    assert "Only Slack admins" in stranger.text()
    assert segments(rt) == []


@pytest.mark.parametrize("text", ["segment", "segment list", "segment new please"])
def test_anything_but_segment_new_answers_the_usage(
    slack: SlackSender, peer: SlackPeer, text: str
) -> None:
    response = slack.command(text)
    assert response.json()["text"] == "Usage: `/workflow segment new`"
    assert sent(peer) == []


def test_every_view_is_valid_with_extreme_text() -> None:
    name, rule = "<!channel> & " + "n" * 5000, "`x` = 1 and " * 1000
    form = views.SegmentForm(name=name, object="contact", rule=rule)
    for view in (
        views.new_view(form),
        views.new_view(form, views.Count("contact", members=1)),
        views.new_view(form, views.Count("contact", error=f"1:1: {name}")),
        views.loading_view(name),
        views.done_view(views.saved_text(name, "contact", 10**9)),
        views.done_view(views.not_saved_text(name)),
        views.done_view(views.refused_text(name)),
    ):
        assert_valid(view)
        shown = [b["text"]["text"] for b in view["blocks"] if b["type"] == "section"]
        assert not any("<!channel>" in text for text in shown)  # escaped in mrkdwn
