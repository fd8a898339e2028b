"""Compile a rule to a SQL condition over a whole records table (PostgreSQL and SQLite).

Same meaning as `to_python`, statement by statement of workflow-format.md's Values
paragraph: numbers are JSON numbers or strings that parse whole as decimals; strings compare
by code point (`COLLATE "C"`); not-set values fail every comparison but `!=`; timestamps are
parsed by `wf_timestamp`, which accepts exactly the forms `values.TIMESTAMP` does.
`account.X` in a contact rule reads the contact's account. On SQLite a field test calls
`wf_test`, which runs the Python compiler inside SQLite (engine/rules/sqlite.py).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from functools import lru_cache
from typing import Any, Literal

from sqlalchemy import (
    Boolean,
    ColumnElement,
    Connection,
    Numeric,
    Table,
    and_,
    bindparam,
    case,
    cast,
    false,
    func,
    literal,
    literal_column,
    not_,
    null,
    or_,
    select,
)
from sqlalchemy.dialects.postgresql import JSONB

from engine.rules import sqlite as sqlite_rules
from engine.rules.analysis import dependencies
from engine.rules.ast import (
    Aggregate,
    AggregateCompare,
    Ago,
    And,
    Compare,
    CompareOp,
    Contains,
    DateValue,
    Field,
    In,
    IsSet,
    Not,
    Or,
    Rule,
    Value,
    Within,
)
from engine.rules.to_python import to_python
from engine.rules.values import MISSING, as_number, as_timestamp
from storage.base import UTCDateTime
from storage.queries.ingest import ACCOUNTS, EVENTS

_SCALAR: ColumnElement[Any] = literal_column("'{}'::text[]")  # `jsonb #>> '{}'`: a scalar's text
NUMERIC_TEXT = r"^[ \t\n\r]*-?[0-9]+(\.[0-9]+)?[ \t\n\r]*$"

# Built-in fields read from their own column; every other name is a trait.
BUILTIN_COLUMNS: dict[str, Literal["text", "number", "time"]] = {
    "name": "text",
    "stage": "text",
    "health_score": "number",
    "created_at": "time",
    "last_seen_at": "time",
    "email": "text",
    "first_name": "text",
    "last_name": "text",
}


class NotCompiled(ValueError):
    """A rule uses a part the SQL compiler does not handle yet."""


@dataclass(frozen=True)
class _Access:
    kind: Literal["json", "text", "number", "time"]
    expr: Any

    # -- the Values paragraph, in SQL ------------------------------------------------------
    def typeof(self) -> Any:
        return func.jsonb_typeof(self.expr)

    def text(self) -> Any:
        if self.kind == "json":
            return case((self.typeof() == "string", self.expr.op("#>>")(_SCALAR)))
        if self.kind == "text":
            return self.expr
        return null()

    def is_set(self) -> ColumnElement[bool]:
        if self.kind == "json":
            t = self.typeof()
            return and_(
                self.expr.is_not(None),
                t != "null",
                or_(t != "string", self.expr.op("#>>")(_SCALAR) != ""),
                or_(t != "array", func.jsonb_array_length(self.expr) > 0),
            )
        if self.kind == "text":
            return and_(self.expr.is_not(None), self.expr != "")
        return self.expr.is_not(None)

    def number(self) -> Any:
        if self.kind == "number":
            return cast(self.expr, Numeric)
        if self.kind == "time":
            return null()
        text = self.text()
        as_text = case(
            (
                text.op("~", is_comparison=True)(NUMERIC_TEXT),
                cast(func.btrim(text, " \t\n\r"), Numeric),
            ),
        )
        if self.kind == "json":
            return case(
                (self.typeof() == "number", cast(self.expr.op("#>>")(_SCALAR), Numeric)),
                else_=as_text,
            )
        return as_text

    def non_numeric_text(self) -> Any:
        text = self.text()
        return case(
            (and_(self.is_set(), not_(text.op("~", is_comparison=True)(NUMERIC_TEXT))), text)
        )

    def boolean(self) -> Any:
        if self.kind != "json":
            return null()
        return case((self.typeof() == "boolean", cast(self.expr.op("#>>")(_SCALAR), Boolean)))

    def timestamp(self) -> Any:
        if self.kind == "time":
            return self.expr
        if self.kind == "number":
            return null()
        return func.wf_timestamp(self.text())


def _access(table: Any, field: Field) -> _Access:
    path = field.path
    if "properties" in table.c:  # inside count(... where R): an event's timestamp or properties
        if path == ("timestamp",):
            return _Access("time", table.c.timestamp)
        properties = cast(table.c.properties, JSONB)
        return _Access("json", func.jsonb_extract_path(properties, *[literal(k) for k in path[1:]]))
    if len(path) == 1 and path[0] in BUILTIN_COLUMNS and path[0] in table.c:
        return _Access(BUILTIN_COLUMNS[path[0]], table.c[path[0]])
    keys = path[1:] if path[0] == "traits" and len(path) > 1 else path
    traits = cast(table.c.traits, JSONB)
    return _Access("json", func.jsonb_extract_path(traits, *[literal(k) for k in keys]))


def _op(left: Any, op: CompareOp, right: Any) -> ColumnElement[bool]:
    """`left op right` where NULL (incomparable) is false, and `!=` is exactly `not =`."""
    if op == "!=":
        return not_(func.coalesce(left == right, false()))
    expression = {
        "=": left == right,
        "<": left < right,
        "<=": left <= right,
        ">": left > right,
        ">=": left >= right,
    }[op]
    return func.coalesce(expression, false())


def _compare(access: _Access, op: CompareOp, value: Value) -> ColumnElement[bool]:
    if isinstance(value, DateValue):
        stamp = as_timestamp(value)
        return _op(access.timestamp(), op, literal(stamp) if stamp else null())
    if isinstance(value, bool):
        if op not in ("=", "!="):
            return false()
        return _op(access.boolean(), op, literal(value))
    number = as_number(value)
    if number is not None:
        return _op(access.number(), op, literal(number, Numeric))
    assert isinstance(value, str)
    return _op(access.non_numeric_text().collate("C"), op, literal(value).collate("C"))


def _contains(access: _Access, needle: str) -> ColumnElement[bool]:
    if access.kind == "json":
        t = access.typeof()
        return func.coalesce(
            or_(
                and_(t == "array", access.expr.op("@>")(func.jsonb_build_array(literal(needle)))),
                and_(access.is_set(), t == "string", func.strpos(access.text(), needle) > 0),
            ),
            false(),
        )
    if access.kind == "text":
        return func.coalesce(and_(access.is_set(), func.strpos(access.expr, needle) > 0), false())
    return false()


def to_sql(
    rule: Rule, *, table: Any, now: datetime, dialect: str = "postgresql"
) -> ColumnElement[bool]:
    """A boolean SQL expression over `table` with the meaning `to_python` gives the rule.

    `dialect` is "postgresql" or "sqlite" (SQLite needs `engine.rules.sqlite.install`).
    """
    leaf_field = getattr(rule, "field", None)
    if isinstance(leaf_field, Field) and leaf_field.path[0] == "account" and leaf_field.path[1:]:
        return _on_account(rule, leaf_field, table, now, dialect)
    if dialect == "sqlite" and isinstance(leaf_field, Field):
        return _sqlite_leaf(rule, table, now)
    match rule:
        case Or(items):
            return or_(*(to_sql(i, table=table, now=now, dialect=dialect) for i in items))
        case And(items):
            return and_(*(to_sql(i, table=table, now=now, dialect=dialect) for i in items))
        case Not(item):
            return not_(to_sql(item, table=table, now=now, dialect=dialect))
        case Compare(field, op, value):
            return _compare(_access(table, field), op, value)
        case In(field, values):
            access = _access(table, field)
            return or_(*(_compare(access, "=", v) for v in values))
        case Contains(field, needle):
            return _contains(_access(table, field), needle)
        case IsSet(field, negated):
            is_set = _access(table, field).is_set()
            return not_(is_set) if negated else is_set
        case Within(field, duration, future):
            stamp = _access(table, field).timestamp()
            span = timedelta(seconds=duration.seconds)
            if future:
                window = and_(stamp >= literal(now), stamp < literal(now + span))
            else:
                window = and_(stamp > literal(now - span), stamp <= literal(now))
            return func.coalesce(window, false())
        case Ago(field, relation, duration):
            stamp = _access(table, field).timestamp()
            moment = literal(now - timedelta(seconds=duration.seconds))
            return func.coalesce(
                stamp < moment if relation == "before" else stamp > moment, false()
            )
        case AggregateCompare(aggregate, op, number):
            counted = _aggregate(aggregate, table, now, dialect)
            return _op(counted, op, literal(number, Numeric))
    raise TypeError(f"not a rule node: {rule!r}")


class _NoRecord:
    """The record a contact without an account has for `account.`: nothing is set."""

    def value(self, path: tuple[str, ...]) -> object:
        return MISSING

    def aggregate(self, aggregate: Aggregate) -> object:
        raise TypeError("no aggregate on account.")


def _sqlite_leaf(rule: Rule, table: Any, now: datetime) -> ColumnElement[bool]:
    """On SQLite a field test runs `to_python` in SQLite (see engine.rules.sqlite)."""
    if "properties" in table.c:
        record = func.json_object(
            "$properties", func.json(table.c.properties), "timestamp", table.c.timestamp
        )
    else:
        columns = [name for name in BUILTIN_COLUMNS if name in table.c]
        pairs: list[Any] = [
            "$columns",
            func.json_array(*columns),
            "$traits",
            func.json(table.c.traits),
        ]
        for name in columns:
            pairs += [name, table.c[name]]
        record = func.json_object(*pairs)
    return (
        func.wf_test(literal(sqlite_rules.leaf_json(rule)), record, literal(now.isoformat())) == 1
    )


def _on_account(
    rule: Rule, field: Field, table: Any, now: datetime, dialect: str
) -> ColumnElement[bool]:
    """`account.X ...` in a contact rule: the same test on the contact's account row, and
    for a contact without an account, what the test gives on a record with nothing set."""
    if "account_id" not in table.c:
        raise NotCompiled("account. fields belong in contact rules")
    accounts = ACCOUNTS.alias("acct")
    inner: Rule = dataclasses.replace(rule, field=Field(field.path[1:]))  # type: ignore[arg-type]
    on_account = (
        select(to_sql(inner, table=accounts, now=now, dialect=dialect))
        .where(accounts.c.id == table.c.account_id)
        .scalar_subquery()
    )
    without = to_python(inner)(_NoRecord(), now)
    return func.coalesce(on_account, literal(without))


def _aggregate(
    aggregate: Aggregate,
    table: Table,
    now: datetime,
    dialect: str,
) -> Any:
    """count() as a correlated count of the record's events; trend() from two such counts
    (the set-wise form; one record's aggregates come from `aggregates_for`)."""

    def instant(offset: int) -> Any:
        return literal(now - timedelta(seconds=offset))

    events = _EVENTS
    owner = events.c.account_id if table.name == "accounts" else events.c.contact_id
    conditions = [owner == table.c.id, events.c.name == aggregate.event]
    if aggregate.where is not None:
        conditions.append(to_sql(aggregate.where, table=events, now=now, dialect=dialect))
    span = aggregate.window.seconds

    def count(start: int, end: int) -> Any:
        window = [events.c.timestamp > instant(start), events.c.timestamp <= instant(end)]
        return select(func.count()).where(*conditions, *window).scalar_subquery()

    current = count(span, 0)
    if aggregate.function == "count":
        return current
    return _trend(current, count(2 * span, span))


def _trend(current: Any, previous: Any) -> Any:
    """trend(): the change from the previous window to the current one, in percent."""
    change = literal(Decimal(100)) * (cast(current, Numeric) - previous) / previous
    return case(
        (previous == 0, case((current == 0, literal(Decimal(0))), else_=literal(Decimal(100)))),
        else_=func.round(change, 1),
    )


_EVENTS = EVENTS.alias("ev")


def aggregates_of(
    conn: Connection,
    *,
    table: Table,
    record_id: int,
    aggregates: Sequence[Aggregate],
    now: datetime,
) -> dict[Aggregate, object]:
    """Every aggregate a record's rules use, in one query (for the single-record path)."""
    return aggregates_for(
        conn, table=table, record_ids=[record_id], aggregates=aggregates, now=now
    ).get(record_id, {})


def aggregates_for(
    conn: Connection,
    *,
    table: Table,
    record_ids: Sequence[int],
    aggregates: Sequence[Aggregate],
    now: datetime,
) -> dict[int, dict[Aggregate, object]]:
    """Every aggregate of several records, in one grouped query over their events:
    record id -> aggregate -> value (zero counts for a record without events)."""
    wanted = tuple(dict.fromkeys(aggregates))
    if not wanted or not record_ids:
        return {}
    dialect = conn.dialect.name
    if any(a.where is not None and dependencies(a.where).time_dependent for a in wanted):
        # A `where` that reads `now` itself: built for this instant (rare, not cached).
        plan = _grouped_counts(table, wanted, dialect, now)
    else:
        plan = _grouped_counts_cached(table, wanted, dialect)
    params: dict[str, Any] = {f"t{o}": now - timedelta(seconds=o) for o in plan.offsets}
    ids = sorted(set(record_ids))
    found: dict[tuple[int, str], Any] = {}
    for counted in conn.execute(plan.statement, {"ids": ids, "names": plan.names, **params}):
        found[(counted[0], counted[1])] = counted
    result: dict[int, dict[Aggregate, object]] = {}
    for record_id in ids:
        values: dict[Aggregate, object] = {}
        for aggregate, (current, previous) in zip(wanted, plan.columns, strict=True):
            row = found.get((record_id, aggregate.event))
            now_count = int(row[current]) if row is not None else 0
            if previous is None:
                values[aggregate] = now_count
            else:
                before = int(row[previous]) if row is not None else 0
                values[aggregate] = trend_value(now_count, before)
        result[record_id] = values
    return result


def trend_value(current: int, previous: int) -> Decimal:
    """trend() from its two counts, exactly as `_trend` computes it in SQL (round half away
    from zero, to one decimal)."""
    if previous == 0:
        return Decimal(0) if current == 0 else Decimal(100)
    change = Decimal(100) * (current - previous) / Decimal(previous)
    return change.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)


