"""`workflowbot stats [NAME]`: a workflow's statistics (or every workflow's key numbers) for
a time range, as text, CSV (one row per step) or JSON (engine.stats' dataclasses), for
people who want their own charts."""

from __future__ import annotations

import csv
import dataclasses
import json
import re
import sys
from collections.abc import Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import click

from bot import reports_web
from bot.cli_common import connect, fail, load_settings
from engine import report_links, stats
from engine.def_types import duration_seconds
from engine.secrets import SecretsError
from engine.stats import Range, Rate, Summary, WorkflowStats
from storage.db import session_scope
from storage.queries import workflows as workflow_rows

_SINCE = re.compile(r"^(\d+)([hdw])$")
_UNITS = {"h": "hours", "d": "days", "w": "weeks"}


def _range(since: str, start: str | None, end: str | None, now: datetime, tz: str) -> Range:
    """--since Nd (N hours, days or weeks before now), or --from / --to dates (whole days in
    TIMEZONE, --to included; --from alone runs to now)."""
    zone = ZoneInfo(tz)

    def midnight(text: str, option: str) -> datetime:
        try:
            day = date.fromisoformat(text)
        except ValueError:
            fail(f"{option}: {text!r} is not a date (YYYY-MM-DD)")
        return datetime.combine(day, datetime.min.time(), tzinfo=zone)

    if start is None and end is None:
        found = _SINCE.match(since.strip())
        if not found or int(found[1]) == 0:
            fail(f"--since: {since!r} is not a duration like 30d, 12h or 4w")
        return Range(now - timedelta(**{_UNITS[found[2]]: int(found[1])}), now)
    if start is None:
        fail("--to needs --from")
    begin = midnight(start, "--from")
    finish = now if end is None else midnight(end, "--to") + timedelta(days=1)
    if finish <= begin:
        fail("--to is before --from")
    return Range(begin, finish)


def _plain(value: Any) -> Any:
    if isinstance(value, datetime | date):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON")


def _seconds(value: float | None) -> str:
    if value is None:
        return "-"
    for size, unit in ((86400, "d"), (3600, "h"), (60, "m")):
        if value >= size:
            return f"{value / size:.1f}{unit}"
    return f"{value:.1f}s"


def _rate(rate: Rate) -> str:
    share = rate.share
    return f"{rate.count:,}" + ("" if share is None else f" ({share:.0%})")


def _number(value: float | None) -> str:
    return "" if value is None else f"{value:.0f}"


STEP_COLUMNS = (
    "step", "action", "label", "run", "skipped", "skipped_by_reason", "failed", "pending",
    "wait_median_s", "wait_p95_s", "drafted", "approved", "edited", "discarded", "expired",
    "sent", "send_failed", "opened", "open_rate", "machine_opened", "clicked", "click_rate",
    "scanner_clicked", "unsubscribed", "unsubscribe_rate", "approval_median_s",
)  # fmt: skip


def _step_rows(found: WorkflowStats) -> list[list[object]]:
    emails = {e.index: e for e in found.emails}
    rows: list[list[object]] = []
    for s in found.steps:
        row: list[object] = [
            s.index + 1, s.action, s.label, s.run, sum(s.skipped.values()),
            "; ".join(f"{k}={n}" for k, n in sorted(s.skipped.items())), s.failed, s.pending,
            _number(s.wait.median_seconds), _number(s.wait.p95_seconds),
        ]  # fmt: skip
        e = emails.get(s.index)
        if e is None:
            row += [""] * 16
        else:
            row += [
                e.drafted, e.approved, e.edited, e.discarded, e.expired, e.sent, e.failed,
                e.opened.count, _share(e.opened), e.machine_opened, e.clicked.count,
                _share(e.clicked), e.scanner_clicked, e.unsubscribed.count,
                _share(e.unsubscribed), _number(e.approval_median_seconds),
            ]  # fmt: skip
        rows.append(row)
    return rows


def _share(rate: Rate) -> str:
    return "" if rate.share is None else f"{rate.share:.4f}"


