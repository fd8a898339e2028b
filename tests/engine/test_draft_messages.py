"""Approval messages (issue 6, part 4; RELIABILITY 6, 12, 13, 14): a workflow's email step
makes a draft, `draft_messages.sync` posts it to the Slack stand-in with its buttons and
its key in the metadata, and every later state of the draft (approved, sent, discarded,
expired, withdrawn, failed, unknown, edited) is mirrored by chat.update; a pass that died
after posting, concurrent passes, 429s and refusals never post twice or hammer Slack."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import select, update

from blocks.approval_ids import DraftAction
from engine import draft_messages, drafts
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from storage.action_models import Draft
from storage.db import session_scope
from storage.queries import drafts as draft_rows
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.slack_peer import SlackPeer, slack_peer
from tests.smtp_peer import SmtpPeer

PENDING_BUTTONS = [
    DraftAction.APPROVE,
    DraftAction.EDIT,
    DraftAction.DISCARD,
    DraftAction.EXIT,
]


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer() as running:
        yield running


@pytest.fixture
def channel(peer: SlackPeer) -> str:
    return peer.add_channel("cs-approvals")


@pytest.fixture
def flow(rt: Runtime, smtp: SmtpPeer, peer: SlackPeer) -> Flow:
    clock = ManualClock()
    rt.clock = clock
    rt.settings = rt.settings.model_copy(
        update={
            "smtp_url": smtp.url(),
            "email_from": "CS Team <cs@acme.example>",
            "approval_channel": "#cs-approvals",
            "slack_bot_token": peer.token,
            "slack_api_url": peer.url,
        }
    )
    peer.now = lambda: clock.now().timestamp()  # message ts on the test's clock
    return Flow(rt)


def welcome(flow: Flow, **step: Any) -> None:
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Welcome",
        trigger={"segment": "Trials"},
        exit_if='status = "paying"',
        steps=[
            {
                "action": "email",
                "kind": "html",
                "to": ["{{ account.primary_contact.email }}"],
                "subject": "Welcome to Acme, {{ account.name }}",
                "body": "<p>Hi {{ account.primary_contact.first_name }},</p><p>Welcome!</p>",
                **step,
            }
        ],
    )


def trial(flow: Flow, name: str = "Acme") -> None:
    flow.identify("ada", email="ada@globex.example", first_name="Ada")
    flow.group("acme", user="ada", name=name, plan="trial", owner="ana@acme.example")
    flow.evaluate()
    flow.run()


def advance(flow: Flow, **delta: float) -> None:
    clock = flow.rt.clock
    assert isinstance(clock, ManualClock)
    clock.advance(**delta)


def sync(flow: Flow) -> int:
    return draft_messages.sync(flow.rt.db, flow.rt.settings, flow.rt.clock.now())


def the_draft(flow: Flow) -> Draft:
    with session_scope(flow.rt.db) as s:
        [draft] = s.scalars(select(Draft))
        s.expunge(draft)
        return draft


def decide(flow: Flow, how: Any, by: str = "U0ANA") -> None:
    with session_scope(flow.rt.db) as s:
        how(s, the_draft(flow).id, by=by, now=flow.rt.clock.now())


def the_message(peer: SlackPeer, channel: str) -> dict[str, Any]:
    [message] = peer.messages(channel)
    for block in message["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    return message


def buttons(message: dict[str, Any]) -> list[tuple[str, str]]:
    """(action_id, value) of every button in the message, in order."""
    found = []
    for block in message["blocks"]:
        elements = block.get("elements", []) if block["type"] == "actions" else []
        if block.get("accessory"):
            elements = [block["accessory"]]
        found += [(e["action_id"], e["value"]) for e in elements if e["type"] == "button"]
    return found


def shown(message: dict[str, Any], kinds: tuple[str, ...] = ("mrkdwn", "plain_text")) -> str:
    """Every text (of these kinds) of the message's blocks, joined."""
    texts: list[str] = []

    def walk(value: Any) -> None:
        if isinstance(value, dict):
            if value.get("type") in kinds:
                texts.append(value["text"])
            for item in value.values():
                walk(item)
        elif isinstance(value, list):
            for item in value:
                walk(item)

    walk(message["blocks"])
    return "\n".join(texts)


def posts(peer: SlackPeer) -> int:
    return len(peer.calls_to("chat.postMessage"))


