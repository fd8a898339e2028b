"""Steps (engine/runner.py, engine/scheduler.py): delays, only_if, retries as rows,
on_failure, versions, disable / enable, pause-all, and RELIABILITY 1-5 and 7."""

from __future__ import annotations

import threading
from datetime import timedelta
from typing import Any

import dramatiq
import pytest
import redis
from sqlalchemy import select

from engine import runner, workflows
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from storage.db import session_scope
from storage.workflow_models import StepRun
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.helpers import wait_until
from tests.sink import Sink


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={"webhook_allowed_hosts": ["127.0.0.1"], "step_lease_seconds": 60}
    )
    return Flow(rt)


def tasks() -> Any:
    """engine.tasks, imported once the session's broker is set (by the `rt` fixture)."""
    from engine import tasks as module

    return module


def clock(flow: Flow) -> ManualClock:
    assert isinstance(flow.rt.clock, ManualClock)
    return flow.rt.clock


def hook(sink: Sink, path: str = "/hook", **step: Any) -> dict[str, Any]:
    return {"action": "webhook", "url": f"{sink.url}{path}", **step}


def login_flow(flow: Flow, sink: Sink, steps: list[dict[str, Any]], **more: Any) -> None:
    flow.workflow(name="Logins", trigger={"event": "login"}, steps=steps, **more)
    flow.group("acme", "ada")
    flow.track("ada", "login")
    flow.evaluate()


@pytest.mark.both_dbs
def test_a_delay_counts_from_the_previous_step_and_only_if_skips_with_a_reason(
    flow: Flow, sink: Sink
) -> None:
    login_flow(
        flow,
        sink,
        [
            hook(sink, "/first"),
            hook(sink, "/skipped", delay="3d", only_if='plan = "enterprise"'),
            hook(sink, "/third", delay="2h"),
        ],
    )
    flow.run()
    clock(flow).advance(days=3, seconds=-1)
    flow.run()
    assert [r.path for r in sink.received] == ["/first"]
    clock(flow).advance(seconds=1)
    flow.run()  # step 2 is skipped at run time; step 3 counts 2h from then
    clock(flow).advance(hours=2, seconds=-1)
    flow.run()
    assert [r.path for r in sink.received] == ["/first"]
    clock(flow).advance(seconds=1)
    flow.run()
    assert [r.path for r in sink.received] == ["/first", "/third"]
    assert flow.steps() == [(0, "done", 0), (1, "skipped", 0), (2, "done", 0)]
    assert 'step 2 (webhook) skipped: only_if `plan = "enterprise"` is false' in flow.timeline()
    assert flow.enrollments() == [("acme", "completed")]


@pytest.mark.both_dbs
def test_retries_are_rows_with_the_same_key_and_honour_retry_after(flow: Flow, sink: Sink) -> None:
    sink.answers = [(500, {}), (429, {"Retry-After": "120"}), (200, {})]
    login_flow(flow, sink, [hook(sink)])
    flow.run()
    assert flow.steps() == [(0, "scheduled", 1)]
    with session_scope(flow.rt.db) as s:
        due = s.scalars(select(StepRun.due_at)).one()
    # attempt 1 waits half to all of STEP_RETRY_SECONDS (30 s)
    assert timedelta(seconds=15) <= due - clock(flow).now() <= timedelta(seconds=30)
    clock(flow).advance(seconds=30)
    flow.run()
    with session_scope(flow.rt.db) as s:
        due = s.scalars(select(StepRun.due_at)).one()
    assert due == clock(flow).now() + timedelta(seconds=120)
    clock(flow).advance(seconds=119)
    flow.run()
    assert len(sink.received) == 2
    clock(flow).advance(seconds=1)
    flow.run()
    assert flow.steps() == [(0, "done", 2)]
    assert len(set(sink.ids())) == 1 and len(sink.received) == 3
    retried = flow.timeline(["retried"])
    assert "attempt 1 failed" in retried[0] and "answered 500" in retried[0]
    assert "answered 429" in retried[1]


