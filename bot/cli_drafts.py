"""`workflowbot drafts list|show|approve|edit|discard|mark-sent|send-again`: the same guarded
transitions as Slack's buttons (engine.drafts). A refused decision exits 2 saying what
happened instead; an unknown draft exits 1."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import NoReturn, TextIO

import click
from sqlalchemy.orm import Session

from bot.cli_common import connect, fail, load_settings
from bot.cli_workspace import who
from storage.action_models import Draft
from storage.db import session_scope

STATUSES = (
    "pending",
    "approved",
    "sent",
    "discarded",
    "expired",
    "withdrawn",
    "failed",
    "unknown",
    "suppressed",
)


def _absent(message: str) -> NoReturn:
    click.echo(f"workflowbot: {message}", err=True)
    sys.exit(1)


@contextmanager
def _drafts_session() -> Iterator[tuple[Session, datetime]]:
    from engine.drafts import DraftError

    rt = connect(load_settings(), "workflowbot-cli")
    try:
        with session_scope(rt.db) as session:
            yield session, rt.clock.now()
    except DraftError as exc:
        if "does not exist" in str(exc):
            _absent(str(exc))
        fail(str(exc))


def _line(draft: Draft) -> str:
    return (
        f"#{draft.id:<6} {draft.status:<10} {draft.kind:<6} {draft.created_at:%Y-%m-%d %H:%M}  "
        f"to {', '.join(draft.to)}  {draft.subject[:60]!r}  ({draft.record_name})"
    )


@click.group()
def drafts() -> None:
    """Email drafts waiting for approval, and what became of the others."""


@drafts.command(name="list")
@click.option("--status", type=click.Choice(STATUSES), multiple=True, help="Only these.")
@click.option("--workflow", metavar="NAME", help="Only this workflow's drafts.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 10_000))
def list_drafts(status: tuple[str, ...], workflow: str | None, limit: int) -> None:
    """The latest drafts, newest first (default: every status)."""
    from engine import workflows
    from storage.queries import drafts as rows

    with _drafts_session() as (session, _):
        workflow_id = None
        if workflow is not None:
            try:
                workflow_id = workflows.get(session, name=workflow).id
            except workflows.WorkflowError as exc:
                fail(str(exc))
        found = rows.listed(session, statuses=status, workflow_id=workflow_id, limit=limit)
        lines = [_line(d) for d in found]
    click.echo("\n".join(lines) if lines else "No drafts.")


@drafts.command()
@click.argument("draft_id", type=int, metavar="ID")
def show(draft_id: int) -> None:
    """A draft in full: headers, body, the record, who decided what."""
    from storage.queries import drafts as rows

    with _drafts_session() as (session, _):
        draft = rows.get(session, draft_id=draft_id)
        if draft is None:
            _absent(f"draft #{draft_id} does not exist")
        lines = [
            f"Draft #{draft.id} ({draft.kind}): {draft.status}",
            f"Record:   {draft.object_type} {draft.record_name}",
            f"From:     {draft.sender}",
            f"To:       {', '.join(draft.to)}",
        ]
        if draft.cc:
            lines.append(f"Cc:       {', '.join(draft.cc)}")
        if draft.reply_to:
            lines.append(f"Reply-To: {draft.reply_to}")
        lines.append(f"Subject:  {draft.subject}")
        if draft.approval_channel:
            lines.append(f"Waits in: {draft.approval_channel}")
        if draft.expires_at and draft.status == "pending":
            lines.append(f"Expires:  {draft.expires_at:%Y-%m-%d %H:%M} UTC")
        if draft.decided_by:
            lines.append(f"Decided:  {draft.decided_by} at {draft.decided_at:%Y-%m-%d %H:%M} UTC")
        if draft.sent_at:
            lines.append(f"Sent:     {draft.sent_at:%Y-%m-%d %H:%M} UTC")
        if draft.error:
            lines.append(f"Error:    {draft.error}")
        if draft.edited:
            lines.append("Edited before sending.")
        lines += ["", draft.body]
    click.echo("\n".join(lines))


def _decide(draft_id: int, decide: Callable[..., object], said: str, then: str = "") -> None:
    with _drafts_session() as (session, now):
        decide(session, draft_id, by=f"cli:{who()}", now=now)
    click.echo(f"draft #{draft_id}: {said}{then}")


@drafts.command()
@click.argument("draft_id", type=int, metavar="ID")
def approve(draft_id: int) -> None:
    """Approve and send a pending draft (sent once, however many approve at once)."""
    from engine import drafts as decisions

    _decide(draft_id, decisions.approve, "approved", "; it is sent within seconds")


@drafts.command()
@click.argument("draft_id", type=int, metavar="ID")
def discard(draft_id: int) -> None:
    """Discard a pending draft: the step is skipped and the workflow goes on."""
    from engine import drafts as decisions

    _decide(draft_id, decisions.discard, "discarded")


@drafts.command(name="mark-sent")
@click.argument("draft_id", type=int, metavar="ID")
def mark_sent(draft_id: int) -> None:
    """Record that a draft whose send is unknown (or failed) did go out; the workflow goes on."""
    from engine import drafts as decisions

    _decide(draft_id, decisions.mark_sent, "marked sent")


@drafts.command(name="send-again")
@click.argument("draft_id", type=int, metavar="ID")
def send_again(draft_id: int) -> None:
    """Send a draft whose send is unknown or failed once more (Gmail: unless Sent has it)."""
    from engine import drafts as decisions

    _decide(draft_id, decisions.send_again, "to be sent again", "; within seconds")


@drafts.command()
@click.argument("draft_id", type=int, metavar="ID")
@click.option("--to", "to", multiple=True, help="Replace the recipients (repeat for several).")
@click.option("--cc", "cc", multiple=True, help="Replace the Cc recipients.")
@click.option("--subject", help="Replace the subject.")
@click.option("--body", help="Replace the body.")
@click.option(
    "--body-file", type=click.File("r"), help="Replace the body with this file's text (- stdin)."
)
def edit(
    draft_id: int,
    to: tuple[str, ...],
    cc: tuple[str, ...],
    subject: str | None,
    body: str | None,
    body_file: TextIO | None,
) -> None:
    """Change a pending draft before approving it."""
    from engine import drafts as decisions

    if body is not None and body_file is not None:
        fail("give --body or --body-file, not both")
    if body_file is not None:
        body = body_file.read()
    if not (to or cc or subject is not None or body is not None):
        fail("nothing to change: give --to, --cc, --subject, --body or --body-file")
    with _drafts_session() as (session, now):
        decisions.edit(
            session,
            draft_id,
            by=f"cli:{who()}",
            now=now,
            to=list(to) or None,
            cc=list(cc) or None,
            subject=subject,
            body=body,
        )
    click.echo(f"draft #{draft_id}: edited; still waiting for approval")