def test_a_pending_draft_is_posted_once_with_its_buttons_and_key(
    flow: Flow, peer: SlackPeer, channel: str
) -> None:
    welcome(flow)
    trial(flow)
    assert sync(flow) == 1
    draft = the_draft(flow)
    message = the_message(peer, channel)
    assert message["metadata"]["event_payload"] == {"key": f"draft-{draft.id}"}
    assert buttons(message) == [(str(a), str(draft.id)) for a in PENDING_BUTTONS]
    [approve] = [
        e
        for b in message["blocks"]
        if b["type"] == "actions"
        for e in b["elements"]
        if e["action_id"] == DraftAction.APPROVE
    ]
    assert approve["style"] == "primary" and approve["confirm"]["confirm"]["text"] == "Send"
    text = shown(message)
    for expected in [
        "*To:* ada@globex.example",
        "*Subject:* Welcome to Acme, Acme",
        "Hi Ada,\n\nWelcome!",  # the HTML body as text
        "*Account:* Acme",
        "*Owner:* ana@acme.example",
        "*Workflow:* Welcome, step 1",
    ]:
        assert expected in text, text
    assert (draft.slack_channel, draft.slack_ts, draft.slack_status) == (
        channel,
        message["ts"],
        "pending",
    )
    assert sync(flow) == 0  # nothing changed: nothing posted, nothing updated
    assert posts(peer) == 1 and peer.calls_to("chat.update") == []


def test_approve_then_send_updates_the_message_and_removes_the_buttons(
    flow: Flow, peer: SlackPeer, channel: str, smtp: SmtpPeer
) -> None:
    welcome(flow)
    trial(flow)
    sync(flow)
    decide(flow, drafts.approve)
    assert sync(flow) == 1  # approved, not yet sent: says so, and the buttons are gone
    message = the_message(peer, channel)
    assert buttons(message) == []
    assert "Approved by <@U0ANA>" in shown(message) and "sending" in shown(message)
    advance(flow, minutes=1)
    flow.run()
    assert len(smtp.received) == 1
    assert sync(flow) == 1
    message = the_message(peer, channel)
    text = shown(message)
    assert "Sent <!date^" in text and "approved by <@U0ANA> <!date^" in text
    assert "{date_short_pretty} {time}|" in text
    assert buttons(message) == [] and message["text"].startswith("Email sent:")
    assert [c.params["ts"] for c in peer.calls_to("chat.update")] == [message["ts"]] * 2
    assert posts(peer) == 1 and the_draft(flow).slack_status == "sent"
    assert sync(flow) == 0


@pytest.mark.parametrize(
    ("decision", "expected"),
    [
        ("discard", "Discarded by <@U0BOB>"),
        ("expire", "Expired <!date^"),
        ("exit", "Withdrawn <!date^"),
    ],
)
def test_discard_expiry_and_an_exit_are_shown_without_buttons(
    flow: Flow, peer: SlackPeer, channel: str, decision: str, expected: str
) -> None:
    welcome(flow, approval_timeout="2d")
    trial(flow)
    sync(flow)
    if decision == "discard":
        decide(flow, drafts.discard, by="U0BOB")
    elif decision == "expire":
        advance(flow, days=2, seconds=1)
        assert flow.scheduler().expire_drafts() == 1
    else:
        flow.group("acme", status="paying")
        flow.evaluate()
    assert sync(flow) == 1
    message = the_message(peer, channel)
    assert expected in shown(message) and buttons(message) == []
    assert the_draft(flow).slack_status == the_draft(flow).status


def test_a_failed_send_shows_the_providers_error_and_a_retry_button(
    flow: Flow, peer: SlackPeer, channel: str, smtp: SmtpPeer
) -> None:
    welcome(flow)
    trial(flow)
    sync(flow)
    smtp.mail_reply = "530 5.7.0 authentication <required>"
    decide(flow, drafts.approve)
    flow.run()
    draft = the_draft(flow)
    assert draft.status == "failed"
    sync(flow)
    message = the_message(peer, channel)
    assert "530 5.7.0 authentication &lt;required&gt;" in shown(message)
    assert buttons(message) == [(str(DraftAction.RETRY), str(draft.id))]
    smtp.mail_reply = None
    decide(flow, drafts.send_again)
    flow.run()
    sync(flow)
    assert "Sent <!date^" in shown(the_message(peer, channel))
    assert len(smtp.received) == 1


