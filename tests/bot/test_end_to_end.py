"""The Slack issue's whole path, as a team lives it: an admin builds a workflow with
`/workflow new` from the views the bot sent, a contact's event arrives at the ingestion API,
the workflow drafts an email that the bot posts for approval, two people click Approve & send,
one email reaches the (local) SMTP server and the approval message says it was sent."""

from __future__ import annotations

import json
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from sqlalchemy import func, select

from blocks.approval_ids import DraftAction, DraftBlock
from blocks.wizard_ids import WizardAction, WizardBlock, WizardModal
from engine import draft_messages
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import OutboxRow
from tests.bot.slack_requests import USER, SlackSender, interaction, slack_web_app
from tests.bot.wizard_person import Person, assert_valid, sent_views
from tests.conftest import WRITE_KEY
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.slack_peer import TEAM, SlackPeer
from tests.smtp_peer import SmtpPeer

TEAMMATE = "U0CSM0002"


@pytest.fixture
def slack(rt: Runtime, peer: SlackPeer, smtp: SmtpPeer) -> Iterator[SlackSender]:
    rt.settings = rt.settings.model_copy(
        update={
            "slack_admins": [USER, TEAMMATE],
            "approval_channel": "#cs-approvals",
            "email_from": "cs@acme.example",
            "smtp_url": smtp.url(),
        }
    )
    with slack_web_app(rt, peer) as sender:
        yield sender


def approve(slack: SlackSender, channel: str, message: dict[str, Any], user: str) -> None:
    """Click the message's Approve & send in `channel`, as `user` (after the confirm dialog)."""
    [button] = [
        element
        for block in message["blocks"]
        if block["type"] == "actions"
        for element in block["elements"]
        if element["action_id"] == DraftAction.APPROVE
    ]
    assert "confirm" in button  # Slack asks "are you sure?" before it sends the click
    payload = {
        "type": "block_actions",
        "team": {"id": TEAM},
        "user": {"id": user},
        "api_app_id": "A0WFB0001",
        "token": "legacy-verification-token",
        "trigger_id": "1.2.3",
        "container": {"type": "message", "channel_id": channel, "message_ts": message["ts"]},
        "channel": {"id": channel},
        "message": {"ts": message["ts"], "blocks": message["blocks"]},
        "response_url": slack.response_url(),
        "actions": [
            {
                "type": "button",
                "action_id": button["action_id"],
                "block_id": str(DraftBlock.ACTIONS),
                "value": button["value"],
                "action_ts": "1.0",
            }
        ],
    }
    assert slack.send(interaction(payload)).status_code == 200


def test_from_workflow_new_to_one_approved_email(
    rt: Runtime, peer: SlackPeer, smtp: SmtpPeer, slack: SlackSender
) -> None:
    approvals = peer.add_channel("cs-approvals")
    flow = Flow(rt)
    flow.group("acme", user="u-maria", name="Acme", plan="trial", owner=USER)
    flow.identify("u-maria", email="maria@acme.example", first_name="Maria")
    flow.evaluate()

    # An admin builds the workflow in Slack, from the views the bot sends.
    ana = Person(slack, peer)
    ana.start()
    ana.submit(**{WizardBlock.NAME: "Trial kickoff", WizardBlock.DESCRIPTION: "Greet trials"})
    assert ana.view["callback_id"] == WizardModal.TRIGGER
    ana.click(WizardBlock.KIND, value="event")
    ana.submit(**{WizardBlock.EVENT: "Trial Started", WizardBlock.ONLY_IF: 'plan = "trial"'})
    assert ana.view["callback_id"] == WizardModal.ACTIONS
    ana.click(WizardAction.ADD_STEP)
    answer = ana.submit(
        **{
            WizardBlock.EMAIL_TO: "{{ account.primary_contact.email }}",
            WizardBlock.EMAIL_SUBJECT: "Welcome aboard, {{ account.name }}",
            WizardBlock.EMAIL_BODY: "Hi {{ account.primary_contact.first_name }}, welcome!",
        }
    )
    assert answer == {}, answer
    ana.submit()
    assert ana.view["callback_id"] == WizardModal.ENABLE
    ana.submit(**{WizardBlock.MODE: "live"})
    assert "is live" in ana.text()
    for view in [*sent_views(peer), *ana.answered]:
        assert_valid(view)

    # The product's event arrives through the ingestion API of the same web process.
    with session_scope(rt.db) as s:
        outbox_before = s.scalar(select(func.count()).select_from(OutboxRow))
    track = {"type": "track", "userId": "u-maria", "event": "Trial Started", "messageId": "m-1"}
    sent = slack.http.post("/v1/track", json=track, auth=(WRITE_KEY, ""))
    assert sent.status_code == 200, sent.text

    def stored() -> bool:
        with session_scope(rt.db) as s:
            return (s.scalar(select(func.count()).select_from(OutboxRow)) or 0) > (
                outbox_before or 0
            )

    wait_until(stored)
    flow.evaluate()
    flow.run()
    assert flow.enrollments("Trial kickoff") == [("acme", "active")]
    assert smtp.received == []  # nothing leaves before a person approves

    # The draft is posted for approval, with what it says and who it goes to.
    assert draft_messages.sync(rt.db, rt.settings, rt.clock.now()) == 1
    [message] = peer.messages(approvals)
    shown = json.dumps(message["blocks"])
    assert "maria@acme.example" in shown and "Welcome aboard, Acme" in shown

    # Two admins click Approve & send at the same moment: one email.
    with ThreadPoolExecutor(max_workers=2) as pool:
        list(pool.map(lambda user: approve(slack, approvals, message, user), [USER, TEAMMATE]))
    wait_until(lambda: len(slack.responded()) == 2)
    said = " ".join(str(r["text"]) for r in slack.responded())
    assert "approved: it is sent within seconds" in said
    assert "it was already approved by" in said
    flow.run()
    flow.run()
    assert len(smtp.received) == 1
    [mail] = smtp.received
    assert mail.rcpt_tos == ["maria@acme.example"]
    assert "Welcome aboard, Acme" in mail.content.decode()
    assert flow.enrollments("Trial kickoff") == [("acme", "completed")]

    # The approval message now says it was sent, by whom, and has no buttons left.
    draft_messages.sync(rt.db, rt.settings, rt.clock.now())
    [updated] = peer.messages(approvals)
    final = json.dumps(updated["blocks"])
    assert "Sent" in final and "actions" not in final
    assert f"<@{USER}>" in final or f"<@{TEAMMATE}>" in final
    assert peer.calls_to("chat.update")