@pytest.mark.both_dbs
def test_a_permanent_error_fails_the_step_and_on_failure_decides(flow: Flow, sink: Sink) -> None:
    sink.answers = [(410, {}), (404, {})]
    flow.workflow(
        name="Keeps going",
        trigger={"event": "login"},
        on_failure="continue",
        steps=[hook(sink, "/gone"), hook(sink, "/next")],
    )
    flow.workflow(
        name="Stops",
        trigger={"event": "login"},
        steps=[hook(sink, "/missing"), hook(sink, "/never")],
    )
    flow.group("acme", "ada")
    flow.track("ada", "login")
    flow.evaluate()
    flow.run()
    assert sorted(r.path for r in sink.received) == ["/gone", "/missing", "/next"]
    assert flow.enrollments("Keeps going") == [("acme", "completed")]
    assert flow.enrollments("Stops") == [("acme", "failed")]
    assert "step 1 (webhook) failed (on_failure: stop)" in flow.timeline(["failed"])[-1]


@pytest.mark.both_dbs
def test_after_eight_attempts_the_step_fails(flow: Flow, sink: Sink) -> None:
    sink.answers = [(503, {})] * 8
    login_flow(flow, sink, [hook(sink)])
    for _ in range(8):
        flow.run()
        clock(flow).advance(hours=1)
    assert flow.steps() == [(0, "failed", 7)]
    assert len(sink.received) == 8
    assert "gave up after 8 attempts" in flow.timeline(["failed"])[0]
    assert flow.enrollments() == [("acme", "failed")]


@pytest.mark.both_dbs
def test_a_missing_template_value_fails_the_step_naming_it(flow: Flow, sink: Sink) -> None:
    login_flow(flow, sink, [hook(sink, body='{"plan": {{ account.plan | tojson }}}')])
    flow.run()
    assert sink.received == []
    assert "undefined name 'account.plan'" in flow.timeline(["failed"])[0]


@pytest.mark.both_dbs
def test_running_enrollments_finish_on_the_version_they_started_with(
    flow: Flow, sink: Sink
) -> None:
    login_flow(flow, sink, [hook(sink, "/v1-first"), hook(sink, "/v1-second", delay="1d")])
    flow.run()
    flow.workflow(
        name="Logins",
        trigger={"event": "login"},
        steps=[hook(sink, "/v2-first"), hook(sink, "/v2-second", delay="1d")],
    )
    flow.group("globex", "bob")
    flow.track("bob", "login")
    flow.evaluate()
    flow.run()
    clock(flow).advance(days=1)
    flow.run()
    assert sorted(r.path for r in sink.received) == [
        "/v1-first",
        "/v1-second",
        "/v2-first",
        "/v2-second",
    ]


@pytest.mark.both_dbs
def test_disabling_holds_steps_and_enabling_resumes_those_within_the_resume_window(
    flow: Flow, sink: Sink
) -> None:
    flow.workflow(
        name="Logins",
        trigger={"event": "login"},
        steps=[hook(sink, "/first", delay="1h"), hook(sink, "/second", delay="2d")],
    )
    flow.group("acme", "ada")
    flow.group("globex", "bob")
    flow.track("ada", "login")
    flow.evaluate()
    clock(flow).advance(hours=1)
    flow.run()  # ada's first step; her second is due in 2 days
    clock(flow).advance(days=1)
    flow.track("bob", "login")
    flow.evaluate()  # bob's first step due in 1 hour
    with session_scope(flow.rt.db) as s:
        workflows.set_status(s, name="Logins", status="disabled", now=clock(flow).now())
    clock(flow).advance(days=1, hours=1)  # both come due while disabled
    flow.run()
    assert flow.steps() == [(0, "done", 0), (1, "held", 0), (0, "held", 0)]
    assert [r.path for r in sink.received] == ["/first"]
    with session_scope(flow.rt.db) as s:
        workflows.set_status(s, name="Logins", status="live", now=clock(flow).now())
    flow.run()
    # ada's step was due 1 h ago (< 24 h): it runs; bob's was due 24 h ago: skipped, logged,
    # and his next step is scheduled 2 days from now.
    assert [r.path for r in sink.received] == ["/first", "/second"]
    assert flow.steps() == [(0, "done", 0), (1, "done", 0), (0, "skipped", 0), (1, "scheduled", 0)]
    assert flow.timeline(["held", "resumed"]) == [
        "held: the workflow is disabled",
        "held: the workflow is disabled",
        "step 2 released: the workflow is live again",
        "step 1 released: the workflow is live again",
    ]
    [skipped] = flow.timeline(["skipped"])
    assert "came due while the workflow was disabled and is 1d 0h overdue" in skipped
    assert "resume_window is 24h" in skipped


