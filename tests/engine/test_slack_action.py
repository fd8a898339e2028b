"""`action: slack` from a live workflow to the Slack stand-in: the message, its key in the
metadata and its ts on the step run; 429s, pacing, joining, failures and outages as rows
(RELIABILITY 5, 6, 12); record values escaped (14); and the blocks within Block Kit's limits."""

from __future__ import annotations

import time
from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from slack_sdk.models.blocks import Block
from sqlalchemy import select

from blocks.notification import (
    FIELD_TEXT_MAX,
    SECTION_TEXT_MAX,
    escape,
    notification_blocks,
    notification_text,
)
from engine.actions.base import SaveChecks
from engine.actions.slack import SlackAction
from engine.http import SystemResolver
from engine.runtime import Runtime
from engine.settings import Settings
from engine.step_defs import SlackStep
from engine.template_checks import sample_context
from storage.db import session_scope
from storage.workflow_models import StepRun
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.slack_peer import SlackPeer, slack_peer

pytestmark = pytest.mark.both_dbs


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer() as running:
        yield running


@pytest.fixture
def flow(rt: Runtime, peer: SlackPeer) -> Flow:
    clock = ManualClock()
    rt.clock = clock
    rt.settings = rt.settings.model_copy(
        update={"slack_bot_token": peer.token, "slack_api_url": peer.url}
    )
    peer.now = lambda: clock.now().timestamp()  # message ts on the test's clock
    return Flow(rt)


def alert(
    flow: Flow, channel: str = "#alerts", text: str = "New trial: *{{ account.name }}*"
) -> None:
    flow.segment("Trial accounts", 'plan = "trial"')
    flow.workflow(
        name="Trial alert",
        trigger={"segment": "Trial accounts"},
        steps=[{"action": "slack", "channel": channel, "text": text}],
    )


def step_rows(flow: Flow) -> list[StepRun]:
    with session_scope(flow.rt.db) as s:
        return list(s.scalars(select(StepRun).order_by(StepRun.id)))


def start(flow: Flow, *accounts: str, **traits: Any) -> None:
    for external in accounts:
        flow.group(external, name=traits.get("name", external.title()), plan="trial")
    flow.evaluate()


def test_the_message_arrives_with_its_key_and_its_ts_is_kept(flow: Flow, peer: SlackPeer) -> None:
    channel = peer.add_channel("alerts")
    peer.add_channel("elsewhere")
    alert(flow)
    flow.group("acme", name="Acme", plan="trial", mrr=1200, owner_email="sam@example.com")
    flow.evaluate()
    flow.run()
    [message] = peer.messages(channel)
    [row] = step_rows(flow)
    assert row.status == "done"
    assert row.result == {"channel": channel, "ts": message["ts"]}
    assert message["metadata"]["event_payload"] == {"key": row.idempotency_key}
    assert message["text"] == "New trial: *Acme*"
    section, fields = message["blocks"][:2]
    assert section["text"] == {"type": "mrkdwn", "text": "New trial: *Acme*"}
    assert {"type": "mrkdwn", "text": "*Name*\nAcme"} in fields["fields"]
    assert {"type": "mrkdwn", "text": "*MRR*\n1200"} in fields["fields"]
    for block in message["blocks"]:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    assert "step 1 (slack): posted to #alerts" in flow.timeline(["run"])


def test_a_429_reschedules_the_step_at_retry_after_without_sleeping(
    flow: Flow, peer: SlackPeer
) -> None:
    channel = peer.add_channel("alerts")
    alert(flow)
    peer.rate_limit("chat.postMessage", 30)
    start(flow, "acme")
    started = time.monotonic()
    flow.run()
    assert time.monotonic() - started < 5  # the worker's thread did not wait the 30 s
    [row] = step_rows(flow)
    assert (row.status, row.attempt) == ("scheduled", 1)
    assert row.due_at == flow.rt.clock.now() + timedelta(seconds=30)
    assert "retry after 30" in (row.error or "")
    flow.rt.clock.advance(seconds=30)  # type: ignore[attr-defined]
    flow.run()
    assert len(peer.messages(channel)) == 1
    assert step_rows(flow)[0].status == "done"


