"""`action: update`: fields of the enrolled record set as a change like any other (issue 5,
item 6): other workflows see it, a repeat stores it once, a bad value fails the step."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import func, select

from engine.definitions import DefinitionError, check_references, parse_document
from engine.http import SystemResolver
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Account, OutboxRow
from storage.queries import configuration
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Sink

pytestmark = pytest.mark.both_dbs


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    with session_scope(rt.db) as s:
        configuration.put(
            s, key="stages", value=["Onboarding", "Adoption", "Renewal"], now=rt.clock.now()
        )
    return Flow(rt)


def account(flow: Flow, external_id: str) -> Account:
    with session_scope(flow.rt.db) as s:
        return s.scalars(select(Account).where(Account.external_id == external_id)).one()


def welcome(flow: Flow, **step: Any) -> None:
    flow.segment("Trial accounts", 'plan = "trial"')
    flow.workflow(
        name="Welcome",
        trigger={"segment": "Trial accounts"},
        steps=[{"action": "update", **step}],
    )


def test_an_update_is_a_change_other_workflows_see(flow: Flow, sink: Sink) -> None:
    welcome(flow, set={"stage": "adoption", "welcomed": "yes, {{ account.name }}"})
    flow.workflow(
        name="Adopters",
        trigger={"stage": "Adoption"},
        steps=[{"action": "webhook", "url": f"{sink.url}/adopted"}],
    )
    flow.group("acme", name="Acme", plan="trial")
    flow.evaluate()
    flow.run()
    changed = account(flow, "acme")
    assert changed.stage == "Adoption"
    assert changed.traits["welcomed"] == "yes, Acme"
    flow.evaluate()  # the update's own change, as the worker evaluates it
    flow.run()
    assert [r.path for r in sink.received] == ["/adopted"]
    assert flow.enrollments() == [("acme", "completed"), ("acme", "completed")]
    assert "step 1 (update): set stage = 'adoption', welcomed = 'yes, Acme'" in flow.timeline(
        ["run"]
    )


def test_a_repeated_update_is_stored_once(flow: Flow) -> None:
    from engine import runner
    from engine.actions.base import RunContext
    from engine.actions.update import UpdateAction

    welcome(flow, set={"score_note": "checked"})
    flow.group("acme", plan="trial")
    flow.evaluate()
    [step_id] = flow.pending
    svc = runner.services(flow.rt)
    with session_scope(flow.rt.db) as s:
        call, _ = runner._claim_and_check(s, svc, step_id)
    assert call is not None
    with session_scope(flow.rt.db) as s:
        before = s.scalar(select(func.count()).select_from(OutboxRow))
    for _ in range(3):  # the worker dies after the change, the step runs again
        UpdateAction().run(
            call.compiled.definition.steps[0],
            RunContext(
                call.data,
                0,
                call.key,
                0,
                flow.rt.clock.now(),
                svc.settings,
                svc.resolver,
                svc.record_change,
            ),
        )
    with session_scope(flow.rt.db) as s:
        assert s.scalar(select(func.count()).select_from(OutboxRow)) == (before or 0) + 1


def test_a_stage_that_is_not_listed_fails_the_step(flow: Flow) -> None:
    welcome(flow, set={"stage": "{{ account.next_stage }}"})
    flow.group("acme", plan="trial", next_stage="Nowhere")
    flow.evaluate()
    flow.run()
    failed, ended = flow.timeline(["failed"])
    assert "step 1 (update) failed: set:" in failed and "Nowhere" in failed
    assert ended == "failed: step 1 (update) failed (on_failure: stop)"
    assert account(flow, "acme").stage is None


def test_a_literal_stage_is_checked_when_the_workflow_is_saved() -> None:
    doc = parse_document(
        {
            "version": 1,
            "stages": ["Onboarding", "Adoption"],
            "workflows": [
                {
                    "name": "W",
                    "object": "account",
                    "trigger": {"stage": "Onboarding"},
                    "steps": [{"action": "update", "set": {"stage": "Adopted"}}],
                }
            ],
        }
    )
    problems = check_references(
        doc, segments={}, stages=[], allowed_hosts=[], resolver=SystemResolver()
    )
    assert problems == [
        'workflows[0].steps[0].set.stage: "Adopted" is not a stage; the stages are '
        "Onboarding, Adoption"
    ]
    with pytest.raises(DefinitionError, match=r"steps\[0\]\.set\.owner: cannot be set"):
        parse_document(
            {
                "version": 1,
                "workflows": [
                    {
                        "name": "W",
                        "object": "account",
                        "trigger": {"stage": "Onboarding"},
                        "steps": [{"action": "update", "set": {"owner": "U1"}}],
                    }
                ],
            }
        )
