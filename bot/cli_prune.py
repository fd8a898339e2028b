"""`workflowbot prune`: retention run by hand (the scheduler does it hourly by itself)."""

from __future__ import annotations

import click

from bot.cli_common import connect, load_settings
from engine import retention


@click.command("prune")
@click.option("--dry-run", is_flag=True, help="Count what would be deleted; delete nothing.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=retention.BATCH_SIZE,
    show_default=True,
    help="Rows per transaction.",
)
def prune_command(dry_run: bool, batch_size: int) -> None:
    """Delete events older than RETENTION_EVENTS_DAYS and finished enrollments (with their
    steps, logs and drafts) ended more than RETENTION_ENROLLMENTS_DAYS ago, in batches."""
    settings = load_settings()
    rt = connect(settings, "workflowbot-prune")
    now = rt.clock.now()
    cut = retention.cutoffs(settings, now)
    try:
        if dry_run:
            found = retention.count(rt.db, settings=settings, now=now)
        else:
            found = retention.prune(
                rt.db, settings=settings, now=now, batch_size=batch_size, pause_seconds=0.05
            )
    finally:
        rt.db.dispose()
    verb = "would delete" if dry_run else "deleted"
    events = (
        f"{found.events} events older than {cut.events:%Y-%m-%d %H:%M} UTC"
        if cut.events
        else "no events (RETENTION_EVENTS_DAYS=0 keeps them)"
    )
    enrollments = (
        f"{found.enrollments} finished enrollments ended before "
        f"{cut.enrollments:%Y-%m-%d %H:%M} UTC, with their steps, logs and drafts"
        if cut.enrollments
        else "no enrollments (RETENTION_ENROLLMENTS_DAYS=0 keeps them)"
    )
    batches = "" if dry_run else f" ({found.batches} batches of at most {batch_size} rows)"
    click.echo(f"{verb} {events};\n{verb} {enrollments}{batches}")
