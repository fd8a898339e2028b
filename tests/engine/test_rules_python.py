"""The Python compiler gives each rule the meaning workflow-format.md's Values paragraph states."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import pytest

from engine.rules import parse, to_python
from engine.rules.ast import Aggregate
from engine.rules.values import MISSING, trend

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)


@dataclass
class Record:
    values: dict[str, Any]
    aggregates: dict[str, Any] = field(default_factory=dict)

    def value(self, path: tuple[str, ...]) -> object:
        return self.values.get(".".join(path), MISSING)

    def aggregate(self, aggregate: Aggregate) -> object:
        return self.aggregates[str(aggregate)]


def holds(rule: str, values: dict[str, Any], **aggregates: Any) -> bool:
    return to_python(parse(rule))(Record(values, aggregates), NOW)


@pytest.mark.parametrize(
    ("rule", "values", "expected"),
    [
        ('status = "trial"', {"status": "trial"}, True),
        ('status = "trial"', {"status": "Trial"}, False),  # case-sensitive
        ('status != "trial"', {}, True),  # not set: only != holds
        ('status = "trial"', {}, False),
        ("mrr >= 1000", {"mrr": 1000}, True),
        ("mrr >= 1000", {"mrr": "1000"}, True),  # CSV imports give strings
        ("mrr >= 1000", {"mrr": " 1000.0 "}, True),
        ("mrr > 5", {"mrr": "12abc"}, False),  # not a number: < > = are false
        ("mrr != 5", {"mrr": "12abc"}, True),  # ... and != is true
        ('mrr = "10"', {"mrr": 10}, True),  # a numeric string literal is a number
        ('name < "b"', {"name": "a"}, True),  # strings by code point
        ('name < "b"', {"name": "B"}, True),
        ('name > "b"', {"name": "10"}, False),  # a number against a non-number
        ("mrr < 5", {"mrr": ""}, False),  # "" is not set
        ("mrr != 5", {"mrr": None}, True),
        ("flag = true", {"flag": True}, True),
        ("flag = true", {"flag": "true"}, False),
        ("flag != true", {"flag": False}, True),
        ('plan in ["pro", "enterprise"]', {"plan": "pro"}, True),
        ('plan in ["pro", "enterprise"]', {"plan": "free"}, False),
        ("seats in [1, 2]", {"seats": "2"}, True),
        ('tags contains "vip"', {"tags": ["vip", "beta"]}, True),
        ('tags contains "vi"', {"tags": ["vip"]}, False),  # a list: membership
        ('name contains "cme"', {"name": "Acme"}, True),  # a string: substring
        ('name contains "%"', {"name": "Acme"}, False),  # no wildcards
        ('name contains "_"', {"name": "a_b"}, True),
        ("owner is set", {"owner": "U1"}, True),
        ("owner is set", {"owner": []}, False),
        ("owner is not set", {}, True),
        ('created_at > date("2026-01-01")', {"created_at": "2026-03-01T00:00:00Z"}, True),
        ('created_at > date("2026-01-01")', {"created_at": NOW}, True),
        ('created_at > date("2026-01-01")', {"created_at": "soon"}, False),  # not a timestamp
        ('created_at != date("2026-01-01")', {"created_at": "soon"}, True),
        ("last_seen_at before 30d ago", {"last_seen_at": NOW - timedelta(days=31)}, True),
        ("last_seen_at before 30d ago", {"last_seen_at": NOW - timedelta(days=29)}, False),
        ("last_seen_at after 30d ago", {"last_seen_at": NOW - timedelta(days=29)}, True),
        ("last_seen_at before 30d ago", {}, False),
        ("renewal_date within next 30d", {"renewal_date": "2026-12-10"}, True),
        ("renewal_date within next 30d", {"renewal_date": "2027-02-10"}, False),
        ("signup within 7d", {"signup": NOW - timedelta(days=7)}, False),  # (now - 7d, now]
        ("signup within 7d", {"signup": NOW - timedelta(days=6, hours=23)}, True),
        ("signup within 7d", {"signup": NOW}, True),
        ("renewal_date within next 7d", {"renewal_date": NOW}, True),  # [now, now + 7d)
        ("renewal_date within next 7d", {"renewal_date": NOW + timedelta(days=7)}, False),
        ('not status = "trial"', {"status": "paying"}, True),
        ('status = "trial" or mrr > 10', {"mrr": 11}, True),
        ('status = "trial" and mrr > 10', {"status": "trial", "mrr": 3}, False),
        ('account.plan = "pro"', {"account.plan": "pro"}, True),
    ],
)
def test_values_compare_as_the_format_page_says(
    rule: str, values: dict[str, Any], expected: bool
) -> None:
    assert holds(rule, values) is expected


def test_aggregates_compare_as_numbers() -> None:
    assert holds("count(login, 7d) < 2", {}, **{"count(login, 7d)": 1})
    assert not holds("count(login, 7d) < 2", {}, **{"count(login, 7d)": 2})
    assert holds("trend(login, 7d) <= -50", {}, **{"trend(login, 7d)": Decimal("-50.0")})


@pytest.mark.parametrize(
    ("current", "previous", "expected"),
    [(0, 0, "0"), (3, 0, "100"), (1, 2, "-50.0"), (3, 2, "50.0"), (1, 3, "-66.7"), (2, 3, "-33.3")],
)
def test_trend_is_the_percent_change_against_the_window_before(
    current: int, previous: int, expected: str
) -> None:
    assert trend(current, previous) == Decimal(expected)
