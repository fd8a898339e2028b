"""The engine's own Prometheus metrics, on prometheus_client's default registry.

Counters and histograms only (no gauge), so they add up across Dramatiq's worker processes in
prometheus_client's multiprocess mode: the `worker` command sets PROMETHEUS_MULTIPROC_DIR
before any import, and Dramatiq's Prometheus middleware serves the sum (README,
"Observability"). A value is counted where the engine records the thing, inside its
transaction: a transaction that rolls back after counting (rare: a lost race) over-counts.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

from prometheus_client import Counter, Histogram

SIGNALS = Counter("workflowbot_signals_total", "Signals stored, by kind.", ["kind"])
ENROLLMENTS = Counter(
    "workflowbot_enrollments_total",
    "Records enrolled in a workflow, by where the signal came from.",
    ["source"],
)
STEP_RUNS = Counter(
    "workflowbot_step_runs_total",
    "Step run outcomes, by action and outcome (done, retry, failed, skipped, waiting, ...).",
    ["action", "outcome"],
)
STEP_SECONDS = Histogram(
    "workflowbot_step_run_seconds",
    "Time an action's call took, by action.",
    ["action"],
    buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
DRAFTS_DECIDED = Counter(
    "workflowbot_drafts_decided_total",
    "Email draft decisions, by decision (approved, discarded, expired, ...).",
    ["decision"],
)
DRAFT_APPROVAL_SECONDS = Histogram(
    "workflowbot_draft_approval_seconds",
    "Time from a draft's posting to its approval.",
    buckets=(60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600, 86400, 3 * 86400, 7 * 86400),
)
SCHEDULER_LAG = Histogram(
    "workflowbot_scheduler_lag_seconds",
    "How late a due step run was dispatched (due_at to dispatch).",
    buckets=(0.1, 0.5, 1, 2, 5, 10, 30, 60, 300, 900, 3600),
)
FAILURE_ALERTS = Counter(
    "workflowbot_failure_alerts_total", "Alerts sent about a workflow whose steps keep failing."
)


def signals(rows: Iterable[Any]) -> None:
    """Count stored signals (rows with a `kind`)."""
    for row in rows:
        SIGNALS.labels(kind=row.kind).inc()


def step_outcome(action: str, outcome: object | str) -> None:
    """Count one step outcome: an Outcome instance (its class, lower case) or a status."""
    name = outcome if isinstance(outcome, str) else type(outcome).__name__.lower()
    STEP_RUNS.labels(action=action, outcome=name).inc()


def draft_decided(decision: str, posted_at: datetime | None, now: datetime) -> None:
    """Count a draft decision; with `posted_at` (an approval), observe how long it waited."""
    DRAFTS_DECIDED.labels(decision=decision.replace(" ", "_")).inc()
    if posted_at is not None:
        DRAFT_APPROVAL_SECONDS.observe(max((now - posted_at).total_seconds(), 0.0))


def scheduler_lag(due: Iterable[datetime], now: datetime) -> None:
    for due_at in due:
        SCHEDULER_LAG.observe(max((now - due_at).total_seconds(), 0.0))
