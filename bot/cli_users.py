"""`workflowbot users list|set|sync|connect-gmail`: the people who own records and approve
drafts. A bad field exits 2 naming it; an unknown user exits 1."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn

import click
from sqlalchemy.orm import Session

from bot.cli_common import connect, fail, load_settings
from engine.runtime import Runtime
from storage.db import session_scope


def _absent(message: str) -> NoReturn:
    click.echo(f"workflowbot: {message}", err=True)
    sys.exit(1)


@contextmanager
def _users_session(rt: Runtime | None = None) -> Iterator[tuple[Session, datetime]]:
    from engine.users import UserError

    rt = rt or connect(load_settings(), "workflowbot-cli")
    try:
        with session_scope(rt.db) as session:
            yield session, rt.clock.now()
    except UserError as exc:
        fail(str(exc))


@click.group()
def users() -> None:
    """Users: Slack id, email, name, CRM owner ids and connected Gmail."""


@users.command(name="list")
def list_users() -> None:
    """Every user, with what is known of each."""
    from storage.queries import users as rows

    with _users_session() as (session, _):
        found = rows.all_users(session)
        connected = rows.connections_of(session, user_ids=[u.id for u in found])
        lines = []
        for user in found:
            crm = ", ".join(f"{k}={v}" for k, v in sorted((user.crm_ids or {}).items()))
            gmail = "gmail connected" if "gmail" in connected.get(user.id, []) else ""
            parts = [
                f"{user.id:<5}",
                f"{user.slack_id or '-':<12}",
                f"{user.email or '-':<32}",
                user.name or "-",
                f"[{crm}]" if crm else "",
                gmail,
            ]
            lines.append("  ".join(p for p in parts if p).rstrip())
    click.echo("\n".join(lines) if lines else "No users yet.")


@users.command(name="set")
@click.argument("user", metavar="USER")
@click.option("--slack-id", help="The user's Slack id (U…); merges a row known by it.")
@click.option("--email", help="The user's email; merges a row known by it.")
@click.option("--name", help="The name shown in Slack messages and logs.")
@click.option("--salesforce-id", help="The user's Salesforce user id (owner of tasks).")
@click.option("--hubspot-id", help="The user's HubSpot owner id (owner of tasks).")
def set_user(
    user: str,
    slack_id: str | None,
    email: str | None,
    name: str | None,
    salesforce_id: str | None,
    hubspot_id: str | None,
) -> None:
    """Create or change USER (a Slack id or an email). An empty value clears a CRM id."""
    from engine import users as people

    crm = {
        k: v for k, v in (("salesforce", salesforce_id), ("hubspot", hubspot_id)) if v is not None
    }
    with _users_session() as (session, now):
        done = people.set_user(
            session, user, now=now, slack_id=slack_id, email=email, name=name, crm_ids=crm
        )
        shown = people.label(done)
    click.echo(f"user {shown}: saved")


@users.command()
def sync() -> None:
    """Fill in names, emails and Slack ids from Slack (users.info, users.lookupByEmail)."""
    from engine import slack
    from engine import users as people
    from storage.queries import users as rows

    rt = connect(load_settings(), "workflowbot-cli")
    if not rt.settings.slack_bot_token:
        fail("SLACK_BOT_TOKEN is not set: users are filled from Slack with it")
    client = slack.client(rt.settings)
    changed = missing = 0
    with _users_session(rt) as (session, now):
        for user in rows.all_users(session):
            if user.slack_id and user.email and user.name:
                continue
            try:
                person = (
                    slack.users_info(client, user.slack_id)
                    if user.slack_id
                    else slack.lookup_by_email(client, user.email or "")
                )
            except (slack.SlackError, slack.SlackUnavailable, slack.SlackRateLimited) as exc:
                fail(f"Slack: {exc} (users filled so far are kept)")
            if person is None:
                missing += 1
                continue
            found = people.Person(person.slack_id, person.email, person.real_name or person.name)
            changed += people.fill(session, user, found, now=now)
            session.commit()
    click.echo(f"{changed} users filled from Slack; {missing} not found in Slack")


@users.command(name="connect-gmail")
@click.argument("user", metavar="USER")
def connect_gmail(user: str) -> None:
    """Print the link USER opens to let workflows send email from their Gmail."""
    from engine import gmail_connect
    from engine import users as people

    rt = connect(load_settings(), "workflowbot-cli")
    with _users_session(rt) as (session, now):
        found = people.find(session, user)
        if found is None:
            _absent(f"no user {user} (add one with `workflowbot users set {user}`)")
        try:
            url = gmail_connect.link(rt.settings, found, now)
        except gmail_connect.ConnectError as exc:
            fail(str(exc))
        shown = people.label(found)
    click.echo(f"{shown}: open this link within an hour to connect Gmail:\n{url}")
