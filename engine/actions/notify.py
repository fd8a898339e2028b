"""A Slack DM to a record's new owner with the record's facts (`owner` with `notify: true`).

Keyed like a channel post: the step's idempotency key rides in the message metadata and is
looked up before a repeat posts. The owner is already written when this runs, so a DM that
cannot be sent (no token, a user Slack does not know) is noted on the step, not a failure;
a rate limit or an unreachable Slack retries the step (the owner write repeats as a no-op).
"""

from __future__ import annotations

from datetime import timedelta

from blocks.notification import escape, notification_blocks, notification_text
from engine import slack, users
from engine.actions.base import Done, Outcome, Retry, RunContext
from engine.actions.slack import facts
from storage.db import session_scope
from storage.models import User
from storage.queries import users as user_rows


def _slack_id(ctx: RunContext, client: slack.WebClient, user: User) -> str | None:
    """The user's Slack id, looked up by email (and remembered) when not known yet."""
    if user.slack_id:
        return user.slack_id
    if not user.email:
        return None
    person = slack.lookup_by_email(client, user.email)
    if person is None:
        return None
    with session_scope(ctx.database) as session:
        row = user_rows.by_id(session, user.id)
        if row is not None:
            users.fill(
                session,
                row,
                users.Person(person.slack_id, person.email, person.real_name or person.name),
                now=ctx.now,
            )
    return person.slack_id


def dm_owner(ctx: RunContext, user: User | None) -> Outcome:
    """DM `user` (the new owner) about the enrolled record; Done with what happened."""
    if not ctx.settings.slack_bot_token:
        return Done({"dm": None}, "no DM: SLACK_BOT_TOKEN is not set")
    if user is None:
        return Done({"dm": None}, "no DM: the owner is not a known user")
    client = slack.client(ctx.settings)
    try:
        slack_id = _slack_id(ctx, client, user)
        if slack_id is None:
            return Done({"dm": None}, f"no DM: {users.label(user)} was not found in Slack")
        channel = slack.open_dm(client, slack_id)
        if not ctx.first_call:
            ts = slack.find_posted(
                client, channel, ctx.idempotency_key, ctx.now - timedelta(days=1)
            )
            if ts is not None:
                return Done({"dm": {"channel": channel, "ts": ts}}, "DM already sent")
        object_type = ctx.data["workflow"]["object"]
        record = ctx.data.get(object_type) or {}
        text = (
            f"You are now the owner of {object_type} *{escape(str(record.get('name') or ''))}* "
            f"(workflow _{escape(str(ctx.data['workflow'].get('name') or ''))}_)."
        )
        ts = slack.post(
            client,
            channel,
            notification_text(text),
            notification_blocks(text, facts(ctx.data), users.label(user)),
            ctx.idempotency_key,
        )
    except slack.SlackRateLimited as exc:
        return Retry(f"Slack: {exc}", ctx.now + timedelta(seconds=exc.retry_after))
    except slack.SlackUnavailable as exc:
        return Retry(f"Slack: {exc}")
    except slack.SlackError as exc:
        return Done({"dm": None, "dm_error": exc.code}, f"no DM: Slack answered {exc.code}")
    return Done({"dm": {"channel": channel, "ts": ts}}, f"DM sent to {users.label(user)}")
