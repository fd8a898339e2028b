"""The workflow engine driven synchronously: the real ingestion path, evaluation, the
scheduler's dispatch and the runner, with the clock in the test's hand."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from sqlalchemy import select

from engine import runner, signals, workflows
from engine.scheduler import Scheduler
from engine.workflow_defs import WorkflowDef
from storage.db import session_scope
from storage.models import Account, Contact, OutboxRow
from storage.workflow_models import Enrollment, EnrollmentLog, StepRun, Workflow
from tests.engine.harness import Harness


@dataclass
class Flow(Harness):
    pending: list[int] = field(default_factory=list)

    def workflow(self, status: str = "live", **document: Any) -> workflows.Saved:
        """Save a workflow (live by default) at the clock's now."""
        data = {"object": "account", "status": status, **document}
        definition = WorkflowDef.model_validate(data)
        with session_scope(self.rt.db) as s:
            return workflows.save(s, definition=definition, by="test", now=self.rt.clock.now())

    def evaluate(self, ids: list[int] | None = None) -> int:
        """Evaluate pending outbox rows; steps due now wait in `pending` for `run`."""
        with session_scope(self.rt.db) as s:
            if ids is None:
                ids = list(s.scalars(select(OutboxRow.id).where(OutboxRow.processed_at.is_(None))))
            done = signals.evaluate(
                s,
                outbox_ids=ids,
                now=self.rt.clock.now(),
                lease=timedelta(seconds=self.rt.settings.step_lease_seconds),
            )
        self.pending += done.due_steps
        return done.signals

    def scheduler(self) -> Scheduler:
        return Scheduler(self.rt, enqueue=lambda ids: None, enqueue_steps=self.pending.extend)

    def run(self, rounds: int = 50) -> int:
        """Run what is due (what evaluation queued, then what the scheduler dispatches), as
        the worker would, until nothing is left; returns how many step runs were called."""
        svc = runner.services(self.rt)
        ran = 0
        for _ in range(rounds):
            scheduler = self.scheduler()
            scheduler.dispatch_steps()
            scheduler.recover_steps()
            if not self.pending:
                return ran
            batch, self.pending = self.pending, []
            for step_id in batch:
                self.pending += runner.run_step(svc, step_id)
                ran += 1
        raise AssertionError("steps kept coming")

    def claim(self, step_id: int) -> Any:
        """Claim and check one step as a worker does before calling its action (its _Call)."""
        with session_scope(self.rt.db) as s:
            call, _ = runner._claim_and_check(s, runner.services(self.rt), step_id)
        assert call is not None, f"step run {step_id} is not runnable"
        return call

    def call(self, call: Any) -> Any:
        """Call the claimed step's action, as the worker does (again: a worker that died
        after the call and before recording it); its outcome."""
        return runner._call(runner.services(self.rt), call)

    def record_id(self, external: str, object_type: str = "account") -> int:
        model = Account if object_type == "account" else Contact
        with session_scope(self.rt.db) as s:
            return int(s.scalars(select(model.id).where(model.external_id == external)).one())

    def enrollments(self, name: str | None = None) -> list[tuple[str, str]]:
        """(external id, status) of every enrollment (of one workflow), in order."""
        with session_scope(self.rt.db) as s:
            stmt = select(Enrollment).order_by(Enrollment.id)
            if name is not None:
                stmt = stmt.join(Workflow).where(Workflow.name == name)
            found = []
            for e in s.scalars(stmt):
                model = Account if e.object_type == "account" else Contact
                external = s.scalar(select(model.external_id).where(model.id == e.object_id))
                found.append((external or "?", e.status))
            return found

    def steps(self) -> list[tuple[int, str, int]]:
        """(step index, status, attempt) of every step run, in id order."""
        with session_scope(self.rt.db) as s:
            return [
                (r.step_index, r.status, r.attempt)
                for r in s.scalars(select(StepRun).order_by(StepRun.id))
            ]

    def timeline(self, kinds: Sequence[str] | None = None) -> list[str]:
        """Every enrollment log line's message, in order (of these kinds)."""
        with session_scope(self.rt.db) as s:
            stmt = select(EnrollmentLog).order_by(EnrollmentLog.id)
            if kinds:
                stmt = stmt.where(EnrollmentLog.kind.in_(kinds))
            return [line.message for line in s.scalars(stmt)]
