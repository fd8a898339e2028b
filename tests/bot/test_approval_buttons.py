"""Approve and send from Slack (the Slack issue, part 4; RELIABILITY 13): signed button clicks
through the real web app and Bolt, a real SMTP server, the Slack stand-in. Two people
clicking Approve send one email and the message ends in one final state; someone who is not
an approver is refused, saying why; the edit modal checks its fields before it answers."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import select

from blocks.approval_ids import DraftAction, DraftBlock, DraftInput, DraftModal
from engine import draft_messages
from engine.runtime import Runtime
from storage.action_models import Draft
from storage.db import session_scope
from tests.bot.slack_requests import USER, SlackSender, interaction, slack_web_app
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.slack_peer import TEAM, SlackPeer, slack_peer
from tests.smtp_peer import SmtpPeer

STRANGER = "U0STRANGER"


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer() as found:
        found.on("views.open", lambda peer, params: {"view": {"id": "V1"}})
        yield found


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer, smtp: SmtpPeer) -> Iterator[SlackSender]:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={
            "smtp_url": smtp.url(),
            "email_from": "cs@acme.example",
            "approval_channel": "#cs-approvals",
        }
    )
    with slack_web_app(rt, peer) as sender:
        yield sender


def drafted(rt: Runtime, peer: SlackPeer) -> tuple[Flow, Draft, str]:
    """A pending draft about an account USER owns, posted in #cs-approvals."""
    channel = peer.add_channel("cs-approvals")
    flow = Flow(rt)
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Welcome",
        trigger={"segment": "Trials"},
        steps=[
            {
                "action": "email",
                "to": ["hello@acme.example"],
                "subject": "Welcome, {{ account.name }}",
                "body": "Hi {{ account.name }} team",
            }
        ],
    )
    flow.group("acme", name="Acme", plan="trial", owner=USER)
    flow.evaluate()
    flow.run()
    assert draft_messages.sync(rt.db, rt.settings, rt.clock.now()) == 1
    return flow, the_draft(rt), channel


def the_draft(rt: Runtime) -> Draft:
    with session_scope(rt.db) as s:
        draft = s.scalars(select(Draft)).one()
        s.expunge(draft)
        return draft


def click(
    slack: SlackSender,
    action: DraftAction,
    draft: Draft,
    user: str = USER,
    *,
    answered: bool = True,
) -> dict[str, Any]:
    """Click a button of the draft's message; what the listener answered (ephemeral, after
    the ack: waited for when `answered`)."""
    before = len(slack.responded())
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0WFB0001",
        "token": "legacy-verification-token",
        "trigger_id": "1.2.3",
        "container": {"type": "message", "channel_id": draft.slack_channel},
        "channel": {"id": draft.slack_channel},
        "response_url": slack.response_url(),
        "actions": [
            {
                "type": "button",
                "action_id": str(action),
                "block_id": str(DraftBlock.ACTIONS),
                "value": str(draft.id),
                "action_ts": "1.0",
            }
        ],
    }
    response = slack.send(interaction(payload))
    assert response.status_code == 200
    if not answered:
        return {}
    wait_until(lambda: len(slack.responded()) > before)
    return slack.responded()[-1]


def test_two_approvals_send_one_email_and_the_message_ends_sent(
    rt: Runtime, peer: SlackPeer, smtp: SmtpPeer, slack: SlackSender
) -> None:
    flow, draft, channel = drafted(rt, peer)

    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda _: click(slack, DraftAction.APPROVE, draft, answered=False), [1, 2]))
    wait_until(lambda: len(slack.responded()) == 2)
    said = " ".join(str(answer["text"]) for answer in slack.responded())
    assert "approved: it is sent within seconds" in said
    assert f"cannot be approved: it was already approved by {USER}" in said
    flow.run()
    flow.run()
    assert len(smtp.received) == 1
    draft_messages.sync(rt.db, rt.settings, rt.clock.now())
    [message] = peer.messages(channel)
    assert "actions" not in json.dumps(message.get("blocks"))  # no buttons left
    assert "Sent" in json.dumps(message.get("blocks"))


def test_someone_who_is_not_an_approver_is_refused_and_nothing_changes(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    _, draft, _ = drafted(rt, peer)
    answer = click(slack, DraftAction.DISCARD, draft, user=STRANGER)
    assert "Only the record's owner" in answer["text"]
    assert answer["response_type"] == "ephemeral"
    assert the_draft(rt).status == "pending"


def test_discard_and_exit_from_slack(rt: Runtime, peer: SlackPeer, slack: SlackSender) -> None:
    flow, draft, _ = drafted(rt, peer)
    assert "discarded" in click(slack, DraftAction.DISCARD, draft)["text"]
    assert the_draft(rt).status == "discarded"
    again = click(slack, DraftAction.APPROVE, draft)["text"]
    assert "cannot be approved: it was already discarded" in again
    assert flow.enrollments() == [("acme", "active")]  # the skip runs at the next step run
    flow.run()
    assert flow.enrollments() == [("acme", "completed")]


def test_exit_ends_the_enrollment_and_withdraws_the_draft(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    flow, draft, _ = drafted(rt, peer)
    assert "left the workflow" in click(slack, DraftAction.EXIT, draft)["text"]
    assert the_draft(rt).status == "withdrawn"
    assert flow.enrollments() == [("acme", "exited")]


def edit_submission(draft: Draft, to: str, subject: str) -> dict[str, Any]:
    return {
        "type": "view_submission",
        "team": {"id": TEAM},
        "user": {"id": USER},
        "api_app_id": "A0WFB0001",
        "token": "legacy-verification-token",
        "trigger_id": "1.2.4",
        "view": {
            "id": "V1",
            "type": "modal",
            "team_id": TEAM,
            "callback_id": str(DraftModal.EDIT),
            "private_metadata": str(draft.id),
            "state": {
                "values": {
                    str(DraftBlock.EDIT_TO): {
                        str(DraftInput.TO): {"type": "plain_text_input", "value": to}
                    },
                    str(DraftBlock.EDIT_SUBJECT): {
                        str(DraftInput.SUBJECT): {"type": "plain_text_input", "value": subject}
                    },
                }
            },
        },
    }


def test_edit_opens_a_prefilled_modal_and_checks_fields_before_saving(
    rt: Runtime, peer: SlackPeer, slack: SlackSender
) -> None:
    _, draft, _ = drafted(rt, peer)
    click(slack, DraftAction.EDIT, draft, answered=False)
    wait_until(lambda: bool(peer.calls_to("views.open")))
    [opened] = peer.calls_to("views.open")
    view = opened.params["view"]
    view = json.loads(view) if isinstance(view, str) else view
    assert view["callback_id"] == str(DraftModal.EDIT)
    assert "Welcome, Acme" in json.dumps(view)
    bad = slack.send(interaction(edit_submission(draft, "not an address", "Hi")))
    assert bad.status_code == 200
    answer = bad.json()
    assert answer["response_action"] == "errors"
    assert str(DraftBlock.EDIT_TO) in answer["errors"]
    assert the_draft(rt).subject == "Welcome, Acme"
    good = slack.send(interaction(edit_submission(draft, "ceo@acme.example", "Hello Acme")))
    assert good.status_code == 200 and not good.content.strip()
    wait_until(lambda: the_draft(rt).edited)  # saved after the answer (STYLE habit 1)
    edited = the_draft(rt)
    assert (edited.to, edited.subject, edited.edited) == (["ceo@acme.example"], "Hello Acme", True)