def test_two_posts_to_one_channel_in_one_second_take_turns(flow: Flow, peer: SlackPeer) -> None:
    channel = peer.add_channel("alerts")
    alert(flow)
    start(flow, "acme", "globex")
    flow.run()
    assert len(peer.messages(channel)) == 1
    first, second = step_rows(flow)
    assert first.status == "done"
    assert (second.status, second.attempt) == ("scheduled", 0)
    assert second.due_at == flow.rt.clock.now() + timedelta(seconds=1)
    flow.rt.clock.advance(seconds=1)  # type: ignore[attr-defined]
    flow.run()
    assert len(peer.messages(channel)) == 2
    assert [(r.status, r.attempt) for r in step_rows(flow)] == [("done", 0), ("done", 0)]


def test_not_in_the_channel_joins_and_posts_once(flow: Flow, peer: SlackPeer) -> None:
    channel = peer.add_channel("alerts", member=False)
    alert(flow)
    start(flow, "acme")
    flow.run()
    assert len(peer.calls_to("conversations.join")) == 1
    assert len(peer.calls_to("chat.postMessage")) == 2  # refused, then posted
    assert len(peer.messages(channel)) == 1
    assert step_rows(flow)[0].status == "done"


def test_a_private_channel_the_bot_is_not_in_fails_with_a_hint(flow: Flow, peer: SlackPeer) -> None:
    channel = peer.add_channel("secret", private=True, member=False)
    alert(flow, channel=channel)
    start(flow, "acme")
    flow.run()
    [failed, _] = flow.timeline(["failed"])
    assert "method_not_supported_for_channel_type" in failed
    assert "invite" in failed
    assert peer.messages(channel) == []


def test_an_unknown_channel_fails_the_step_with_slacks_code(flow: Flow, peer: SlackPeer) -> None:
    alert(flow, channel="#nowhere")
    start(flow, "acme")
    flow.run()
    assert step_rows(flow)[0].status == "failed"
    assert "step 1 (slack) failed: Slack answered channel_not_found" in flow.timeline(["failed"])[0]
    assert flow.enrollments() == [("acme", "failed")]


def test_slack_down_is_retried(flow: Flow, peer: SlackPeer) -> None:
    channel = peer.add_channel("alerts")
    alert(flow)
    peer.unavailable("chat.postMessage", 503)
    start(flow, "acme")
    flow.run()
    [row] = step_rows(flow)
    assert (row.status, row.attempt) == ("scheduled", 1)
    assert "503" in (row.error or "")
    flow.rt.clock.advance(hours=1)  # type: ignore[attr-defined]
    flow.run()
    assert len(peer.messages(channel)) == 1


def test_a_worker_that_died_after_posting_does_not_post_again(flow: Flow, peer: SlackPeer) -> None:
    from engine import runner

    channel = peer.add_channel("alerts")
    alert(flow)
    start(flow, "acme")
    [step_id] = flow.pending
    flow.pending = []
    svc = runner.services(flow.rt)
    with session_scope(flow.rt.db) as s:  # the worker claims the step ...
        call, _ = runner._claim_and_check(s, svc, step_id)
    assert call is not None and call.first_call
    runner._call(svc, call)  # ... posts, and dies before recording it
    assert len(peer.messages(channel)) == 1
    flow.rt.clock.advance(seconds=flow.rt.settings.step_lease_seconds + 1)  # type: ignore[attr-defined]
    flow.run()  # the lease ran out: the step is run again, with the same key
    [row] = step_rows(flow)
    assert (row.status, row.claims) == ("done", 2)
    assert len(peer.messages(channel)) == 1
    assert len(peer.calls_to("chat.postMessage")) == 1
    assert row.result == {"channel": channel, "ts": peer.messages(channel)[0]["ts"]}


def test_a_record_name_cannot_mention_the_channel(flow: Flow, peer: SlackPeer) -> None:
    channel = peer.add_channel("alerts")
    alert(flow)
    flow.group("acme", name="<!channel> & <https://evil.example|co>", plan="trial")
    flow.evaluate()
    flow.run()
    [message] = peer.messages(channel)
    shown = "&lt;!channel&gt; &amp; &lt;https://evil.example|co&gt;"
    assert message["text"] == f"New trial: *{shown}*"
    assert message["blocks"][0]["text"]["text"] == f"New trial: *{shown}*"
    assert {"type": "mrkdwn", "text": f"*Name*\n{shown}"} in message["blocks"][1]["fields"]
    assert "<!channel>" not in str(message)


