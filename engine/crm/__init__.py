"""What the CRM task actions call: a `TaskClient` per vendor (`salesforce`, `hubspot`).

`create_task` makes a task once per `TaskSpec.key`: a repeat with the same key answers
`TaskCreated(created=False)` and makes no second task. It raises `CrmRetry` when a later attempt
may succeed (5xx, timeouts, rate limits; `retry_after` in seconds when the vendor said) and
`CrmFailed` when it will not (other 4xx, a missing setting, a record the CRM does not hold);
both carry a message a CS person can act on, with the vendor's own code and message.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Literal, Protocol

import httpx

from engine import http

ObjectType = Literal["account", "contact"]


@dataclass(frozen=True)
class TaskSpec:
    """A task to make: `key` is ours (stable across retries), `due_at` is UTC, `owner_id` is
    the CRM's user id, `record` the account or contact as plain data (name, email, traits)."""

    key: str
    subject: str
    body: str
    due_at: datetime
    owner_id: str | None
    object_type: ObjectType
    record: Mapping[str, Any]


@dataclass(frozen=True)
class TaskCreated:
    """The CRM's task id; `created` is False when the key already had a task (no duplicate)."""

    id: str
    created: bool
    link: str | None


class CrmRetry(Exception):
    """A later attempt may succeed; `retry_after` is the vendor's wait in seconds, if given."""

    def __init__(self, error: str, retry_after: float | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.retry_after = retry_after


class CrmFailed(Exception):
    """Trying again gives the same answer until someone changes a setting or the CRM."""

    def __init__(self, error: str) -> None:
        super().__init__(error)
        self.error = error


class TaskClient(Protocol):
    def create_task(self, spec: TaskSpec) -> TaskCreated:
        """The task for `spec.key`, made if it did not exist; CrmRetry or CrmFailed."""
        ...

    def close(self) -> None:
        """Release the connections."""
        ...


# --- Helpers the clients share -----------------------------------------------------------------


def trait(record: Mapping[str, Any] | None, name: str) -> str | None:
    """`name` from the record itself or its `traits`, as a non-empty string, else None."""
    if not isinstance(record, Mapping):
        return None
    traits = record.get("traits")
    for source in (record, traits if isinstance(traits, Mapping) else {}):
        value = source.get(name)
        if value is not None and str(value).strip():
            return str(value).strip()
    return None


def host_port(url: str) -> list[str]:
    """`[host:port]` of an operator-set base URL, for `allowed_hosts`; empty if not a URL (the
    request is then refused and the error names the setting)."""
    try:
        parsed = httpx.URL(url)
    except httpx.InvalidURL:
        return []
    host = parsed.host
    if not host:
        return []
    port = parsed.port or (443 if parsed.scheme == "https" else 80)
    return [f"[{host}]:{port}" if ":" in host else f"{host}:{port}"]


def utc(when: datetime) -> datetime:
    """`when` in UTC; a naive datetime is taken to be UTC already."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def join(base: str, path: str) -> str:
    """`base` (with or without a trailing slash) followed by `path` (starting with one)."""
    return base.rstrip("/") + path


def json_body(response: http.Response) -> Any:
    """The body as JSON, or None if it is empty, cut at the size cap or not JSON."""
    if not response.body or response.truncated:
        return None
    try:
        return json.loads(response.body)
    except ValueError:
        return None


def snippet(response: http.Response) -> str:
    """The start of a body that is not the JSON we expected, on one line."""
    text = response.body[:200].decode("utf-8", "replace")
    return " ".join(text.split()) or "an empty body"
