"""Insight's figures by SQL: one workflow's facts per day over given day bounds (the same rows
for the rollup and for a report's live part), the rollup's rows and its state.

A fact is (day index, step index (-1: the workflow), kind, key, n). Days are given as bounds
`b0 < b1 < ... < bn` (UTC instants of local midnights, the first and last possibly clipped):
day i is [b_i, b_i+1). Reasons and wait buckets are computed here from rules the engine
passes in (`Rules`), so storage knows no product rule of its own.
"""

from __future__ import annotations

from collections.abc import Collection, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any, NamedTuple

from sqlalchemy import (
    ColumnElement,
    DateTime,
    Float,
    Select,
    and_,
    case,
    delete,
    exists,
    func,
    insert,
    literal,
    not_,
    or_,
    select,
)
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import Session, aliased

from storage.action_models import Draft, EmailEvent
from storage.stats_models import StatsDay, StatsRollup
from storage.workflow_models import Enrollment, StepRun

FINAL_STEPS = ("done", "skipped", "failed")
PENDING_STEPS = ("scheduled", "queued", "running", "sending", "waiting", "attention")
APPROVED_DRAFTS = ("approved", "sent", "failed", "unknown", "suppressed")
# Every source of facts, by the kinds it gives (a report asks only for the sources it needs).
SOURCES = {
    "enrolled": ("enrolled",),
    "ended": ("completed", "exited", "failed"),
    "steps": ("run", "skipped", "step_failed", "wait"),
    "drafted": ("drafted",),
    "decided": ("approved", "approval", "discarded", "expired", "send_failed"),
    "sent": ("sent", "edited", "opened", "machine_opened", "clicked", "scanner_clicked", "unsub"),
}


@dataclass(frozen=True)
class Rules:
    """What the engine decides and storage applies: reason labels (LIKE pattern -> label,
    else the text before the first ':'), wait buckets' lower bounds in seconds, and the
    machine open / scanner click rules (lower-cased user agent LIKE patterns, seconds)."""

    reasons: Sequence[tuple[str, str]]
    wait_bounds: Sequence[float]
    proxy_agents: Sequence[str]
    machine_open_seconds: float
    scanner_click_seconds: float
    scanner_burst_seconds: float


class Fact(NamedTuple):
    day: int  # index into the bounds' days
    step: int
    kind: str
    key: str
    n: int


def _pg(session: Session) -> bool:
    return session.get_bind().dialect.name == "postgresql"


def _bucket(session: Session, value: Any, bounds: Sequence[Any], numeric: bool) -> Any:
    """0 below bounds[0], i when bounds[i-1] <= value < bounds[i], len(bounds) above
    (PostgreSQL's width_bucket: a binary search; elsewhere a CASE)."""
    if _pg(session):
        kind = postgresql.ARRAY(Float if numeric else DateTime(timezone=True))
        return func.width_bucket(value, literal(list(bounds), kind))
    return case(*[(value < bound, i) for i, bound in enumerate(bounds)], else_=len(bounds))


def _seconds(session: Session, start: Any, end: Any) -> Any:
    if _pg(session):
        return func.extract("epoch", end - start)
    return (func.julianday(end) - func.julianday(start)) * 86400.0


def _reason(session: Session, text: Any, rules: Rules) -> Any:
    if _pg(session):
        head = func.split_part(text, ":", 1)
    else:
        head = func.substr(text, 1, func.instr(text + ":", ":") - 1)
    labelled = [(text.like(pattern), label) for pattern, label in rules.reasons]
    return func.substr(case(*labelled, else_=func.coalesce(head, "")), 1, 200)


def _in(column: Any, bounds: Sequence[datetime]) -> ColumnElement[bool]:
    return and_(column >= bounds[0], column < bounds[-1])


def facts(
    session: Session,
    *,
    workflow_id: int,
    bounds: Sequence[datetime],
    rules: Rules,
    sources: Collection[str] = tuple(SOURCES),
) -> list[Fact]:
    """Every fact of the workflow dated within the bounds, per day (see the module)."""
    found: list[Fact] = []
    for source in sources:
        found += _QUERIES[source](session, workflow_id, bounds, rules)
    return found


def _enrolled(s: Session, wid: int, bounds: Sequence[datetime], rules: Rules) -> list[Fact]:
    day = _bucket(s, Enrollment.enrolled_at, bounds, numeric=False)
    rows = s.execute(
        select(day, func.count())
        .where(Enrollment.workflow_id == wid, _in(Enrollment.enrolled_at, bounds))
        .group_by(day)
    )
    return [Fact(d - 1, -1, "enrolled", "", n) for d, n in rows]


