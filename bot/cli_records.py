"""`workflowbot suppress add|remove|list` and `records forget`: control over one address or
one person's data. A bad argument exits 2; an address or contact that is not there exits 1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import TYPE_CHECKING, NoReturn

import click
from sqlalchemy.orm import Session

from bot.cli_common import connect, fail, load_settings
from bot.cli_workspace import who
from storage.db import session_scope

if TYPE_CHECKING:
    from engine.runtime import Runtime


def _absent(message: str) -> NoReturn:
    """What was asked for is not there: said like every error, with exit status 1."""
    click.echo(f"workflowbot: {message}", err=True)
    sys.exit(1)


@contextmanager
def _privacy_session(rt: Runtime | None = None) -> Iterator[tuple[Session, datetime]]:
    """A unit of work and the time for a command here (connecting unless given a runtime); on
    a PrivacyError nothing is written and the command exits with its message (1 for an unknown
    contact, else 2)."""
    from engine import privacy

    rt = rt or connect(load_settings(), "workflowbot-cli")
    try:
        with session_scope(rt.db) as session:
            yield session, rt.clock.now()
    except privacy.UnknownContact as exc:
        _absent(str(exc))
    except privacy.PrivacyError as exc:
        fail(str(exc))


@click.group()
def suppress() -> None:
    """The suppression list: addresses never emailed, whatever a workflow says (checked
    before every send; capitalization does not matter)."""


@suppress.command("add")
@click.argument("email")
@click.option("--reason", default="manual", show_default=True, help="Why (up to 32 characters).")
def suppress_add(email: str, reason: str) -> None:
    """Never email EMAIL again."""
    from engine import privacy

    with _privacy_session() as (session, now):
        added = privacy.suppress(session, email=email, reason=reason, by=f"cli:{who()}", now=now)
    click.echo(f"{email.strip()}: {'suppressed' if added else 'already suppressed'}")


@suppress.command("remove")
@click.argument("email")
def suppress_remove(email: str) -> None:
    """Take EMAIL off the list: workflows may email it again."""
    from engine import privacy

    with _privacy_session() as (session, _):
        removed = privacy.unsuppress(session, email=email)
    if not removed:
        _absent(f"{email.strip()} is not suppressed (see `workflowbot suppress list`)")
    click.echo(f"{email.strip()}: no longer suppressed")


@suppress.command("list")
def suppress_list() -> None:
    """Every suppressed address: the address, why, when (UTC), by whom."""
    from storage.queries import suppressions

    with _privacy_session() as (session, _):
        rows = [
            (s.email, s.reason, f"{s.created_at:%Y-%m-%d %H:%M} UTC", s.created_by)
            for s in suppressions.all_suppressions(session)
        ]
    if not rows:
        click.echo("no suppressed addresses")
        return
    width = max(len(row[0]) for row in rows)
    reasons = max(len(row[1]) for row in rows)
    for email, reason, when, by in rows:
        click.echo(f"{email:<{width}}  {reason:<{reasons}}  {when}  {by}")


@click.group()
def records() -> None:
    """One person's data."""


@records.command()
@click.option(
    "--contact", "external_id", required=True, metavar="ID", help="The userId it was sent with."
)
@click.option("--yes", "-y", is_flag=True, help="Forget without asking (scripts).")
def forget(external_id: str, yes: bool) -> None:
    """Erase a contact's data: its events, signals, traits, name, email, score history and
    segment memberships, and what its enrollments kept of it. The row and its enrollments
    stay (anonymized), so workflow counts do not change. This cannot be undone."""
    from engine import privacy

    rt = connect(load_settings(), "workflowbot-cli")
    if not yes and sys.stdin.isatty():
        with _privacy_session(rt) as (session, _):
            email = privacy.contact(session, external_id=external_id).email
        shown = f'contact "{external_id}"' + (f" ({email})" if email else "")
        if not click.confirm(f"Forget {shown}? This cannot be undone."):
            fail("nothing forgotten")
    with _privacy_session(rt) as (session, now):
        done = privacy.forget_contact(session, external_id=external_id, now=now)
    click.echo(
        f"forgot contact {external_id}: {done.events:,} events, {done.signals:,} signals, "
        f"{done.enrollments:,} enrollments kept (anonymized)"
        + (f", {done.exited:,} active ones exited" if done.exited else "")
    )
