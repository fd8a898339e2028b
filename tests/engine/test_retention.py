"""Retention: old events and finished enrollments are deleted in batches (their step runs, log
lines, drafts and email events by the foreign keys' cascades); active enrollments and recent
rows stay; the scheduler does it by itself; `workflowbot prune [--dry-run]` by hand."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from itertools import count
from typing import Any

import pytest
from sqlalchemy import Engine, func, select

from engine import retention
from engine.runtime import Runtime
from engine.scheduler import Scheduler
from storage.action_models import Draft, EmailEvent
from storage.db import session_scope
from storage.models import Contact, Event
from storage.workflow_models import Enrollment, EnrollmentLog, StepRun, Workflow, WorkflowVersion

pytestmark = pytest.mark.both_dbs

NOW = datetime.now(UTC).replace(microsecond=0)
OLD = NOW - timedelta(days=40)
RECENT = NOW - timedelta(days=10)
_ids = count(1)


@dataclass
class Made:
    """The ids of what a test stored, by what should happen to them."""

    old_events: list[int] = field(default_factory=list)
    kept_events: list[int] = field(default_factory=list)
    old_enrollments: list[int] = field(default_factory=list)
    kept_enrollments: list[int] = field(default_factory=list)


def _workflow(session: Any, name: str) -> tuple[int, int]:
    workflow = Workflow(
        name=name,
        name_key=name.casefold(),
        object_type="contact",
        status="live",
        version=1,
        trigger_kind="event",
        trigger_key="login",
        live_since=OLD - timedelta(days=100),
        created_at=OLD - timedelta(days=100),
        updated_at=OLD - timedelta(days=100),
    )
    session.add(workflow)
    session.flush()
    version = WorkflowVersion(
        workflow_id=workflow.id, number=1, document={}, created_at=OLD, created_by="test"
    )
    session.add(version)
    session.flush()
    return workflow.id, version.id


def _enrollment(
    session: Any,
    workflow: tuple[int, int],
    *,
    status: str,
    ended_at: datetime | None,
    contact_id: int,
) -> int:
    """An enrollment with a step run, a log line, a draft and an email event."""
    enrollment = Enrollment(
        workflow_id=workflow[0],
        version_id=workflow[1],
        object_type="contact",
        object_id=contact_id,
        status=status,
        once=False,
        via="signal",
        enrolled_at=(ended_at or NOW) - timedelta(days=100),
        ended_at=ended_at,
    )
    session.add(enrollment)
    session.flush()
    step = StepRun(
        enrollment_id=enrollment.id,
        step_index=0,
        status="done" if ended_at else "scheduled",
        due_at=enrollment.enrolled_at,
        idempotency_key=f"key-{next(_ids)}",
        created_at=enrollment.enrolled_at,
        finished_at=ended_at,
    )
    session.add(step)
    log = EnrollmentLog(
        enrollment_id=enrollment.id, at=enrollment.enrolled_at, kind="enrolled", message="in"
    )
    session.add(log)
    session.flush()
    draft = Draft(
        step_run_id=step.id,
        enrollment_id=enrollment.id,
        workflow_id=workflow[0],
        step_index=0,
        kind="email",
        status="sent",
        object_type="contact",
        object_id=contact_id,
        sender="cs@example.com",
        subject="Hello",
        body="Hi",
        message_id=f"<{next(_ids)}@test>",
        created_at=enrollment.enrolled_at,
        updated_at=enrollment.enrolled_at,
    )
    session.add(draft)
    session.flush()
    session.add(EmailEvent(draft_id=draft.id, kind="open", at=enrollment.enrolled_at))
    return enrollment.id


def store(db: Engine) -> Made:
    """Old and recent events of two names; finished enrollments, old and recent; an active
    enrollment that began long ago."""
    made = Made()
    with session_scope(db) as session:
        contact = Contact(
            external_id=f"c{next(_ids)}",
            traits={},
            trait_times={},
            created_at=OLD,
            first_seen_at=OLD,
            updated_at=OLD,
        )
        session.add(contact)
        session.flush()
        for name, when, n in (("login", OLD, 5), ("export", OLD, 3), ("login", RECENT, 2)):
            for _ in range(n):
                event = Event(
                    message_id=f"m{next(_ids)}",
                    name=name,
                    contact_id=contact.id,
                    timestamp=when,
                    properties={},
                    received_at=when,
                )
                session.add(event)
                session.flush()
                (made.old_events if when == OLD else made.kept_events).append(event.id)
        onboarding, renewal = _workflow(session, "Onboarding"), _workflow(session, "Renewal")
        finished = [(onboarding, "completed"), (onboarding, "exited"), (renewal, "failed")]
        for workflow, status in finished:
            made.old_enrollments.append(
                _enrollment(session, workflow, status=status, ended_at=OLD, contact_id=contact.id)
            )
        made.kept_enrollments.append(
            _enrollment(
                session, onboarding, status="completed", ended_at=RECENT, contact_id=contact.id
            )
        )
        made.kept_enrollments.append(
            _enrollment(session, renewal, status="active", ended_at=None, contact_id=contact.id)
        )
    return made


def remaining(db: Engine) -> dict[str, Any]:
    with session_scope(db) as session:
        return {
            "events": set(session.scalars(select(Event.id))),
            "enrollments": set(session.scalars(select(Enrollment.id))),
            "step_runs": set(session.scalars(select(StepRun.enrollment_id))),
            "logs": set(session.scalars(select(EnrollmentLog.enrollment_id))),
            "drafts": set(session.scalars(select(Draft.enrollment_id))),
            "email_events": session.scalar(select(func.count()).select_from(EmailEvent)),
        }


@pytest.fixture
def settings(rt: Runtime) -> Any:
    return rt.settings.model_copy(
        update={"retention_events_days": 30, "retention_enrollments_days": 30}
    )


def test_old_rows_go_in_batches_and_the_rest_stays(rt: Runtime, settings: Any) -> None:
    made = store(rt.db)

    pruned = retention.prune(rt.db, settings=settings, now=NOW, batch_size=2)

    assert (pruned.events, pruned.enrollments, pruned.done) == (8, 3, True)
    # login: 2 + 2 + 1, export: 2 + 1, Onboarding: 2 + 0, Renewal: 1 -> 8 statements.
    assert pruned.batches == 8
    left = remaining(rt.db)
    assert left["events"] == set(made.kept_events)
    assert left["enrollments"] == set(made.kept_enrollments)
    # The cascades took the pruned enrollments' steps, logs, drafts and email events.
    assert left["step_runs"] == left["logs"] == left["drafts"] == set(made.kept_enrollments)
    assert left["email_events"] == 2


def test_a_budget_stops_after_a_batch_and_the_next_call_goes_on(rt: Runtime, settings: Any) -> None:
    store(rt.db)
    clock = iter(range(1000))

    def monotonic() -> float:
        return float(next(clock))

    first = retention.prune(
        rt.db, settings=settings, now=NOW, batch_size=2, budget_seconds=1, monotonic=monotonic
    )

    assert (first.events, first.batches, first.done) == (2, 1, False)
    rest = retention.prune(rt.db, settings=settings, now=NOW, batch_size=2)
    assert (rest.events, rest.enrollments, rest.done) == (6, 3, True)


def test_zero_days_keeps_everything(rt: Runtime, settings: Any) -> None:
    made = store(rt.db)
    forever = settings.model_copy(
        update={"retention_events_days": 0, "retention_enrollments_days": 0}
    )

    assert retention.count(rt.db, settings=forever, now=NOW) == retention.Pruned()
    pruned = retention.prune(rt.db, settings=forever, now=NOW, batch_size=2)

    assert (pruned.events, pruned.enrollments, pruned.batches) == (0, 0, 0)
    assert len(remaining(rt.db)["events"]) == len(made.old_events) + len(made.kept_events)


def test_the_scheduler_prunes_by_itself(rt: Runtime, settings: Any) -> None:
    made = store(rt.db)
    rt.settings = settings

    Scheduler(rt, enqueue=lambda ids: None).tick()

    left = remaining(rt.db)
    assert left["events"] == set(made.kept_events)
    assert left["enrollments"] == set(made.kept_enrollments)


def test_prune_command_counts_with_dry_run_then_deletes(
    rt: Runtime, cli: Callable[..., Any], monkeypatch: pytest.MonkeyPatch
) -> None:
    made = store(rt.db)
    monkeypatch.setenv("RETENTION_EVENTS_DAYS", "30")
    monkeypatch.setenv("RETENTION_ENROLLMENTS_DAYS", "30")

    dry = cli("prune", "--dry-run")

    assert dry.exit_code == 0, dry.output
    assert "would delete 8 events older than" in dry.output
    assert "would delete 3 finished enrollments ended before" in dry.output
    assert len(remaining(rt.db)["events"]) == 10  # nothing deleted

    done = cli("prune", "--batch-size", "2")

    assert done.exit_code == 0, done.output
    assert "deleted 8 events older than" in done.output
    assert "deleted 3 finished enrollments" in done.output
    assert "(8 batches of at most 2 rows)" in done.output
    assert remaining(rt.db)["enrollments"] == set(made.kept_enrollments)
