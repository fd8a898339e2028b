"""RELIABILITY 8: the engine as a state machine. Hypothesis drives events, duplicated
evaluations and deliveries, workers that die before or after calling the peer, scheduler
rounds and clock jumps; the invariants hold after every step and, at the end, everything
pending completes: no lost step, no duplicate effect, once means once."""

from __future__ import annotations

from collections import Counter
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, rule, run_state_machine_as_test
from sqlalchemy import Engine, func, select

from engine import runner
from engine.actions.base import RunContext
from engine.actions.webhook import WebhookAction
from engine.runtime import Runtime
from storage.db import session_scope
from storage.workflow_models import Enrollment, StepRun, Workflow
from tests.conftest import ManualClock, clean
from tests.engine.flow import Flow
from tests.sink import Sink, webhook_sink

USERS = ("ada", "bob", "cy")


class Engine_(RuleBasedStateMachine):
    def __init__(self, rt: Runtime, sink: Sink) -> None:
        super().__init__()
        clean(rt.db)
        sink.received.clear()
        rt.clock = ManualClock()
        self.rt, self.sink = rt, sink
        self.flow = Flow(rt)
        self.svc = runner.services(rt)
        # How many times a worker died after the peer got a step's request (its key may be
        # seen once more for each).
        self.repeats: Counter[str] = Counter()
        self.flow.workflow(
            name="Once",
            trigger={"event": "login"},
            steps=[
                {"action": "webhook", "url": f"{sink.url}/a"},
                {"action": "webhook", "url": f"{sink.url}/b", "delay": "1h"},
            ],
        )
        self.flow.workflow(
            name="Every",
            trigger={"event": "login"},
            enrollment="every_time",
            steps=[{"action": "webhook", "url": f"{sink.url}/c", "delay": "2h"}],
        )
        for user in USERS:
            self.flow.group(f"acct-{user}", user)
        self.flow.evaluate()

    @property
    def clock(self) -> ManualClock:
        assert isinstance(self.rt.clock, ManualClock)
        return self.rt.clock

    @rule(user=st.sampled_from(USERS), twice=st.booleans())
    def login(self, user: str, twice: bool) -> None:
        ids = self.flow.track(user, "login")
        self.flow.evaluate(ids)
        if twice:  # the evaluation message delivered again
            self.flow.evaluate(ids)

    @rule(data=st.data(), copies=st.integers(1, 3))
    def deliver(self, data: st.DataObject, copies: int) -> None:
        """A worker runs a queued step; duplicated messages run it again (a no-op)."""
        if not self.flow.pending:
            return
        step_id = data.draw(st.sampled_from(self.flow.pending))
        self.flow.pending.remove(step_id)
        for _ in range(copies):
            self.flow.pending += runner.run_step(self.svc, step_id)

    @rule(data=st.data(), after_call=st.booleans())
    def worker_dies(self, data: st.DataObject, after_call: bool) -> None:
        """A worker claims a step and dies, before or after the peer got the request."""
        if not self.flow.pending:
            return
        step_id = data.draw(st.sampled_from(self.flow.pending))
        self.flow.pending.remove(step_id)
        with session_scope(self.rt.db) as s:
            call, due = runner._claim_and_check(s, self.svc, step_id)
        self.flow.pending += due
        if call is None or not after_call:
            return
        step = call.compiled.definition.steps[call.index]
        WebhookAction().run(
            step,
            RunContext(
                call.data,
                call.index,
                call.key,
                call.attempt,
                self.clock.now(),
                self.svc.settings,
                self.svc.resolver,
            ),
        )
        self.repeats[call.key] += 1

    @rule()
    def scheduler_round(self) -> None:
        scheduler = self.flow.scheduler()
        scheduler.dispatch_steps()
        scheduler.recover_steps()

    @rule(minutes=st.integers(1, 60 * 26))
    def time_passes(self, minutes: int) -> None:
        self.clock.advance(minutes=minutes)

    @invariant()
    def no_duplicate_effect(self) -> None:
        with self.sink.lock:
            seen = Counter(r.headers["webhook-id"] for r in self.sink.received)
        for key, n in seen.items():
            assert n <= 1 + self.repeats[key], (key, n)

    @invariant()
    def once_means_once_and_one_active(self) -> None:
        with session_scope(self.rt.db) as s:
            rows = s.execute(
                select(Workflow.name, Enrollment.object_id, Enrollment.status)
                .join(Workflow)
                .order_by(Enrollment.id)
            ).all()
        once = Counter(r.object_id for r in rows if r.name == "Once")
        assert all(n == 1 for n in once.values()), once
        active = Counter((r.name, r.object_id) for r in rows if r.status == "active")
        assert all(n == 1 for n in active.values()), active

    def teardown(self) -> None:
        """Nothing is lost: with time and workers, every enrollment completes and every step
        reached the peer under its one key."""
        for _ in range(10):
            self.clock.advance(hours=3)
            self.flow.run()
        with session_scope(self.rt.db) as s:
            statuses = Counter(s.scalars(select(Enrollment.status)))
            steps = list(s.scalars(select(StepRun)))
            per_enrollment = dict(
                s.execute(
                    select(StepRun.enrollment_id, func.count()).group_by(StepRun.enrollment_id)
                ).all()
            )
            kinds = dict(s.execute(select(Enrollment.id, Workflow.name).join(Workflow)).all())
        assert set(statuses) <= {"completed"}, statuses
        assert all(s.status == "done" for s in steps), Counter(s.status for s in steps)
        assert all(
            per_enrollment[eid] == (2 if name == "Once" else 1) for eid, name in kinds.items()
        )
        with self.sink.lock:
            seen = {r.headers["webhook-id"] for r in self.sink.received}
        assert {s.idempotency_key for s in steps} == seen


def test_the_engine_keeps_its_invariants(rt: Runtime, db: Engine) -> None:
    rt.settings = rt.settings.model_copy(
        update={"webhook_allowed_hosts": ["127.0.0.1"], "step_lease_seconds": 60}
    )
    with webhook_sink() as sink:

        def machine() -> Any:
            return Engine_(rt, sink)

        run_state_machine_as_test(
            machine,
            settings=settings(
                max_examples=15,
                stateful_step_count=25,
                deadline=None,
                suppress_health_check=list(HealthCheck),
            ),
        )