@pytest.mark.both_dbs
def test_pause_all_holds_every_send_and_resume_all_loses_nothing(flow: Flow, sink: Sink) -> None:
    with session_scope(flow.rt.db) as s:
        assert runner.pause_all(s, by="test", now=clock(flow).now())
    login_flow(flow, sink, [hook(sink)])
    flow.run()
    assert sink.received == []
    assert flow.steps() == [(0, "paused", 0)]
    with session_scope(flow.rt.db) as s:
        assert runner.resume_all(s, now=clock(flow).now()) == 1
    flow.run()
    assert len(sink.received) == 1
    assert flow.enrollments() == [("acme", "completed")]


def test_the_same_step_sent_five_times_at_once_runs_once(flow: Flow, sink: Sink) -> None:
    """RELIABILITY 4: actors claim by conditional UPDATE; a duplicated message is a no-op."""
    login_flow(flow, sink, [hook(sink)])
    [step_id] = flow.pending
    svc = runner.services(flow.rt)
    barrier = threading.Barrier(5)

    def deliver() -> None:
        barrier.wait()
        runner.run_step(svc, step_id)

    threads = [threading.Thread(target=deliver) for _ in range(5)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(sink.received) == 1
    assert flow.steps() == [(0, "done", 0)]


def test_a_step_replayed_after_lost_leases_carries_one_key(flow: Flow, sink: Sink) -> None:
    """RELIABILITY 3 and 5: a worker that called the peer and died before recording it leaves
    a running row; past its lease it is run again, with the same idempotency key."""
    login_flow(flow, sink, [hook(sink)])
    [step_id] = flow.pending
    flow.pending.clear()
    svc = runner.services(flow.rt)
    for _ in range(2):  # the call is made, then the worker "dies" before finishing
        with session_scope(flow.rt.db) as s:
            call, _ = runner._claim_and_check(s, svc, step_id)
        assert call is not None
        step = call.compiled.definition.steps[0]
        from engine.actions.base import RunContext
        from engine.actions.webhook import WebhookAction

        WebhookAction().run(
            step,
            RunContext(
                call.data, 0, call.key, call.attempt, clock(flow).now(), svc.settings, svc.resolver
            ),
        )
        flow.run()
        assert flow.steps() == [(0, "running", 0)]  # nothing to do before the lease ends
        clock(flow).advance(seconds=61)
        flow.scheduler().recover_steps()
    flow.run()
    assert flow.steps() == [(0, "done", 0)]
    assert len(sink.received) == 3
    assert len(set(sink.ids())) == 1


def test_four_schedulers_over_ten_thousand_due_rows_enqueue_each_once(flow: Flow) -> None:
    """RELIABILITY 2."""
    flow.workflow(
        name="Logins",
        trigger={"event": "login"},
        steps=[{"action": "webhook", "url": "http://127.0.0.1:9/x", "delay": "1h"}],
    )
    _many_due_steps(flow, 10_000)
    clock(flow).advance(hours=1)
    seen: list[int] = []
    lock = threading.Lock()

    def enqueue(ids: Any) -> None:
        with lock:
            seen.extend(ids)

    schedulers = [
        Scheduler(flow.rt, enqueue=lambda ids: None, enqueue_steps=enqueue, dispatch_batch=500)
        for _ in range(4)
    ]
    threads = [threading.Thread(target=s.dispatch_steps) for s in schedulers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(seen) == 10_000
    assert len(set(seen)) == 10_000


def _many_due_steps(flow: Flow, n: int) -> None:
    """n enrollments of the one workflow, each with its first step scheduled (set-wise)."""
    from sqlalchemy import insert

    from storage.models import Account
    from storage.workflow_models import Enrollment, Workflow, WorkflowVersion

    now = clock(flow).now()
    with session_scope(flow.rt.db) as s:
        workflow = s.scalars(select(Workflow)).one()
        version_id = s.scalars(select(WorkflowVersion.id)).one()
        accounts = s.scalars(
            insert(Account).returning(Account.id),
            [
                {
                    "external_id": f"a{i}",
                    "traits": {},
                    "trait_times": {},
                    "created_at": now,
                    "first_seen_at": now,
                    "updated_at": now,
                }
                for i in range(n)
            ],
        ).all()
        enrollments = s.scalars(
            insert(Enrollment).returning(Enrollment.id),
            [
                {
                    "workflow_id": workflow.id,
                    "version_id": version_id,
                    "object_type": "account",
                    "object_id": a,
                    "status": "active",
                    "once": True,
                    "via": "manual",
                    "trigger": {},
                    "enrolled_at": now,
                }
                for a in accounts
            ],
        ).all()
        s.execute(
            insert(StepRun),
            [
                {
                    "enrollment_id": e,
                    "step_index": 0,
                    "status": "scheduled",
                    "due_at": now + timedelta(hours=1),
                    "attempt": 0,
                    "idempotency_key": f"k{e}",
                    "created_at": now,
                }
                for e in enrollments
            ],
        )


def test_a_fourteen_day_step_survives_a_flushed_redis_and_runs_once(
    flow: Flow, sink: Sink, worker: dramatiq.Worker, redis_client: redis.Redis
) -> None:
    """RELIABILITY 1, with the real Redis broker and a real worker: the delay is a row."""
    login_flow(flow, sink, [hook(sink, delay="14d")])
    tasks().enqueue_steps(flow.pending)
    flow.pending.clear()
    redis_client.flushdb()
    clock(flow).advance(days=14)
    scheduler = Scheduler(flow.rt, enqueue=lambda ids: None, enqueue_steps=tasks().enqueue_steps)
    scheduler.tick()
    wait_until(lambda: flow.steps() == [(0, "done", 0)])
    scheduler.tick()
    assert len(sink.received) == 1
    assert flow.enrollments() == [("acme", "completed")]


def test_a_lost_message_is_requested_again_after_its_lease(
    flow: Flow, sink: Sink, worker: dramatiq.Worker, redis_client: redis.Redis
) -> None:
    """A step queued for a worker when Redis is flushed is found by the scheduler's recovery."""
    worker.pause()
    login_flow(flow, sink, [hook(sink)])
    tasks().enqueue_steps(flow.pending)
    redis_client.flushdb()
    worker.resume()
    scheduler = Scheduler(flow.rt, enqueue=lambda ids: None, enqueue_steps=tasks().enqueue_steps)
    scheduler.tick()
    assert flow.steps() == [(0, "queued", 0)]
    clock(flow).advance(seconds=61)
    scheduler.tick()
    wait_until(lambda: flow.steps() == [(0, "done", 0)])
    assert len(sink.received) == 1


def test_a_worker_dying_before_the_call_leaves_one_request_after_its_lease(
    flow: Flow, sink: Sink
) -> None:
    """RELIABILITY 6, at least once keyed, the crash before the call: the step runs again
    after its lease and the peer sees it once."""
    login_flow(flow, sink, [hook(sink)])
    [step_id] = flow.pending
    flow.pending.clear()
    with session_scope(flow.rt.db) as s:
        call, _ = runner._claim_and_check(s, runner.services(flow.rt), step_id)
    assert call is not None  # claimed; the worker dies here
    flow.run()
    assert sink.received == [] and flow.steps() == [(0, "running", 0)]
    clock(flow).advance(seconds=61)
    flow.run()
    assert len(sink.received) == 1
    assert flow.steps() == [(0, "done", 0)]


def test_a_queued_step_whose_message_still_waits_is_not_requested_again(
    flow: Flow, sink: Sink, worker: dramatiq.Worker
) -> None:
    """A backlog longer than the lease does not multiply messages: a queued row past its
    lease is requested again only once no step message waits for a worker."""
    worker.pause()
    login_flow(flow, sink, [hook(sink)])
    tasks().enqueue_steps(flow.pending)
    assert tasks().steps_waiting() == 1
    scheduler = Scheduler(
        flow.rt,
        enqueue=lambda ids: None,
        enqueue_steps=tasks().enqueue_steps,
        steps_waiting=tasks().steps_waiting,
    )
    clock(flow).advance(seconds=61)
    assert scheduler.recover_steps() == 0
    assert tasks().steps_waiting() == 1
    worker.resume()
    wait_until(lambda: flow.steps() == [(0, "done", 0)])
    assert len(sink.received) == 1
