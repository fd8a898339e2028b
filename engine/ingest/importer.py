"""Import accounts, contacts and events from CSV or JSON Lines files, streamed in two passes.

Pass 1 checks every row; pass 2 reads the file again and writes committed batches. Each row
becomes a Segment call (`group`, `identify`, `track`) that goes through the API's own
validation (`schema.parse_call`) and storage (`writer.commit_changes`). Memory stays bounded
by one batch and one line, whatever the size of the file.
"""

from __future__ import annotations

import csv
import json
import logging
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO

from sqlalchemy import Engine

from engine import lifecycle
from engine.clock import Clock
from engine.ingest import schema
from engine.ingest.rows import KINDS, ImportFailed, Problem, Record, check_header, to_change
from engine.ingest.schema import Change, FieldError, InvalidPayload
from engine.ingest.writer import commit_changes

__all__ = ["ImportFailed", "Problem", "Summary", "import_file", "read_csv", "read_jsonl"]

log = logging.getLogger(__name__)

FORMATS = {"csv": "csv", "jsonl": "jsonl", "ndjson": "jsonl"}
MAX_LINE_BYTES = 1 << 20
PROGRESS_STEP = 1 << 16

Progress = Callable[[str, int, int], None]
"""Called with the pass (`check` or `write`), bytes read so far and the file's size."""


@dataclass(slots=True)
class Summary:
    """What an import did; `stopped` when invalid rows kept it from writing anything."""

    rows: int = 0
    invalid: int = 0
    written: int = 0
    records: int = 0
    events: int = 0
    repeats: int = 0
    problems: list[Problem] = field(default_factory=list)
    problem_count: int = 0
    stopped: bool = False


def resolve_format(path: Path, fmt: str | None) -> str:
    """`csv` or `jsonl`, from `fmt` when given, else from the file's extension."""
    name = (fmt or path.suffix.removeprefix(".")).lower()
    if name not in FORMATS:
        what = f"unknown format {fmt!r}" if fmt else "cannot tell the format from the file name"
        raise ImportFailed(
            [Problem(None, None, f"{what}; use .csv, .jsonl or .ndjson, or --format csv|jsonl")]
        )
    return FORMATS[name]


def import_file(
    db: Engine,
    path: Path,
    kind: str,
    *,
    clock: Clock,
    on_commit: Callable[[list[int]], None],
    fmt: str | None = None,
    skip_invalid: bool = False,
    signals: bool = True,
    batch_size: int = 1000,
    on_progress: Progress | None = None,
    keep_problems: int = 50,
) -> Summary:
    """Check every row, then write the valid ones in committed batches (none if any is bad).

    `on_commit` gets each batch's outbox ids after its commit. Raises ImportFailed when the
    file cannot be read as `kind` at all. Stages are checked against the list as it was at
    the start.
    """
    if kind not in KINDS:
        raise ImportFailed(
            [Problem(None, None, f"unknown kind {kind!r}; one of {', '.join(KINDS)}")]
        )
    if batch_size < 1:
        raise ValueError("batch_size must be at least 1")
    fmt = resolve_format(path, fmt)
    stages = lifecycle.load_stages(db)
    summary = Summary()
    for record in _records(path, kind, fmt, "check", on_progress):
        summary.rows += 1
        try:
            to_change(kind, record, now=clock.now(), stages=stages)
        except InvalidPayload as exc:
            summary.invalid += 1
            summary.problem_count += len(exc.errors)
            room = keep_problems - len(summary.problems)
            summary.problems += [Problem(record.line, e.field, e.message) for e in exc.errors][
                : max(room, 0)
            ]
    if summary.invalid and not skip_invalid:
        summary.stopped = True
        return summary
    _write(
        db,
        path,
        kind,
        fmt,
        summary=summary,
        stages=stages,
        clock=clock,
        on_commit=on_commit,
        signals=signals,
        batch_size=batch_size,
        on_progress=on_progress,
    )
    return summary


def _write(
    db: Engine,
    path: Path,
    kind: str,
    fmt: str,
    *,
    summary: Summary,
    stages: lifecycle.Stages,
    clock: Clock,
    on_commit: Callable[[list[int]], None],
    signals: bool,
    batch_size: int,
    on_progress: Progress | None,
) -> None:
    """Pass 2: re-read, re-validate and store the file in batches, each committed on its own."""
    batch: list[Change] = []

    def flush() -> None:
        applied = commit_changes(db, batch, clock=clock, signals=signals)
        summary.written += len(batch)
        summary.records += applied.records
        summary.events += applied.events
        summary.repeats += applied.repeats
        batch.clear()
        if not applied.outbox_ids:
            return
        try:
            on_commit(applied.outbox_ids)
        except Exception:
            # Stored and committed: the scheduler re-enqueues outbox rows left unprocessed.
            log.exception(
                "could not enqueue %d outbox rows; recovery will", len(applied.outbox_ids)
            )

    for record in _records(path, kind, fmt, "write", on_progress):
        try:
            batch.append(to_change(kind, record, now=clock.now(), stages=stages))
        except InvalidPayload:
            continue  # counted and reported by pass 1
        if len(batch) >= batch_size:
            flush()
    if batch:
        flush()


