"""The one typed settings object, read from the environment (names as in the README table)."""

from __future__ import annotations

import base64
import binascii
from typing import Annotated, Literal
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import Field, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from storage.db import DEFAULT_DATABASE_URL, normalize_url

CommaList = Annotated[list[str], NoDecode]
_LOOPBACK = frozenset(["127.0.0.1", "localhost", "::1"])


def _split(value: object) -> object:
    if isinstance(value, str):
        return [part.strip() for part in value.split(",") if part.strip()]
    return value


class Settings(BaseSettings):
    """Every setting of every process; each process checks the ones it needs at start."""

    model_config = SettingsConfigDict(case_sensitive=False, extra="ignore")

    database_url: str = DEFAULT_DATABASE_URL
    redis_url: str | None = None
    rabbitmq_url: str | None = None
    port: int = Field(default=8000, ge=1, le=65535)
    public_url: str | None = None
    timezone: str = "UTC"
    secret_key: CommaList = []
    ingest_write_keys: CommaList = []
    slack_bot_token: str | None = None
    slack_signing_secret: str | None = None
    slack_app_token: str | None = None
    slack_api_url: str = "https://slack.com/api/"
    slack_admins: CommaList = []
    approval_channel: str | None = None
    smtp_url: str | None = None
    email_from: str | None = None
    google_client_id: str | None = None
    google_client_secret: str | None = None
    gmail_api_url: str = "https://gmail.googleapis.com/"
    google_auth_url: str = "https://accounts.google.com/o/oauth2/v2/auth"
    google_token_url: str = "https://oauth2.googleapis.com/token"
    salesforce_client_id: str | None = None
    salesforce_client_secret: str | None = None
    salesforce_refresh_token: str | None = None
    salesforce_login_url: str = "https://login.salesforce.com/"
    salesforce_api_version: str = "v61.0"
    # The Task field (an External ID) that holds our idempotency key, for the upsert.
    salesforce_task_key_field: str = "WorkflowBot_Key__c"
    hubspot_token: str | None = None
    hubspot_api_url: str = "https://api.hubapi.com/"
    # The task property (single-line text) that holds our idempotency key, searched first.
    hubspot_task_key_property: str = "workflowbot_key"
    webhook_allowed_hosts: CommaList = []
    webhook_secret: str | None = None
    step_lease_seconds: int = Field(default=300, ge=5)
    step_retry_seconds: float = Field(default=30.0, gt=0)
    outbox_recovery_seconds: int = Field(default=30, ge=1)
    segment_refresh_seconds: int = Field(default=300, ge=1)
    # Retention (engine.retention): rows older than this many days are pruned; 0 keeps them.
    retention_events_days: int = Field(default=400, ge=0)
    retention_enrollments_days: int = Field(default=400, ge=0)
    # Observability (README, "Observability"): log lines, metrics ports (0: off), alerts.
    log_format: Literal["text", "json"] = "text"
    worker_metrics_port: int = Field(default=9191, ge=0, le=65535)
    scheduler_metrics_port: int = Field(default=0, ge=0, le=65535)
    alert_channel: str | None = None
    failure_alert_threshold: int = Field(default=5, ge=1)
    failure_alert_window_seconds: int = Field(default=3600, ge=60)
    failure_alert_repeat_seconds: int = Field(default=86400, ge=60)

    _split_lists = field_validator(
        "secret_key", "ingest_write_keys", "slack_admins", "webhook_allowed_hosts", mode="before"
    )(_split)

    @field_validator("webhook_secret")
    @classmethod
    def _webhook_secret(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        body = value.removeprefix("whsec_")
        try:
            key = base64.b64decode(body + "==", validate=True)
        except binascii.Error:
            key = b""
        if len(key) < 16:
            raise ValueError("must be whsec_ followed by base64 of at least 16 random bytes")
        return value

    @field_validator(
        "slack_api_url",
        "gmail_api_url",
        "google_auth_url",
        "google_token_url",
        "salesforce_login_url",
        "hubspot_api_url",
    )
    @classmethod
    def _provider_url(cls, value: str) -> str:
        """Tokens travel to these: https, or plain http only to this machine (a stand-in)."""
        parts = urlsplit(value)
        if parts.scheme == "https" and parts.hostname:
            return value
        if parts.scheme == "http" and parts.hostname in _LOOPBACK:
            return value
        raise ValueError("must be an https:// URL (http:// only for 127.0.0.1 or localhost)")

    @field_validator("database_url")
    @classmethod
    def _database_url(cls, value: str) -> str:
        return normalize_url(value)

    @field_validator("redis_url")
    @classmethod
    def _redis_url(cls, value: str | None) -> str | None:
        if not value:
            return None
        if not value.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @field_validator("log_format", mode="before")
    @classmethod
    def _log_format(cls, value: object) -> object:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("alert_channel")
    @classmethod
    def _alert_channel(cls, value: str | None) -> str | None:
        return value.strip() or None if value is not None else None

    @field_validator("rabbitmq_url")
    @classmethod
    def _rabbitmq_url(cls, value: str | None, info: ValidationInfo) -> str | None:
        if not value:
            return None
        if not value.startswith(("amqp://", "amqps://")):
            raise ValueError("must start with amqp:// or amqps://")
        if info.data.get("redis_url"):
            raise ValueError("REDIS_URL is set too: set one broker, not both")
        return value

    @field_validator("timezone")
    @classmethod
    def _timezone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r} (use an IANA name such as UTC)") from exc
        return value


class SettingsError(Exception):
    """A setting is wrong or missing; the message is one line naming the variable."""


def load() -> Settings:
    """Read the settings from the environment, or raise SettingsError naming the variable."""
    try:
        return Settings()
    except ValidationError as exc:
        first = exc.errors()[0]
        name = str(first["loc"][0]).upper() if first["loc"] else "settings"
        raise SettingsError(f"{name}: {first['msg']}") from None
