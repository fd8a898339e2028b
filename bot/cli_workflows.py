"""`workflowbot validate`, `export` and `workflows list|enable|disable|history|rollback|
rename|delete|rotate-secret`: workflows from the command line."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click
from sqlalchemy.orm import Session

from bot.cli_common import connect, fail, load_settings
from bot.cli_workspace import plan_document, read_document, who
from engine.runtime import Runtime
from storage.db import session_scope


@contextmanager
def _workflows_session(rt: Runtime | None = None) -> Iterator[tuple[Session, datetime]]:
    """A unit of work and the time for a workflows command (connecting unless given a
    runtime); a WorkflowError exits 2 with its message, and nothing is written."""
    from engine import workflows

    rt = rt or connect(load_settings(), "workflowbot-cli")
    try:
        with session_scope(rt.db) as session:
            yield session, rt.clock.now()
    except workflows.WorkflowError as exc:
        fail(str(exc))


@click.command()
@click.argument("file", metavar="FILE|-")
def validate(file: str) -> None:
    """Check a workflow file — the format, rules, templates, and the segments, stages and
    webhook hosts it names — without changing anything."""
    doc = read_document(file)
    plan_document(connect(load_settings(), "workflowbot-cli"), file, doc)
    click.echo(
        f"{'<stdin>' if file == '-' else file}: valid ({len(doc.segments)} segments, "
        f"{len(doc.workflows)} workflows)"
    )


@click.command()
@click.argument("names", nargs=-1, metavar="[NAME]...")
def export(names: tuple[str, ...]) -> None:
    """Write workflows (all, or those named) in the workflow-file format, to stdout; applying
    the output changes nothing."""
    from engine import fileload, workflows

    with _workflows_session() as (session, _):
        documents = workflows.export(session, names=list(names) or None)
    fileload.dump({"version": 1, "workflows": documents}, sys.stdout)


@click.group(name="workflows")
def workflows_group() -> None:
    """List workflows, enable or disable them, and see or roll back their history."""


@workflows_group.command(name="list")
def list_workflows() -> None:
    """Each workflow's status, version and enrollment counts."""
    from storage.queries import workflows as q

    rt = connect(load_settings(), "workflowbot-cli")
    with session_scope(rt.db) as session:
        found = q.all_workflows(session)
        counts = q.counts(session, workflow_ids=[w.id for w in found])
        rows = [(w.name, w.object_type, w.status, w.version, counts[w.id]) for w in found]
    if not rows:
        click.echo("No workflows yet: `workflowbot apply FILE` creates them.")
        return
    for name, object_type, status, version, n in rows:
        click.echo(
            f"{name} ({object_type}, {status}, v{version}): {n['enrolled']:,} enrolled, "
            f"{n['active']:,} active, {n['completed']:,} completed, {n['exited']:,} exited, "
            f"{n['failed']:,} failed"
        )


def _status(name: str, status: str, *, exit_all: bool = False, rt: Runtime | None = None) -> None:
    from engine import control, workflows

    with _workflows_session(rt) as (session, now):
        if status == "live":
            _show_audience(session, name, now)
        changed = workflows.set_status(session, name=name, status=status, now=now)
        shown = changed.workflow.name
        exited = (
            control.exit_all(session, workflow=changed.workflow, by=f"cli:{who()}", now=now)
            if exit_all
            else 0
        )
    click.echo(f"{shown}: {status}")
    if changed.enrolled_existing:
        click.echo(f"enrolled {changed.enrolled_existing:,} existing records (enroll_existing)")
    if exited:
        click.echo(f"exited {exited:,} active enrollments")


def _show_audience(session: Session, name: str, now: datetime) -> None:
    """Before a first enable with `enroll_existing`, say how many that enrolls."""
    from engine import control, workflows
    from engine.workflow_defs import WorkflowDef
    from storage.queries import workflows as q

    workflow = workflows.get(session, name=name)
    current = q.version(session, workflow_id=workflow.id, number=workflow.version)
    if workflow.live_since is not None or current is None:
        return
    definition = WorkflowDef.model_validate(current.document)
    if definition.enroll_existing:
        found = control.audience(session, definition=definition, now=now)
        click.echo(f"enroll_existing: {found.count:,} {found.what} enroll now")


