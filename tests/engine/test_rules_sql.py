"""One rule language, two compilers: SQL over the table agrees with Python over each record.

A hypothesis property test generates rules and records (numeric strings, mixed case, `%` and
`_` in values, empty and missing values, window edges) and compares the two on PostgreSQL
and on SQLite.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest
from hypothesis import example, given
from hypothesis import strategies as st
from sqlalchemy import Engine, insert, select

from engine.rules import parse, to_python
from engine.rules.ast import (
    Aggregate,
    AggregateCompare,
    Ago,
    And,
    Compare,
    Contains,
    DateValue,
    Duration,
    Field,
    In,
    IsSet,
    Not,
    Or,
    Rule,
    Within,
)
from engine.rules.to_python import EventView, aggregate_value
from engine.rules.to_sql import BUILTIN_COLUMNS, NotCompiled, aggregates_of, to_sql
from engine.rules.values import MISSING
from storage.models import Account, Contact, Event
from storage.queries.ingest import ACCOUNTS, CONTACTS
from tests.fuzzing import property_settings

pytestmark = pytest.mark.both_dbs

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class Row:
    """A record as both compilers see it: built-in columns, free traits, its events."""

    columns: dict[str, Any]
    traits: dict[str, Any]
    events: list[EventView] = field(default_factory=list)

    def value(self, path: tuple[str, ...]) -> object:
        if len(path) == 1 and path[0] in BUILTIN_COLUMNS and path[0] in self.columns:
            value = self.columns[path[0]]
            return MISSING if value is None else value
        keys = path[1:] if path[0] == "traits" and len(path) > 1 else path
        current: object = self.traits
        for key in keys:
            if not isinstance(current, dict) or key not in current:
                return MISSING
            current = current[key]
        return current

    def aggregate(self, aggregate: Aggregate) -> object:
        return aggregate_value(aggregate, self.events, NOW)


def matching(db: Engine, rows: list[Row], rule: Rule) -> tuple[set[int], set[int]]:
    """Ids the SQL compiler selects, and ids the Python compiler accepts, for the same rows."""
    predicate = to_python(rule)
    with db.connect() as conn:
        transaction = conn.begin()
        try:
            ids = []
            for n, row in enumerate(rows):
                values = {
                    "external_id": f"r{n}",
                    "traits": row.traits,
                    "trait_times": {},
                    "first_seen_at": NOW - timedelta(days=400),
                    "updated_at": NOW,
                    **row.columns,
                }
                values.setdefault("created_at", NOW - timedelta(days=400))
                inserted = conn.execute(insert(Account).values(values).returning(Account.id))
                ids.append(inserted.scalar_one())
                _store_events(conn, ids[-1], n, row.events)
            selected = set(
                conn.scalars(
                    select(ACCOUNTS.c.id).where(
                        to_sql(rule, table=ACCOUNTS, now=NOW, dialect=db.dialect.name)
                    )
                )
            )
        finally:
            transaction.rollback()
    accepted = {i for i, row in zip(ids, rows, strict=True) if predicate(row, NOW)}
    return selected, accepted


def _store_events(conn: Any, account_id: int, n: int, events: list[EventView]) -> None:
    if not events:
        return
    contact = {
        "external_id": f"c{n}",
        "account_id": account_id,
        "traits": {},
        "trait_times": {},
        "created_at": NOW,
        "first_seen_at": NOW,
        "updated_at": NOW,
    }
    contact_id = conn.execute(insert(Contact).values(contact).returning(Contact.id)).scalar_one()
    conn.execute(
        insert(Event),
        [
            {
                "message_id": f"m{n}-{i}",
                "name": e.name,
                "contact_id": contact_id,
                "account_id": account_id,
                "timestamp": e.timestamp,
                "properties": e.properties,
                "received_at": NOW,
            }
            for i, e in enumerate(events)
        ],
    )


# -- strategies ---------------------------------------------------------------------------

TRAIT_KEYS = ["plan", "mrr", "tags", "flag", "when", "nested", "Plan"]
text_values = st.sampled_from(
    [
        "trial",
        "Trial",
        "pro",
        "",
        " ",
        "10",
        " 5.50 ",
        "-3",
        "007",
        "1e5",
        "a%b",
        "_x",
        "%",
        "é",
        "Z",
    ]
)
stamps = st.sampled_from(
    [
        "2026-11-20",
        "2026-11-25T11:59:00Z",
        "2026-11-25T12:00:00+00:00",
        "2026-11-25 12:00:01",
        "2026-12-20T10:00:00+02:00",
        "2025-10-01T00:00:00.123456Z",
        "2026-02-30",
        "2026-11-25T24:00:00",
        "yesterday",
    ]
)
numbers = st.one_of(st.integers(-1000, 1000), st.sampled_from([0.5, -2.25, 10.0, 1e-7, 123456.789]))
trait_values = st.one_of(
    text_values,
    stamps,
    numbers,
    st.booleans(),
    st.none(),
    st.lists(text_values, max_size=3),
    st.fixed_dictionaries({"k": st.one_of(text_values, numbers)}),
)
traits = st.dictionaries(st.sampled_from(TRAIT_KEYS), trait_values, min_size=3, max_size=7)
moments = st.sampled_from(
    [
        timedelta(0),
        timedelta(days=-7),
        timedelta(days=-7, seconds=1),
        timedelta(days=-31),
        timedelta(days=3),
        timedelta(days=7),
    ]
).map(lambda d: NOW + d)
columns = st.fixed_dictionaries(
    {
        "name": st.one_of(st.none(), text_values),
        "stage": st.one_of(st.none(), st.sampled_from(["Trial", "Renewal", ""])),
        "health_score": st.one_of(st.none(), st.sampled_from([0.0, 39.5, 40.0, 70.0, 100.0])),
        "created_at": moments,
        "last_seen_at": st.one_of(st.none(), moments),
    }
)
event_moments = st.sampled_from(
    [
        timedelta(0),
        timedelta(seconds=-1),
        timedelta(days=-3),
        timedelta(days=-7),
        timedelta(days=-7, seconds=1),
        timedelta(days=-7, seconds=-1),
        timedelta(days=-14),
        timedelta(days=-14, seconds=1),
        timedelta(minutes=-90),
        timedelta(days=1),
    ]
).map(lambda d: NOW + d)
events = st.builds(
    EventView,
    st.sampled_from(["login", "export"]),
    event_moments,
    st.dictionaries(st.sampled_from(["format", "n"]), st.one_of(text_values, numbers), max_size=2),
)
rows = st.lists(
    st.builds(Row, columns, traits, st.lists(events, max_size=8)), min_size=3, max_size=8
)

fields = st.sampled_from(
    [
        ("plan",),
        ("mrr",),
        ("tags",),
        ("flag",),
        ("when",),
        ("Plan",),
        ("nested", "k"),
        ("traits", "plan"),
        ("missing",),
        ("name",),
        ("stage",),
        ("health_score",),
        ("created_at",),
        ("last_seen_at",),
    ]
).map(Field)
literals = st.one_of(
    text_values,
    st.sampled_from(["10", "5.5", "-3"]),
    st.integers(-10, 1000).map(lambda n: __import__("decimal").Decimal(n)),
    st.sampled_from(["0.5", "10.00", "39.5"]).map(lambda n: __import__("decimal").Decimal(n)),
    st.booleans(),
    st.sampled_from(["2026-11-20", "2026-11-25T12:00:00Z", "2026-01-01"]).map(DateValue),
)
durations = st.sampled_from(
    [Duration(7, "d"), Duration(30, "d"), Duration(1, "w"), Duration(90, "m")]
)
ops = st.sampled_from(["=", "!=", "<", "<=", ">", ">="])
event_fields = st.sampled_from(
    [("timestamp",), ("properties", "format"), ("properties", "n"), ("properties", "x")]
).map(Field)
event_rules = st.one_of(
    st.builds(Compare, event_fields, ops, literals),
    st.builds(IsSet, event_fields, st.booleans()),
    st.builds(Within, event_fields, durations, st.booleans()),
)
aggregates = st.builds(
    AggregateCompare,
    st.builds(
        Aggregate,
        st.sampled_from(["count", "trend"]),
        st.sampled_from(["login", "export"]),
        st.none() | event_rules,
        st.sampled_from([Duration(7, "d"), Duration(1, "w"), Duration(90, "m"), Duration(3, "d")]),
    ),
    ops,
    st.sampled_from(["0", "1", "2", "-50", "100", "33.3", "-66.7", "50.0"]).map(Decimal),
)
leaves = st.one_of(
    aggregates,
    st.builds(Compare, fields, ops, literals),
    st.builds(In, fields, st.lists(literals, min_size=1, max_size=3).map(tuple)),
    st.builds(Contains, fields, text_values),
    st.builds(IsSet, fields, st.booleans()),
    st.builds(Within, fields, durations, st.booleans()),
    st.builds(Ago, fields, st.sampled_from(["before", "after"]), durations),
)
rules = st.recursive(
    leaves,
    lambda children: st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=3).map(lambda i: And(tuple(i))),
        st.lists(children, min_size=2, max_size=3).map(lambda i: Or(tuple(i))),
    ),
    max_leaves=4,
)

EDGES = [  # each once caught a wrong compiler (mutation checked), kept as explicit examples
    ('plan = ""', {"plan": ""}, {}),
    ('name = ""', {}, {"name": ""}),
    ("name is set", {}, {"name": ""}),
    ('plan < "trial"', {"plan": "10"}, {}),
    ('plan >= "Trial"', {"plan": " 5.50 "}, {}),
    ("tags is set", {"tags": []}, {}),
    ('tags contains "pro"', {"tags": ["pro"]}, {}),
    ('plan contains ""', {"plan": ""}, {}),
    ("mrr >= 1000", {"mrr": " 1000 "}, {}),
    ('plan != "trial"', {}, {}),
    ("when within 7d", {"when": "2026-11-18T12:00:00Z"}, {}),
    ("when within 7d", {"when": "2026-11-18T12:00:01Z"}, {}),
    ("when within next 7d", {"when": "2026-11-25 12:00"}, {}),
    ('when > date("2026-01-01")', {"when": "2026-02-30"}, {}),
    ("mrr = 10", {"mrr": 10.0}, {}),
    ("flag = true", {"flag": True}, {}),
    ("flag != false", {"flag": "false"}, {}),
    ('nested.k = "pro"', {"nested": {"k": "pro"}}, {}),
    ('traits.plan = "pro"', {"plan": "pro"}, {}),
    ("health_score < 40", {}, {"health_score": 39.5}),
]
EVENT_EDGES = [  # window edges and trend rounding, same both ways
    ("count(login, 7d) = 0", [timedelta(days=-7)]),  # (now - 7d, now]: not counted
    ("count(login, 7d) = 1", [timedelta(days=-7, seconds=1)]),
    ("count(login, 7d) = 1", [timedelta(0)]),
    ("count(login, 7d) = 0", [timedelta(days=1)]),  # a future event is not counted
    ("trend(login, 7d) = 100", [timedelta(days=-1)]),
    ("trend(login, 7d) = -50", [timedelta(days=-1), timedelta(days=-8), timedelta(days=-9)]),
    ("trend(login, 7d) = 0", []),
    ("trend(login, 90m) = -66.7", [timedelta(minutes=-1)] + [timedelta(minutes=-100)] * 3),
    ('count(login where properties.format = "csv", 7d) = 1', [timedelta(days=-1)]),
]


@pytest.mark.parametrize(("text", "trait_values", "column_values"), EDGES)
def test_sql_and_python_agree_on_the_edges(
    db: Engine, text: str, trait_values: dict[str, Any], column_values: dict[str, Any]
) -> None:
    row = Row({"created_at": NOW, **column_values}, trait_values)
    selected, accepted = matching(db, [row], parse(text))
    assert selected == accepted


@pytest.mark.parametrize(("text", "offsets"), EVENT_EDGES)
def test_aggregates_agree_on_the_edges(db: Engine, text: str, offsets: list[timedelta]) -> None:
    happened = [EventView("login", NOW + d, {"format": "csv"}) for d in offsets]
    row = Row({"created_at": NOW}, {}, happened)
    selected, accepted = matching(db, [row], parse(text))
    assert selected == accepted
    assert accepted, "each edge case is written to hold"


@property_settings(400)
@given(rule=rules, records=rows)
@example(rule=parse("mrr >= 1000"), records=[Row({"created_at": NOW}, {"mrr": " 1000 "})])
@example(rule=parse('plan != "trial"'), records=[Row({"created_at": NOW}, {})])
@example(
    rule=parse("when within 7d"),
    records=[Row({"created_at": NOW}, {"when": "2026-11-18T12:00:00Z"})],
)
def test_sql_and_python_agree(db: Engine, rule: Rule, records: list[Row]) -> None:
    selected, accepted = matching(db, records, rule)
    assert selected == accepted, str(rule)


def test_account_fields_belong_in_contact_rules(db: Engine) -> None:
    with pytest.raises(NotCompiled):
        to_sql(parse('account.plan = "pro"'), table=ACCOUNTS, now=NOW, dialect=db.dialect.name)


@dataclass
class ContactRow:
    """A contact and, maybe, its account: `account.X` reads the account."""

    own: Row
    account: Row | None

    def value(self, path: tuple[str, ...]) -> object:
        if path[0] == "account" and len(path) > 1:
            return self.account.value(path[1:]) if self.account is not None else MISSING
        return self.own.value(path)

    def aggregate(self, aggregate: Aggregate) -> object:
        return aggregate_value(aggregate, self.own.events, NOW)


def matching_contacts(db: Engine, rows: list[ContactRow], rule: Rule) -> tuple[set[int], set[int]]:
    predicate = to_python(rule)
    with db.connect() as conn:
        transaction = conn.begin()
        try:
            ids = []
            for n, row in enumerate(rows):
                account_id = None
                if row.account is not None:
                    account = {**_record_values(f"a{n}", row.account)}
                    inserted = conn.execute(insert(Account).values(account).returning(Account.id))
                    account_id = inserted.scalar_one()
                contact = {**_record_values(f"c{n}", row.own), "account_id": account_id}
                inserted = conn.execute(insert(Contact).values(contact).returning(Contact.id))
                ids.append(inserted.scalar_one())
            query = select(CONTACTS.c.id).where(
                to_sql(rule, table=CONTACTS, now=NOW, dialect=db.dialect.name)
            )
            selected = set(conn.scalars(query))
        finally:
            transaction.rollback()
    accepted = {i for i, row in zip(ids, rows, strict=True) if predicate(row, NOW)}
    return selected, accepted


def _record_values(external_id: str, row: Row) -> dict[str, Any]:
    values = {
        "external_id": external_id,
        "traits": row.traits,
        "trait_times": {},
        "first_seen_at": NOW - timedelta(days=400),
        "updated_at": NOW,
        **row.columns,
    }
    values.setdefault("created_at", NOW - timedelta(days=400))
    return values


account_fields = st.sampled_from(
    [
        ("account", "plan"),
        ("account", "mrr"),
        ("account", "name"),
        ("account", "created_at"),
        ("account", "traits", "plan"),
        ("account", "missing"),
        ("plan",),
        ("name",),
    ]
).map(Field)
contact_rules = st.recursive(
    st.one_of(
        st.builds(Compare, account_fields, ops, literals),
        st.builds(IsSet, account_fields, st.booleans()),
        st.builds(Contains, account_fields, text_values),
        st.builds(Ago, account_fields, st.sampled_from(["before", "after"]), durations),
    ),
    lambda children: st.one_of(
        st.builds(Not, children),
        st.lists(children, min_size=2, max_size=3).map(lambda i: And(tuple(i))),
    ),
    max_leaves=3,
)
contact_rows = st.lists(
    st.builds(
        ContactRow, st.builds(Row, columns, traits), st.none() | st.builds(Row, columns, traits)
    ),
    min_size=2,
    max_size=6,
)


@property_settings(150)
@given(rule=contact_rules, records=contact_rows)
@example(
    rule=parse('account.plan != "pro"'),
    records=[ContactRow(Row({"created_at": NOW}, {}), None)],
)
@example(
    rule=parse("account.plan is not set"),
    records=[ContactRow(Row({"created_at": NOW}, {}), None)],
)
def test_contact_rules_read_the_account_the_same_both_ways(
    db: Engine, rule: Rule, records: list[ContactRow]
) -> None:
    selected, accepted = matching_contacts(db, records, rule)
    assert selected == accepted, str(rule)


@property_settings(60)
@given(
    row=st.builds(Row, columns, traits, st.lists(events, max_size=10)),
    wanted=st.lists(aggregates.map(lambda compare: compare.aggregate), min_size=1, max_size=4),
)
def test_a_records_aggregates_come_in_one_query_with_python_values(
    db: Engine, row: Row, wanted: list[Aggregate]
) -> None:
    with db.connect() as conn:
        transaction = conn.begin()
        try:
            values = _record_values("r", row)
            account_id = conn.execute(insert(Account).values(values).returning(Account.id))
            record_id = account_id.scalar_one()
            _store_events(conn, record_id, 0, row.events)
            got = aggregates_of(
                conn, table=ACCOUNTS, record_id=record_id, aggregates=wanted, now=NOW
            )
        finally:
            transaction.rollback()
    for aggregate in wanted:
        assert Decimal(str(got[aggregate])) == Decimal(str(row.aggregate(aggregate))), aggregate
