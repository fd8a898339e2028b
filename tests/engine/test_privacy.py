"""Per-record control: the suppression list, and forgetting a contact (engine/privacy.py)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from sqlalchemy import Engine, insert, select

from engine import privacy, workflows
from engine.runtime import Runtime
from engine.workflow_defs import WorkflowDef
from storage.base import Base
from storage.db import session_scope
from storage.models import Account, Contact, Event, HealthScore, OutboxRow, SegmentMember, Signal
from storage.queries import suppressions
from storage.queries import workflows as wq
from storage.workflow_models import Enrollment, EnrollmentLog, StepRun, Suppression
from tests.conftest import ManualClock
from tests.engine.harness import Harness
from tests.helpers import all_rows, count, one

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=UTC)


@pytest.mark.both_dbs
def test_suppression_is_by_address_whatever_its_capitalization(db: Engine) -> None:
    with session_scope(db) as s:
        assert privacy.suppress(s, email=" Bob@X.com ", by="cli:ann", now=NOW) is True
        assert (
            privacy.suppress(s, email="bob@x.com", reason="bounced", by="cli:bo", now=NOW) is False
        )
        assert suppressions.suppressed(s, emails=["BOB@x.COM", "carol@x.com"]) == {"bob@x.com"}
        assert suppressions.suppressed(s, emails=[]) == set()
    listed = all_rows(db, Suppression)
    assert [(r.email, r.reason, r.created_by) for r in listed] == [
        ("Bob@X.com", "manual", "cli:ann")
    ]
    with session_scope(db) as s:
        assert privacy.unsuppress(s, email="BOB@X.COM") is True
        assert privacy.unsuppress(s, email="bob@x.com") is False
        assert suppressions.suppressed(s, emails=["bob@x.com"]) == set()


@pytest.mark.parametrize(
    ("email", "problem"),
    [
        ("bob", 'EMAIL: "bob" is not an email address (no @)'),
        ("bob@x@y.com", 'EMAIL: "bob@x@y.com" is not an email address (more than one @)'),
        ("bob smith@x.com", "(it contains whitespace)"),
        ("@x.com", "(nothing before the @)"),
        ("bob@localhost", '(no dot in the domain "localhost")'),
        ("   ", 'EMAIL: "" is not an email address (it is empty)'),
        ("b" * 320 + "@x.com", "EMAIL: an address has at most 320 characters (this one has 326)"),
    ],
)
def test_an_address_that_is_not_one_is_refused_naming_the_problem(email: str, problem: str) -> None:
    with pytest.raises(privacy.PrivacyError) as raised:
        privacy.checked_email(email)
    assert problem in str(raised.value)


@pytest.mark.both_dbs
def test_a_reason_longer_than_the_column_is_refused_and_nothing_stored(db: Engine) -> None:
    refused = pytest.raises(privacy.PrivacyError, match="REASON: at most 32 characters")
    with refused, session_scope(db) as s:
        privacy.suppress(s, email="bob@x.com", reason="r" * 33, by="t", now=NOW)
    assert count(db, Suppression) == 0


@pytest.fixture
def wb(rt: Runtime) -> Harness:
    """Two people at one account, with events, a segment, a score, signals and enrollments."""
    rt.clock = ManualClock(NOW)
    h = Harness(rt)
    h.segment("Pros", 'plan = "pro"', object_type="contact")
    h.group("acme", user="u1", plan="trial")
    h.group("acme", user="u2")
    h.identify(
        "u1", email="Bob@X.com", first_name="Bob", last_name="Stone", plan="pro", health_score=80
    )
    h.identify("u2", email="carol@x.com", name="Carol Reed", plan="pro")
    h.track("u1", "login", page="/secret-plans")
    h.track("u2", "login", page="/pricing")
    h.evaluate()
    return h


def _ids(db: Engine) -> dict[str, int]:
    with session_scope(db) as s:
        return {e: i for e, i in s.execute(select(Contact.external_id, Contact.id))}


def _enroll(db: Engine, ids: dict[str, int]) -> None:
    """Enrollments as the engine keeps them: a contact workflow for each person, and an
    account one the first person's login started."""
    made, bob = {}, ids["u1"]
    with session_scope(db) as s:
        for name, obj in (("Welcome", "contact"), ("Account login", "account")):
            definition = WorkflowDef.model_validate(
                {
                    "name": name,
                    "object": obj,
                    "trigger": {"event": "login"},
                    "steps": [{"action": "webhook", "url": "https://hooks.example.com/cs"}],
                }
            )
            workflows.save(s, definition=definition, by="cli:test", now=NOW)
            workflow = wq.by_name(s, name=name)
            assert workflow is not None
            version = wq.version(s, workflow_id=workflow.id, number=1)
            assert version is not None
            made[obj] = (workflow.id, version.id)
        event = {"event": "login", "properties": {"page": "/secret-plans"}}
        for obj, record, detail in (
            ("contact", ids["u1"], {**event, "contact_id": ids["u1"]}),
            ("contact", ids["u2"], {"event": "login", "contact_id": ids["u2"]}),
            ("account", ids["acme"], {**event, "contact_id": ids["u1"]}),
        ):
            workflow_id, version_id = made[obj]
            enrollment_id = s.scalar(
                insert(Enrollment)
                .values(
                    workflow_id=workflow_id,
                    version_id=version_id,
                    object_type=obj,
                    object_id=record,
                    status="active",
                    once=True,
                    via="signal",
                    trigger={"kind": "event", "key": "login", "detail": detail},
                    enrolled_at=NOW,
                )
                .returning(Enrollment.id)
            )
            s.execute(
                insert(EnrollmentLog).values(
                    enrollment_id=enrollment_id,
                    at=NOW,
                    kind="enrolled",
                    message="enrolled",
                    detail={"to": "bob@x.com" if (obj, record) == ("contact", bob) else "team"},
                )
            )
            s.execute(
                insert(StepRun).values(
                    enrollment_id=enrollment_id,
                    step_index=0,
                    status="done",
                    due_at=NOW,
                    idempotency_key=f"k-{enrollment_id}",
                    created_at=NOW,
                )
            )