def _records(
    path: Path, kind: str, fmt: str, stage: str, on_progress: Progress | None
) -> Iterator[Record]:
    try:
        stream = path.open("rb")
    except FileNotFoundError:
        raise ImportFailed([Problem(None, None, "no such file")]) from None
    except OSError as exc:
        raise ImportFailed([Problem(None, None, f"cannot read it ({exc.strerror})")]) from None
    with stream:
        counter = _Counter(stage, os.fstat(stream.fileno()).st_size, on_progress)
        reader = read_csv if fmt == "csv" else read_jsonl
        yield from reader(stream, kind, counter)
        counter.report()


class _Counter:
    """Bytes read so far, reported every PROGRESS_STEP bytes and at the end."""

    def __init__(self, stage: str, total: int, on_progress: Progress | None = None) -> None:
        self.stage, self.total, self.done, self._reported = stage, total, 0, 0
        self._on_progress = on_progress

    def add(self, size: int) -> None:
        self.done += size
        if self.done - self._reported >= PROGRESS_STEP:
            self.report()

    def report(self) -> None:
        self._reported = self.done
        if self._on_progress is not None:
            self._on_progress(self.stage, self.done, max(self.total, self.done))


def _lines(stream: BinaryIO, counter: _Counter, bad: list[int]) -> Iterator[str]:
    """Decoded physical lines, ends kept; appends to `bad` the numbers of non-UTF-8 lines."""
    number = 0
    while raw := stream.readline(MAX_LINE_BYTES + 1):
        number += 1
        counter.add(len(raw))
        if len(raw) > MAX_LINE_BYTES:
            message = f"line is longer than {MAX_LINE_BYTES} bytes"
            raise ImportFailed([Problem(number, None, message)])
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            bad[:] = [number]  # only the latest is ever needed
            text = raw.decode("utf-8", errors="replace")
        yield text.removeprefix("\ufeff") if number == 1 else text


NOT_UTF8 = FieldError("row", "is not UTF-8 text (save the file as UTF-8)")


def _too_large(size: int) -> FieldError | None:
    if size <= schema.MAX_MESSAGE_BYTES:
        return None
    return FieldError("row", f"is {size} bytes; the limit is {schema.MAX_MESSAGE_BYTES}")


def read_jsonl(stream: BinaryIO, kind: str, counter: _Counter | None = None) -> Iterator[Record]:
    """Each non-blank line of a JSON Lines stream as a Record, read lazily."""
    counter = counter or _Counter("read", 0)
    bad: list[int] = []
    for number, text in enumerate(_lines(stream, counter, bad), start=1):
        if not text.strip():
            continue
        error = NOT_UTF8 if bad and bad[-1] == number else _too_large(len(text.encode()))
        if error is not None:
            yield Record(number, {}, error)
            continue
        try:
            data = json.loads(text)
        except ValueError as exc:
            detail = _json_error(exc)
            yield Record(number, {}, FieldError("row", f"is not valid JSON ({detail})"))
            continue
        if not isinstance(data, dict):
            yield Record(number, {}, FieldError("row", "must be a JSON object"))
            continue
        yield Record(number, data)


def _json_error(exc: ValueError) -> str:
    if isinstance(exc, json.JSONDecodeError):
        return f"{exc.msg} at column {exc.colno}"
    return str(exc)


def read_csv(stream: BinaryIO, kind: str, counter: _Counter | None = None) -> Iterator[Record]:
    """Each non-empty row of a CSV stream with a header as a Record, read lazily.

    An empty cell is left out (the field is not sent); values stay strings.
    """
    counter = counter or _Counter("read", 0)
    bad: list[int] = []
    reader = csv.reader(_lines(stream, counter, bad))
    try:
        header = next(reader, None)
        if header is None:
            raise ImportFailed([Problem(None, None, "is empty; a CSV file needs a header row")])
        check_header(kind, header, reader.line_num)
        while True:
            first, start = reader.line_num + 1, counter.done
            cells = next(reader, None)
            if cells is None:
                return
            if not any(cell.strip() for cell in cells):
                continue
            yield _csv_record(header, cells, first, reader.line_num, bad, counter.done - start)
    except csv.Error as exc:
        raise ImportFailed([Problem(reader.line_num, None, f"unreadable CSV ({exc})")]) from None


def _csv_record(
    header: list[str], cells: list[str], first: int, last: int, bad: list[int], size: int
) -> Record:
    error = _too_large(size)
    if bad and first <= bad[-1] <= last:
        error = NOT_UTF8
    elif len(cells) > len(header):
        error = FieldError("row", f"has {len(cells)} cells; the header has {len(header)}")
    data = {name: cell for name, cell in zip(header, cells, strict=False) if cell.strip()}
    return Record(first, data, error)