def test_a_channel_name_is_resolved_once(flow: Flow, peer: SlackPeer) -> None:
    peer.add_channel("general")
    channel = peer.add_channel("alerts")
    alert(flow)
    start(flow, "acme")
    flow.run()
    flow.rt.clock.advance(seconds=5)  # type: ignore[attr-defined]
    start(flow, "globex")
    flow.run()
    assert len(peer.messages(channel)) == 2
    assert len(peer.calls_to("conversations.list")) == 1


def test_no_bot_token_needs_attention(flow: Flow, peer: SlackPeer) -> None:
    flow.rt.settings = flow.rt.settings.model_copy(update={"slack_bot_token": None})
    alert(flow)
    start(flow, "acme")
    flow.run()
    assert step_rows(flow)[0].status == "attention"
    assert flow.timeline(["attention"]) == [
        "step 1 (slack) needs attention: SLACK_BOT_TOKEN is not set"
    ]
    assert peer.calls == []


def test_a_revoked_token_needs_attention(flow: Flow, peer: SlackPeer) -> None:
    peer.add_channel("alerts")
    alert(flow)
    peer.error("conversations.list", "token_revoked")
    start(flow, "acme")
    flow.run()
    [line] = flow.timeline(["attention"])
    assert "token_revoked" in line


def test_a_template_that_fails_at_send_fails_the_step(flow: Flow, peer: SlackPeer) -> None:
    peer.add_channel("alerts")
    alert(flow, text="{{ account.nothing.deeper }}")  # a trait the record lacks
    start(flow, "acme")
    flow.run()
    [failed, _] = flow.timeline(["failed"])
    assert "step 1 (slack) failed: text:" in failed
    assert peer.calls == []


# -- save-time checks and preview ---------------------------------------------------------------
def test_problems_name_unknown_template_names_and_preview_renders() -> None:
    action = SlackAction()
    step = SlackStep(action="slack", channel="#alerts", text="Hi {{ acount.name }}")
    problems = action.problems(
        step,
        "workflows[0].steps[0]",
        SaveChecks(sample_context("account"), [], SystemResolver(), Settings()),
    )
    assert problems and problems[0].startswith("workflows[0].steps[0].text:")
    assert "acount" in problems[0]
    good = SlackStep(action="slack", channel="#alerts", text="Hi {{ account.name }}")
    data = {**sample_context("account"), "account": {"name": "<b>"}}
    preview = action.preview(good, data, Settings())
    assert preview.lines == ("post to #alerts", "Hi &lt;b&gt;")
    assert preview.problem is None


# -- the blocks ---------------------------------------------------------------------------------
def test_the_blocks_respect_block_kit_limits() -> None:
    facts = [(f"Fact {i}", "&" * 3000) for i in range(12)]
    built = notification_blocks("x" * 5000, facts, owner="<@U123> Sam", record_link=None)
    section, fields, context = built
    assert len(section["text"]["text"]) == SECTION_TEXT_MAX
    assert section["text"]["text"].endswith("…")
    assert len(fields["fields"]) == 10
    for field in fields["fields"]:
        assert len(field["text"]) <= FIELD_TEXT_MAX
        assert field["text"].endswith("&amp;…")  # an entity is never cut in half
    assert context["elements"][0]["text"] == "Owner: &lt;@U123&gt; Sam"
    for block in built:
        Block.parse(block).validate_json()  # type: ignore[union-attr]
    assert notification_blocks("", [], None) == []
    assert len(notification_text("y" * 4000)) == SECTION_TEXT_MAX
    assert escape("<!here> & <@U1>") == "&lt;!here&gt; &amp; &lt;@U1&gt;"


def test_a_burst_to_one_channel_waits_in_line_each_step_woken_once(
    flow: Flow, peer: SlackPeer
) -> None:
    channel = peer.add_channel("alerts")
    alert(flow)
    start(flow, *[f"a{i}" for i in range(5)])
    flow.run()
    rows = step_rows(flow)
    now = flow.rt.clock.now()
    assert sorted(r.due_at - now for r in rows if r.status == "scheduled") == [
        timedelta(seconds=i) for i in range(1, 5)
    ]
    for _ in range(4):
        flow.rt.clock.advance(seconds=1)  # type: ignore[attr-defined]
        flow.run()
    assert len(peer.messages(channel)) == 5
    assert all(r.status == "done" and r.claims == 1 for r in step_rows(flow))
    assert peer.calls_to("conversations.history") == []  # no step looked for an earlier post
