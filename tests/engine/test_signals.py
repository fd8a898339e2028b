"""Signals: what a change means for workflows, stored once, in the transaction that marks
its outbox row processed (engine/signals.py, issue 3)."""

from __future__ import annotations

import itertools
import time
from datetime import timedelta

import dramatiq
import pytest
from sqlalchemy import select

from engine import lifecycle
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import HealthScore
from storage.queries import configuration
from tests.conftest import ManualClock
from tests.engine.harness import Harness


@pytest.fixture
def wb(rt: Runtime) -> Harness:
    rt.clock = ManualClock()
    return Harness(rt)


@pytest.mark.both_dbs
def test_a_new_segment_stores_its_members_without_signals(wb: Harness) -> None:
    wb.group("acme", plan="trial")
    wb.group("globex", plan="pro")
    wb.evaluate()
    assert wb.segment("Trial accounts", 'plan = "trial"') == 1
    assert wb.members("Trial accounts") == {"acme"}
    assert wb.signals() == []


@pytest.mark.both_dbs
def test_a_change_enters_and_leaves_segments_once(wb: Harness) -> None:
    wb.segment("Trial accounts", 'plan = "trial"')
    ids = wb.group("acme", plan="trial")
    assert wb.evaluate(ids) == 1
    assert wb.signals() == [("account", "acme", "segment_enter", wb.signals()[0][3])]
    assert wb.evaluate(ids) == 0  # the same outbox rows again: nothing new
    wb.group("acme", plan="pro")
    wb.evaluate()
    assert [s[2] for s in wb.signals()] == ["segment_enter", "segment_leave"]
    assert wb.members("Trial accounts") == set()
    assert wb.details()[0] == {"segment": "Trial accounts"}


@pytest.mark.both_dbs
def test_stage_moves_are_enter_and_leave_signals(wb: Harness) -> None:
    wb.group("acme", stage="Onboarding")
    wb.evaluate()
    wb.group("acme", stage="Adoption")
    wb.evaluate()
    wb.group("acme", stage=None)  # cleared
    wb.evaluate()
    assert [(kind, key) for _, _, kind, key in wb.signals()] == [
        ("stage_enter", "Onboarding"),
        ("stage_leave", "Onboarding"),
        ("stage_enter", "Adoption"),
        ("stage_leave", "Adoption"),
    ]


@pytest.mark.both_dbs
def test_health_moves_between_buckets_with_direction_and_history(wb: Harness) -> None:
    for score in (80, 75, 50, 30, 90, None, 20):
        wb.group("acme", health_score=score)
        wb.evaluate()
    health = [
        (key, d["from"], d["to"])
        for (_, _, kind, key), d in zip(wb.signals(), wb.details(), strict=True)
        if kind == "health"
    ]
    assert health == [
        ("change", None, "good"),  # a first score is only a change from none
        ("drop", "good", "neutral"),
        ("drop", "neutral", "bad"),
        ("rise", "bad", "good"),
        # 90 -> cleared: nothing; cleared -> 20: a first score again
        ("change", None, "bad"),
    ]
    with session_scope(wb.rt.db) as s:
        scores = list(s.scalars(select(HealthScore.score).order_by(HealthScore.id)))
    assert scores == [80, 75, 50, 30, 90, None, 20]


@pytest.mark.both_dbs
def test_new_thresholds_rebucket_without_signals(wb: Harness) -> None:
    wb.group("acme", health_score=65)  # neutral under 70 / 40
    wb.evaluate()
    with session_scope(wb.rt.db) as s:
        configuration.put(
            s, key=lifecycle.HEALTH_KEY, value={"good": 60, "bad": 30}, now=wb.rt.clock.now()
        )
    assert wb.signals()[-1][3] == "change"  # the first score, nothing since
    count = len(wb.signals())
    wb.group("acme", health_score=62)  # good under 60 / 30: same bucket as 65 now
    wb.evaluate()
    assert len(wb.signals()) == count


@pytest.mark.both_dbs
def test_an_event_is_a_signal_for_its_contact_and_its_account(wb: Harness) -> None:
    wb.group("acme", user="ann")
    wb.evaluate()
    wb.track("ann", "export_created", format="csv")
    wb.evaluate()
    events = [s for s in wb.signals() if s[2] == "event"]
    assert events == [
        ("contact", "ann", "event", "export_created"),
        ("account", "acme", "event", "export_created"),
    ]
    detail = wb.details()[-1]
    assert detail["event"] == "export_created" and detail["properties"] == {"format": "csv"}


@pytest.mark.both_dbs
def test_no_signals_imports_move_state_but_fire_nothing(wb: Harness) -> None:
    wb.segment("Active", "count(login, 7d) >= 1", object_type="contact")
    wb.segment("Trial", 'plan = "trial"', object_type="contact")
    wb.identify("ann", plan="trial", signals=False)
    wb.track("ann", "login", signals=False)
    wb.evaluate()
    assert wb.signals() == []
    assert wb.members("Active") == {"ann"} and wb.members("Trial") == {"ann"}


