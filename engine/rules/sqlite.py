"""SQLite side of the SQL compiler: each predicate runs the Python compiler inside SQLite.

SQLite, the embedded default, has no regex and no strict timestamp parse, so a predicate on
a field is the SQL function `wf_test(leaf, record, now)`: the leaf's JSON form, the record's
fields as JSON, and `now`, evaluated by `to_python`. The query around it (and/or/not,
correlated counts for aggregates, the account of a contact) stays SQL. One meaning, by
construction; `install(engine)` registers the function on every connection.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any

from sqlalchemy import Engine, event

from engine.rules.ast import Aggregate, Rule
from engine.rules.serialize import from_json, to_json
from engine.rules.to_python import Predicate, to_python
from engine.rules.values import MISSING

TIME_COLUMNS = ("created_at", "last_seen_at", "timestamp")


@lru_cache(maxsize=1024)
def _predicate(leaf_json: str) -> Predicate:
    return to_python(from_json(json.loads(leaf_json)))


class _Fields:
    """A record's fields as SQLite's json_object() gave them."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.data = data

    def value(self, path: tuple[str, ...]) -> object:
        head = path[0]
        if len(path) == 1 and head in self.data.get("$columns", ()):
            value = self.data.get(head)
            if value is None:
                return MISSING
            if head in TIME_COLUMNS and isinstance(value, str):
                return datetime.fromisoformat(value).replace(tzinfo=UTC)
            return value
        if "$properties" in self.data:  # an event inside count(... where R)
            if path == ("timestamp",):
                return _event_time(self.data.get("timestamp"))
            current: object = self.data["$properties"]
            keys = path[1:]
        else:
            current = self.data.get("$traits") or {}
            keys = path[1:] if head == "traits" and len(path) > 1 else path
        for key in keys:
            if not isinstance(current, dict) or key not in current:
                return MISSING
            current = current[key]
        return current

    def aggregate(self, aggregate: Aggregate) -> object:
        raise TypeError("aggregates are counted in SQL")


def _event_time(value: object) -> object:
    if isinstance(value, str):
        return datetime.fromisoformat(value).replace(tzinfo=UTC)
    return MISSING


def wf_test(leaf_json: str, record_json: str, now_iso: str) -> int:
    """1 when the leaf holds for the record at `now`, else 0 (never NULL)."""
    data = json.loads(record_json)
    for key in ("$traits", "$properties"):
        if isinstance(data.get(key), str):
            data[key] = json.loads(data[key])
    now = datetime.fromisoformat(now_iso)
    return int(_predicate(leaf_json)(_Fields(data), now))


def install(engine: Engine) -> None:
    """Register wf_test on each new SQLite connection of `engine` (no-op elsewhere)."""
    if engine.dialect.name != "sqlite":
        return

    @event.listens_for(engine, "connect")
    def _register(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.create_function("wf_test", 3, wf_test, deterministic=True)

    engine.dispose()  # pooled connections made before this have no wf_test


def leaf_json(rule: Rule) -> str:
    """The leaf as `wf_test` takes it (and caches its compiled predicate by)."""
    return json.dumps(to_json(rule), sort_keys=True, separators=(",", ":"))