def _everything(db: Engine) -> str:
    """Every row of every table, as text: where a forgotten value could hide."""
    with session_scope(db) as s:
        return "\n".join(
            repr(tuple(row)) for t in Base.metadata.sorted_tables for row in s.execute(select(t))
        )


def _enrollment_counts(db: Engine) -> dict[int, dict[str, int]]:
    with session_scope(db) as s:
        return wq.counts(s, workflow_ids=[w.id for w in wq.all_workflows(s)])


@pytest.mark.both_dbs
def test_forgetting_a_contact_erases_its_data_and_keeps_every_count(wb: Harness) -> None:
    db = wb.rt.db
    ids = {**_ids(db), "acme": one(db, Account).id}
    _enroll(db, ids)
    bob = ids["u1"]
    before = _everything(db)
    assert "bob@x.com" in before and "Stone" in before and "/secret-plans" in before
    counts = _enrollment_counts(db)
    signals_before = count(db, Signal)

    with session_scope(db) as s:
        done = privacy.forget_contact(s, external_id="u1", now=NOW)

    after = _everything(db)
    for trace in ("bob@x.com", "Bob@X.com", "Stone", "/secret-plans", '"u1"', "'u1'"):
        assert trace not in after, trace
    row = one(db, Contact, id=bob)
    assert row.external_id == f"forgotten-{bob}"
    assert (row.email, row.name, row.first_name, row.last_name) == (None, None, None, None)
    assert (row.traits, row.trait_times) == ({}, {})
    # The other person's data is all there.
    carol = one(db, Contact, external_id="u2")
    assert (carol.email, carol.name) == ("carol@x.com", "Carol Reed")
    assert [e.properties for e in all_rows(db, Event)] == [{"page": "/pricing"}]
    assert {m.record_id for m in all_rows(db, SegmentMember)} == {carol.id}
    assert done.events == 1
    assert done.signals == signals_before - count(db, Signal) > 2
    assert not [
        g
        for g in all_rows(db, Signal)
        if (g.object_type, g.object_id) == ("contact", bob) or g.detail.get("contact_id") == bob
    ]
    assert [g.detail["contact_id"] for g in all_rows(db, Signal) if g.kind == "event"] == [
        carol.id,
        carol.id,
    ]
    assert not [h for h in all_rows(db, HealthScore) if h.object_id == bob]
    assert not [
        o for o in all_rows(db, OutboxRow) if (o.object_type, o.object_id) == ("contact", bob)
    ]
    # Enrollments and step runs stay: every workflow's enrolled count is what it was; his
    # own active enrollment is exited (nothing more is done about a forgotten person).
    assert done.enrollments == 2  # Bob's own, and the account's his login started
    assert done.exited == 1
    now_counts = _enrollment_counts(db)
    assert {w: c["enrolled"] for w, c in now_counts.items()} == {
        w: c["enrolled"] for w, c in counts.items()
    }
    assert sum(c["exited"] for c in now_counts.values()) == 1
    assert count(db, StepRun) == 3
    triggers = {(e.object_type, e.object_id): e.trigger for e in all_rows(db, Enrollment)}
    assert triggers[("contact", bob)] == {} and triggers[("account", ids["acme"])] == {}
    assert triggers[("contact", carol.id)]["detail"]["contact_id"] == carol.id


@pytest.mark.both_dbs
def test_pending_changes_are_left_to_the_worker(wb: Harness) -> None:
    pending = wb.identify("u1", plan="enterprise")
    with session_scope(wb.rt.db) as s:
        privacy.forget_contact(s, external_id="u1", now=NOW)
    assert [o.id for o in all_rows(wb.rt.db, OutboxRow) if o.processed_at is None] == pending
    wb.evaluate()  # the worker evaluates what is left of the record: nothing fails


@pytest.mark.both_dbs
def test_an_unknown_contact_is_an_error_naming_it(wb: Harness) -> None:
    refused = pytest.raises(privacy.UnknownContact, match='no contact with the id "u9"')
    with refused, session_scope(wb.rt.db) as s:
        privacy.forget_contact(s, external_id="u9", now=NOW)
