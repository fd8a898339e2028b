"""Workflows as stored: versions, status, the trigger index, rename, soft delete, rollback."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import Engine

from engine import segments, workflows
from engine.workflow_defs import WorkflowDef
from storage.db import session_scope
from storage.queries import configuration
from storage.queries import workflows as q

pytestmark = pytest.mark.both_dbs

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


def definition(**changes: Any) -> WorkflowDef:
    data: dict[str, Any] = {
        "name": "Trial welcome",
        "object": "account",
        "trigger": {"segment": "Trial accounts", "when": "enter"},
        "steps": [{"action": "webhook", "url": "https://hooks.example.com/cs"}],
        **changes,
    }
    return WorkflowDef.model_validate(data)


@pytest.fixture
def ws(db: Engine) -> Engine:
    with session_scope(db) as session:
        segments.create(
            session, name="Trial accounts", object_type="account", rule='plan = "trial"', now=NOW
        )
        segments.create(
            session, name="Admins", object_type="contact", rule='role = "admin"', now=NOW
        )
        configuration.put(session, key="stages", value=["Onboarding", "Renewal"], now=NOW)
    return db


def save(db: Engine, d: WorkflowDef, at: datetime = NOW) -> workflows.Saved:
    with session_scope(db) as session:
        return workflows.save(session, definition=d, by="cli:test", now=at)


def test_a_changed_document_is_a_new_version_and_the_same_one_is_not(ws: Engine) -> None:
    first = save(ws, definition())
    again = save(ws, definition())
    changed = save(
        ws, definition(steps=[{"action": "webhook", "url": "https://hooks.example.com/v2"}])
    )
    assert (first.action, first.version, first.status) == ("create", 1, "draft")
    assert (again.action, again.version) == ("unchanged", 1)
    assert (changed.action, changed.version, changed.summary) == ("change", 2, "steps[0]")
    with session_scope(ws) as session:
        history = workflows.history(session, name="trial WELCOME")
        assert [(v.number, v.summary, v.created_by) for v in history] == [
            (1, "created", "cli:test"),
            (2, "steps[0]", "cli:test"),
        ]
        assert history[0].document["steps"][0]["url"] == "https://hooks.example.com/cs"


def test_going_live_sets_live_since_and_live_never_returns_to_draft(ws: Engine) -> None:
    save(ws, definition(status="live"))
    later = NOW + timedelta(hours=1)
    with session_scope(ws) as session:
        workflows.set_status(session, name="Trial welcome", status="disabled", now=later)
        workflow = workflows.set_status(
            session, name="Trial welcome", status="live", now=later + timedelta(hours=1)
        )
        assert workflow.workflow.live_since == later + timedelta(hours=1)
    with pytest.raises(workflows.WorkflowError, match="does not return to draft"):
        save(ws, definition(status="draft"))


def test_the_trigger_index_holds_the_signal_each_trigger_listens_to(ws: Engine) -> None:
    save(ws, definition(status="live"))
    save(ws, definition(name="Any move", trigger={"health": "change"}, status="live"))
    save(ws, definition(name="Renewals", trigger={"stage": "renewal"}, status="live"))
    save(ws, definition(name="Logins", trigger={"event": "login"}))  # a draft listens to nothing
    with session_scope(ws) as session:
        trial = segments.q.by_name(session, name="Trial accounts")
        assert trial is not None
        found = {
            (kind, key): [
                w.name
                for w, _, _ in q.live_for(
                    session, object_types=["account"], kinds=[kind], keys=[key, workflows.ANY_KEY]
                )
            ]
            for kind, key in [
                ("segment_enter", str(trial.id)),
                ("health", "drop"),
                ("stage_enter", "Renewal"),
                ("event", "login"),
            ]
        }
    assert found == {
        ("segment_enter", str(trial.id)): ["Trial welcome"],
        ("health", "drop"): ["Any move"],
        ("stage_enter", "Renewal"): ["Renewals"],
        ("event", "login"): [],
    }


@pytest.mark.parametrize(
    ("trigger", "message"),
    [
        ({"segment": "Nope"}, "trigger.segment: no segment named 'Nope'"),
        ({"segment": "Admins"}, "'Admins' holds contacts, this workflow follows accounts"),
        ({"stage": "Churned"}, "'Churned' is not a stage (Onboarding, Renewal)"),
    ],
)
def test_a_trigger_naming_what_does_not_exist_is_refused(
    ws: Engine, trigger: dict[str, str], message: str
) -> None:
    with pytest.raises(
        workflows.WorkflowError, match=message.replace("(", r"\(").replace(")", r"\)")
    ):
        save(ws, definition(trigger=trigger))
    with session_scope(ws) as session:
        assert q.all_workflows(session) == []


def test_rename_delete_and_revive_keep_one_identity(ws: Engine) -> None:
    save(ws, definition(status="live"))
    with session_scope(ws) as session:
        original = workflows.get(session, name="Trial welcome").id
        workflows.rename(session, name="Trial welcome", new_name="Welcome", now=NOW)
    with session_scope(ws) as session:
        workflows.delete(session, name="welcome", now=NOW)
    with session_scope(ws) as session:
        assert q.all_workflows(session) == []
        with pytest.raises(workflows.WorkflowError, match="no workflow named 'Welcome'"):
            workflows.get(session, name="Welcome")
    revived = save(ws, definition(name="Welcome"))
    assert revived.action == "revive"
    with session_scope(ws) as session:
        workflow = workflows.get(session, name="Welcome")
        assert workflow.id == original
        assert workflow.status == "disabled"  # it had been live: it comes back disabled


def test_rollback_makes_an_old_document_current_as_a_new_version(ws: Engine) -> None:
    save(ws, definition())
    save(ws, definition(description="changed"))
    with session_scope(ws) as session:
        version = workflows.rollback(session, name="Trial welcome", number=1, by="U1", now=NOW)
        assert (version.number, version.summary) == (3, "rollback to version 1")
        with pytest.raises(workflows.WorkflowError, match="has no version 9"):
            workflows.rollback(session, name="Trial welcome", number=9, by="U1", now=NOW)
    with session_scope(ws) as session:
        [exported] = workflows.export(session)
    assert exported["description"] == ""
    assert save(ws, WorkflowDef.model_validate(exported)).action == "unchanged"
