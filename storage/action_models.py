"""The actions' tables: users' connected accounts, email drafts and what happened to
them, Slack channels (name cache and per-channel pacing), counters, webhook signing secrets.

Secrets (OAuth tokens, webhook secrets) are stored encrypted (engine.secrets, SECRET_KEY);
nothing here holds one in the clear.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import BigInteger, Boolean, ForeignKey, Index, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, JSONType
from storage.models import Id
from storage.workflow_models import _where


class Connection(Base):
    """A user's connected account (Gmail): the address and its tokens, encrypted."""

    __tablename__ = "connections"
    __table_args__ = (Index("uq_connections_user_provider", "user_id", "provider", unique=True),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    user_id: Mapped[int] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    provider: Mapped[str] = mapped_column(String(16))  # gmail
    account: Mapped[str] = mapped_column(String(320))  # the connected address
    secret: Mapped[str] = mapped_column(Text)  # encrypted JSON: tokens and their expiry
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Draft(Base):
    """An email a step is about to send, waiting for approval or sent at once.

    status: pending -> approved | discarded | expired | withdrawn (the enrollment exited);
    approved -> sent | failed | unknown (a crash mid-send: "may have been sent"). Every move
    is a guarded UPDATE naming the status it leaves, so ten approvals send once.
    """

    __tablename__ = "drafts"
    __table_args__ = (
        Index("ix_drafts_expiry", "expires_at", **_where("status = 'pending'")),
        Index("ix_drafts_workflow", "workflow_id", "status"),
        # Retention deletes finished enrollments; their drafts go by this index (cascade).
        Index("ix_drafts_enrollment", "enrollment_id"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    step_run_id: Mapped[int] = mapped_column(
        ForeignKey("step_runs.id", ondelete="CASCADE"), unique=True
    )
    enrollment_id: Mapped[int] = mapped_column(ForeignKey("enrollments.id", ondelete="CASCADE"))
    workflow_id: Mapped[int] = mapped_column(ForeignKey("workflows.id", ondelete="CASCADE"))
    step_index: Mapped[int]
    kind: Mapped[str] = mapped_column(String(16))  # email | html | gmail | team
    status: Mapped[str] = mapped_column(String(16))
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[int] = mapped_column(BigInteger)
    record_name: Mapped[str] = mapped_column(String(300), default="")
    sender: Mapped[str] = mapped_column(String(320))
    to: Mapped[list[str]] = mapped_column(JSONType, default=list)
    cc: Mapped[list[str]] = mapped_column(JSONType, default=list)
    reply_to: Mapped[str | None] = mapped_column(String(320))
    subject: Mapped[str] = mapped_column(Text)
    body: Mapped[str] = mapped_column(Text)
    # Our Message-ID, made with the draft: the same on a "send again", found in Gmail's Sent.
    message_id: Mapped[str] = mapped_column(String(255), unique=True)
    approval_channel: Mapped[str | None] = mapped_column(String(80))
    expires_at: Mapped[datetime | None]
    edited: Mapped[bool] = mapped_column(Boolean, default=False)
    decided_by: Mapped[str | None] = mapped_column(String(200))
    decided_at: Mapped[datetime | None]
    sent_at: Mapped[datetime | None]
    provider_id: Mapped[str | None] = mapped_column(String(255))
    error: Mapped[str | None] = mapped_column(Text)
    slack_channel: Mapped[str | None] = mapped_column(String(32))
    slack_ts: Mapped[str | None] = mapped_column(String(32))
    # The draft status its Slack message shows; differs from `status` until it is updated.
    slack_status: Mapped[str | None] = mapped_column(String(16))
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class EmailEvent(Base):
    """Something a recipient did with a sent draft: open, click, unsubscribe."""

    __tablename__ = "email_events"
    __table_args__ = (Index("ix_email_events_draft", "draft_id", "kind"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    draft_id: Mapped[int] = mapped_column(ForeignKey("drafts.id", ondelete="CASCADE"))
    kind: Mapped[str] = mapped_column(String(16))  # open | click | unsubscribe
    at: Mapped[datetime]
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)  # url, user agent


class SlackChannel(Base):
    """A channel the bot posts to: its name (resolved once) and when the next post may go
    (about one a second per channel, across processes: a guarded UPDATE takes the slot)."""

    __tablename__ = "slack_channels"

    id: Mapped[str] = mapped_column(String(32), primary_key=True)
    name: Mapped[str | None] = mapped_column(String(200), index=True)
    next_post_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Counter(Base):
    """A named counter taken with one UPDATE ... RETURNING (round-robin owners)."""

    __tablename__ = "counters"

    name: Mapped[str] = mapped_column(String(200), primary_key=True)
    value: Mapped[int] = mapped_column(BigInteger, default=0)


class WorkflowSecret(Base):
    """A workflow's webhook signing secret (encrypted); after a rotation the previous one
    also signs until `previous_until`, so receivers can switch without losing a message."""

    __tablename__ = "workflow_secrets"

    workflow_id: Mapped[int] = mapped_column(
        ForeignKey("workflows.id", ondelete="CASCADE"), primary_key=True
    )
    secret: Mapped[str] = mapped_column(Text)
    previous: Mapped[str | None] = mapped_column(Text)
    previous_until: Mapped[datetime | None]
    created_at: Mapped[datetime]
    rotated_at: Mapped[datetime | None]


class SlackEvent(Base):
    """An event (or interaction) Slack delivered, by its id: a retry or a duplicate of one
    already here has no second effect, whichever process receives it."""

    __tablename__ = "slack_events"

    event_id: Mapped[str] = mapped_column(String(64), primary_key=True)
    received_at: Mapped[datetime]


class SlackForm(Base):
    """What a modal or a message carries between two requests when it does not fit in the
    view's private_metadata or a button's value: the wizard's workflow being built, an
    import's document waiting for Apply. Its id travels instead; forms untouched for a week
    are purged."""

    __tablename__ = "slack_forms"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    kind: Mapped[str] = mapped_column(String(32))  # wizard, import
    slack_user: Mapped[str] = mapped_column(String(32))  # who started it
    data: Mapped[dict[str, Any]] = mapped_column(JSONType)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime] = mapped_column(index=True)
