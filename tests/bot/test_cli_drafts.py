"""`workflowbot drafts list|show|edit|approve|discard|mark-sent|send-again`: the engine's
guarded transitions from the command line; a refused decision says what happened instead."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy import select

from engine.runtime import Runtime
from storage.action_models import Draft
from storage.db import session_scope
from tests.conftest import ManualClock
from tests.engine.flow import Flow


def waiting_drafts(rt: Runtime, count: int) -> list[int]:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(
        update={"email_from": "cs@acme.example", "approval_channel": "#cs-approvals"}
    )
    flow = Flow(rt)
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Welcome",
        trigger={"segment": "Trials"},
        steps=[
            {
                "action": "email",
                "to": ["hello@{{ account.domain }}"],
                "subject": "Welcome, {{ account.name }}",
                "body": "Hi {{ account.name }} team",
            }
        ],
    )
    for i in range(count):
        flow.group(f"a{i}", name=f"Acme {i}", plan="trial", domain=f"a{i}.example")
    flow.evaluate()
    flow.run()
    with session_scope(rt.db) as s:
        return list(s.scalars(select(Draft.id).order_by(Draft.id)))


def status(rt: Runtime, draft_id: int) -> str:
    with session_scope(rt.db) as s:
        draft = s.get(Draft, draft_id)
        assert draft is not None
        return draft.status


def test_list_show_edit_approve_and_discard(cli: Callable[..., Any], rt: Runtime) -> None:
    first, second = waiting_drafts(rt, 2)
    listed = cli("drafts", "list", "--status", "pending")
    assert listed.exit_code == 0
    assert f"#{first}" in listed.output and "hello@a0.example" in listed.output
    edited = cli("drafts", "edit", first, "--subject", "Hello from Acme", "--to", "ceo@a0.example")
    assert edited.exit_code == 0, edited.output
    shown = cli("drafts", "show", first)
    assert (
        "Subject:  Hello from Acme" in shown.output and "To:       ceo@a0.example" in shown.output
    )
    assert "Waits in: #cs-approvals" in shown.output and "Hi Acme 0 team" in shown.output
    approved = cli("drafts", "approve", first)
    assert approved.exit_code == 0 and "approved" in approved.output
    assert status(rt, first) == "approved"
    again = cli("drafts", "approve", first)
    assert again.exit_code == 2 and "already approved by cli:" in again.output
    discarded = cli("drafts", "discard", second)
    assert discarded.exit_code == 0 and status(rt, second) == "discarded"
    late_edit = cli("drafts", "edit", second, "--subject", "x")
    assert (
        late_edit.exit_code == 2
        and "cannot be edited: it was already discarded" in late_edit.output
    )


def test_bad_edits_and_unknown_drafts_are_refused_and_change_nothing(
    cli: Callable[..., Any], rt: Runtime
) -> None:
    [draft] = waiting_drafts(rt, 1)
    bad = cli("drafts", "edit", draft, "--to", "not an address")
    assert bad.exit_code == 2 and "to:" in bad.output
    nothing = cli("drafts", "edit", draft)
    assert nothing.exit_code == 2 and "nothing to change" in nothing.output
    missing = cli("drafts", "show", 9999)
    assert missing.exit_code == 1 and "draft #9999 does not exist" in missing.output
    not_unknown = cli("drafts", "mark-sent", draft)
    assert not_unknown.exit_code == 2 and "cannot be marked sent" in not_unknown.output
    with session_scope(rt.db) as s:
        found = s.get(Draft, draft)
        assert found is not None and not found.edited and found.to == ["hello@a0.example"]


def test_enrollments_retry_runs_held_steps_again(cli: Callable[..., Any], rt: Runtime) -> None:
    rt.settings = rt.settings.model_copy(update={"email_from": "cs@acme.example"})
    flow = Flow(rt)
    flow.workflow(
        name="Nudge",
        trigger={"event": "login"},
        object="contact",
        steps=[
            {
                "action": "email",
                "approval": "auto",
                "to": ["{{ contact.email }}"],
                "subject": "Hi {{ contact.nickname }}",
                "body": "b",
            }
        ],
    )
    flow.identify("ada", email="ada@globex.example")
    flow.track("ada", "login")
    flow.evaluate()
    flow.run()
    assert [s for _, s, _ in flow.steps()] == ["attention"]
    done = cli("enrollments", "retry", "--contact", "ada")
    assert done.exit_code == 0 and "1 steps run again" in done.output
    assert [s for _, s, _ in flow.steps()] == ["scheduled"]
    again = cli("enrollments", "retry", "--contact", "ada")
    assert again.exit_code == 1 and "no step needs attention" in again.output
