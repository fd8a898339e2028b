"""How values compare (workflow-format.md, "Values"): the one meaning both compilers follow.

A value is a number when it is a JSON number or a string that parses whole as a decimal;
strings compare by code point; missing, null, "" and [] are not set, and every comparison
on them is false except `!=`; a timestamp is a datetime or an ISO-8601 string.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

from engine.rules.ast import CompareOp, DateValue, Value

MISSING = object()  # a field the record does not have
# ASCII digits and white space only, so SQL (PostgreSQL's regex, SQLite) reads the same.
BLANKS = " \t\n\r"
DECIMAL = re.compile(r"[ \t\n\r]*-?[0-9]+(\.[0-9]+)?[ \t\n\r]*\Z")
# The ISO-8601 forms a timestamp string may take (the SQL side parses exactly these).
TIMESTAMP = re.compile(
    r"[0-9]{4}-[0-9]{2}-[0-9]{2}"
    r"([T ]([01][0-9]|2[0-3]):[0-5][0-9](:[0-5][0-9](\.[0-9]{1,6})?)?(Z|[+-][0-9]{2}:[0-9]{2})?)?\Z"
)


def is_set(value: object) -> bool:
    """False for missing, null, "" and []."""
    return value is not MISSING and value is not None and value != "" and value != []


def as_number(value: object) -> Decimal | None:
    """A JSON number, or a string that parses whole as a decimal; else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value)) if value == value and abs(value) != float("inf") else None
    if isinstance(value, str) and DECIMAL.match(value):
        try:
            return Decimal(value.strip(BLANKS))
        except InvalidOperation:
            return None
    return None


def as_timestamp(value: object) -> datetime | None:
    """A datetime or an ISO-8601 string as an aware UTC datetime; anything else is None."""
    if isinstance(value, DateValue):
        value = value.text
    if isinstance(value, datetime):
        parsed = value
    elif isinstance(value, str):
        if not TIMESTAMP.match(value) or value.startswith("0000"):
            return None
        try:
            parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return None
    else:
        return None
    try:
        return parsed.replace(tzinfo=UTC) if parsed.tzinfo is None else parsed.astimezone(UTC)
    except OverflowError:
        return None


def _ordered(left: object, op: CompareOp, right: object) -> bool:
    if op == "=":
        return left == right
    if op == "!=":
        return left != right
    if op == "<":
        return left < right  # type: ignore[operator]
    if op == "<=":
        return left <= right  # type: ignore[operator]
    if op == ">":
        return left > right  # type: ignore[operator]
    return left >= right  # type: ignore[operator]


def compare(field_value: object, op: CompareOp, literal: Value) -> bool:
    """`field op literal` under the Values rules."""
    if not is_set(field_value):
        return op == "!="
    left: object
    right: object
    if isinstance(literal, DateValue):
        left, right = as_timestamp(field_value), as_timestamp(literal)
    elif isinstance(literal, bool):
        if not isinstance(field_value, bool):
            return op == "!="
        return op in ("=", "!=") and _ordered(field_value, op, literal)
    else:
        literal_number = as_number(literal)
        if literal_number is not None:
            left, right = as_number(field_value), literal_number
        elif isinstance(field_value, str) and isinstance(literal, str):
            if as_number(field_value) is not None:
                return op == "!="  # a number against a non-number
            return _ordered(field_value, op, literal)
        else:
            return op == "!="
    if left is None or right is None:
        return op == "!="
    return _ordered(left, op, right)


def contains(field_value: object, needle: str) -> bool:
    """On a list: membership; on a string: substring (no wildcards); else false."""
    if not is_set(field_value):
        return False
    if isinstance(field_value, list):
        return needle in field_value
    if isinstance(field_value, str):
        return needle in field_value
    return False


def trend(current: int, previous: int) -> Decimal:
    """The change of a count in percent against the window before, rounded to 0.1."""
    if previous == 0:
        return Decimal(0) if current == 0 else Decimal(100)
    # Half away from zero, as SQL's round() does (Python's round() would go to even).
    change = Decimal(100) * (current - previous) / previous
    return change.quantize(Decimal("0.1"), rounding=ROUND_HALF_UP)
