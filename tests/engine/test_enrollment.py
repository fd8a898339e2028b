"""Enrollment (workflow-format.md, "Who enrolls" and "Enrollment"): signals matched through
the trigger index, once / every_time / reenroll_after, live_since, only_if, exit_if."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from standardwebhooks.webhooks import Webhook

from engine import workflows
from engine.runtime import Runtime
from storage.db import session_scope
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Sink

SECRET = "whsec_" + "c2VjcmV0IGZvciB0aGUgdGVzdHMgb25seQ=="


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={
            "webhook_allowed_hosts": ["127.0.0.1"],
            "secret_key": ["a test secret key"],
            "webhook_secret": SECRET,
        }
    )
    return Flow(rt)


def hook(sink: Sink, path: str = "/hook", **step: Any) -> dict[str, Any]:
    return {"action": "webhook", "url": f"{sink.url}{path}", **step}


def trial_welcome(flow: Flow, sink: Sink, **changes: Any) -> None:
    flow.segment("Trial accounts", 'plan = "trial"')
    flow.workflow(
        name="Trial welcome",
        trigger={"segment": "Trial accounts", "when": "enter"},
        steps=[hook(sink)],
        **changes,
    )


@pytest.mark.both_dbs
def test_entering_a_segment_enrolls_and_the_webhook_reaches_the_receiver_signed(
    flow: Flow, sink: Sink
) -> None:
    trial_welcome(flow, sink)
    flow.group("acme", name="Acme", plan="trial")
    flow.evaluate()
    assert flow.enrollments() == [("acme", "active")]
    assert flow.run() == 1
    assert flow.enrollments() == [("acme", "completed")]
    [got] = sink.received
    body = Webhook(SECRET).verify(got.body, got.headers)
    assert body["workflow"]["name"] == "Trial welcome"
    assert body["object"]["name"] == "Acme"
    assert body["object"]["plan"] == "trial"
    assert got.headers["webhook-id"].startswith("msg_")
    lines = flow.timeline()
    assert lines[0].startswith('enrolled (signal): entered segment "Trial accounts"')
    assert lines[1] == "step 1 (webhook) scheduled now"
    assert lines[2].endswith("/hook: 200")
    assert lines[3] == "completed"


@pytest.mark.both_dbs
def test_a_signal_processed_twice_enrolls_once_and_once_means_once(flow: Flow, sink: Sink) -> None:
    trial_welcome(flow, sink)
    ids = flow.group("acme", plan="trial")
    flow.evaluate(ids)
    flow.evaluate(ids)  # the same outbox rows again
    flow.run()
    for plan in ("pro", "trial", "pro", "trial"):  # leaves and re-enters
        flow.group("acme", plan=plan)
        flow.evaluate()
    with session_scope(flow.rt.db) as s:  # disable / enable keeps "once"
        workflows.set_status(s, name="Trial welcome", status="disabled", now=flow.rt.clock.now())
        workflows.set_status(s, name="Trial welcome", status="live", now=flow.rt.clock.now())
    flow.group("acme", plan="pro")
    flow.evaluate()
    flow.group("acme", plan="trial")
    flow.evaluate()
    flow.run()
    assert flow.enrollments() == [("acme", "completed")]
    assert len(sink.received) == 1


@pytest.mark.both_dbs
def test_every_time_never_has_two_active_and_logs_the_extra(flow: Flow, sink: Sink) -> None:
    flow.workflow(
        name="Each login",
        trigger={"event": "login"},
        enrollment="every_time",
        steps=[hook(sink, delay="1h")],
    )
    flow.group("acme", "ada")
    flow.track("ada", "login")
    flow.evaluate()
    flow.track("ada", "login")  # while the first is active
    flow.evaluate()
    assert flow.enrollments() == [("acme", "active")]
    assert flow.timeline(["signal_skipped"]) == [
        "not enrolled again: performed login while this enrollment is active"
    ]
    flow.rt.clock.advance(hours=1)  # type: ignore[attr-defined]
    flow.run()
    flow.track("ada", "login")
    flow.evaluate()
    assert flow.enrollments() == [("acme", "completed"), ("acme", "active")]


@pytest.mark.both_dbs
def test_reenroll_after_spaces_every_time_enrollments(flow: Flow, sink: Sink) -> None:
    flow.workflow(
        name="Each login",
        trigger={"event": "login"},
        enrollment="every_time",
        reenroll_after="7d",
        steps=[hook(sink)],
    )
    flow.group("acme", "ada")
    clock: ManualClock = flow.rt.clock  # type: ignore[assignment]
    for days in (0, 3, 4, 1):  # day 0 enrolls, day 3 is too soon, day 7 enrolls, day 8 not
        clock.advance(days=days)
        flow.track("ada", "login")
        flow.evaluate()
        flow.run()
    assert flow.enrollments() == [("acme", "completed"), ("acme", "completed")]


@pytest.mark.both_dbs
def test_only_signals_after_live_since_enroll(flow: Flow, sink: Sink) -> None:
    clock: ManualClock = flow.rt.clock  # type: ignore[assignment]
    flow.group("acme", "ada")
    flow.evaluate()
    flow.workflow(name="Exports", trigger={"event": "export"}, steps=[hook(sink)])
    flow.track("ada", "export", at=clock.now() - timedelta(days=1))  # happened before live
    flow.evaluate()
    assert flow.enrollments() == []
    flow.track("ada", "export", at=clock.now())
    flow.evaluate()
    assert flow.enrollments() == [("acme", "active")]


@pytest.mark.both_dbs
def test_a_draft_or_disabled_workflow_enrolls_nobody(flow: Flow, sink: Sink) -> None:
    trial_welcome(flow, sink, status="draft")
    flow.group("acme", plan="trial")
    flow.evaluate()
    assert flow.enrollments() == []


@pytest.mark.both_dbs
def test_only_if_and_the_event_where_decide_who_enrolls(flow: Flow, sink: Sink) -> None:
    flow.workflow(
        name="CSV exports of paying accounts",
        trigger={"event": "export", "where": 'properties.format = "csv"'},
        only_if='status = "paying"',
        steps=[hook(sink, body='{"who": {{ event.contact.email | tojson }}}')],
    )
    flow.group("acme", "ada", status="paying")
    flow.group("globex", "bob", status="trial")
    flow.identify("ada", email="ada@acme.example")
    flow.evaluate()
    flow.track("ada", "export", format="pdf")
    flow.track("bob", "export", format="csv")
    flow.track("ada", "export", format="csv")
    flow.evaluate()
    flow.run()
    assert flow.enrollments() == [("acme", "completed")]
    assert [r.json for r in sink.received] == [{"who": "ada@acme.example"}]


@pytest.mark.both_dbs
def test_health_trigger_filters_on_the_buckets(flow: Flow, sink: Sink) -> None:
    flow.workflow(
        name="Dropped to bad", trigger={"health": "drop", "to": "bad"}, steps=[hook(sink)]
    )
    flow.group("acme", health_score=80)
    flow.group("globex", health_score=80)
    flow.evaluate()
    flow.group("acme", health_score=50)  # good -> neutral: a drop, not to bad
    flow.group("globex", health_score=10)  # good -> bad
    flow.evaluate()
    assert flow.enrollments() == [("globex", "active")]
    assert flow.timeline(["enrolled"])[0].startswith(
        "enrolled (signal): health dropped from good to bad"
    )


@pytest.mark.both_dbs
def test_stage_trigger_enrolls_on_the_stage_entered(flow: Flow, sink: Sink) -> None:
    flow.workflow(name="Renewals", trigger={"stage": "Renewal"}, steps=[hook(sink)])
    flow.group("acme", stage="Adoption")
    flow.evaluate()
    flow.group("acme", stage="renewal")  # case-insensitive: no list applied, stored as given
    flow.group("globex", stage="Renewal")
    flow.evaluate()
    assert flow.enrollments() == [("globex", "active")]


@pytest.mark.both_dbs
def test_exit_if_ends_the_enrollment_on_the_next_evaluation(flow: Flow, sink: Sink) -> None:
    trial_welcome(flow, sink, exit_if='status = "paying"')
    flow.workflow(
        name="Trial welcome",
        trigger={"segment": "Trial accounts", "when": "enter"},
        exit_if='status = "paying"',
        steps=[hook(sink, delay="3d")],
    )
    flow.group("acme", plan="trial")
    flow.evaluate()
    flow.group("acme", status="paying")  # no signal for this workflow: still checked
    flow.evaluate()
    assert flow.enrollments() == [("acme", "exited")]
    assert flow.steps() == [(0, "cancelled", 0)]
    assert flow.timeline(["exited"]) == ['exited: exit_if `status = "paying"` became true']
    flow.rt.clock.advance(days=3)  # type: ignore[attr-defined]
    assert flow.run() == 0
    assert sink.received == []


@pytest.mark.both_dbs
def test_a_record_whose_exit_already_holds_does_not_enroll(flow: Flow, sink: Sink) -> None:
    trial_welcome(flow, sink, exit_if='status = "paying"')
    flow.group("acme", plan="trial", status="paying")
    flow.evaluate()
    assert flow.enrollments() == []


@pytest.mark.both_dbs
def test_forgetting_a_contact_exits_its_active_enrollments(flow: Flow, sink: Sink) -> None:
    from engine import privacy

    flow.workflow(
        name="Contact logins",
        object="contact",
        trigger={"event": "login"},
        steps=[hook(sink, delay="1d")],
    )
    flow.group("acme", "ada")
    flow.track("ada", "login")
    flow.evaluate()
    with session_scope(flow.rt.db) as s:
        done = privacy.forget_contact(s, external_id="ada", now=flow.rt.clock.now())
    assert done.exited == 1
    assert flow.enrollments() == [("forgotten-1", "exited")]
    flow.rt.clock.advance(days=1)  # type: ignore[attr-defined]
    assert flow.run() == 0
    assert sink.received == []


@pytest.mark.both_dbs
def test_a_forgotten_contact_never_enrolls_again(flow: Flow, sink: Sink) -> None:
    from engine import control, privacy

    flow.group("acme", "ada")
    flow.track("ada", "login")
    flow.evaluate()
    flow.segment("Quiet people", "count(login, 1d) < 1", object_type="contact")
    flow.workflow(
        name="Quiet people",
        object="contact",
        trigger={"segment": "Quiet people", "when": "enter"},
        steps=[hook(sink)],
    )
    with session_scope(flow.rt.db) as s:
        privacy.forget_contact(s, external_id="ada", now=flow.rt.clock.now())
    flow.rt.clock.advance(days=2)  # type: ignore[attr-defined]
    flow.scheduler().refresh_segments()  # the anonymized row now matches: it enters
    assert flow.members("Quiet people") == {"forgotten-1"}
    assert flow.enrollments() == []
    with session_scope(flow.rt.db) as s, pytest.raises(control.ControlError, match="forgotten"):
        control.enroll_by_hand(
            s,
            name="Quiet people",
            object_type="contact",
            external_id="forgotten-1",
            by="test",
            now=flow.rt.clock.now(),
        )
