"""Insight (engine/stats.py): the figures a user sees, asserted against enrollments the engine
itself made — counts, exits and skips by reason, waits, the email funnel with machine opens
and scanner clicks apart, days with zeros, the trend — and the rollup agreeing with the live
query."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select

from engine import drafts, stats
from engine.runtime import Runtime
from engine.stats import Range, Rate
from storage.action_models import Draft
from storage.db import session_scope
from storage.queries import drafts as draft_rows
from storage.stats_models import StatsDay
from storage.workflow_models import Workflow
from tests.conftest import ManualClock
from tests.engine.flow import Flow
from tests.sink import Sink
from tests.smtp_peer import SmtpPeer

T0 = datetime(2026, 3, 2, 9, 0, tzinfo=UTC)  # a Monday, 09:00 UTC
DAY0 = datetime(2026, 3, 2, tzinfo=UTC)
GMAIL_PROXY = (
    "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
)
BROWSER = "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_1) AppleWebKit/605.1.15 Version/17.1 Safari"


def clock(flow: Flow) -> ManualClock:
    assert isinstance(flow.rt.clock, ManualClock)
    return flow.rt.clock


def workflow_id(flow: Flow, name: str) -> int:
    with session_scope(flow.rt.db) as s:
        return int(s.scalars(select(Workflow.id).where(Workflow.name == name)).one())


def report(
    flow: Flow, name: str, start: datetime, days: int, tz: str = "UTC"
) -> stats.WorkflowStats:
    with session_scope(flow.rt.db) as s:
        return stats.workflow_stats(
            s,
            workflow_id=workflow_id(flow, name),
            range=Range(start, start + timedelta(days=days)),
            now=flow.rt.clock.now(),
            timezone=tz,
        )


def roll_up(flow: Flow) -> int:
    return flow.scheduler().roll_up_stats(force=True)


def rolled_rows(flow: Flow) -> int:
    with session_scope(flow.rt.db) as s:
        return int(s.scalar(select(func.count()).select_from(StatsDay)) or 0)


# -- pure rules ----------------------------------------------------------------------------


def test_machine_opens_are_proxy_fetches_right_after_sending() -> None:
    assert stats.is_machine_open(GMAIL_PROXY, 4)
    assert stats.is_machine_open("Mozilla/5.0", 10)  # Apple Mail Privacy Protection
    assert stats.is_machine_open("", 1)
    assert not stats.is_machine_open(GMAIL_PROXY, 3600)  # a person reading through Gmail
    assert not stats.is_machine_open(BROWSER, 2)
    assert stats.is_scanner_click(3)
    assert stats.is_scanner_click(7200, seconds_to_other_link_click=0.4)
    assert not stats.is_scanner_click(7200, seconds_to_other_link_click=40)


def test_reasons_group_and_percentiles_read_from_buckets() -> None:
    from engine import stats_rules

    assert stats_rules.reason_group("only_if `seats > 5` is false") == "condition false"
    assert stats_rules.reason_group("draft #12 discarded by U0ANA") == "draft discarded"
    assert stats_rules.reason_group('exit_if `plan = "paid"` became true') == "exit condition"
    assert stats_rules.reason_group("the CRM said no: 403") == "the CRM said no"
    bounds = stats_rules.WAIT_BOUNDS
    bucket = next(i for i, b in enumerate(bounds) if b > 7200)  # 2 h falls in this bucket
    median = stats_rules.percentile({bucket: 10, 0: 1}, 0.5)
    assert median is not None and abs(median - 7200) / 7200 < 0.19
    assert stats_rules.percentile({}, 0.5) is None


# -- steps, exits, skips, days -------------------------------------------------------------


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.clock = ManualClock(T0)
    rt.settings = rt.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    return Flow(rt)


def onboarding(flow: Flow, sink: Sink, name: str = "Onboarding") -> None:
    """Day 0: three trials enroll; day 1 one turns paid (exits); day 2 step 2 runs or is
    skipped; day 3 two complete and a fourth enrolls, left waiting at step 2."""
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name=name,
        trigger={"segment": "Trials"},
        exit_if='plan = "paid"',
        steps=[
            {"action": "webhook", "url": f"{sink.url}/welcome"},
            {"action": "webhook", "url": f"{sink.url}/tip", "delay": "2d", "only_if": "seats > 5"},
            {"action": "webhook", "url": f"{sink.url}/check", "delay": "1d"},
        ],
    )
    for account, seats in (("a1", 10), ("a2", 1), ("a3", 10)):
        flow.group(account, plan="trial", seats=seats, name=f"Acme {account}")
    flow.evaluate()
    flow.run()
    clock(flow).advance(days=1)
    flow.group("a3", plan="paid")
    flow.evaluate()
    clock(flow).advance(days=1)
    flow.run()
    clock(flow).advance(days=1)
    flow.run()
    clock(flow).advance(hours=1)
    flow.group("a4", plan="trial", seats=10, name="Acme a4")
    flow.evaluate()
    flow.run()


@pytest.mark.both_dbs
def test_counts_exits_skips_waits_and_days_as_the_engine_made_them(flow: Flow, sink: Sink) -> None:
    onboarding(flow, sink)
    assert sorted(flow.enrollments()) == [
        ("a1", "completed"),
        ("a2", "completed"),
        ("a3", "exited"),
        ("a4", "active"),
    ]
    found = report(flow, "Onboarding", DAY0, 5)
    assert (found.enrolled, found.active, found.completed, found.failed) == (4, 1, 2, 0)
    assert found.exited == {"exit condition": 1}
    first, tip, check = found.steps
    assert (first.action, first.run, first.skipped, first.pending) == ("webhook", 4, {}, 0)
    assert (tip.run, tip.skipped, tip.pending) == (1, {"condition false": 1}, 1)
    assert (check.run, check.failed) == (2, 0)
    assert tip.wait.median_seconds is not None
    assert abs(tip.wait.median_seconds - 2 * 86400) / (2 * 86400) < 0.19
    assert first.wait.median_seconds == 0.5 and "19%" in tip.wait.resolution
    assert found.emails == []
    assert [(d.day.day, d.enrolled, d.completed, d.exited) for d in found.days] == [
        (2, 3, 0, 0),
        (3, 0, 0, 1),
        (4, 0, 0, 0),
        (5, 1, 2, 0),
        (6, 0, 0, 0),
    ]
    assert found.trend is None  # nothing the 5 days before
    later = report(flow, "Onboarding", DAY0 + timedelta(days=5), 5)
    assert (later.enrolled, later.trend, later.steps[1].pending) == (0, -1.0, 1)


@pytest.mark.both_dbs
def test_the_rollup_gives_the_live_figures(flow: Flow, sink: Sink) -> None:
    onboarding(flow, sink)
    clock(flow).advance(days=2)
    live = report(flow, "Onboarding", DAY0, 5)
    live_hours = report(flow, "Onboarding", T0 - timedelta(hours=3), 4)  # partial edge days
    assert rolled_rows(flow) == 0
    assert roll_up(flow) == 5  # the first pass: every whole day since the first enrollment
    assert rolled_rows(flow) > 0
    assert roll_up(flow) == 0  # nothing touched since
    assert report(flow, "Onboarding", DAY0, 5) == live
    assert report(flow, "Onboarding", T0 - timedelta(hours=3), 4) == live_hours
    # In another timezone the days are cut elsewhere: all live, still right.
    paris = report(flow, "Onboarding", DAY0 - timedelta(hours=1), 5, tz="Europe/Paris")
    assert paris.enrolled == 4 and paris.days[0].enrolled == 3
    # A row touching an old day is rolled up by the next pass.
    clock(flow).advance(minutes=30)
    flow.group("a5", plan="trial", seats=1)
    flow.evaluate()
    flow.run()
    clock(flow).advance(days=1)
    scheduler = flow.scheduler()
    scheduler.tick()  # the scheduler's duty: a pass on its first tick, then every 10 minutes
    with session_scope(flow.rt.db) as s:
        [day] = s.scalars(
            select(StatsDay.day)
            .where(StatsDay.kind == "enrolled")
            .order_by(StatsDay.day.desc())
            .limit(1)
        )
    assert day == (DAY0 + timedelta(days=5)).date()  # a5's day, now whole, is rolled up
    assert scheduler.roll_up_stats() == 0  # not due yet
    with session_scope(flow.rt.db) as s:
        summary = stats.summaries(
            s, range=Range(DAY0, DAY0 + timedelta(days=10)), now=flow.rt.clock.now()
        )
    assert [(x.name, x.enrolled, x.active, x.completed, x.exited) for x in summary] == [
        ("Onboarding", 5, 2, 2, 1)
    ]


# -- email ---------------------------------------------------------------------------------


@pytest.fixture
def mail(rt: Runtime, smtp: SmtpPeer) -> Flow:
    rt.clock = ManualClock(T0)
    rt.settings = rt.settings.model_copy(
        update={
            "smtp_url": smtp.url(),
            "email_from": "CS Team <cs@acme.example>",
            "approval_channel": "#cs-approvals",
            "secret_key": ["stats test secret key"],
            "public_url": "https://bot.example.com",
        }
    )
    return Flow(rt)


def welcome(flow: Flow, accounts: int) -> list[int]:
    flow.segment("Trials", 'plan = "trial"')
    flow.workflow(
        name="Welcome",
        trigger={"segment": "Trials"},
        steps=[
            {
                "action": "email",
                "kind": "html",
                "to": ["{{ account.primary_contact.email }}"],
                "subject": "Welcome, {{ account.name }}",
                "body": '<p>Hi</p><a href="https://acme.example/a">A</a>'
                '<a href="https://acme.example/b">B</a>',
            }
        ],
    )
    for i in range(accounts):
        contact = f"ada-{i}"
        flow.identify(contact, email=f"{contact}@globex.example", first_name="Ada")
        flow.group(f"acme-{i}", user=contact, name=f"Acme {i}", plan="trial")
    flow.evaluate()
    flow.run()
    with session_scope(flow.rt.db) as s:
        return list(s.scalars(select(Draft.id).order_by(Draft.id)))


def decide(flow: Flow, how: Any, draft_id: int, **more: Any) -> None:
    with session_scope(flow.rt.db) as s:
        how(s, draft_id, by="U0ANA", now=flow.rt.clock.now(), **more)


def event(flow: Flow, draft_id: int, kind: str, after: timedelta, **detail: str) -> None:
    """What the tracking routes store, `after` the draft was sent."""
    with session_scope(flow.rt.db) as s:
        sent_at = s.get(Draft, draft_id).sent_at  # type: ignore[union-attr]
        assert sent_at is not None
        draft_rows.add_event(s, draft_id=draft_id, kind=kind, at=sent_at + after, detail=detail)


@pytest.mark.both_dbs
def test_the_email_funnel_with_machine_opens_and_scanner_clicks_apart(
    mail: Flow, smtp: SmtpPeer
) -> None:
    first, second, third, fourth = welcome(mail, 4)
    clock(mail).advance(hours=1)
    decide(mail, drafts.approve, first)
    decide(mail, drafts.edit, second, subject="Welcome aboard")
    decide(mail, drafts.approve, second)
    decide(mail, drafts.discard, third)
    mail.run()
    assert len(smtp.received) == 2
    event(mail, first, "open", timedelta(seconds=4), user_agent=GMAIL_PROXY)  # a prefetch
    event(mail, first, "click", timedelta(seconds=3), url="https://acme.example/a")  # scanner
    event(mail, second, "open", timedelta(hours=2), user_agent=GMAIL_PROXY)  # Ada reads it
    event(mail, second, "click", timedelta(hours=2, seconds=20), url="https://acme.example/a")
    event(mail, second, "unsubscribe", timedelta(hours=3))
    clock(mail).advance(hours=4)
    found = report(mail, "Welcome", DAY0, 1)
    [email] = found.emails
    assert (email.index, email.drafted, email.approved, email.edited) == (0, 4, 2, 1)
    assert (email.discarded, email.expired, email.sent, email.failed) == (1, 0, 2, 0)
    assert email.opened == Rate(1, 2) and email.opened.share == 0.5
    assert (email.machine_opened, email.scanner_clicked) == (1, 1)
    assert email.clicked == Rate(1, 2) and email.unsubscribed == Rate(1, 2)
    assert email.approval_median_seconds is not None
    assert abs(email.approval_median_seconds - 3600) / 3600 < 0.19
    [step] = found.steps
    assert (step.action, step.run, step.skipped, step.pending) == (
        "email",
        2,
        {"draft discarded": 1},
        1,
    )
    assert (
        step.label == "email: “Welcome, {{ account.name }}” to {{ account.primary_contact.email }}"
    )
    assert fourth  # still pending: drafted, not decided
    clock(mail).advance(days=1)
    assert roll_up(mail) == 1
    assert report(mail, "Welcome", DAY0, 1) == found
    with session_scope(mail.rt.db) as s:
        [summary] = stats.summaries(s, range=Range(DAY0, DAY0 + timedelta(days=2)), now=T0)
    assert (summary.sent, summary.opened) == (2, Rate(1, 2))
    # A late open of a day already rolled up is counted by the next pass.
    event(mail, first, "open", timedelta(days=1), user_agent=BROWSER)
    clock(mail).advance(minutes=30)
    assert roll_up(mail) == 1
    assert report(mail, "Welcome", DAY0, 1).emails[0].opened == Rate(2, 2)


@pytest.mark.both_dbs
def test_a_failing_step_counts_as_failed_for_the_step_and_the_workflow(
    flow: Flow, sink: Sink
) -> None:
    """A webhook answered 400 fails (no retry): the step's failure, and with on_failure stop
    the enrollment's; with continue, the next step still runs."""
    flow.segment("Trials", 'plan = "trial"')
    steps = [
        {"action": "webhook", "url": f"{sink.url}/first"},
        {"action": "webhook", "url": f"{sink.url}/second"},
    ]
    flow.workflow(name="Strict", trigger={"segment": "Trials"}, steps=steps)
    flow.workflow(name="Lenient", trigger={"segment": "Trials"}, on_failure="continue", steps=steps)
    sink.answers += [(400, {}), (400, {})]  # each workflow's first call
    flow.group("a1", plan="trial")
    flow.evaluate()
    flow.run()
    strict, lenient = report(flow, "Strict", DAY0, 1), report(flow, "Lenient", DAY0, 1)
    assert (strict.failed, strict.completed) == (1, 0)
    assert [(s.run, s.failed) for s in strict.steps] == [(0, 1), (0, 0)]
    assert (lenient.failed, lenient.completed) == (0, 1)
    assert [(s.run, s.failed) for s in lenient.steps] == [(0, 1), (1, 0)]
    clock(flow).advance(days=2)
    live = report(flow, "Strict", DAY0, 1)
    assert roll_up(flow) > 0
    assert report(flow, "Strict", DAY0, 1) == live  # read from the rollup, the same figures
