"""Someone in front of a modal: reads each view from what the bot sent to the Slack stand-in
(views.open / push / update, or a submission's own answer), fills its inputs like a person,
clicks buttons and submits, through signed requests to the real web app."""

from __future__ import annotations

import itertools
import json
from typing import Any

from blocks.wizard_ids import WizardAction, WizardModal
from tests.blocks.limits import checked_view
from tests.bot.slack_requests import USER, SlackSender, interaction
from tests.helpers import wait_until
from tests.slack_peer import TEAM, SlackPeer

VIEW_METHODS = ("views.open", "views.push", "views.update")
_hashes = itertools.count(1)


def answer_view(peer: SlackPeer, params: dict[str, Any]) -> dict[str, Any]:
    pushed = "trigger_id" in params and peer.calls_to("views.open")
    view_id = params.get("view_id") or ("V2" if pushed else "V1")
    return {"view": {"id": view_id, "hash": f"h{next(_hashes)}"}}


def sent_views(peer: SlackPeer) -> list[dict[str, Any]]:
    """Every view the bot sent through the Web API, in order."""
    found = []
    for call in peer.calls:
        if call.method in VIEW_METHODS:
            view = call.params["view"]
            found.append(json.loads(view) if isinstance(view, str) else view)
    return found


def typed_values(view: dict[str, Any], answers: dict[str, str]) -> dict[str, Any]:
    """`view`'s inputs as Slack reports them in `view.state`: the typed `answers` (by block
    id; a select's value, users and options comma-separated), else what was prefilled."""
    values: dict[str, Any] = {}
    for block in view["blocks"]:
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
        elif kind == "external_select":
            chosen = element.get("initial_option")
            if given is not None:
                chosen = {"text": {"type": "plain_text", "text": given}, "value": given}
            entry = {"type": kind, "selected_option": chosen}
        elif kind == "channels_select":
            entry = {"type": kind, "selected_channel": given or element.get("initial_channel")}
        elif kind == "multi_users_select":
            chosen_users = given.split(",") if given is not None else None
            entry = {
                "type": kind,
                "selected_users": chosen_users or element.get("initial_users", []),
            }
        elif kind == "checkboxes":
            ticked = element.get("initial_options", [])
            if given is not None:
                ticked = [o for o in element["options"] if o["value"] in given.split(",")]
            entry = {"type": kind, "selected_options": ticked}
        else:
            raise AssertionError(f"an input this person cannot fill: {kind}")
        values[block_id] = {element["action_id"]: entry}
    return {"values": values}


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

    def start(self, text: str = "new", *, views: int = 1) -> None:
        """`/workflow TEXT`, as a person types it; the view is the `views`th the bot sends
        (an edit opens a loading view first, then fills it)."""
        before = len(sent_views(self.peer))
        assert self.slack.command(text, user_id=self.user).status_code == 200
        wait_until(lambda: len(sent_views(self.peer)) >= before + views)
        self.view = sent_views(self.peer)[-1]

    def state(self, answers: dict[str, str]) -> dict[str, Any]:
        """The view's inputs as Slack reports them: typed `answers`, else what was prefilled."""
        return typed_values(self.view, answers)

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

    def suggest(self, action_id: str, typed: str) -> list[str]:
        """Type `typed` in an external select: the option values Slack would list."""
        payload = self._base() | {
            "type": "block_suggestion",
            "action_id": action_id,
            "block_id": action_id,
            "value": typed,
            "container": {"type": "view", "view_id": self.view_id},
            "view": self._payload_view({}),
        }
        answer = self.slack.send(interaction(payload))
        assert answer.status_code == 200
        return [o["value"] for o in answer.json()["options"]]

    def blocks(self) -> set[str]:
        return {b.get("block_id", "") for b in self.view["blocks"]}

    def text(self) -> str:
        return json.dumps(self.view)


def assert_valid(view: dict[str, Any]) -> None:
    """slack_sdk's models and every limit tests/blocks/limits.py knows."""
    checked_view(view)
