"""A workflow whose steps keep failing alerts its admins in Slack once.

A scheduler duty: when FAILURE_ALERT_THRESHOLD step runs of one workflow have failed within
FAILURE_ALERT_WINDOW_SECONDS, one message goes to the workflow's `admins` by DM (else to
SLACK_ADMINS, else to ALERT_CHANNEL) naming the workflow, the step, the last error and
`/workflow logs NAME`. The claim is one guarded upsert (storage.queries.alerts.claim), so
several schedulers alert once. No new alert until the workflow has gone a window with no
failure (re-armed) or FAILURE_ALERT_REPEAT_SECONDS have passed while it still fails.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient
from sqlalchemy import Engine

from blocks.kit import escape
from blocks.notification import notification_blocks, notification_text
from engine import metrics, slack
from engine.settings import Settings
from storage.db import session_scope
from storage.queries import alerts
from storage.queries import workflows as workflow_rows
from storage.workflow_models import Workflow

log = logging.getLogger(__name__)

_SLACK_USER_PREFIXES = ("U", "W")


@dataclass(frozen=True)
class Alert:
    """What one alert says."""

    workflow_id: int
    name: str
    failures: int
    step: str  # "2 (webhook)"
    error: str
    admins: tuple[str, ...]  # the workflow's own: Slack ids or emails


def check(db: Engine, settings: Settings, now: datetime) -> int:
    """Re-arm the quiet workflows, then alert about each failing one this process claims;
    returns how many alerts were sent."""
    window = timedelta(seconds=settings.failure_alert_window_seconds)
    since = now - window
    with session_scope(db) as session:
        rearmed = alerts.rearm(session, quiet_since=since)
        failing = alerts.failing(session, since=since, threshold=settings.failure_alert_threshold)
    if rearmed:
        log.info("failure alerts re-armed for workflows %s (no failure for a window)", rearmed)
    sent = 0
    for workflow_id, failures in failing:
        alert = _claim(db, settings, workflow_id, failures, since, now)
        if alert is None:
            continue
        try:
            _send(db, settings, alert, now)
        except (slack.SlackError, slack.SlackRateLimited, slack.SlackUnavailable) as exc:
            log.warning("failure alert for workflow %r not sent (%s); next pass", alert.name, exc)
            with session_scope(db) as session:
                alerts.release(session, workflow_id=workflow_id, alerted_at=now)
            continue
        metrics.FAILURE_ALERTS.inc()
        sent += 1
    return sent


def _claim(
    db: Engine, settings: Settings, workflow_id: int, failures: int, since: datetime, now: datetime
) -> Alert | None:
    """Claim the alert (committed before Slack is called) and read what it says."""
    repeat_before = now - timedelta(seconds=settings.failure_alert_repeat_seconds)
    with session_scope(db) as session:
        if not alerts.claim(
            session,
            workflow_id=workflow_id,
            failures=failures,
            now=now,
            repeat_before=repeat_before,
        ):
            return None
        workflow = session.get(Workflow, workflow_id)
        last = alerts.last_failure(session, workflow_id=workflow_id, since=since)
        if workflow is None or last is None:
            return None
        document = workflow_rows.documents(session, workflows=[workflow]).get(workflow_id, {})
    steps = document.get("steps") or []
    action = steps[last.step_index].get("action", "?") if last.step_index < len(steps) else "?"
    return Alert(
        workflow_id=workflow_id,
        name=workflow.name,
        failures=failures,
        step=f"{last.step_index + 1} ({action})",
        error=last.error or "(no error text)",
        admins=tuple(str(a) for a in document.get("admins") or ()),
    )


def message(alert: Alert, window_seconds: int) -> tuple[str, list[dict[str, Any]]]:
    """The alert's fallback text and blocks (user-authored values escaped)."""
    span = (
        f"{window_seconds // 3600} h"
        if window_seconds % 3600 == 0
        else f"{window_seconds // 60} min"
    )
    text = (
        f":rotating_light: Workflow *{escape(alert.name)}* keeps failing: {alert.failures} "
        f"step runs failed in the last {span}. You are told once; see the logs with "
        f"`/workflow logs {escape(alert.name)}`."
    )
    facts = [("Step", alert.step), ("Last error", alert.error), ("Workflow", alert.name)]
    fallback = f"Workflow {alert.name} keeps failing: step {alert.step}: {alert.error}"
    return notification_text(fallback), notification_blocks(text, facts, owner=None)


def _send(db: Engine, settings: Settings, alert: Alert, now: datetime) -> None:
    text, blocks = message(alert, settings.failure_alert_window_seconds)
    if not settings.slack_bot_token:
        log.warning("%s (no SLACK_BOT_TOKEN: this line is the alert)", text)
        return
    web = slack.client(settings)
    channels = _recipients(db, web, settings, alert, now)
    if not channels:
        log.warning(
            "%s (nobody to tell: set the workflow's admins, SLACK_ADMINS or ALERT_CHANNEL)", text
        )
        return
    for channel in channels:
        slack.post(
            web, channel, text, blocks, f"failure-alert-{alert.workflow_id}-{int(now.timestamp())}"
        )


def _recipients(
    db: Engine, web: WebClient, settings: Settings, alert: Alert, now: datetime
) -> list[str]:
    """DM channels of the workflow's admins, else of SLACK_ADMINS' users, else ALERT_CHANNEL."""
    for refs in (alert.admins, tuple(settings.slack_admins)):
        users = _users(web, refs)
        if users:
            return [slack.open_dm(web, user) for user in users]
    if settings.alert_channel:
        return [slack.resolve_channel(db, web, settings.alert_channel, now)]
    return []


def _users(web: WebClient, refs: Sequence[str]) -> list[str]:
    """Slack user ids for these refs: ids as they are, emails looked up (usergroups skipped)."""
    found: list[str] = []
    for ref in refs:
        if "@" in ref:
            user = slack.lookup_by_email(web, ref)
            if user is not None and not user.deleted:
                found.append(user.slack_id)
        elif ref.startswith(_SLACK_USER_PREFIXES):
            found.append(ref)
    return list(dict.fromkeys(found))
