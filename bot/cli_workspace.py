"""`workflowbot apply`, `segments list|delete` and `signals tail`: the workspace from a file."""

from __future__ import annotations

import getpass
import json
import signal
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

import click
from sqlalchemy import select

from bot.cli_common import connect, fail, load_settings
from storage.db import session_scope

if TYPE_CHECKING:
    from engine.definitions import WorkspaceDef
    from engine.runtime import Runtime
    from engine.workspace import Plan


@click.command()
@click.argument("file", metavar="FILE|-")
@click.option("--yes", "-y", is_flag=True, help="Apply without asking (scripts, CI).")
@click.option("--dry-run", is_flag=True, help="Only say what would change.")
def apply(file: str, yes: bool, dry_run: bool) -> None:
    """Create or update the stages, health thresholds, segments and workflows of a workflow
    file (YAML or JSON; `-` reads stdin). Segments and workflows are matched by name,
    case-insensitively, and never deleted. First says what changes — new segments' sizes, how
    many records a changed rule makes enter and leave (those are signals), new workflow
    versions and status moves — and asks on a terminal."""
    from engine import workspace
    from engine.definitions import DefinitionError

    doc = read_document(file)
    rt = connect(load_settings(), "workflowbot-apply")
    hosts = rt.settings.webhook_allowed_hosts
    intended = plan_document(rt, file, doc)
    for line in intended.lines():
        click.echo(line)
    if not intended.changes:
        click.echo("Nothing to change.")
        return
    if dry_run:
        click.echo("Dry run: nothing applied.")
        return
    if not yes and sys.stdin.isatty() and not click.confirm("Apply these changes?"):
        fail("nothing applied")
    try:
        with session_scope(rt.db) as session:
            done = workspace.apply(
                session,
                doc,
                now=rt.clock.now(),
                by=f"cli:{who()}",
                allowed_hosts=hosts,
                settings=rt.settings,
            )
    except DefinitionError as exc:
        fail(_problems(file, exc.problems))
    created = [s for s in done.segments if s.action == "create"]
    changed = [s for s in done.segments if s.action == "change"]
    saved = [w for w in done.workflows if w.changes]
    click.echo(
        f"Applied: {len(created)} segments created, {len(changed)} changed "
        f"({sum(s.entering for s in changed):,} entered, {sum(s.leaving for s in changed):,} left)"
        f"; {len(saved)} workflows created or changed."
    )
    for w in done.workflows:
        if w.new_secret:
            click.echo(
                f'workflow "{w.name}": webhook signing secret (shown once, keep it where the '
                f"receiver verifies signatures): {w.new_secret}"
            )
        if w.enrolled_existing:
            click.echo(
                f'workflow "{w.name}": {w.enrolled_existing:,} existing records enrolled '
                "(enroll_existing)"
            )


def who() -> str:
    """Who runs the CLI, for a version's history (the OS user; never fails)."""
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no user name in a bare container: "cli:unknown"
        return "unknown"


def read_document(file: str) -> WorkspaceDef:
    """The validated document of FILE (`-`: stdin), or exit 2 naming every problem."""
    from engine import fileload
    from engine.definitions import DefinitionError, parse_document

    try:
        return parse_document(fileload.load_path(file))
    except fileload.FileError as exc:
        fail(str(exc))
    except DefinitionError as exc:
        fail(_problems(file, exc.problems))


def plan_document(rt: Runtime, file: str, doc: WorkspaceDef) -> Plan:
    """What applying `doc` would change, checked against the workspace (nothing written), or
    exit 2 naming every problem."""
    from engine import workspace
    from engine.definitions import DefinitionError

    try:
        with session_scope(rt.db) as session:
            intended = workspace.plan(
                session,
                doc,
                now=rt.clock.now(),
                allowed_hosts=rt.settings.webhook_allowed_hosts,
                settings=rt.settings,
            )
            session.rollback()
    except DefinitionError as exc:
        fail(_problems(file, exc.problems))
    return intended


def _problems(file: str, problems: list[str]) -> str:
    where = "<stdin>" if file == "-" else file
    if len(problems) == 1:
        return f"{where}: {problems[0]}"
    return f"{where}: {len(problems)} problems\n" + "\n".join(f"  {p}" for p in problems)


@click.group()
def segments() -> None:
    """Saved rules over accounts or contacts, with stored membership."""


