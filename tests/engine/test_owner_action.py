"""`action: owner` (issue 5, item 5): fixed or round robin, fair across concurrent runs (a
database counter), written as a change other workflows see, the same pick on a repeat."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import replace
from typing import Any

import pytest
from sqlalchemy import select

from engine import runner
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Account, User
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Sink
from tests.slack_peer import SlackPeer, slack_peer

USERS = ["U0ANA", "bob@acme.example", "U0CAT"]


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    return Flow(rt)


def assign(flow: Flow, **step: Any) -> None:
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Assign trials",
        trigger={"segment": "Trials"},
        steps=[{"action": "owner", **step}],
    )


def owners(flow: Flow) -> dict[str, str | None]:
    """account external id -> its owner as written (Slack id or email)."""
    with session_scope(flow.rt.db) as s:
        users = {u.id: u.slack_id or u.email for u in s.scalars(select(User))}
        return {
            a.external_id: users.get(a.owner_id) if a.owner_id else None
            for a in s.scalars(select(Account))
        }


def test_a_fixed_owner_is_written_and_other_workflows_see_it(flow: Flow, sink: Sink) -> None:
    assign(flow, assign="fixed", users=["U0ANA"])
    flow.segment("Owned", "owner is set")
    flow.workflow(
        name="Owned accounts",
        trigger={"segment": "Owned"},
        steps=[{"action": "webhook", "url": f"{sink.url}/owned"}],
    )
    flow.group("acme", name="Acme", plan="trial")
    flow.evaluate()
    flow.run()
    assert owners(flow) == {"acme": "U0ANA"}
    flow.evaluate()  # the owner change, as the worker evaluates it
    flow.run()
    assert [r.path for r in sink.received] == ["/owned"]
    assert any("owner set to U0ANA" in line for line in flow.timeline(["run"]))


def test_round_robin_is_fair_across_concurrent_runs(flow: Flow) -> None:
    assign(flow, assign="round_robin", users=USERS)
    for i in range(12):
        flow.group(f"a{i}", plan="trial")
    flow.evaluate()
    steps, flow.pending = flow.pending, []
    assert len(steps) == 12
    svc = runner.services(flow.rt)
    with ThreadPoolExecutor(max_workers=6) as pool:  # six workers at once
        list(pool.map(lambda step_id: runner.run_step(svc, step_id), steps))
    assert Counter(owners(flow).values()) == {
        "U0ANA": 4,
        "bob@acme.example": 4,
        "U0CAT": 4,
    }


def test_a_repeated_round_robin_step_picks_the_same_user_and_moves_the_turn_once(
    flow: Flow,
) -> None:
    assign(flow, assign="round_robin", users=USERS)
    flow.group("a1", plan="trial")
    flow.group("a2", plan="trial")
    flow.evaluate()
    first, second = flow.pending
    flow.pending = []
    call = flow.claim(first)
    picks = [flow.call(call).result["owner"] for _ in range(3)]  # the worker died twice
    assert picks == ["U0ANA"] * 3
    assert flow.call(flow.claim(second)).result["owner"] == "bob@acme.example"


def test_an_owner_given_as_an_email_of_a_known_user_is_written_as_that_user(flow: Flow) -> None:
    from engine import users as people

    with session_scope(flow.rt.db) as s:
        people.set_user(s, "bob@acme.example", now=flow.rt.clock.now(), slack_id="U0BOB")
    assign(flow, assign="fixed", users=["BOB@acme.example"])
    flow.group("acme", plan="trial")
    flow.evaluate()
    flow.run()
    assert owners(flow) == {"acme": "U0BOB"}


@pytest.fixture
def slack() -> Iterator[SlackPeer]:
    with slack_peer() as peer:
        yield peer


def test_notify_dms_the_new_owner_found_by_email_with_the_records_facts_once(
    flow: Flow, slack: SlackPeer
) -> None:
    flow.rt.settings = flow.rt.settings.model_copy(
        update={"slack_bot_token": slack.token, "slack_api_url": slack.url}
    )
    bob = slack.add_user("bob", email="bob@acme.example", real_name="Bob Stone")
    assign(flow, assign="fixed", users=["bob@acme.example"], notify=True)
    flow.group("acme", name="<!channel> Acme", plan="trial", stage="Onboarding")
    flow.evaluate()
    call = flow.claim(flow.pending.pop())
    flow.call(call)
    repeat = flow.call(replace(call, first_call=False))  # the worker died before recording
    [dm] = slack.messages(f"D{bob[1:]}")
    assert repeat.result["dm"]["ts"] == dm["ts"]
    assert "&lt;!channel&gt; Acme" in dm["text"] and "<!channel>" not in str(dm["blocks"])
    assert "Onboarding" in str(dm["blocks"])
    with session_scope(flow.rt.db) as s:  # the lookup by email is remembered
        assert s.scalars(select(User.slack_id).where(User.email == "bob@acme.example")).one() == bob


def test_a_dm_slack_cannot_deliver_is_noted_and_the_owner_still_set(
    flow: Flow, slack: SlackPeer
) -> None:
    flow.rt.settings = flow.rt.settings.model_copy(
        update={"slack_bot_token": slack.token, "slack_api_url": slack.url}
    )
    assign(flow, assign="fixed", users=["zed@acme.example"], notify=True)
    flow.group("acme", plan="trial")
    flow.evaluate()
    flow.run()
    assert owners(flow) == {"acme": "zed@acme.example"}
    [line] = flow.timeline(["run"])
    assert "owner set to" in line and "no DM: <zed@acme.example> was not found in Slack" in line