def _ended(s: Session, wid: int, bounds: Sequence[datetime], rules: Rules) -> list[Fact]:
    day = _bucket(s, Enrollment.ended_at, bounds, numeric=False)
    reason = case(
        (Enrollment.status == "completed", ""),
        else_=_reason(s, Enrollment.end_reason, rules),
    )
    rows = s.execute(
        select(day, Enrollment.status, reason, func.count())
        .where(
            Enrollment.workflow_id == wid,
            _in(Enrollment.ended_at, bounds),
            Enrollment.status.in_(("completed", "exited", "failed")),
        )
        .group_by(day, Enrollment.status, reason)
    )
    return [Fact(d - 1, -1, status, key, n) for d, status, key, n in rows]


SHORT_WINDOW = timedelta(days=2)


def _of_workflow(stmt: Select[Any], wid: int, bounds: Sequence[datetime]) -> Select[Any]:
    """Step runs of the workflow: over a short window each run found by time looks up its
    enrollment (a hash join would read every enrollment of a big workflow); over a long one,
    a join."""
    if bounds[-1] - bounds[0] <= SHORT_WINDOW:
        owner = select(Enrollment.workflow_id).where(Enrollment.id == StepRun.enrollment_id)
        return stmt.select_from(StepRun).where(owner.scalar_subquery() == wid)
    return (
        stmt.select_from(StepRun)
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(Enrollment.workflow_id == wid)
    )


def _steps(s: Session, wid: int, bounds: Sequence[datetime], rules: Rules) -> list[Fact]:
    day = _bucket(s, StepRun.finished_at, bounds, numeric=False)
    wait = _bucket(s, _seconds(s, StepRun.created_at, StepRun.finished_at), rules.wait_bounds, True)
    reason = case((StepRun.status == "skipped", _reason(s, StepRun.error, rules)), else_="")
    stmt = select(day, StepRun.step_index, StepRun.status, reason, wait, func.count())
    rows = s.execute(
        _of_workflow(stmt, wid, bounds)
        .where(_in(StepRun.finished_at, bounds), StepRun.status.in_(FINAL_STEPS))
        .group_by(day, StepRun.step_index, StepRun.status, reason, wait)
    )
    kinds = {"done": "run", "skipped": "skipped", "failed": "step_failed"}
    found = []
    for d, step, status, key, bucket, n in rows:
        found.append(Fact(d - 1, step, kinds[status], key, n))
        found.append(Fact(d - 1, step, "wait", str(bucket), n))
    return found


def _drafted(s: Session, wid: int, bounds: Sequence[datetime], rules: Rules) -> list[Fact]:
    day = _bucket(s, Draft.created_at, bounds, numeric=False)
    rows = s.execute(
        select(day, Draft.step_index, func.count())
        .where(Draft.workflow_id == wid, _in(Draft.created_at, bounds))
        .group_by(day, Draft.step_index)
    )
    return [Fact(d - 1, step, "drafted", "", n) for d, step, n in rows]


def _decided(s: Session, wid: int, bounds: Sequence[datetime], rules: Rules) -> list[Fact]:
    day = _bucket(s, Draft.decided_at, bounds, numeric=False)
    by_person = Draft.status.in_(APPROVED_DRAFTS) & Draft.decided_by.not_in(("auto", "exit"))
    wait = case(
        (
            by_person,
            _bucket(s, _seconds(s, Draft.created_at, Draft.decided_at), rules.wait_bounds, True),
        ),
        else_=-1,
    )
    rows = s.execute(
        select(day, Draft.step_index, Draft.status, wait, func.count())
        .where(Draft.workflow_id == wid, _in(Draft.decided_at, bounds))
        .group_by(day, Draft.step_index, Draft.status, wait)
    )
    found = []
    for d, step, status, bucket, n in rows:
        if status in APPROVED_DRAFTS:
            found.append(Fact(d - 1, step, "approved", "", n))
        if status in ("discarded", "expired"):
            found.append(Fact(d - 1, step, status, "", n))
        if status == "failed":
            found.append(Fact(d - 1, step, "send_failed", "", n))
        if bucket >= 0:
            found.append(Fact(d - 1, step, "approval", str(bucket), n))
    return found


