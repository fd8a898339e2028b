"""Control from the command line: `logs`, `enroll`, `enrollments exit`, `workflows test`,
`workflows audience`, `pause-all` and `resume-all`."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import click
from sqlalchemy.orm import Session

from bot.cli_common import connect, fail, load_settings
from bot.cli_workflows import workflows_group
from bot.cli_workspace import who
from engine.settings import Settings
from storage.db import session_scope


@contextmanager
def _control_session() -> Iterator[tuple[Session, datetime, Settings]]:
    """A unit of work for a control command; a ControlError or WorkflowError exits 1 with its
    message and nothing is written."""
    from engine import control, workflows

    settings = load_settings()
    rt = connect(settings, "workflowbot-cli")
    try:
        with session_scope(rt.db) as session:
            yield session, rt.clock.now(), settings
    except (control.ControlError, workflows.WorkflowError) as exc:
        click.echo(f"workflowbot: {exc}", err=True)
        raise SystemExit(1) from None


def _record(account: str | None, contact: str | None) -> tuple[str, str] | None:
    """(object type, id) of --account or --contact, or None when neither is given."""
    if account is not None and contact is not None:
        fail("give --account or --contact, not both")
    if account is not None:
        return "account", account
    if contact is not None:
        return "contact", contact
    return None


def _required(account: str | None, contact: str | None) -> tuple[str, str]:
    record = _record(account, contact)
    if record is None:
        fail("give the record: --account ID or --contact ID (the id it was sent with)")
    return record


_account = click.option("--account", metavar="ID", help="The account's id (groupId).")
_contact = click.option("--contact", metavar="ID", help="The contact's id (userId).")


@click.command()
@click.argument("workflow")
@_account
@_contact
@click.option("--limit", type=int, default=20, show_default=True, help="Enrollments shown.")
def logs(workflow: str, account: str | None, contact: str | None, limit: int) -> None:
    """The timeline of a workflow's newest enrollments (of one record): enrolled by what,
    each step scheduled, run, skipped (why), failed, retried, and how it ended."""
    from engine import control

    record = _record(account, contact)
    with _control_session() as (session, _, _settings):
        found = control.timelines(
            session,
            name=workflow,
            object_type=record[0] if record else None,
            external_id=record[1] if record else None,
            limit=limit,
        )
        out = [line for timeline in found for line in timeline.text()]
    click.echo("\n".join(out) if out else "no enrollments yet")


@click.command()
@click.argument("workflow")
@_account
@_contact
def enroll(workflow: str, account: str | None, contact: str | None) -> None:
    """Enroll one record by hand (logged as such): its only_if is not asked; once, one active
    at a time and exit_if are."""
    from engine import control

    record = _required(account, contact)
    with _control_session() as (session, now, _):
        enrollment_id = control.enroll_by_hand(
            session,
            name=workflow,
            object_type=record[0],
            external_id=record[1],
            by=f"cli:{who()}",
            now=now,
        )
    click.echo(f"{record[0]} {record[1]}: enrolled in {workflow} (enrollment #{enrollment_id})")


@click.group()
def enrollments() -> None:
    """End enrollments by hand, or run again their steps that need attention."""


@enrollments.command(name="exit")
@click.option("--workflow", metavar="NAME", help="The workflow to leave.")
@click.option("--all", "every", is_flag=True, help="Leave every workflow.")
@_account
@_contact
def exit_(workflow: str | None, every: bool, account: str | None, contact: str | None) -> None:
    """Exit a record from one workflow (--workflow NAME) or from all (--all); its pending
    steps are cancelled."""
    from engine import control

    if (workflow is None) == (not every):
        fail("give --workflow NAME or --all")
    record = _required(account, contact)
    with _control_session() as (session, now, _):
        left = control.exit_record(
            session,
            name=workflow,
            object_type=record[0],
            external_id=record[1],
            by=f"cli:{who()}",
            now=now,
        )
    if not left:
        click.echo(f"{record[0]} {record[1]}: no active enrollment to exit")
        raise SystemExit(1)
    click.echo(f"{record[0]} {record[1]}: exited {', '.join(left)}")


@enrollments.command(name="retry")
@click.option("--workflow", metavar="NAME", help="Only this workflow (default: all).")
@_account
@_contact
def retry(workflow: str | None, account: str | None, contact: str | None) -> None:
    """Run again a record's steps that need attention (after fixing its data, a sender's
    Gmail or the email provider). A record's change retries those held for a missing value by
    itself."""
    from engine import control

    record = _required(account, contact)
    with _control_session() as (session, now, _):
        count = control.retry_held(
            session,
            name=workflow,
            object_type=record[0],
            external_id=record[1],
            by=f"cli:{who()}",
            now=now,
        )
    if not count:
        click.echo(f"{record[0]} {record[1]}: no step needs attention")
        raise SystemExit(1)
    click.echo(f"{record[0]} {record[1]}: {count} steps run again within seconds")


@workflows_group.command(name="test")
@click.argument("name")
@_account
@_contact
def test_workflow(name: str, account: str | None, contact: str | None) -> None:
    """Walk a workflow for one record without side effects: which trigger and conditions
    hold now, which steps would run or be skipped, and each step's preview."""
    from engine import control

    record = _required(account, contact)
    with _control_session() as (session, now, settings):
        lines = control.dry_run(
            session,
            name=name,
            object_type=record[0],
            external_id=record[1],
            settings=settings,
            now=now,
        )
    click.echo("\n".join(lines))


@workflows_group.command()
@click.argument("name")
def audience(name: str) -> None:
    """How many records match the workflow's trigger (and only_if) now."""
    from engine import control, workflows
    from engine.workflow_defs import WorkflowDef
    from storage.queries import workflows as q

    with _control_session() as (session, now, _):
        workflow = workflows.get(session, name=name)
        current = q.version(session, workflow_id=workflow.id, number=workflow.version)
        assert current is not None
        definition = WorkflowDef.model_validate(current.document)
        found = control.audience(session, definition=definition, now=now)
    about = " (an estimate)" if found.estimate else ""
    click.echo(f"{workflow.name}: {found.count:,} {found.what}{about}")


@click.command(name="pause-all")
def pause_all() -> None:
    """Emergency stop of every send: steps coming due wait (nothing is lost) until
    `resume-all`."""
    from engine import runner

    with _control_session() as (session, now, _):
        paused = runner.pause_all(session, by=f"cli:{who()}", now=now)
    click.echo("every send is paused" if paused else "sends were already paused")


@click.command(name="resume-all")
def resume_all() -> None:
    """Lift `pause-all`: the steps that waited run now."""
    from engine import runner

    with _control_session() as (session, now, _):
        released = runner.resume_all(session, now=now)
    click.echo(f"sends resumed; {released:,} waiting steps scheduled")
