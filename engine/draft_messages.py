"""The drafts' approval messages in Slack, kept in step with PostgreSQL (the truth; Slack
mirrors it): a pending draft with an approval channel is posted there, and a message whose
draft has moved on (approved, sent, discarded, expired, withdrawn, failed, unknown — from a
button, the CLI, an expiry or an exit) is updated to say so, its buttons gone when final.

One pass (`sync`, from every scheduler tick) takes each message with a guarded claim on the
draft's row (`slack_status`, see storage.queries.drafts), calls Slack outside any
transaction, then stores what the message shows, guarded by the claim: passes running at
once never post a draft twice. Delivery is at least once, keyed: a post carries
`draft-{id}` in its metadata, and a draft that an earlier pass may have posted (it died before
storing the ts) is looked for before anything is posted. A 429 or an outage ends the pass
(the next tick goes on; nothing sleeps); any other refusal is logged and that draft waits
ERROR_BACKOFF before it is tried again.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from slack_sdk import WebClient
from sqlalchemy import Engine
from sqlalchemy.orm import Session

from blocks.approval import DraftView, draft_message
from engine import slack
from engine.email.message import html_to_text
from engine.settings import Settings
from storage.db import session_scope
from storage.queries import drafts as rows

log = logging.getLogger(__name__)

POST_BATCH = 20  # drafts posted (or looked for) per pass
UPDATE_BATCH = 20  # messages updated per pass (chat.update: about 50 a minute)
CLAIM_LEASE = timedelta(minutes=5)  # a pass that died holding a claim is taken over after this
ERROR_BACKOFF = timedelta(minutes=5)  # a draft Slack refused is tried again after this
LOOK_BACK = timedelta(minutes=10)  # before the draft was made: clocks differ a little
# The message cannot be updated any more (deleted, its channel archived or gone).
_GONE = frozenset(
    [
        "message_not_found",
        "cant_update_message",
        "channel_not_found",
        "is_archived",
        "not_in_channel",
        "edit_window_closed",
    ]
)


def metadata_key(draft_id: int) -> str:
    """The key a draft's message carries in its metadata."""
    return f"draft-{draft_id}"


def view_of(row: rows.MessageRow) -> DraftView:
    """What the message shows of a draft (plain data for blocks.approval)."""
    draft = row.draft
    owner = row.owner_name or row.owner_email or row.owner_slack_id
    html = draft.kind in ("html", "gmail")
    return DraftView(
        id=draft.id,
        kind=draft.kind,
        status=draft.status,
        sender=draft.sender,
        to=tuple(draft.to),
        cc=tuple(draft.cc),
        subject=draft.subject,
        body=draft.body,
        record_name=draft.record_name,
        record_type=draft.object_type,
        owner=owner,
        workflow_name=row.workflow_name,
        step_number=draft.step_index + 1,
        approval_channel=draft.approval_channel,
        decided_by=draft.decided_by,
        decided_at=draft.decided_at,
        error=draft.error,
        sent_at=draft.sent_at,
        edited=draft.edited,
        expires_at=draft.expires_at,
        body_text=html_to_text(draft.body) if html else None,
        marked_sent=draft.status == "sent" and draft.provider_id == "marked",
    )


def load_view(session: Session, *, draft_id: int) -> DraftView | None:
    """The draft as its message shows it (for the buttons' modals), or None if it is gone."""
    row = rows.for_message(session, draft_id=draft_id)
    return None if row is None else view_of(row)


@dataclass(frozen=True)
class _Claimed:
    row: rows.MessageRow  # read with the claim
    seen: str | None  # the mark read before the claim: not None = a message may exist

    @property
    def draft_id(self) -> int:
        return self.row.draft.id


@dataclass
class _Pass:
    db: Engine
    web: WebClient
    now: datetime
    done: int = 0
    channels: set[str] = field(default_factory=set)  # posted to in this pass


def sync(db: Engine, settings: Settings, now: datetime) -> int:
    """Post the pending drafts' messages and update those whose draft moved on; how many
    messages were posted or updated. Nothing without SLACK_BOT_TOKEN."""
    if not settings.slack_bot_token:
        return 0
    run = _Pass(db, slack.client(settings), now)
    try:
        _pass(run, post=True, limit=POST_BATCH)
        _pass(run, post=False, limit=UPDATE_BATCH)
    except (slack.SlackRateLimited, slack.SlackUnavailable) as exc:
        log.info("approval messages wait for the next pass: %s", exc)
    return run.done