def _sent(s: Session, wid: int, bounds: Sequence[datetime], rules: Rules) -> list[Fact]:
    """Per sent draft: opened by a person (or a person's click), opened by machines only,
    clicked by a person, clicked by scanners only, unsubscribed; summed per day and step."""
    window = and_(Draft.workflow_id == wid, _in(Draft.sent_at, bounds))
    event, other = aliased(EmailEvent), aliased(EmailEvent)
    agent = func.lower(func.coalesce(event.detail["user_agent"].as_string(), ""))
    after = _seconds(s, Draft.sent_at, event.at)
    machine = and_(
        or_(*[agent.like(p) for p in rules.proxy_agents]), after < rules.machine_open_seconds
    )
    burst = exists().where(
        other.draft_id == event.draft_id,
        other.kind == "click",
        other.id != event.id,
        func.coalesce(other.detail["url"].as_string(), "")
        != func.coalesce(event.detail["url"].as_string(), ""),
        func.abs(_seconds(s, event.at, other.at)) <= rules.scanner_burst_seconds,
    )
    scanner = or_(after < rules.scanner_click_seconds, burst)

    def seen(*where: Any) -> Any:
        return func.max(case((and_(*where), 1), else_=0))

    per_draft = (
        select(
            event.draft_id.label("draft_id"),
            seen(event.kind == "open", not_(machine)).label("person_open"),
            seen(event.kind == "open").label("any_open"),
            seen(event.kind == "click", not_(scanner)).label("person_click"),
            seen(event.kind == "click").label("any_click"),
            seen(event.kind == "unsubscribe").label("unsub"),
        )
        .join(Draft, Draft.id == event.draft_id)
        .where(window)
        .group_by(event.draft_id)
        .subquery("engaged")
    )
    e = {c.name: func.coalesce(c, 0) for c in per_draft.c}
    person_open = or_(e["person_open"] == 1, e["person_click"] == 1)
    flags = {
        "edited": Draft.edited.is_(True),
        "opened": person_open,
        "machine_opened": and_(e["any_open"] == 1, not_(person_open)),
        "clicked": e["person_click"] == 1,
        "scanner_clicked": and_(e["any_click"] == 1, e["person_click"] == 0),
        "unsub": e["unsub"] == 1,
    }
    day = _bucket(s, Draft.sent_at, bounds, numeric=False)
    sums = [func.sum(case((flag, 1), else_=0)) for flag in flags.values()]
    rows = s.execute(
        select(day, Draft.step_index, func.count(), *sums)
        .outerjoin(per_draft, per_draft.c.draft_id == Draft.id)
        .where(window)
        .group_by(day, Draft.step_index)
    )
    found = []
    for d, step, n, *counts in rows:
        found.append(Fact(d - 1, step, "sent", "", n))
        found += [Fact(d - 1, step, k, "", int(c)) for k, c in zip(flags, counts, strict=True) if c]
    return found


_QUERIES = {
    "enrolled": _enrolled,
    "ended": _ended,
    "steps": _steps,
    "drafted": _drafted,
    "decided": _decided,
    "sent": _sent,
}

# What dates each source's rows: the columns a rollup pass scans for rows changed since it.
_DATED = [
    (Enrollment.enrolled_at, Enrollment.workflow_id, None),
    (Enrollment.ended_at, Enrollment.workflow_id, None),
    (StepRun.finished_at, Enrollment.workflow_id, StepRun),
    (Draft.created_at, Draft.workflow_id, None),
    (Draft.decided_at, Draft.workflow_id, None),
    (Draft.sent_at, Draft.workflow_id, None),
]


def touched_days(session: Session, *, workflow_id: int, bounds: Sequence[datetime]) -> set[int]:
    """Indexes of the days (of these bounds) holding a row that dates a fact of the workflow."""
    days: set[int] = set()
    for column, owner, via in _DATED:
        day = _bucket(session, column, bounds, numeric=False)
        stmt = select(day).where(_in(column, bounds)).group_by(day)
        if via is None:
            stmt = stmt.where(owner == workflow_id)
        else:
            stmt = _of_workflow(stmt, workflow_id, bounds)
        days |= {d - 1 for d in session.scalars(stmt)}
    return days


def engaged_since(session: Session, *, since: datetime) -> list[tuple[int, datetime]]:
    """(workflow id, sent_at) of every draft with an email event at or after `since`: their
    sent day's engagement changed."""
    rows = session.execute(
        select(Draft.workflow_id, Draft.sent_at)
        .join(EmailEvent, EmailEvent.draft_id == Draft.id)
        .where(EmailEvent.at >= since, Draft.sent_at.is_not(None))
        .distinct()
    )
    return [(wid, sent) for wid, sent in rows if sent is not None]


def first_dated(session: Session, *, workflow_id: int) -> datetime | None:
    """The workflow's earliest enrollment (nothing of it is dated earlier)."""
    return session.scalar(
        select(func.min(Enrollment.enrolled_at)).where(Enrollment.workflow_id == workflow_id)
    )


