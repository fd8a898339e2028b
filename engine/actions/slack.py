"""`action: slack` — post the step's `text` (a template, Slack mrkdwn) to a channel, with the
record's key facts and its owner (blocks.notification).

Record values are escaped for mrkdwn before the template sees them, so a contact named
`<!channel>` is shown, not announced (RELIABILITY 14); the author's own text stays mrkdwn.
Delivery is at least once, keyed: the step's idempotency key rides in the message's metadata
and a run that may follow an earlier post (`first_call` false) looks for it before posting.
Posts to one channel are paced to about one a second across processes (a slot row taken with
a guarded upsert); a 429 reschedules the step at Retry-After; nothing sleeps (RELIABILITY 12).
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime, timedelta
from typing import Any

from slack_sdk import WebClient

from blocks.notification import escape_strings, notification_blocks, notification_text
from engine import slack, templating
from engine.actions.base import (
    Action,
    Attention,
    Delivery,
    Done,
    Failed,
    Later,
    Outcome,
    Preview,
    Retry,
    RunContext,
    SaveChecks,
    Skipped,
)
from engine.settings import Settings
from engine.step_defs import SlackStep, StepDef
from engine.template_checks import template_problem
from storage.db import session_scope
from storage.queries import slack_channels

# A reserved slot missed by more than this (a busy worker) is not used: a new one is taken.
KEPT_SLOT_GRACE = timedelta(minutes=1)
LOOK_BACK = timedelta(days=1)  # how far back a repeated run looks for its own message
# The bot cannot join this channel by itself: a person has to invite it.
_NOT_JOINABLE = frozenset(
    ["method_not_supported_for_channel_type", "channel_not_found", "not_in_channel"]
)
# The token or the app's scopes are wrong: every Slack step fails alike until a person fixes it.
_SETUP = frozenset(
    [
        "not_authed",
        "invalid_auth",
        "account_inactive",
        "token_revoked",
        "token_expired",
        "missing_scope",
        "not_allowed_token_type",
    ]
)


def _record(data: Mapping[str, Any]) -> Mapping[str, Any]:
    workflow = data.get("workflow") or {}
    record = data.get(workflow.get("object", "account"))
    return record if isinstance(record, Mapping) else {}


def _shown(value: Any) -> str | None:
    if value is None or value == "":
        return None
    return str(value)


def facts(data: Mapping[str, Any]) -> list[tuple[str, str]]:
    """The enrolled record's key facts as (label, value), raw (the blocks escape them)."""
    record = _record(data)
    account = record.get("account")
    score = _shown(record.get("health_score"))
    health = _shown(record.get("health"))
    wanted = [
        ("Name", _shown(record.get("name"))),
        ("Email", _shown(record.get("email"))),
        ("Account", _shown(account.get("name")) if isinstance(account, Mapping) else None),
        ("Stage", _shown(record.get("stage"))),
        ("Health", f"{health} ({score})" if health and score else health or score),
        ("Plan", _shown(record.get("plan"))),
        ("MRR", _shown(record.get("mrr"))),
    ]
    return [(label, value) for label, value in wanted if value is not None]


def owner_of(data: Mapping[str, Any]) -> str | None:
    """The record's owner as shown: name, else email."""
    owner = data.get("owner")
    if not isinstance(owner, Mapping):
        return None
    return _shown(owner.get("name")) or _shown(owner.get("email"))


def render_text(step: SlackStep, data: Mapping[str, Any]) -> str:
    """The step's text with every record value escaped for mrkdwn; TemplateError if it fails."""
    return templating.render(step.text, escape_strings(data))


class SlackAction(Action):
    kind = "slack"
    config = SlackStep
    delivery = Delivery.AT_LEAST_ONCE_KEYED  # the key in the message metadata, looked up first

    def problems(self, step: StepDef, path: str, checks: SaveChecks) -> list[str]:
        assert isinstance(step, SlackStep)
        problem = template_problem(step.text, checks.context)
        return [f"{path}.text: {problem}"] if problem else []

    def preview(self, step: StepDef, data: Mapping[str, Any], settings: Settings) -> Preview:
        assert isinstance(step, SlackStep)
        try:
            text = render_text(step, data)
        except templating.TemplateError as exc:
            return Preview((f"post to {step.channel}",), problem=f"text: {exc}")
        return Preview((f"post to {step.channel}", text))

    def run(self, step: StepDef, ctx: RunContext) -> Outcome:
        assert isinstance(step, SlackStep)
        if not ctx.settings.slack_bot_token:
            return Attention("SLACK_BOT_TOKEN is not set")
        try:
            text = render_text(step, ctx.data)
        except templating.TemplateError as exc:
            return Failed(f"text: {exc}")
        if not text.strip():
            return Skipped("the text rendered empty: nothing to post")
        blocks = notification_blocks(text, facts(ctx.data), owner_of(ctx.data))
        web = slack.client(ctx.settings)
        shown = step.channel
        try:
            channel_id = slack.resolve_channel(ctx.database, web, step.channel, ctx.now)
            slot = _slot(ctx, channel_id)
            if slot > ctx.now:
                return Later(
                    at=slot,
                    reason=f"paced: one message a second to {shown}",
                    keep={"slot": slot.isoformat()},
                )
            result = {"channel": channel_id}
            if not ctx.first_call:  # an earlier claim may have posted before it died
                ts = slack.find_posted(web, channel_id, ctx.idempotency_key, ctx.now - LOOK_BACK)
                if ts is not None:
                    return Done(result | {"ts": ts}, f"posted to {shown} (found, not reposted)")
            message = (notification_text(text), blocks, ctx.idempotency_key)
            try:
                ts = slack.post(web, channel_id, *message)
            except slack.SlackError as exc:
                if exc.code != "not_in_channel":
                    raise
                if (refused := _join(web, channel_id, shown)) is not None:
                    return refused
                ts = slack.post(web, channel_id, *message)
        except slack.SlackRateLimited as exc:
            return Retry(str(exc), at=ctx.now + timedelta(seconds=exc.retry_after))
        except slack.SlackUnavailable as exc:
            return Retry(str(exc))
        except slack.SlackError as exc:
            return _refused(exc.code, shown)
        return Done(result | {"ts": ts}, f"posted to {shown}")


def _slot(ctx: RunContext, channel_id: str) -> datetime:
    """When this run may post: the slot an earlier run reserved for it (if it is not long
    past), else a new one reserved on the channel's row."""
    kept = ctx.kept.get("slot")
    if isinstance(kept, str):
        slot = datetime.fromisoformat(kept)
        if slot > ctx.now - KEPT_SLOT_GRACE:
            return slot
    with session_scope(ctx.database) as session:
        return slack_channels.reserve_slot(session, channel_id=channel_id, now=ctx.now)


def _join(web: WebClient, channel_id: str, shown: str) -> Outcome | None:
    """Join a public channel the bot is not in; Failed (invite the bot) when it cannot."""
    try:
        slack.join(web, channel_id)
    except slack.SlackError as exc:
        if exc.code in _NOT_JOINABLE:
            return Failed(
                f"Slack answered {exc.code}: the bot is not in {shown} and cannot join it "
                f"by itself; invite it (/invite @Workflow Bot in {shown})"
            )
        raise
    return None


def _refused(code: str, shown: str) -> Outcome:
    if code in _SETUP:
        return Attention(f"Slack answered {code}: check SLACK_BOT_TOKEN and the app's scopes")
    if code == "not_in_channel":  # still out after joining
        return Failed(f"Slack answered {code}: invite the bot to {shown}")
    return Failed(f"Slack answered {code} (channel {shown})")
