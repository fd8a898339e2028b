"""`salesforce_task` and `hubspot_task` from a live workflow to local stand-ins of the
vendors' APIs (issue 5, item 9): the task made once on the record, owned by the owner's CRM
id, due `due_in` later; a rate limit reschedules the step at the vendor's time."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from engine import users as people
from engine.runtime import Runtime
from storage.db import session_scope
from storage.workflow_models import StepRun
from tests.conftest import ManualClock
from tests.crm_peers import HubSpotPeer, SalesforcePeer, serve
from tests.engine.flow import Flow

OWNER = "005000000000001AAA"


@pytest.fixture
def sf() -> Iterator[SalesforcePeer]:
    with serve(SalesforcePeer()) as peer:
        assert isinstance(peer, SalesforcePeer)
        yield peer


@pytest.fixture
def hs() -> Iterator[HubSpotPeer]:
    with serve(HubSpotPeer()) as peer:
        assert isinstance(peer, HubSpotPeer)
        yield peer


@pytest.fixture
def flow(rt: Runtime, sf: SalesforcePeer, hs: HubSpotPeer) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={
            "salesforce_client_id": sf.client_id,
            "salesforce_client_secret": sf.client_secret,
            "salesforce_refresh_token": sf.refresh_token,
            "salesforce_login_url": sf.url + "/",
            "salesforce_api_version": sf.version,
            "hubspot_token": hs.token,
            "hubspot_api_url": hs.url + "/",
        }
    )
    return Flow(rt)


def task_workflow(flow: Flow, action: str, **step: Any) -> None:
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name=f"{action} for trials",
        trigger={"segment": "Trials"},
        steps=[
            {
                "action": action,
                "subject": "Call {{ account.name }}",
                "body": "Plan: {{ account.plan }}",
                "due_in": "2d",
                **step,
            }
        ],
    )


def results(flow: Flow) -> list[dict[str, Any] | None]:
    with session_scope(flow.rt.db) as s:
        return [r.result for r in s.scalars(select(StepRun).order_by(StepRun.id))]


def test_a_salesforce_task_is_made_on_the_account_for_its_owner(
    flow: Flow, sf: SalesforcePeer
) -> None:
    account_id = sf.add_account("Acme")
    with session_scope(flow.rt.db) as s:
        people.set_user(
            s, "ana@acme.example", now=flow.rt.clock.now(), crm_ids={"salesforce": OWNER}
        )
    task_workflow(flow, "salesforce_task")
    flow.group("acme", name="Acme", plan="trial", owner="ana@acme.example")
    flow.evaluate()
    flow.run()
    [task] = sf.tasks.values()
    assert task["Subject"] == "Call Acme"
    assert task["Description"] == "Plan: trial"
    assert task["WhatId"] == account_id
    assert task["OwnerId"] == OWNER
    due = (flow.rt.clock.now() + timedelta(days=2)).date().isoformat()
    assert task["ActivityDate"] == due
    assert flow.enrollments() == [("acme", "completed")]
    [result] = results(flow)
    assert result is not None and result["task"] == task["Id"] and result["created"] is True


def test_a_repeated_salesforce_step_makes_no_second_task(flow: Flow, sf: SalesforcePeer) -> None:
    sf.add_account("Acme")
    task_workflow(flow, "salesforce_task")
    flow.group("acme", name="Acme", plan="trial")
    flow.evaluate()
    call = flow.claim(flow.pending[0])
    first, again = flow.call(call), flow.call(call)  # the worker died after the first call
    assert len(sf.tasks) == 1
    assert first.result["created"] is True and again.result["created"] is False
    assert len(sf.requests("/services/data/v61.0/sobjects/Task/")) == 2  # both keyed the same


def test_a_salesforce_record_it_does_not_hold_fails_the_step_saying_so(
    flow: Flow, sf: SalesforcePeer
) -> None:
    task_workflow(flow, "salesforce_task")
    flow.group("acme", name="Nowhere Inc", plan="trial")
    flow.evaluate()
    flow.run()
    assert flow.enrollments() == [("acme", "failed")]
    failed, ended = flow.timeline(["failed"])
    assert "step 1 (salesforce_task) failed: Salesforce:" in failed and "Nowhere Inc" in failed
    assert ended.startswith("failed: step 1 (salesforce_task) failed")


def test_a_hubspot_task_is_associated_with_the_company_and_made_once(
    flow: Flow, hs: HubSpotPeer
) -> None:
    company = hs.add_company("Acme", "acme.example")
    with session_scope(flow.rt.db) as s:
        people.set_user(s, "U0ANA", now=flow.rt.clock.now(), crm_ids={"hubspot": "64492917"})
    task_workflow(flow, "hubspot_task", owner="U0ANA")
    flow.group("acme", name="Acme", plan="trial", hubspot_id=company)
    flow.evaluate()
    flow.run()
    [task] = hs.tasks.values()
    properties = task["properties"]
    assert properties["hs_task_subject"] == "Call Acme"
    assert properties["hubspot_owner_id"] == "64492917"
    assert task["associations"][0]["to"]["id"] == company
    assert flow.enrollments() == [("acme", "completed")]


def test_a_hubspot_rate_limit_reschedules_the_step_at_its_time_without_retrying_now(
    flow: Flow, hs: HubSpotPeer
) -> None:
    from tests.crm_peers import hs_error

    company = hs.add_company("Acme")
    status, headers, body = hs_error(429, "RATE_LIMITS", "You have reached your secondly limit.")
    hs.queued.append((status, {**headers, "Retry-After": "40"}, body))
    task_workflow(flow, "hubspot_task")
    flow.group("acme", name="Acme", plan="trial", hubspot_id=company)
    flow.evaluate()
    flow.run()
    assert len(hs.requests()) == 1  # one call, no storm
    with session_scope(flow.rt.db) as s:
        [row] = s.scalars(select(StepRun))
        assert (row.status, row.attempt) == ("scheduled", 1)
        assert row.due_at == flow.rt.clock.now() + timedelta(seconds=40)
    flow.rt.clock.advance(seconds=41)  # type: ignore[attr-defined]
    flow.run()
    assert len(hs.tasks) == 1
    assert flow.enrollments() == [("acme", "completed")]