def replace_days(
    session: Session, *, workflow_id: int, days: Sequence[date], rows: Sequence[Fact]
) -> None:
    """Make these days' rollup rows exactly `rows` (whose `day` indexes `days`)."""
    session.execute(
        delete(StatsDay).where(StatsDay.workflow_id == workflow_id, StatsDay.day.in_(days))
    )
    summed: dict[tuple[date, int, str, str], int] = {}
    for f in rows:
        k = (days[f.day], f.step, f.kind, f.key)
        summed[k] = summed.get(k, 0) + f.n
    values = [
        {"workflow_id": workflow_id, "day": d, "step_index": st, "kind": kd, "key": ky, "n": n}
        for (d, st, kd, ky), n in summed.items()
        if n
    ]
    for i in range(0, len(values), 5000):
        session.execute(insert(StatsDay), values[i : i + 5000])


def rolled_totals(
    session: Session,
    *,
    workflow_ids: Collection[int],
    first: date,
    last: date,
    kinds: Collection[str] | None = None,
) -> list[tuple[int, int, str, str, int]]:
    """(workflow id, step, kind, key, n) summed over the rollup's days first..last."""
    stmt = (
        select(StatsDay.workflow_id, StatsDay.step_index, StatsDay.kind, StatsDay.key)
        .add_columns(func.sum(StatsDay.n))
        .where(StatsDay.workflow_id.in_(sorted(workflow_ids)), StatsDay.day.between(first, last))
        .group_by(StatsDay.workflow_id, StatsDay.step_index, StatsDay.kind, StatsDay.key)
    )
    if kinds is not None:
        stmt = stmt.where(StatsDay.kind.in_(sorted(kinds)))
    return [(w, st, kd, ky, int(n)) for w, st, kd, ky, n in session.execute(stmt)]


def rolled_series(
    session: Session, *, workflow_id: int, first: date, last: date, kinds: Collection[str]
) -> list[tuple[date, str, int]]:
    """(day, kind, n) of the workflow's own figures of these kinds, day by day."""
    rows = session.execute(
        select(StatsDay.day, StatsDay.kind, func.sum(StatsDay.n))
        .where(
            StatsDay.workflow_id == workflow_id,
            StatsDay.step_index == -1,
            StatsDay.day.between(first, last),
            StatsDay.kind.in_(sorted(kinds)),
        )
        .group_by(StatsDay.day, StatsDay.kind)
    )
    return [(d, k, int(n)) for d, k, n in rows]


def active(session: Session, *, workflow_ids: Collection[int]) -> dict[int, int]:
    """workflow id -> its active enrollments now."""
    rows = session.execute(
        select(Enrollment.workflow_id, func.count())
        .where(Enrollment.workflow_id.in_(sorted(workflow_ids)), Enrollment.status == "active")
        .group_by(Enrollment.workflow_id)
    )
    return {wid: n for wid, n in rows}


def pending_steps(session: Session, *, workflow_id: int) -> dict[int, int]:
    """step index -> step runs of the workflow's active enrollments not final yet."""
    rows = session.execute(
        select(StepRun.step_index, func.count())
        .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
        .where(
            Enrollment.workflow_id == workflow_id,
            Enrollment.status == "active",
            StepRun.status.in_(PENDING_STEPS),
        )
        .group_by(StepRun.step_index)
    )
    return {step: n for step, n in rows}


_LOCK = 0x5354 << 48  # "ST" in the top bits, apart from storage.queries.locks' namespaces


def try_lock(session: Session) -> bool:
    """Take the rollup's lock for this transaction if no other pass holds it (PostgreSQL;
    an SQLite write transaction is already alone)."""
    if not _pg(session):
        return True
    return bool(session.scalar(select(func.pg_try_advisory_xact_lock(_LOCK))))


def state(session: Session) -> StatsRollup | None:
    """The rollup's state row, if a pass ever ran."""
    return session.scalars(select(StatsRollup).where(StatsRollup.name == "days")).one_or_none()


def save_state(session: Session, *, timezone: str, rolled_to: datetime, now: datetime) -> None:
    found = state(session)
    if found is None:
        session.add(
            StatsRollup(name="days", timezone=timezone, rolled_to=rolled_to, updated_at=now)
        )
    else:
        found.timezone, found.rolled_to, found.updated_at = timezone, rolled_to, now
    session.flush()


def clear(session: Session) -> None:
    """Drop the whole rollup (a change of TIMEZONE rebuilds it)."""
    session.execute(delete(StatsDay))