@dataclass(frozen=True)
class _CountPlan:
    statement: Any
    names: list[str]
    offsets: frozenset[int]
    columns: list[tuple[int, int | None]]  # per aggregate: its current (and previous) column


@lru_cache(maxsize=512)
def _grouped_counts_cached(table: Table, wanted: tuple[Aggregate, ...], dialect: str) -> _CountPlan:
    """`_grouped_counts` with `now` only in bound parameters, built once per aggregate set
    (building SQLAlchemy expressions is what a single-record evaluation would spend its
    time on otherwise)."""
    never = datetime(2000, 1, 1, tzinfo=UTC)  # not read: every instant comes from `t{offset}`
    return _grouped_counts(table, wanted, dialect, never)


def _grouped_counts(
    table: Table, wanted: tuple[Aggregate, ...], dialect: str, now: datetime
) -> _CountPlan:
    """One pass over the records' events of the names and the longest window the aggregates
    need, grouped by record and event name, one filtered count per window (and one per
    aggregate with a `where`). The statement stays short — a long one would be re-parsed by
    the driver on every call — and the set-wise refresh keeps its correlated counts, where
    the planner picks the records first."""
    events = _EVENTS
    owner = events.c.account_id if table.name == "accounts" else events.c.contact_id

    def at(offset: int) -> Any:
        return bindparam(f"t{offset}", type_=UTCDateTime())

    counts: list[Any] = []
    keys: dict[tuple[int, int, Aggregate | None], int] = {}
    offsets: set[int] = {0}

    def column(start: int, end: int, aggregate: Aggregate | None) -> int:
        key = (start, end, aggregate)
        if key not in keys:
            offsets.update((start, end))
            condition = [events.c.timestamp > at(start), events.c.timestamp <= at(end)]
            if aggregate is not None and aggregate.where is not None:
                condition.append(to_sql(aggregate.where, table=events, now=now, dialect=dialect))
            keys[key] = len(counts) + 2  # after owner and name
            counts.append(func.count(events.c.id).filter(and_(*condition)))
        return keys[key]

    columns: list[tuple[int, int | None]] = []
    for aggregate in wanted:
        span = aggregate.window.seconds
        own = aggregate if aggregate.where is not None else None
        current = column(span, 0, own)
        previous = column(2 * span, span, own) if aggregate.function == "trend" else None
        columns.append((current, previous))
    statement = (
        select(owner, events.c.name, *counts)
        .where(
            owner.in_(bindparam("ids", expanding=True)),
            events.c.name.in_(bindparam("names", expanding=True)),
            events.c.timestamp > at(max(offsets)),
            events.c.timestamp <= at(0),
        )
        .group_by(owner, events.c.name)
    )
    names = sorted({a.event for a in wanted})
    return _CountPlan(statement, names, frozenset(offsets), columns)