def test_an_unknown_send_says_it_may_have_been_sent_with_mark_sent_and_send_again(
    flow: Flow, peer: SlackPeer, channel: str, smtp: SmtpPeer
) -> None:
    welcome(flow)
    trial(flow)
    sync(flow)
    smtp.drop_after_data = True
    decide(flow, drafts.approve)
    flow.run()
    draft = the_draft(flow)
    assert draft.status == "unknown"
    sync(flow)
    message = the_message(peer, channel)
    assert "may have been sent" in shown(message)
    assert buttons(message) == [
        (str(DraftAction.MARK_SENT), str(draft.id)),
        (str(DraftAction.SEND_AGAIN), str(draft.id)),
    ]
    decide(flow, drafts.mark_sent, by="U0CAROL")
    sync(flow)
    message = the_message(peer, channel)
    assert "Marked sent by <@U0CAROL>" in shown(message) and buttons(message) == []


def test_a_pass_that_died_after_posting_finds_its_message_and_does_not_post_again(
    flow: Flow, peer: SlackPeer, channel: str
) -> None:
    welcome(flow)
    trial(flow)
    sync(flow)
    [first] = peer.messages(channel)
    with session_scope(flow.rt.db) as s:  # the ts was never stored
        s.execute(update(Draft).values(slack_ts=None, slack_channel=None))
    assert sync(flow) == 1
    assert posts(peer) == 1 and len(peer.calls_to("conversations.history")) == 1
    draft = the_draft(flow)
    assert (draft.slack_channel, draft.slack_ts, draft.slack_status) == (
        channel,
        first["ts"],
        "pending",
    )


def test_a_claim_left_by_a_dead_pass_is_taken_over_after_its_lease(
    flow: Flow, peer: SlackPeer, channel: str
) -> None:
    welcome(flow)
    trial(flow)
    sync(flow)
    with session_scope(flow.rt.db) as s:  # claimed, posted, and the pass died
        s.execute(
            update(Draft).values(
                slack_ts=None, slack_status=draft_rows.SLACK_CLAIMED, updated_at=flow.rt.clock.now()
            )
        )
    decide(flow, drafts.discard)  # decided meanwhile: the message must still say so
    assert sync(flow) == 0  # the claim is fresh: left alone
    advance(flow, seconds=draft_messages.CLAIM_LEASE.total_seconds() + 1)
    assert sync(flow) == 1
    message = the_message(peer, channel)
    assert posts(peer) == 1 and "Discarded by <@U0ANA>" in shown(message)
    assert the_draft(flow).slack_status == "discarded"


def test_a_draft_decided_before_it_was_ever_posted_is_never_posted(
    flow: Flow, peer: SlackPeer, channel: str
) -> None:
    welcome(flow)
    trial(flow)
    decide(flow, drafts.discard)
    assert sync(flow) == 0
    assert peer.calls == []