def _pass(run: _Pass, *, post: bool, limit: int) -> None:
    with session_scope(run.db) as session:
        due = rows.slack_due(
            session, post=post, now=run.now, lease=CLAIM_LEASE, backoff=ERROR_BACKOFF, limit=limit
        )
    for work in due:
        if post and work.approval_channel is not None:
            # About one post a second per channel: one per pass (a tick), the rest wait.
            if work.approval_channel in run.channels:
                continue
            run.channels.add(work.approval_channel)
        with session_scope(run.db) as session:
            taken = rows.claim_slack(
                session, work=work, post=post, now=run.now, lease=CLAIM_LEASE, backoff=ERROR_BACKOFF
            )
            if not taken:
                continue  # another pass took it, or the draft moved on meanwhile
            row = rows.for_message(session, draft_id=work.id)
            assert row is not None  # the claim just matched it
        _guarded(run, _Claimed(row, work.seen), _post if post else _update)


def _guarded(
    run: _Pass, claimed: _Claimed, call: Callable[[_Pass, _Claimed, DraftView], None]
) -> None:
    """Render and run `call` on a claimed draft; whatever stops it gives the claim back."""
    draft_id = claimed.draft_id
    try:
        call(run, claimed, view_of(claimed.row))
    except (slack.SlackRateLimited, slack.SlackUnavailable):
        _release(run, draft_id, rows.SLACK_RETRY)
        raise
    except slack.SlackError as exc:
        log.warning(
            "draft #%d: Slack answered %s for its approval message%s; trying again in %s",
            draft_id,
            exc.code,
            _hint(exc.code, claimed.row.draft.approval_channel),
            ERROR_BACKOFF,
        )
        _release(run, draft_id, rows.SLACK_ERROR)
    except Exception:
        # One draft that cannot be shown (a bug, odd data) must not hold every other back.
        log.exception("draft #%d: its approval message failed; trying again later", draft_id)
        _release(run, draft_id, rows.SLACK_ERROR)


def _hint(code: str, channel: str | None) -> str:
    if code in ("not_in_channel", "method_not_supported_for_channel_type"):
        return f" (invite the bot to {channel}: /invite @Workflow Bot)"
    if code == "channel_not_found":
        return f" (no channel {channel} the bot can see)"
    return ""


def _release(run: _Pass, draft_id: int, mark: str | None, *, forget: bool = False) -> None:
    with session_scope(run.db) as session:
        rows.release_slack(session, draft_id=draft_id, mark=mark, now=run.now, forget=forget)


def _post(run: _Pass, claimed: _Claimed, view: DraftView) -> None:
    """Post a pending draft's message, unless an earlier pass did (then it is brought up to
    date); a draft decided meanwhile is only looked for, never posted."""
    assert view.approval_channel is not None
    channel = slack.resolve_channel(run.db, run.web, view.approval_channel, run.now)
    text, blocks = draft_message(view)
    key = metadata_key(view.id)
    ts = None
    if claimed.seen is not None:  # a pass may have posted it and died before storing the ts
        oldest = claimed.row.draft.created_at - LOOK_BACK
        ts = slack.find_posted(run.web, channel, key, oldest)
        if ts is not None:
            slack.update(run.web, channel, ts, text, blocks)
    if ts is None and view.status != "pending":
        _release(run, view.id, None)  # never posted, and nothing to approve any more
        return
    if ts is None:
        try:
            ts = slack.post(run.web, channel, text, blocks, key)
        except slack.SlackError as exc:
            if exc.code != "not_in_channel":
                raise
            slack.join(run.web, channel)
            ts = slack.post(run.web, channel, text, blocks, key)
    with session_scope(run.db) as session:
        rows.store_posted(session, draft_id=view.id, channel=channel, ts=ts, shown=view.status)
    run.done += 1


def _update(run: _Pass, claimed: _Claimed, view: DraftView) -> None:
    """Redraw a message to its draft's current state."""
    channel, ts = claimed.row.draft.slack_channel, claimed.row.draft.slack_ts
    assert channel is not None and ts is not None
    text, blocks = draft_message(view)
    try:
        slack.update(run.web, channel, ts, text, blocks)
    except slack.SlackError as exc:
        if exc.code not in _GONE:
            raise
        if view.status == "pending" and exc.code == "message_not_found":
            log.warning("draft #%d: its approval message was deleted; posting it anew", view.id)
            _release(run, view.id, None, forget=True)
        else:
            log.warning(
                "draft #%d: its approval message cannot be updated (%s); left as it is",
                view.id,
                exc.code,
            )
            with session_scope(run.db) as session:
                rows.store_shown(session, draft_id=view.id, ts=ts, shown=view.status)
        return
    with session_scope(run.db) as session:
        rows.store_shown(session, draft_id=view.id, ts=ts, shown=view.status)
    run.done += 1
