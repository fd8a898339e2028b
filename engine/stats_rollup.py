"""Insight's rollup and how a report reads it: whole past days from `stats_days`, the rest
(today, the edges of the range, days not rolled up yet) by the live query — the same query
that fills the rollup, so both give the same figures.

A pass (the scheduler's duty, every ROLLUP_EVERY) re-aggregates each (workflow, day) touched
since the previous pass: days holding a row dated (enrolled, ended, finished, drafted,
decided, sent) at or after the previous pass minus OVERLAP, and the sent days of drafts with
an email event since then. Only days that ended OVERLAP ago are rolled up, so a row committed
up to OVERLAP after the time it carries is counted (a longer-running transaction's rows show
once a later event touches the same day). The first pass, or a change of TIMEZONE, rolls up
the whole history.
"""

from __future__ import annotations

import logging
from collections import Counter
from collections.abc import Collection, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from engine.stats_rules import RULES
from storage.queries import stats as q
from storage.workflow_models import Workflow

log = logging.getLogger(__name__)

ROLLUP_EVERY = timedelta(minutes=10)
OVERLAP = timedelta(minutes=10)
SERIES = ("enrolled", "completed", "exited", "failed")
ONE_DAY = timedelta(days=1)


def midnight(day: date, tz: ZoneInfo) -> datetime:
    """The UTC instant a local day starts."""
    return datetime.combine(day, time(), tzinfo=tz).astimezone(UTC)


def local_days(start: datetime, end: datetime, tz: ZoneInfo) -> list[date]:
    """Every local day [start, end) touches, in order."""
    if end <= start:
        return []
    first = start.astimezone(tz).date()
    last = (end - timedelta(microseconds=1)).astimezone(tz).date()
    return [first + timedelta(days=i) for i in range((last - first).days + 1)]


def runs(days: Iterable[date]) -> list[list[date]]:
    """Consecutive days grouped, in order."""
    found: list[list[date]] = []
    for day in sorted(set(days)):
        if found and found[-1][-1] + ONE_DAY == day:
            found[-1].append(day)
        else:
            found.append([day])
    return found


def _bounds(days: Sequence[date], tz: ZoneInfo, start: datetime, end: datetime) -> list[datetime]:
    inner = [midnight(d, tz) for d in days[1:]]
    return [max(start, midnight(days[0], tz)), *inner, min(end, midnight(days[-1] + ONE_DAY, tz))]


# -- the duty ------------------------------------------------------------------------------


def roll_up(session: Session, *, now: datetime, timezone: str) -> int:
    """One pass (module doc); returns how many (workflow, day) pairs were re-aggregated.
    Another pass running elsewhere makes this one return 0 at once."""
    if not q.try_lock(session):
        return 0
    tz = ZoneInfo(timezone)
    state = q.state(session)
    if state is not None and state.timezone != timezone:
        q.clear(session)
        state = None
    cut = now - OVERLAP
    last = cut.astimezone(tz).date() - ONE_DAY  # the last day that ended OVERLAP ago
    since = None if state is None else min(state.updated_at - OVERLAP, state.rolled_to)
    touched: dict[int, set[date]] = {}
    for workflow_id in session.scalars(select(Workflow.id).order_by(Workflow.id)):
        first = _first_day(session, workflow_id, since, tz)
        if first is None or first > last:
            continue
        days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
        if since is None:
            touched[workflow_id] = set(days)
            continue
        bounds = _bounds(days, tz, midnight(first, tz), midnight(last + ONE_DAY, tz))
        found = q.touched_days(session, workflow_id=workflow_id, bounds=bounds)
        touched[workflow_id] = {days[i] for i in found}
    if since is not None:
        for workflow_id, sent_at in q.engaged_since(session, since=since):
            day = sent_at.astimezone(tz).date()
            if day <= last:
                touched.setdefault(workflow_id, set()).add(day)
    done = 0
    for workflow_id, days_touched in touched.items():
        for run in runs(days_touched):
            bounds = _bounds(run, tz, midnight(run[0], tz), midnight(run[-1] + ONE_DAY, tz))
            facts = q.facts(session, workflow_id=workflow_id, bounds=bounds, rules=RULES)
            q.replace_days(session, workflow_id=workflow_id, days=run, rows=facts)
            done += len(run)
    q.save_state(session, timezone=timezone, rolled_to=midnight(last + ONE_DAY, tz), now=now)
    return done


def _first_day(
    session: Session, workflow_id: int, since: datetime | None, tz: ZoneInfo
) -> date | None:
    if since is not None:
        return since.astimezone(tz).date()
    first = q.first_dated(session, workflow_id=workflow_id)
    return None if first is None else first.astimezone(tz).date()


# -- reading -------------------------------------------------------------------------------


@dataclass
class Figures:
    """One workflow's facts over a range: totals by (step, kind, key), and the workflow's own
    figures day by day."""

    totals: Counter[tuple[int, str, str]] = field(default_factory=Counter)
    series: dict[date, Counter[str]] = field(default_factory=dict)

    def get(self, step: int, kind: str, key: str = "") -> int:
        return self.totals.get((step, kind, key), 0)

    def keyed(self, step: int, kind: str) -> dict[str, int]:
        return {k: n for (s, kd, k), n in self.totals.items() if s == step and kd == kind and n}


def figures(
    session: Session,
    *,
    workflow_ids: Collection[int],
    start: datetime,
    end: datetime,
    timezone: str,
    sources: Collection[str] = tuple(q.SOURCES),
) -> dict[int, Figures]:
    """workflow id -> its facts in [start, end): rolled-up days where whole and rolled up,
    the live query for the rest."""
    tz = ZoneInfo(timezone)
    days = local_days(start, end, tz)
    found = {wid: Figures(series={d: Counter() for d in days}) for wid in workflow_ids}
    if not days or not workflow_ids:
        return found
    state = q.state(session)
    rolled_to = state.rolled_to if state is not None and state.timezone == timezone else None
    rolled = [
        d
        for d in days
        if rolled_to is not None
        and start <= midnight(d, tz)
        and midnight(d + ONE_DAY, tz) <= min(end, rolled_to)
    ]
    if rolled:
        kinds = [k for s in sources for k in q.SOURCES[s]]
        for wid, step, kind, key, n in q.rolled_totals(
            session, workflow_ids=workflow_ids, first=rolled[0], last=rolled[-1], kinds=kinds
        ):
            found[wid].totals[(step, kind, key)] += n
        for wid in workflow_ids:
            for day, kind, n in q.rolled_series(
                session, workflow_id=wid, first=rolled[0], last=rolled[-1], kinds=SERIES
            ):
                found[wid].series[day][kind] += n
    live = [d for d in days if d not in set(rolled)]
    for run in runs(live):
        bounds = _bounds(run, tz, start, end)
        for wid in workflow_ids:
            for f in q.facts(session, workflow_id=wid, bounds=bounds, rules=RULES, sources=sources):
                found[wid].totals[(f.step, f.kind, f.key)] += f.n
                if f.step == -1 and f.kind in SERIES:
                    found[wid].series[run[f.day]][f.kind] += f.n
    return found
