"""A workflow whose steps keep failing (a webhook answered 500 until it gives up) alerts its
admins in Slack once: one message even when two scheduler passes run at once, none again
while it keeps failing, a new one after it ran a window without failing and fails again."""

from __future__ import annotations

import itertools
import threading
from collections.abc import Iterator
from typing import Any

import pytest

from engine import failure_alerts
from engine.runtime import Runtime
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Sink
from tests.slack_peer import SlackPeer, slack_peer

THRESHOLD = 3
_users = itertools.count(1)


@pytest.fixture
def peer() -> Iterator[SlackPeer]:
    with slack_peer() as running:
        yield running


@pytest.fixture
def flow(rt: Runtime, peer: SlackPeer) -> Flow:
    clock = ManualClock()
    rt.clock = clock
    rt.settings = rt.settings.model_copy(
        update={
            "slack_bot_token": peer.token,
            "slack_api_url": peer.url,
            "webhook_allowed_hosts": ["127.0.0.1"],
            "failure_alert_threshold": THRESHOLD,
        }
    )
    peer.now = lambda: clock.now().timestamp()
    return Flow(rt)


def clock(flow: Flow) -> ManualClock:
    assert isinstance(flow.rt.clock, ManualClock)
    return flow.rt.clock


def hooked(flow: Flow, sink: Sink, **more: Any) -> None:
    flow.workflow(
        name="Sync <CRM>",
        trigger={"event": "login"},
        enrollment="every_time",
        steps=[{"action": "webhook", "url": f"{sink.url}/hook"}],
        **more,
    )


def logins(flow: Flow, count: int) -> None:
    """`count` new accounts log in and are enrolled."""
    for _ in range(count):
        user = f"user-{next(_users)}"
        flow.group(f"acct-{user}", user)
        flow.track(user, "login")
    flow.evaluate()


def run_out(flow: Flow) -> None:
    """Run what is due, hour after hour, until no step waits for a retry."""
    for _ in range(12):
        flow.run()
        if not any(status == "scheduled" for _, status, _ in flow.steps()):
            return
        clock(flow).advance(hours=1)
    raise AssertionError("steps still retrying")


def check(flow: Flow) -> int:
    return failure_alerts.check(flow.rt.db, flow.rt.settings, clock(flow).now())


def posts(peer: SlackPeer) -> list[dict[str, Any]]:
    return [c.params for c in peer.calls_to("chat.postMessage")]


def test_failing_steps_alert_the_admins_once_even_from_two_schedulers_at_once(
    flow: Flow, sink: Sink, peer: SlackPeer
) -> None:
    ada = peer.add_user("ada")
    hooked(flow, sink, admins=[ada])
    sink.answers = [(500, {})] * 200
    logins(flow, THRESHOLD - 1)
    run_out(flow)
    assert check(flow) == 0, "below the threshold: no alert"
    logins(flow, THRESHOLD)  # retries take hours: the earlier failures are out of the window
    run_out(flow)
    assert [status for _, status, _ in flow.steps()] == ["failed"] * (2 * THRESHOLD - 1)

    sent: list[int] = []
    start = threading.Barrier(2)

    def one_pass() -> None:
        start.wait()
        sent.append(check(flow))

    passes = [threading.Thread(target=one_pass) for _ in range(2)]
    for thread in passes:
        thread.start()
    for thread in passes:
        thread.join(30)
    assert sorted(sent) == [0, 1]
    [alert] = posts(peer)
    assert alert["channel"] == f"D{ada[1:]}"  # a DM to the workflow's admin
    shown = str(alert["blocks"])
    assert "Sync &lt;CRM&gt;" in shown and "<CRM>" not in shown  # escaped
    assert "/workflow logs Sync &lt;CRM&gt;" in shown
    assert "1 (webhook)" in shown and "500" in shown

    logins(flow, 2)  # it keeps failing: no second alert, from any pass
    run_out(flow)
    assert check(flow) == 0
    assert flow.scheduler().alert_failures(force=True) == 0
    assert len(posts(peer)) == 1


def test_after_a_quiet_window_a_new_failure_streak_alerts_again(
    flow: Flow, sink: Sink, peer: SlackPeer
) -> None:
    admin = peer.add_user("bob")
    flow.rt.settings = flow.rt.settings.model_copy(update={"slack_admins": [admin]})
    hooked(flow, sink)  # no admins of its own: SLACK_ADMINS are told
    sink.answers = [(500, {})] * 200
    logins(flow, THRESHOLD)
    run_out(flow)
    assert check(flow) == 1
    assert [p["channel"] for p in posts(peer)] == [f"D{admin[1:]}"]

    sink.answers.clear()  # fixed: it runs without failing for more than the window
    clock(flow).advance(hours=2)
    logins(flow, 2)
    run_out(flow)
    assert check(flow) == 0
    assert len(posts(peer)) == 1

    sink.answers = [(500, {})] * 200  # broken again: a new streak, a new alert
    logins(flow, THRESHOLD)
    run_out(flow)
    assert check(flow) == 1
    assert len(posts(peer)) == 2


def test_an_alert_slack_refused_is_sent_on_the_next_pass_to_the_alert_channel(
    flow: Flow, sink: Sink, peer: SlackPeer
) -> None:
    channel = peer.add_channel("ops-alerts")
    flow.rt.settings = flow.rt.settings.model_copy(update={"alert_channel": "#ops-alerts"})
    hooked(flow, sink)  # no admins anywhere: ALERT_CHANNEL
    sink.answers = [(500, {})] * 200
    logins(flow, THRESHOLD)
    run_out(flow)
    peer.unavailable("chat.postMessage")
    assert check(flow) == 0  # the claim is released: not lost
    assert check(flow) == 1
    assert [m["channel"] for m in posts(peer)] == [channel, channel]
    assert check(flow) == 0
