"""Insight: how a workflow performs, computed by SQL over the stored enrollments, step runs,
drafts and email events for a time range. Plain frozen dataclasses out: the Slack builders
(blocks/stats.py), the report page and `workflowbot stats` read these and nothing else.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, datetime
from typing import Any

from sqlalchemy.orm import Session

from engine import stats_rollup, stats_rules
from storage.queries import stats as stats_q
from storage.queries import workflows as workflow_rows
from storage.workflow_models import Workflow


@dataclass(frozen=True)
class Range:
    """Half-open [start, end) in UTC; report days are cut at TIMEZONE."""

    start: datetime
    end: datetime


@dataclass(frozen=True)
class Rate:
    """A count and the base it is a share of."""

    count: int
    base: int

    @property
    def share(self) -> float | None:
        """count / base, None when the base is 0."""
        return self.count / self.base if self.base else None


@dataclass(frozen=True)
class Wait:
    """How long records stayed at a step: from the step run's creation to its final state."""

    median_seconds: float | None
    p95_seconds: float | None
    resolution: str  # how exact the figures are: "exact", or the histogram bucket's bounds


@dataclass(frozen=True)
class StepStats:
    index: int
    action: str  # in the workflow's current version
    label: str  # a short description of the step, user text as is (the caller escapes)
    run: int  # reached `done`
    skipped: dict[str, int]  # reason -> count
    failed: int
    pending: int  # not yet final now (scheduled, running, waiting, attention)
    wait: Wait


@dataclass(frozen=True)
class EmailStats:
    index: int  # the email step's index
    drafted: int
    approved: int
    edited: int  # edited before sending
    discarded: int
    expired: int
    sent: int
    failed: int
    opened: Rate  # drafts opened by a person, over sent
    machine_opened: int  # drafts opened only by machines (mail privacy proxies, image proxies)
    clicked: Rate  # drafts clicked by a person, over sent
    scanner_clicked: int  # drafts clicked only by link scanners
    unsubscribed: Rate  # over sent
    approval_median_seconds: float | None  # drafted -> approved


@dataclass(frozen=True)
class Day:
    day: date  # in TIMEZONE
    enrolled: int
    completed: int
    exited: int


@dataclass(frozen=True)
class WorkflowStats:
    workflow_id: int
    name: str
    status: str
    version: int
    range: Range
    enrolled: int  # in the range
    active: int  # now, whenever enrolled
    completed: int  # in the range
    exited: dict[str, int]  # end reason -> count, in the range
    failed: int  # in the range
    steps: list[StepStats]
    emails: list[EmailStats]
    days: list[Day]  # every day of the range, in order, zeros included
    trend: float | None  # enrolled in the range vs. the same length before: 0.25 = 25% more


@dataclass(frozen=True)
class Summary:
    """One workflow in `/workflow stats`: its key numbers in the range."""

    workflow_id: int
    name: str
    status: str
    enrolled: int
    active: int
    completed: int
    exited: int
    failed: int
    sent: int
    opened: Rate
    trend: float | None


# -- computing them ------------------------------------------------------------------------
# The rules (reasons, wait buckets, machine opens, scanner clicks) live in engine.stats_rules;
# the rollup and the merge of rolled-up and live figures in engine.stats_rollup.

EMAIL_ACTIONS = ("email", "team_notification")


def workflow_stats(
    session: Session, *, workflow_id: int, range: Range, now: datetime, timezone: str = "UTC"
) -> WorkflowStats:
    """How one workflow performed in the range (`active` and `pending` are as of now);
    LookupError when there is no such workflow."""
    workflow = session.get(Workflow, workflow_id)
    if workflow is None:
        raise LookupError(f"no workflow #{workflow_id}")
    document = workflow_rows.documents(session, workflows=[workflow]).get(workflow_id, {})
    steps: list[dict[str, Any]] = list(document.get("steps", []))
    figs = stats_rollup.figures(
        session, workflow_ids=[workflow_id], start=range.start, end=range.end, timezone=timezone
    )[workflow_id]
    pending = stats_q.pending_steps(session, workflow_id=workflow_id)
    indexes = sorted({i for i, _ in enumerate(steps)} | {s for s, _, _ in figs.totals if s >= 0})
    step_stats = [_step(figs, i, steps[i] if i < len(steps) else {}, pending) for i in indexes]
    emails = [
        _email(figs, i)
        for i in indexes
        if (i < len(steps) and steps[i].get("action") in EMAIL_ACTIONS)
        or figs.get(i, "drafted")
        or figs.get(i, "sent")
    ]
    return WorkflowStats(
        workflow_id=workflow.id,
        name=workflow.name,
        status=workflow.status,
        version=workflow.version,
        range=range,
        enrolled=figs.get(-1, "enrolled"),
        active=stats_q.active(session, workflow_ids=[workflow_id]).get(workflow_id, 0),
        completed=figs.get(-1, "completed"),
        exited=figs.keyed(-1, "exited"),
        failed=sum(figs.keyed(-1, "failed").values()),
        steps=step_stats,
        emails=emails,
        days=[
            Day(day=d, enrolled=c["enrolled"], completed=c["completed"], exited=c["exited"])
            for d, c in sorted(figs.series.items())
        ],
        trend=_trend(session, [workflow_id], range, timezone, figs.get(-1, "enrolled"))[
            workflow_id
        ],
    )


