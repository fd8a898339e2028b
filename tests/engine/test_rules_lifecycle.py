"""`stage` compares in the order of the stage list, `health` is the bucket of the score
(engine/rules/lifecycle.py), the same in Python and in SQL."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest

from engine.rules import parse, to_python
from engine.rules.lifecycle import Lifecycle, LifecycleError, resolve
from engine.rules.records import RecordValues

STAGES = ("Onboarding", "Adoption", "Expansion", "Renewal", "Churned")
LIFE = Lifecycle(STAGES, good=70, bad=40)
NOW = datetime(2026, 11, 25, tzinfo=UTC)


def holds(rule: str, life: Lifecycle = LIFE, **columns: Any) -> bool:
    record = RecordValues(columns, {}, {}, account=RecordValues(columns, {}))
    return to_python(resolve(parse(rule), life))(record, NOW)


@pytest.mark.parametrize(
    ("rule", "stage", "expected"),
    [
        ('stage < "Renewal"', "Adoption", True),
        ('stage < "Renewal"', "Onboarding", True),
        ('stage < "Renewal"', "Renewal", False),
        ('stage < "Renewal"', "Churned", False),
        ('stage < "Renewal"', None, False),
        ('stage < "Renewal"', "Trial", False),  # not a stage: not in the order
        ('stage <= "renewal"', "Renewal", True),  # a literal matches whatever its case
        ('stage >= "Expansion"', "Churned", True),
        ('stage > "Churned"', "Churned", False),
        ('stage = "adoption"', "Adoption", True),
        ('stage != "adoption"', "Adoption", False),
        ('stage != "adoption"', None, True),
        ('stage in ["renewal", "churned"]', "Churned", True),
        ('account.stage < "Expansion"', "Adoption", True),
    ],
)
def test_stage_compares_in_the_order_of_the_list(
    rule: str, stage: str | None, expected: bool
) -> None:
    assert holds(rule, stage=stage) is expected


def test_without_a_stage_list_stage_is_a_plain_string() -> None:
    plain = Lifecycle()
    assert holds('stage < "Renewal"', plain, stage="Adoption") is True  # "A" < "R"
    assert holds('stage < "Renewal"', plain, stage="Trial") is False  # "T" > "R"
    assert holds('stage = "renewal"', plain, stage="Renewal") is False  # case-sensitive


@pytest.mark.parametrize(
    ("rule", "score", "expected"),
    [
        ('health = "bad"', 39.9, True),
        ('health = "bad"', 40, False),
        ('health = "neutral"', 40, True),
        ('health = "neutral"', 69.99, True),
        ('health = "good"', 70, True),
        ('health = "good"', None, False),
        ('health != "bad"', None, True),  # not set: every comparison false but !=
        ('health != "bad"', 10, False),
        ('health < "good"', 50, True),
        ('health < "good"', 70, False),
        ('health < "good"', None, False),
        ('health >= "neutral"', 45, True),
        ('health in ["bad", "good"]', 55, False),
        ('health in ["bad", "good"]', 95, True),
        ("health is set", 0, True),
        ("health is not set", None, True),
        ('account.health = "bad"', 12, True),
        ('health = "excellent"', 99, False),  # not a bucket: matches nothing
    ],
)
def test_health_is_the_bucket_of_the_score(rule: str, score: float | None, expected: bool) -> None:
    assert holds(rule, health_score=score) is expected


def test_buckets_follow_the_thresholds() -> None:
    strict = Lifecycle(STAGES, good=90, bad=60)
    assert holds('health = "neutral"', strict, health_score=75) is True
    assert holds('health = "good"', strict, health_score=75) is False


@pytest.mark.parametrize(
    ("rule", "message"),
    [
        ('stage < "Renewl"', "stage: 'Renewl' is not a stage; the stages are Onboarding, Adoption"),
        ('health = "Bad"', "health: 'Bad' is not a health bucket (good, neutral, bad)"),
        ('account.health in ["good", "great"]', "account.health: 'great' is not a health bucket"),
    ],
)
def test_saving_a_rule_with_an_unknown_stage_or_bucket_is_refused(rule: str, message: str) -> None:
    with pytest.raises(LifecycleError) as caught:
        resolve(parse(rule), LIFE, strict=True)
    assert message in str(caught.value)