@segments.command("list")
def segments_list() -> None:
    """Each segment with its object, member count, how it is kept current, and its rule."""
    from engine import segments as segment_engine
    from storage.queries import segments as q

    rt = connect(load_settings(), "workflowbot-cli")
    with session_scope(rt.db) as session:
        rows = q.all_segments(session)
        timed = {c.id for c in segment_engine.load(session) if c.deps.time_dependent}
        counts = q.member_counts(session)
        minutes = rt.settings.segment_refresh_seconds / 60
        if not rows:
            click.echo("No segments yet: define them in a file and run `workflowbot apply FILE`.")
            return
        width = max(len(s.name) for s in rows)
        click.echo(f"{'NAME':<{width}}  OBJECT   {'MEMBERS':>9}  UPDATES         RULE")
        for s in rows:
            updates = f"change + {minutes:g} min" if s.id in timed else "on change"
            click.echo(
                f"{s.name:<{width}}  {s.object_type:<7}  {counts.get(s.id, 0):>9,}  "
                f"{updates:<14}  {s.rule}"
            )


@segments.command("delete")
@click.argument("name")
@click.option("--yes", "-y", is_flag=True, help="Delete without asking.")
def segments_delete(name: str, yes: bool) -> None:
    """Delete a segment and its membership (a file never deletes one)."""
    from engine import segments as segment_engine
    from storage.queries import segments as q

    rt = connect(load_settings(), "workflowbot-cli")
    with session_scope(rt.db) as session:
        found = q.by_name(session, name=name)
        if found is None:
            fail(f"no segment named {name!r} (see `workflowbot segments list`)")
        members = q.member_counts(session).get(found.id, 0)
        label = f'segment "{found.name}" ({members:,} members)'
    if not yes and sys.stdin.isatty() and not click.confirm(f"Delete {label}?"):
        fail("nothing deleted")
    with session_scope(rt.db) as session:
        try:
            segment_engine.delete(session, name=name)
        except segment_engine.SegmentError as exc:
            fail(str(exc))
    click.echo(f"Deleted {label}.")


@click.group()
def signals() -> None:
    """What happened to records that workflows can trigger on."""


@signals.command("tail")
@click.option(
    "--last",
    "-n",
    type=click.IntRange(0),
    default=10,
    show_default=True,
    help="Show this many recent signals first.",
)
@click.option(
    "--follow/--no-follow",
    default=True,
    show_default=True,
    help="Keep printing signals as they arrive (Ctrl-C stops).",
)
@click.option(
    "--interval", type=float, default=1.0, show_default=True, help="Seconds between polls."
)
def signals_tail(last: int, follow: bool, interval: float) -> None:
    """Print signals as they are stored: segment and stage enter / leave, health moves, events."""
    from storage.queries import signals as q

    rt = connect(load_settings(), "workflowbot-cli")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with session_scope(rt.db) as session:
        after = q.start_after(session, back=last)
    # Transactions commit out of id order: an id skipped over may still arrive; such gaps
    # are looked up again for a minute (most are ids of rolled-back transactions).
    gaps: dict[int, float] = {}
    while True:
        with session_scope(rt.db) as session:
            batch = q.after(session, after_id=after)
            for sig in batch:
                gaps.update(
                    dict.fromkeys(range(after + 1, min(sig.id, after + 10_001)), time.monotonic())
                )
                after = max(after, sig.id)
            batch += q.by_ids(session, ids=[i for i in gaps if i not in {s.id for s in batch}])
            labels = _labels(session, batch)
            for sig in sorted(batch, key=lambda s: s.id):
                gaps.pop(sig.id, None)
                click.echo(_line(sig, labels))
        expired = time.monotonic() - 60
        gaps = {i: t for i, t in gaps.items() if t > expired}
        sys.stdout.flush()
        if not follow or stop.wait(0 if len(batch) >= 500 else interval):
            return


def _labels(session: Any, batch: list[Any]) -> dict[tuple[str, int], str]:
    """(object type, id) -> the record's external id, for the signals of a batch."""
    from storage.models import Account, Contact

    labels: dict[tuple[str, int], str] = {}
    for object_type, model in (("account", Account), ("contact", Contact)):
        ids = {s.object_id for s in batch if s.object_type == object_type}
        if ids:
            rows = session.execute(select(model.id, model.external_id).where(model.id.in_(ids)))
            labels.update({(object_type, i): e for i, e in rows})
    return labels


def _line(sig: Any, labels: dict[tuple[str, int], str]) -> str:
    record = f"{sig.object_type} {labels.get((sig.object_type, sig.object_id), sig.object_id)}"
    detail = sig.detail or {}
    if sig.kind.startswith("segment_"):
        what = f"{sig.kind}  {detail.get('segment', sig.key)}"
    elif sig.kind == "health":
        what = f"health {sig.key}  {detail.get('from') or 'none'} -> {detail.get('to')}"
        what += f" (score {detail.get('score'):g})" if detail.get("score") is not None else ""
    elif sig.kind == "event":
        props = json.dumps(detail.get("properties") or {}, ensure_ascii=False)
        what = f"event  {sig.key}  {props}" if props != "{}" else f"event  {sig.key}"
    else:
        what = f"{sig.kind}  {sig.key}"
    return f"{sig.occurred_at:%Y-%m-%d %H:%M:%S}  {record:<30}  {what}"
