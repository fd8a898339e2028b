"""A stored record as the Python compiler reads it, resolving names exactly as `to_sql` does:
a built-in field from its column, any other name (or `traits.NAME`) from the traits, and
`account.X` from the contact's account (nothing set when it has none)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from engine.rules.ast import Aggregate
from engine.rules.to_sql import BUILTIN_COLUMNS
from engine.rules.values import MISSING


@dataclass(frozen=True)
class RecordValues:
    """One record's columns and traits, its aggregates, and (for a contact) its account."""

    columns: Mapping[str, Any]
    traits: Mapping[str, Any]
    aggregates: Mapping[Aggregate, object] = field(default_factory=dict)
    account: RecordValues | None = None

    def value(self, path: tuple[str, ...]) -> object:
        head = path[0]
        if head == "account" and len(path) > 1:
            return self.account.value(path[1:]) if self.account is not None else MISSING
        if len(path) == 1 and head in BUILTIN_COLUMNS and head in self.columns:
            value = self.columns[head]
            return MISSING if value is None else value
        current: object = self.traits
        for key in path[1:] if head == "traits" and len(path) > 1 else path:
            if not isinstance(current, Mapping) or key not in current:
                return MISSING
            current = current[key]
        return current

    def aggregate(self, aggregate: Aggregate) -> object:
        return self.aggregates[aggregate]


def from_row(
    row: Any,
    *,
    aggregates: Mapping[Aggregate, object] | None = None,
    account: RecordValues | None = None,
) -> RecordValues:
    """A RecordValues from a result row of a records table (built-in columns and traits)."""
    mapping = row._mapping
    columns = {name: mapping[name] for name in BUILTIN_COLUMNS if name in mapping}
    for name, value in columns.items():
        if isinstance(value, datetime) and value.tzinfo is None:
            raise ValueError(f"{name}: naive timestamp from the database")
    return RecordValues(columns, mapping["traits"] or {}, aggregates or {}, account)