def _text(found: WorkflowStats, tz: str) -> list[str]:
    r = found.range
    lines = [
        f"{found.name} ({found.status}, v{found.version}) · {r.start:%Y-%m-%d %H:%M} to "
        f"{r.end:%Y-%m-%d %H:%M} UTC",
        f"enrolled {found.enrolled:,}"
        + ("" if found.trend is None else f" ({found.trend:+.0%} on the period before)")
        + f" · active now {found.active:,} · completed {found.completed:,}"
        f" · exited {sum(found.exited.values()):,} · failed {found.failed:,}",
    ]
    lines += [f"  exited, {reason}: {n:,}" for reason, n in sorted(found.exited.items())]
    emails = {e.index: e for e in found.emails}
    for s in found.steps:
        lines.append(
            f"step {s.index + 1} {s.label}: run {s.run:,} · skipped {sum(s.skipped.values()):,}"
            f" · failed {s.failed:,} · pending {s.pending:,} · wait median "
            f"{_seconds(s.wait.median_seconds)}, p95 {_seconds(s.wait.p95_seconds)}"
        )
        lines += [f"  skipped, {reason}: {n:,}" for reason, n in sorted(s.skipped.items())]
        if (e := emails.get(s.index)) is not None:
            lines.append(
                f"  email: drafted {e.drafted:,} · approved {e.approved:,} (median "
                f"{_seconds(e.approval_median_seconds)}) · edited {e.edited:,} · discarded "
                f"{e.discarded:,} · expired {e.expired:,} · sent {e.sent:,} · failed {e.failed:,}"
            )
            lines.append(
                f"  opened {_rate(e.opened)} (+{e.machine_opened:,} by machines only) · clicked "
                f"{_rate(e.clicked)} (+{e.scanner_clicked:,} by link scanners only) · "
                f"unsubscribed {_rate(e.unsubscribed)}"
            )
    if found.steps:
        lines.append(f"(waits: {found.steps[0].wait.resolution})")
    lines.append(f"by day ({tz}): enrolled / completed / exited")
    lines += [f"  {d.day}: {d.enrolled:,} / {d.completed:,} / {d.exited:,}" for d in found.days]
    return lines


SUMMARY_COLUMNS = (
    "name", "status", "enrolled", "active", "completed", "exited", "failed", "sent", "opened",
    "open_rate", "trend",
)  # fmt: skip


def _summary_rows(found: Sequence[Summary]) -> list[list[object]]:
    return [
        [s.name, s.status, s.enrolled, s.active, s.completed, s.exited, s.failed, s.sent,
         s.opened.count, _share(s.opened), "" if s.trend is None else f"{s.trend:.4f}"]
        for s in found
    ]  # fmt: skip


def _write_csv(header: Sequence[str], rows: list[list[object]]) -> None:
    out = csv.writer(sys.stdout, lineterminator="\n")
    out.writerow(header)
    out.writerows(rows)


@click.command(name="stats")
@click.argument("name", required=False)
@click.option("--since", default="30d", show_default=True, help="Up to now: 12h, 30d, 4w.")
@click.option("--from", "start", metavar="DATE", help="First day (YYYY-MM-DD, in TIMEZONE).")
@click.option("--to", "end", metavar="DATE", help="Last day, included (default: up to now).")
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["text", "csv", "json"]),
    default="text",
    show_default=True,
)
def stats_command(
    name: str | None, since: str, start: str | None, end: str | None, fmt: str
) -> None:
    """A workflow's statistics for a time range (every workflow's key numbers with no NAME):
    text, CSV (one row per step) or JSON."""
    rt = connect(load_settings(), "workflowbot-cli")
    tz, now = rt.settings.timezone, rt.clock.now()
    period = _range(since, start, end, now, tz)
    with session_scope(rt.db) as session:
        if name is None:
            found: Any = stats.summaries(session, range=period, now=now)
        else:
            workflow = workflow_rows.by_name(session, name=name)
            if workflow is None:
                fail(f"no workflow named {name!r} (`workflowbot workflows list` shows them)")
            found = stats.workflow_stats(
                session, workflow_id=workflow.id, range=period, now=now, timezone=tz
            )
    if fmt == "json":
        data = [dataclasses.asdict(s) for s in found] if name is None else dataclasses.asdict(found)
        click.echo(json.dumps(data, default=_plain, indent=2, ensure_ascii=False))
    elif fmt == "csv":
        if name is None:
            _write_csv(SUMMARY_COLUMNS, _summary_rows(found))
        else:
            _write_csv(STEP_COLUMNS, _step_rows(found))
    elif name is not None:
        click.echo("\n".join(_text(found, tz)))
    elif not found:
        click.echo("No workflows yet: `workflowbot apply FILE` creates them.")
    else:
        for s in found:
            trend = "" if s.trend is None else f" ({s.trend:+.0%})"
            click.echo(
                f"{s.name} ({s.status}): enrolled {s.enrolled:,}{trend} · active {s.active:,} · "
                f"completed {s.completed:,} · exited {s.exited:,} · failed {s.failed:,} · "
                f"sent {s.sent:,} · opened {_rate(s.opened)}"
            )


@click.command(name="report")
@click.argument("name")
@click.option(
    "--valid", default="7d", show_default=True, help="How long the link works: 1d, 7d, 2w."
)
def report_command(name: str, valid: str) -> None:
    """A signed link to a workflow's report page (PUBLIC_URL and SECRET_KEY must be set); the
    page refuses it after `--valid`."""
    rt = connect(load_settings(), "workflowbot-cli")
    try:
        ttl = timedelta(seconds=duration_seconds(valid))
    except ValueError as exc:
        fail(f"--valid: {exc}")
    with session_scope(rt.db) as session:
        workflow = workflow_rows.by_name(session, name=name)
        if workflow is None:
            fail(f"no workflow named {name!r} (`workflowbot workflows list` shows them)")
        path = reports_web.WORKFLOW_PATH.format(id=workflow.id)
    try:
        click.echo(report_links.link(rt.settings, path=path, now=rt.clock.now(), ttl=ttl))
    except SecretsError as exc:
        fail(str(exc))