def test_concurrent_passes_post_one_message(flow: Flow, peer: SlackPeer, channel: str) -> None:
    welcome(flow)
    trial(flow)
    peer.delay = 0.2  # every pass is inside its Slack call at once
    start = threading.Barrier(4)

    def one_pass() -> None:
        start.wait()
        sync(flow)

    threads = [threading.Thread(target=one_pass) for _ in range(4)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert posts(peer) == 1 and len(peer.messages(channel)) == 1
    assert the_draft(flow).slack_ts == peer.messages(channel)[0]["ts"]


def test_record_values_are_escaped(flow: Flow, peer: SlackPeer, channel: str) -> None:
    welcome(flow)
    trial(flow, name="<!channel> & <https://evil.example|click>")
    sync(flow)
    message = the_message(peer, channel)
    parsed = shown(message, ("mrkdwn",)) + message["text"]  # what Slack parses for mentions
    assert "<!channel>" not in parsed and "<https://evil" not in parsed
    assert "*Account:* &lt;!channel&gt; &amp; &lt;https://evil.example|click&gt;" in parsed
    # plain_text (the confirm dialog) is never parsed: there it is literal as it is
    assert "<!channel> & <https://evil.example|click> leaves Welcome" in shown(
        message, ("plain_text",)
    )


def test_a_429_leaves_the_draft_for_the_next_pass_without_sleeping(
    flow: Flow, peer: SlackPeer, channel: str
) -> None:
    welcome(flow)
    trial(flow)
    peer.rate_limit("chat.postMessage", 30)
    started = time.monotonic()
    assert sync(flow) == 0
    assert time.monotonic() - started < 5
    assert the_draft(flow).slack_ts is None and peer.messages(channel) == []
    assert sync(flow) == 1  # the next tick: looked for first (it may have gone), then posted
    assert posts(peer) == 2 and len(peer.messages(channel)) == 1
    assert the_draft(flow).slack_status == "pending"


def test_the_bot_joins_a_public_channel_it_is_not_in(flow: Flow, peer: SlackPeer) -> None:
    channel = peer.add_channel("cs-approvals", member=False)
    welcome(flow)
    trial(flow)
    assert sync(flow) == 1
    assert [c.method for c in peer.calls] == [
        "conversations.list",
        "chat.postMessage",
        "conversations.join",
        "chat.postMessage",
    ]
    assert len(peer.messages(channel)) == 1


def test_a_refusal_is_logged_and_tried_again_only_after_the_backoff(
    flow: Flow, peer: SlackPeer, caplog: pytest.LogCaptureFixture
) -> None:
    welcome(flow)  # and no #cs-approvals channel in the workspace
    trial(flow)
    assert sync(flow) == 0
    assert "Slack answered channel_not_found" in caplog.text
    calls = len(peer.calls)
    advance(flow, minutes=1)
    assert sync(flow) == 0 and len(peer.calls) == calls  # not hammered
    channel = peer.add_channel("cs-approvals")
    advance(flow, seconds=draft_messages.ERROR_BACKOFF.total_seconds())
    assert sync(flow) == 1
    assert len(peer.messages(channel)) == 1


def test_an_edit_redraws_the_message(flow: Flow, peer: SlackPeer, channel: str) -> None:
    welcome(flow)
    trial(flow)
    sync(flow)
    draft_id = the_draft(flow).id
    with session_scope(flow.rt.db) as s:
        drafts.edit(s, draft_id, by="U0ANA", now=flow.rt.clock.now(), subject="Welcome aboard")
        draft_rows.resync_slack(s, draft_id=draft_id)
    assert sync(flow) == 1
    message = the_message(peer, channel)
    assert "*Subject:* Welcome aboard" in shown(message) and "(edited)" in shown(message)
    assert len(buttons(message)) == 4 and the_draft(flow).slack_status == "pending"


def test_a_deleted_message_of_a_pending_draft_is_posted_anew(
    flow: Flow, peer: SlackPeer, channel: str
) -> None:
    welcome(flow)
    trial(flow)
    sync(flow)
    peer.channels[channel].messages.clear()
    with session_scope(flow.rt.db) as s:
        draft_rows.resync_slack(s, draft_id=the_draft(flow).id)
    sync(flow)  # the update finds no message
    assert sync(flow) == 1
    assert posts(peer) == 2 and the_draft(flow).slack_ts == the_message(peer, channel)["ts"]


def test_without_a_bot_token_nothing_is_done(flow: Flow, peer: SlackPeer) -> None:
    flow.rt.settings = flow.rt.settings.model_copy(update={"slack_bot_token": None})
    welcome(flow)
    trial(flow)
    assert sync(flow) == 0 and peer.calls == []


def test_the_scheduler_tick_keeps_the_messages_in_step(
    flow: Flow, peer: SlackPeer, channel: str
) -> None:
    welcome(flow)
    trial(flow)
    Scheduler(flow.rt, enqueue=lambda ids: None).tick()
    assert len(peer.messages(channel)) == 1
    decide(flow, drafts.discard)
    Scheduler(flow.rt, enqueue=lambda ids: None).tick()
    assert "Discarded" in shown(the_message(peer, channel))


def test_one_post_a_pass_per_channel(flow: Flow, peer: SlackPeer, channel: str) -> None:
    welcome(flow)
    for external in ("acme", "globex"):
        flow.identify(f"ada-{external}", email=f"ada@{external}.example", first_name="Ada")
        flow.group(external, user=f"ada-{external}", name=external.title(), plan="trial")
    flow.evaluate()
    flow.run()
    assert sync(flow) == 1  # about one message a second per channel: one a pass (a tick)
    assert sync(flow) == 1
    assert len(peer.messages(channel)) == 2 and sync(flow) == 0
