"""The tables: records (accounts, contacts), their events, users, and the change outbox."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any

from sqlalchemy import (
    BigInteger,
    Boolean,
    Float,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from storage.base import Base, JSONType

# BIGINT ids on PostgreSQL; on SQLite only INTEGER PRIMARY KEY autoincrements.
Id = BigInteger().with_variant(Integer(), "sqlite")


class User(Base):
    """A person on the team: owner, approver, builder. Known by Slack id, email or both."""

    __tablename__ = "users"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    slack_id: Mapped[str | None] = mapped_column(String(32), unique=True)
    email: Mapped[str | None] = mapped_column(String(320), unique=True)
    name: Mapped[str | None] = mapped_column(String(200))
    # The user's owner id in each CRM: {"salesforce": "005...", "hubspot": "123"}.
    crm_ids: Mapped[dict[str, Any]] = mapped_column(default=dict, server_default="{}")
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime | None]


class _Record:
    """Columns shared by accounts and contacts: built-in fields plus free traits."""

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    external_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str | None] = mapped_column(Text)
    stage: Mapped[str | None] = mapped_column(String(100))
    health_score: Mapped[float | None] = mapped_column(Float)
    owner_id: Mapped[int | None] = mapped_column(ForeignKey("users.id", ondelete="SET NULL"))
    # Every trait as last sent (built-ins included), and when each was last set or cleared,
    # so that a late call never overwrites a newer value.
    traits: Mapped[dict[str, Any]] = mapped_column(default=dict)
    trait_times: Mapped[dict[str, Any]] = mapped_column(default=dict)
    created_at: Mapped[datetime]
    first_seen_at: Mapped[datetime]
    last_seen_at: Mapped[datetime | None]
    updated_at: Mapped[datetime]


class Account(_Record, Base):
    """A company: the record an account workflow follows."""

    __tablename__ = "accounts"


class Contact(_Record, Base):
    """A person at an account: the record a contact workflow follows."""

    __tablename__ = "contacts"

    account_id: Mapped[int | None] = mapped_column(
        ForeignKey("accounts.id", ondelete="SET NULL"), index=True
    )
    email: Mapped[str | None] = mapped_column(String(320), index=True)
    # When the account link was last set, so a late call never moves a newer link.
    account_linked_at: Mapped[datetime | None]
    first_name: Mapped[str | None] = mapped_column(Text)
    last_name: Mapped[str | None] = mapped_column(Text)
    # Set by `records forget`: the anonymized row stays for the counts, and never enrolls.
    forgotten_at: Mapped[datetime | None]


class Event(Base):
    """Something a contact did (and so its account did); kept with its own timestamp."""

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_contact_name_time", "contact_id", "name", "timestamp"),
        Index("ix_events_account_name_time", "account_id", "name", "timestamp"),
        Index("ix_events_name_time", "name", "timestamp"),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    message_id: Mapped[str] = mapped_column(String(200), unique=True)
    name: Mapped[str] = mapped_column(String(200))
    contact_id: Mapped[int] = mapped_column(ForeignKey("contacts.id", ondelete="CASCADE"))
    account_id: Mapped[int | None] = mapped_column(ForeignKey("accounts.id", ondelete="SET NULL"))
    timestamp: Mapped[datetime]
    properties: Mapped[dict[str, Any]] = mapped_column(default=dict)
    received_at: Mapped[datetime]


class IngestMessage(Base):
    """A messageId already stored by identify or group; kept 7 days so a repeat stores once."""

    __tablename__ = "ingest_messages"

    message_id: Mapped[str] = mapped_column(String(200), primary_key=True)
    received_at: Mapped[datetime] = mapped_column(index=True)


class AnonymousCall(Base):
    """How many calls per day carried only an anonymousId (accepted and counted, not stored)."""

    __tablename__ = "anonymous_calls"

    day: Mapped[date] = mapped_column(primary_key=True)
    call: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(BigInteger, default=0)


class OutboxRow(Base):
    """A change the worker must evaluate, written in the same transaction as the change.

    Either a record changed (object_type, object_id, with the built-in fields that moved in
    `changes` as [before, after]), or events were stored (`event_ids`, one row per commit).
    """

    __tablename__ = "outbox"
    __table_args__ = (
        Index(
            "ix_outbox_pending",
            "enqueued_at",
            postgresql_where=text("processed_at IS NULL"),
            sqlite_where=text("processed_at IS NULL"),
        ),
    )

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    object_type: Mapped[str | None] = mapped_column(String(16))
    object_id: Mapped[int | None] = mapped_column(BigInteger)
    event_ids: Mapped[list[int] | None] = mapped_column(JSONType)
    changes: Mapped[dict[str, Any] | None]
    signals: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    enqueued_at: Mapped[datetime]
    processed_at: Mapped[datetime | None]


class Configuration(Base):
    """Workspace settings that come from a workflow file: the stage list, health thresholds."""

    __tablename__ = "configuration"

    key: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[Any] = mapped_column(JSONType)
    updated_at: Mapped[datetime]


class Segment(Base):
    """A saved rule over accounts or contacts; its members are stored in segment_members."""

    __tablename__ = "segments"

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    name: Mapped[str] = mapped_column(String(200))
    # lower(name): names are unique case-insensitively, on every database.
    name_key: Mapped[str] = mapped_column(String(200), unique=True)
    object_type: Mapped[str] = mapped_column(String(16))
    rule: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    # When membership was last computed in SQL (first computation, rule change, time refresh).
    refreshed_at: Mapped[datetime]


class SegmentMember(Base):
    """One record in one segment, since when."""

    __tablename__ = "segment_members"
    __table_args__ = (Index("ix_segment_members_record", "record_id"),)

    segment_id: Mapped[int] = mapped_column(
        ForeignKey("segments.id", ondelete="CASCADE"), primary_key=True
    )
    record_id: Mapped[int] = mapped_column(BigInteger, primary_key=True)
    since: Mapped[datetime]


class Signal(Base):
    """Something that happened to a record and may trigger a workflow, stored exactly once.

    kind: segment_enter / segment_leave (key: segment id), stage_enter / stage_leave (key:
    stage), health (key: drop / rise / change), event (key: event name).
    """

    __tablename__ = "signals"
    __table_args__ = (Index("ix_signals_record", "object_type", "object_id", "id"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[int] = mapped_column(BigInteger)
    kind: Mapped[str] = mapped_column(String(32))
    key: Mapped[str] = mapped_column(String(200))
    detail: Mapped[dict[str, Any]] = mapped_column(default=dict)
    occurred_at: Mapped[datetime]
    created_at: Mapped[datetime]


class HealthScore(Base):
    """A record's health score history: one row each time the score moves (None: cleared)."""

    __tablename__ = "health_scores"
    __table_args__ = (Index("ix_health_scores_record", "object_type", "object_id", "at"),)

    id: Mapped[int] = mapped_column(Id, primary_key=True)
    object_type: Mapped[str] = mapped_column(String(16))
    object_id: Mapped[int] = mapped_column(BigInteger)
    score: Mapped[float | None] = mapped_column(Float)
    at: Mapped[datetime]