@workflows_group.command()
@click.argument("name")
def enable(name: str) -> None:
    """Make a workflow live: signals from now on enroll records. Only a valid workflow goes
    live: its current version is checked against the workspace as `validate` does."""
    rt = connect(load_settings(), "workflowbot-cli")
    _check_current(rt, name)
    _status(name, "live", rt=rt)


def _check_current(rt: Runtime, name: str) -> None:
    """Exit 2 naming every problem of the workflow's current version in today's workspace
    (a stage list or a webhook host may have changed since it was saved)."""
    from engine import workflows, workspace

    with _workflows_session(rt) as (session, now):
        workflow = workflows.get(session, name=name)
        problems = workspace.current_problems(
            session, workflow=workflow, now=now, settings=rt.settings
        )
    if len(problems) == 1:
        fail(f'"{name}" cannot go live: {problems[0]}')
    if problems:
        listed = "\n".join(f"  {p}" for p in problems)
        fail(f'"{name}" cannot go live: {len(problems)} problems\n{listed}')


@workflows_group.command()
@click.argument("name")
@click.option("--exit-all", is_flag=True, help="Also exit every active enrollment.")
def disable(name: str, exit_all: bool) -> None:
    """Stop new enrollments of a live workflow; pending steps wait until it is enabled again
    (those overdue by more than its resume_window are then skipped)."""
    _status(name, "disabled", exit_all=exit_all)


@workflows_group.command()
@click.argument("name")
def history(name: str) -> None:
    """The versions of a workflow: number, when, who, what changed."""
    from engine import workflows

    with _workflows_session() as (session, _):
        lines = [
            f"v{v.number}  {v.created_at:%Y-%m-%d %H:%M} UTC  {v.created_by}  {v.summary}"
            for v in workflows.history(session, name=name)
        ]
    click.echo("\n".join(lines))


@workflows_group.command()
@click.argument("name")
@click.argument("version", type=int)
def rollback(name: str, version: int) -> None:
    """Make an old version current again (as a new version)."""
    from engine import workflows

    with _workflows_session() as (session, now):
        made = workflows.rollback(session, name=name, number=version, by=f"cli:{who()}", now=now)
        number = made.number
    click.echo(f"{name}: version {version} is current again, as version {number}")


@workflows_group.command()
@click.argument("name")
@click.argument("new_name")
def rename(name: str, new_name: str) -> None:
    """Rename a workflow; it keeps its versions and enrollments."""
    from engine import workflows

    with _workflows_session() as (session, now):
        workflows.rename(session, name=name, new_name=new_name, now=now)
    click.echo(f"{name}: renamed to {new_name}")


@workflows_group.command()
@click.argument("name")
def delete(name: str) -> None:
    """Delete a workflow (soft: its history stays, and the same name revives it)."""
    from engine import workflows

    with _workflows_session() as (session, now):
        workflows.delete(session, name=name, now=now)
    click.echo(f"{name}: deleted")


@workflows_group.command(name="rotate-secret")
@click.argument("name")
def rotate_secret(name: str) -> None:
    """Replace a workflow's webhook signing secret and print the new one (once). For 24 hours
    deliveries carry signatures by both, so receivers can switch without losing one."""
    from engine import webhook_secrets, workflows
    from engine.secrets import SecretsError, Vault

    rt = connect(load_settings(), "workflowbot-cli")
    try:
        vault = Vault(rt.settings.secret_key)
    except SecretsError as exc:
        fail(str(exc))
    with _workflows_session(rt) as (session, now):
        workflow = workflows.get(session, name=name)
        secret = webhook_secrets.rotate(session, workflow_id=workflow.id, vault=vault, now=now)
    click.echo(f"{name}: new webhook signing secret (shown once): {secret}")
    click.echo("The previous secret also signs for the next 24 hours.")