@pytest.mark.both_dbs
def test_an_account_change_reevaluates_its_contacts_account_segments(wb: Harness) -> None:
    wb.segment("People at trials", 'account.plan = "trial"', object_type="contact")
    wb.group("acme", user="ann")
    wb.group("acme", user="bob")
    wb.identify("cy")  # no account
    wb.evaluate()
    wb.group("acme", plan="trial")
    wb.evaluate()
    assert sorted(s[1] for s in wb.signals() if s[2] == "segment_enter") == ["ann", "bob"]


@pytest.mark.both_dbs
def test_a_contacts_event_reevaluates_its_accounts_aggregate_segments(wb: Harness) -> None:
    wb.segment("Busy accounts", "count(login, 7d) >= 2")
    wb.group("acme", user="ann")
    wb.group("acme", user="bob")
    wb.evaluate()
    wb.track("ann", "login")
    wb.evaluate()
    assert wb.members("Busy accounts") == set()
    wb.track("bob", "login")
    wb.evaluate()
    assert wb.members("Busy accounts") == {"acme"}
    assert ("account", "acme", "segment_enter") in [s[:3] for s in wb.signals()]


def test_time_alone_moves_membership_at_the_next_refresh(wb: Harness) -> None:
    from engine.scheduler import Scheduler

    wb.segment("Recently active", "count(login, 7d) >= 1", object_type="contact")
    wb.track("ann", "login")
    wb.evaluate()
    assert wb.members("Recently active") == {"ann"}
    clock = wb.rt.clock
    assert isinstance(clock, ManualClock)
    clock.advance(days=8)
    scheduler = Scheduler(wb.rt, enqueue=lambda ids: None)
    assert scheduler.refresh_segments() == 1
    assert wb.members("Recently active") == set()
    assert wb.signals()[-1] == ("contact", "ann", "segment_leave", wb.signals()[-1][3])
    assert scheduler.refresh_segments() == 0  # refreshed: not due again for 5 minutes
    clock.advance(minutes=5)
    assert scheduler.refresh_segments() == 1
    assert wb.signals()[-1][2] == "segment_leave"  # nothing new: the difference only
    assert len([s for s in wb.signals() if s[2].startswith("segment")]) == 2


@pytest.mark.both_dbs
def test_python_evaluation_and_the_sql_refresh_agree(wb: Harness) -> None:
    """After many changes evaluated record by record, a set-wise refresh finds nothing to move."""
    from engine import segments as seg
    from storage.queries import segments as q

    rules = {
        "a": ('plan = "trial" and mrr < 500 and count(login, 7d) < 2', "account"),
        "b": ('account.plan in ["trial", "pro"] or seats >= 10', "contact"),
        "c": ("trend(login, 7d) <= -50 or last_seen_at within 1d", "contact"),
        "d": ('stage = "Adoption" and not (health_score < 40)', "account"),
        "e": ('stage < "Renewal" and health != "bad"', "account"),
        "f": ('account.health in ["neutral", "good"] or account.stage >= "expansion"', "contact"),
    }
    stages = ["Onboarding", "Adoption", "Expansion", "Renewal"]
    with session_scope(wb.rt.db) as s:
        configuration.put(s, key=lifecycle.STAGES_KEY, value=stages, now=wb.rt.clock.now())
    for name, (rule, object_type) in rules.items():
        wb.segment(name, rule, object_type=object_type)
    plans = ["trial", "pro", "free", None]
    for n in range(24):
        account, user = f"acct{n % 6}", f"user{n}"
        wb.group(
            account,
            user=user,
            plan=plans[n % 6 % 4],
            mrr=str(100 * (n % 7)),
            stage=stages[n % 5 % 4],
            health_score=n * 37 % 101,
        )
        wb.identify(user, seats=n % 13)
        for _ in range(n % 3):
            wb.track(user, "login", at=wb.rt.clock.now() - timedelta(days=n % 10))
        wb.evaluate()
    for name in rules:  # each rule splits the records: the agreement below means something
        assert 0 < len(wb.members(name)) < (6 if rules[name][1] == "account" else 24), name
    with session_scope(wb.rt.db) as s:
        for segment in q.all_segments(s):
            table = seg.table_for(segment.object_type)
            cond = seg.condition(segment, session=s, now=wb.rt.clock.now())
            assert q.diff_counts(s, segment_id=segment.id, table=table, condition=cond) == (0, 0), (
                segment.name
            )


def test_duplicated_and_concurrent_messages_store_each_signal_once(
    wb: Harness, worker: dramatiq.Worker
) -> None:
    """Every outbox row sent five times at once, rows of one record on parallel threads:
    each move is stored once and enters and leaves alternate."""
    from engine import tasks

    wb.segment("Trial accounts", 'plan = "trial"')
    ids = []
    for n in range(40):
        written = wb.group("acme", plan="trial" if n % 2 == 0 else "pro", seats=n)
        for _ in range(5):
            tasks.enqueue_evaluation(written)
        ids += written
        time.sleep(0.005 * (n % 3))  # some changes evaluated alone, some overtaken
    wb.rt.broker.join("evaluate", timeout=30_000)
    worker.join()
    moves = [kind for _, _, kind, _ in wb.signals()]
    assert moves, "nothing was evaluated"
    assert all(a != b for a, b in itertools.pairwise(moves)), moves  # never two enters in a row
    assert moves[0] == "segment_enter"
    assert moves[-1] == "segment_leave"  # the last change made it a pro account
    assert wb.members("Trial accounts") == set()
    assert wb.evaluate(ids) == 0