def summaries(session: Session, *, range: Range, now: datetime) -> list[Summary]:
    """Every workflow not deleted, by name, with its key numbers in the range (days cut in
    the rollup's TIMEZONE, so whole days come from the rollup)."""
    found = workflow_rows.all_workflows(session)
    if not found:
        return []
    ids = [w.id for w in found]
    state = stats_q.state(session)
    timezone = state.timezone if state is not None else "UTC"
    figs = stats_rollup.figures(
        session,
        workflow_ids=ids,
        start=range.start,
        end=range.end,
        timezone=timezone,
        sources=("enrolled", "ended", "sent"),
    )
    active = stats_q.active(session, workflow_ids=ids)
    enrolled = {wid: f.get(-1, "enrolled") for wid, f in figs.items()}
    trends = _trend(session, ids, range, timezone, enrolled)
    return [
        Summary(
            workflow_id=w.id,
            name=w.name,
            status=w.status,
            enrolled=enrolled[w.id],
            active=active.get(w.id, 0),
            completed=figs[w.id].get(-1, "completed"),
            exited=sum(figs[w.id].keyed(-1, "exited").values()),
            failed=sum(figs[w.id].keyed(-1, "failed").values()),
            sent=_sum(figs[w.id], "sent"),
            opened=Rate(_sum(figs[w.id], "opened"), _sum(figs[w.id], "sent")),
            trend=trends[w.id],
        )
        for w in found
    ]


def _sum(figs: stats_rollup.Figures, kind: str) -> int:
    return sum(n for (_, k, _), n in figs.totals.items() if k == kind)


def _trend(
    session: Session,
    ids: list[int],
    range: Range,
    timezone: str,
    enrolled: dict[int, int] | int,
) -> dict[int, float | None]:
    """Enrolled in the range against the same length just before: 0.25 = 25% more."""
    span = range.end - range.start
    before = stats_rollup.figures(
        session,
        workflow_ids=ids,
        start=range.start - span,
        end=range.start,
        timezone=timezone,
        sources=("enrolled",),
    )
    found: dict[int, float | None] = {}
    for wid in ids:
        now_n = enrolled if isinstance(enrolled, int) else enrolled[wid]
        then_n = before[wid].get(-1, "enrolled")
        found[wid] = (now_n - then_n) / then_n if then_n else None
    return found


def _wait(figs: stats_rollup.Figures, step: int, kind: str) -> Wait:
    buckets = {int(k): n for k, n in figs.keyed(step, kind).items()}
    return Wait(
        median_seconds=stats_rules.percentile(buckets, 0.5),
        p95_seconds=stats_rules.percentile(buckets, 0.95),
        resolution=stats_rules.WAIT_RESOLUTION,
    )


def _step(
    figs: stats_rollup.Figures, index: int, step: dict[str, Any], pending: dict[int, int]
) -> StepStats:
    return StepStats(
        index=index,
        action=str(step.get("action", "removed")),
        label=step_label(step),
        run=figs.get(index, "run"),
        skipped=figs.keyed(index, "skipped"),
        failed=figs.get(index, "step_failed"),
        pending=pending.get(index, 0),
        wait=_wait(figs, index, "wait"),
    )


def _email(figs: stats_rollup.Figures, index: int) -> EmailStats:
    sent = figs.get(index, "sent")
    return EmailStats(
        index=index,
        drafted=figs.get(index, "drafted"),
        approved=figs.get(index, "approved"),
        edited=figs.get(index, "edited"),
        discarded=figs.get(index, "discarded"),
        expired=figs.get(index, "expired"),
        sent=sent,
        failed=figs.get(index, "send_failed"),
        opened=Rate(figs.get(index, "opened"), sent),
        machine_opened=figs.get(index, "machine_opened"),
        clicked=Rate(figs.get(index, "clicked"), sent),
        scanner_clicked=figs.get(index, "scanner_clicked"),
        unsubscribed=Rate(figs.get(index, "unsub"), sent),
        approval_median_seconds=_wait(figs, index, "approval").median_seconds,
    )


def step_label(step: dict[str, Any]) -> str:
    """A short plain-text description of a step definition (user text as is)."""
    action = step.get("action")
    if action in ("email", "team_notification"):
        what = f"“{step.get('subject', '')}” to {', '.join(map(str, step.get('to', [])))}"
    elif action == "slack":
        what = f"post in {step.get('channel', '')}"
    elif action == "webhook":
        what = f"call {step.get('url', '')}"
    elif action == "update":
        what = "set " + ", ".join(map(str, dict(step.get("set", {}))))
    elif action in ("hubspot_task", "salesforce_task", "owner"):
        what = str(step.get("subject", "") or ", ".join(map(str, step.get("users", []))))
    else:
        what = "no longer in the workflow" if not step else ""
    text = f"{action or 'step'}: {what}".rstrip(": ")
    return text if len(text) <= 120 else text[:119] + "…"


def is_machine_open(user_agent: str, seconds_after_send: float) -> bool:
    """A pixel fetch by a mail privacy or image proxy as the email arrived (see
    engine.stats_rules for the agents and the threshold)."""
    return stats_rules.is_machine_open(user_agent, seconds_after_send)


def is_scanner_click(
    seconds_after_send: float, seconds_to_other_link_click: float | None = None
) -> bool:
    """A link scanner's click: right after sending, or with another link of the same email
    clicked within a couple of seconds (see engine.stats_rules)."""
    return stats_rules.is_scanner_click(seconds_after_send, seconds_to_other_link_click)
