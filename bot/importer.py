"""What `workflowbot import` shows: progress bars on stderr, the problems, a one-line summary."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy.exc import OperationalError

if TYPE_CHECKING:
    from click._termui_impl import ProgressBar

    from engine.ingest.importer import Problem, Summary

MAX_LISTED = 50

HELP = """Import accounts, contacts or events from a CSV or JSON Lines FILE.

The file is read twice and never held in memory: a first pass checks every row, the second
writes them in committed batches, through the same validation and storage as the API. By
default nothing is written when any row is invalid; each problem is listed as
FILE:LINE: field: problem and the exit status is 1.

\b
Columns (CSV header names, or the keys of each JSON Lines object):
  accounts  id (or account_id, groupId); every other column is a trait.
  contacts  id (or user_id, userId); account_id (or groupId) links the
            contact to its account; every other column is a trait.
  events    user_id (or userId), event (or name), timestamp (ISO-8601;
            the time of the import when absent), message_id (or
            messageId), account_id (or groupId), and properties.NAME
            columns (JSON Lines: a "properties" object).

An empty CSV cell leaves the field as it was (only JSON null clears a trait); CSV values
stay strings, and the rules read numeric strings as numbers. In JSON Lines, traits may also
come as a nested "traits" object.

An event without a message_id gets one derived from its row, so running an import again
(after an interruption, say) stores each event once; rows identical in every column are one
event. Without REDIS_URL the changes are evaluated by the running `workflowbot run`, which
picks up unprocessed changes within OUTBOX_RECOVERY_SECONDS.
"""


def run(
    rt: Any,
    *,
    path: Path,
    kind: str,
    fmt: str | None,
    skip_invalid: bool,
    signals: bool,
    batch_size: int,
    enqueue: Callable[[list[int]], None],
) -> int:
    """Import the file with progress on stderr and report the outcome; returns the exit status."""
    from engine.ingest import importer

    name = str(path)
    bars = _Bars(name)
    try:
        summary = importer.import_file(
            rt.db,
            path,
            kind,
            clock=rt.clock,
            on_commit=enqueue,
            fmt=fmt,
            skip_invalid=skip_invalid,
            signals=signals,
            batch_size=batch_size,
            on_progress=bars.update,
            keep_problems=MAX_LISTED,
        )
    except importer.ImportFailed as exc:
        bars.close()
        _list(name, exc.problems, len(exc.problems))
        click.echo(f"workflowbot: cannot import {name} as {kind}", err=True)
        return 1
    except OperationalError as exc:
        bars.close()
        first = (str(exc.orig or exc).strip().splitlines() or [""])[0]
        click.echo(
            f"workflowbot: DATABASE_URL: the import stopped ({first}); the batches already "
            "committed stay, and running the same import again finishes it",
            err=True,
        )
        return 1
    finally:
        bars.close()
    _list(name, summary.problems, summary.problem_count)
    if summary.stopped:
        valid = summary.rows - summary.invalid
        click.echo(
            f"workflowbot: nothing imported: {summary.invalid} of {_count(summary.rows, 'row')} "
            f"invalid (--skip-invalid imports the other {valid})",
            err=True,
        )
        return 1
    click.echo(describe(name, summary))
    return 0


def describe(name: str, summary: Summary) -> str:
    """The one-line summary of an import that wrote."""
    line = (
        f"Imported {summary.written} of {_count(summary.rows, 'row')} from {name}: "
        f"{_count(summary.records, 'record')} and {_count(summary.events, 'event')} stored, "
        f"{_count(summary.repeats, 'repeat')} skipped"
    )
    if summary.invalid:
        line += f", {_count(summary.invalid, 'invalid row')} skipped"
    return line + "."


def _count(number: int, noun: str) -> str:
    return f"{number} {noun}" if number == 1 else f"{number} {noun}s"


def _list(name: str, problems: Sequence[Problem], total: int) -> None:
    for problem in problems[:MAX_LISTED]:
        click.echo(problem.render(name), err=True)
    shown = min(len(problems), MAX_LISTED)
    if total > shown:
        click.echo(f"... and {total - shown} more", err=True)


class _Bars:
    """One progress bar per pass (checking, then importing), drawn on stderr."""

    def __init__(self, name: str) -> None:
        self._name = name
        self._stage: str | None = None
        self._bar: ProgressBar[int] | None = None
        self._done = 0

    def update(self, stage: str, done: int, total: int) -> None:
        if stage != self._stage or self._bar is None:
            self.close()
            verb = "Checking" if stage == "check" else "Importing"
            self._bar = click.progressbar(
                length=max(total, 1), label=f"{verb} {self._name}", file=sys.stderr
            )
            self._bar.__enter__()
            self._stage, self._done = stage, 0
        self._bar.update(done - self._done)
        self._done = done

    def close(self) -> None:
        if self._bar is not None:
            self._bar.__exit__(None, None, None)
            self._bar = None
