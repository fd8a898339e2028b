"""RELIABILITY 26-28 against the running API: bad input never gets a 5xx, every error names
its field, what is accepted is stored, a repeated messageId stores once, a rejected batch
writes nothing.

Hypothesis sends Segment calls with the right keys and wrong values (ids as bools, lists,
huge numbers; timestamps out of range; NUL characters, lone surrogates, deep nesting,
numbers no double holds) and raw bytes. The database is not emptied between examples, so
every check looks only at what the example itself sent, under messageIds made for it.
"""

from __future__ import annotations

import contextlib
import json
import os
import string
import uuid
from datetime import UTC, date, datetime, timedelta
from typing import Any

import httpx
import pydantic_core
import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from engine.ingest import schema
from storage.models import Account, AnonymousCall, Contact, Event, IngestMessage

FUZZ = settings(
    # FUZZ_EXAMPLES=5000 for a long hunt; the default keeps this file under a minute.
    max_examples=int(os.environ.get("FUZZ_EXAMPLES", "150")),
    deadline=None,
    suppress_health_check=[
        HealthCheck.function_scoped_fixture,
        HealthCheck.too_slow,
        HealthCheck.data_too_large,
    ],
)

# --- JSON text, with what json.dumps cannot say ---------------------------------------------


class Raw(str):
    """JSON text sent as is: numbers no double holds, NaN and friends."""


class _Unique:
    def __repr__(self) -> str:
        return "UNIQUE"


UNIQUE = _Unique()
"""Stands for a messageId made fresh for the example (so checks never depend on old rows)."""


def to_json(value: Any, ascii_only: bool, made: list[str]) -> str:
    if value is UNIQUE:
        made.append(f"fz-{uuid.uuid4()}")
        return json.dumps(made[-1])
    if isinstance(value, Raw):
        return str(value)
    if isinstance(value, dict):
        items = (
            f"{json.dumps(key, ensure_ascii=ascii_only)}:{to_json(item, ascii_only, made)}"
            for key, item in value.items()
        )
        return "{" + ",".join(items) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(item, ascii_only, made) for item in value) + "]"
    return json.dumps(value, ensure_ascii=ascii_only)


def encode(value: Any, ascii_only: bool) -> tuple[bytes, list[str]]:
    """The body bytes (lone surrogates as invalid UTF-8 when not escaped) and messageIds made."""
    made: list[str] = []
    return to_json(value, ascii_only, made).encode("utf-8", "surrogatepass"), made


# --- strategies -----------------------------------------------------------------------------

any_char = st.characters(codec=None, categories=["L", "M", "N", "P", "S", "Z", "C"])
tricky = st.sampled_from(
    [
        "",
        " ",
        "\t\n",
        "\x00",
        "a\x00b",
        "\ud800",
        "x\udfff",
        "😀",
        "İ" * 3,
        "\u202e",
        "null",
        "0",
        "-1",
        "1e400",
        "U123ABC",
        "U123\n",
        "u@x.io",
        "u@x.io\n",
        "x" * 201,
        "é" * 201,
        "😀" * 200,
        " " * 300,
    ]
)
strings = st.one_of(
    st.text(any_char, max_size=12),
    st.text(string.ascii_letters + string.digits, min_size=1, max_size=12),
    tricky,
    st.text(any_char, min_size=195, max_size=205),
    st.builds(
        lambda c, n: c * n, st.sampled_from(["x", "é", "😀", " ", "\x00"]), st.integers(90, 400)
    ),
)
numbers = st.one_of(
    st.integers(),
    st.integers(-(2**80), 2**80),
    st.floats(),
    st.sampled_from(
        [
            Raw("1e400"),
            Raw("-1e400"),
            Raw("1e-400"),
            Raw("-0"),
            Raw("1e308"),
            Raw("9" * 400),
            Raw("-" + "9" * 400),
            Raw("1" + "0" * 5000),
            Raw("NaN"),
            Raw("Infinity"),
            Raw("-Infinity"),
            Raw("0.1e1"),
            Raw("01"),
        ]
    ),
)
scalars = st.one_of(st.none(), st.booleans(), numbers, strings)
keys = st.one_of(st.text(any_char, max_size=8), st.sampled_from(["", "\x00", "a.b", "$account"]))
trees = st.recursive(
    scalars,
    lambda kids: st.one_of(st.lists(kids, max_size=4), st.dictionaries(keys, kids, max_size=4)),
    max_leaves=12,
)


def nest(depth: int, leaf: Any, as_list: bool) -> Any:
    for _ in range(depth):
        leaf = [leaf] if as_list else {"a": leaf}
    return leaf


deep = st.builds(nest, st.integers(1, 260), scalars, st.booleans())
values = st.one_of(trees, deep)

good_ids = st.one_of(
    st.text(string.ascii_lowercase + string.digits, min_size=1, max_size=8).map(
        lambda s: f"fz-{s}"
    ),
    st.integers(0, 10**6),
)
ids = st.one_of(good_ids, strings, numbers, st.booleans(), st.none(), st.lists(scalars, max_size=2))
message_ids = st.one_of(st.just(UNIQUE), st.just(UNIQUE), strings, numbers, st.none(), values)


def offset(minutes: int) -> str:
    sign = "+" if minutes >= 0 else "-"
    return f"{sign}{abs(minutes) // 60:02d}:{abs(minutes) % 60:02d}"


timestamps = st.one_of(
    st.builds(
        lambda at, zone: at.isoformat() + zone,
        st.datetimes(min_value=datetime(1, 1, 1), max_value=datetime(9999, 12, 31, 23, 59)),
        st.one_of(st.just("Z"), st.just(""), st.integers(-1439, 1439).map(offset)),
    ),
    st.sampled_from(
        [
            "0001-01-01T00:00:00+14:00",
            "9999-12-31T23:59:59-14:00",
            "0001-01-01T00:00:00Z",
            "9999-12-31T23:59:59.999999Z",
            "0000-01-01T00:00:00Z",
            "2026-02-30T00:00:00Z",
            "2026-11-01T25:00:00Z",
            "2026-11-01T10:00:00+24:00",
            "2026-11-01",
            "2026-11-01T10:00:00\x00Z",
            "yesterday",
            "",
        ]
    ),
    numbers,
    values,
)
traits = st.one_of(
    st.builds(
        lambda builtin, free: {**free, **builtin},
        st.fixed_dictionaries(
            {},
            optional={
                "health_score": st.one_of(numbers, strings, st.floats(0, 100)),
                "owner": st.one_of(
                    strings,
                    st.sampled_from(
                        ["U123ABC", "W0Z", "bob@x.io", "U" + "A" * 40, "b" * 330 + "@x.io"]
                    ),
                ),
                "created_at": timestamps,
                "createdAt": timestamps,
                "stage": st.one_of(strings, st.just("s" * 101), st.just("s" * 100)),
                "name": values,
                "firstName": values,
                "last_name": values,
                "email": st.one_of(
                    strings, st.just("e" * 320 + "@x.io"), st.just("İ" * 159 + "@x")
                ),
                "company": st.one_of(values, st.fixed_dictionaries({"id": ids, "name": values})),
            },
        ),
        st.dictionaries(keys, values, max_size=4),
    ),
    values,
)
contexts = st.one_of(
    values, st.fixed_dictionaries({}, optional={"groupId": ids, "ip": strings, "library": values})
)
COMMON = {
    "userId": ids,
    "anonymousId": ids,
    "messageId": message_ids,
    "timestamp": timestamps,
    "context": contexts,
}
CALLS: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "identify": {"traits": traits, "groupId": ids},
    "group": {"groupId": ids, "traits": traits},
    "track": {"event": st.one_of(strings, values), "properties": st.one_of(traits, values)},
    "page": {"name": st.one_of(strings, values), "properties": st.one_of(traits, values)},
    "screen": {"name": strings, "properties": traits},
    "alias": {"previousId": ids},
}
REQUIRED: dict[str, dict[str, st.SearchStrategy[Any]]] = {
    "group": {"groupId": good_ids},
    "track": {"event": good_ids},
}


def fuzzed(call: str) -> st.SearchStrategy[dict[str, Any]]:
    """A call with any of its keys holding anything."""
    return st.fixed_dictionaries({}, optional={**COMMON, **CALLS[call]})


def nearly_valid(call: str) -> st.SearchStrategy[dict[str, Any]]:
    """A call that names its user and has what it needs, plus fuzzed optional keys."""
    optional = {**COMMON, **CALLS[call]}
    required = {"userId": good_ids, "messageId": st.just(UNIQUE), **REQUIRED.get(call, {})}
    for key in required:
        optional.pop(key)
    optional.pop("anonymousId")
    return st.fixed_dictionaries(required, optional=optional)


def single(call: str) -> st.SearchStrategy[Any]:
    return st.one_of(nearly_valid(call), nearly_valid(call), fuzzed(call), values)


def batch_item() -> st.SearchStrategy[Any]:
    typed = st.sampled_from(schema.CALL_TYPES).flatmap(
        lambda call: st.builds(
            lambda body, kind: {"type": kind, **body},
            st.one_of(nearly_valid(call), fuzzed(call)),
            st.one_of(st.just(call), st.just(call), strings, numbers, st.none()),
        )
    )
    return st.one_of(typed, typed, typed, values)


simple = st.dictionaries(
    st.text(string.ascii_lowercase, min_size=1, max_size=6).map("p_{}".format),
    st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text()),
    max_size=4,
)
plain_item = st.sampled_from(schema.CALL_TYPES).flatmap(
    lambda call: st.fixed_dictionaries(
        {"type": st.just(call), "userId": good_ids, "messageId": st.just(UNIQUE)},
        optional={
            "groupId": good_ids,
            "event": good_ids,
            "traits": simple,
            "properties": simple,
            "timestamp": st.datetimes(timezones=st.just(UTC)).map(datetime.isoformat),
            "context": st.fixed_dictionaries({"groupId": good_ids}),
        },
    )
)
"""A call of any type that is mostly valid, so that whole batches get accepted too."""
batches = st.one_of(
    st.fixed_dictionaries(
        {"batch": st.lists(plain_item, min_size=1, max_size=6)},
        optional={"context": st.fixed_dictionaries({"groupId": good_ids})},
    ),
    st.fixed_dictionaries(
        {"batch": st.lists(st.one_of(plain_item, batch_item()), min_size=1, max_size=6)},
        optional={"context": contexts, "sentAt": timestamps},
    ),
    st.fixed_dictionaries({"batch": st.one_of(st.just([]), values)}),
    values,
)
PAYLOADS = {call: single(call) for call in schema.CALL_TYPES} | {"batch": batches}
ENDPOINTS = ["identify", "group", "track", "batch", "page", "screen", "alias"]

# --- the checks -----------------------------------------------------------------------------


def check_answer(r: httpx.Response) -> None:
    """No 5xx; 200 is success; every refusal names each bad field and what is wrong."""
    assert r.status_code < 500, r.text
    assert r.status_code in (200, 400, 413), (r.status_code, r.text)
    body = r.json()
    if r.status_code == 200:
        assert body == {"success": True}
        return
    assert body["success"] is False
    assert body["errors"], body
    for error in body["errors"]:
        assert isinstance(error["field"], str) and error["field"], body
        assert isinstance(error["message"], str) and error["message"], body
        # What the database would refuse must be caught, and named, by validation.
        assert "database refused" not in error["message"], body


def parse_locally(call: str, body: bytes) -> list[schema.Change] | None:
    """What validation makes of the body (None when it refuses it)."""
    now = datetime.now(UTC)
    try:
        if call == "batch":
            return schema.parse_batch(body, now=now)
        if call in schema.SINGLE:
            return [schema.parse_single(call, body, now=now)]
        data = pydantic_core.from_json(body)
        return (
            [schema.parse_call({**data, "type": call}, now=now)] if isinstance(data, dict) else None
        )
    except (schema.InvalidPayload, ValueError):
        return None


def days_around(at: datetime) -> list[date]:
    days = []
    for shift in (-1, 0, 1):
        with contextlib.suppress(OverflowError):  # before year 1 or after 9999
            days.append((at + timedelta(days=shift)).date())
    return days


def check_stored(db: Engine, changes: list[schema.Change], made: list[str]) -> None:
    """Each accepted call is in storage: its event, its records, or its anonymous count."""
    ours = set(made)
    with Session(db) as s:
        for c in changes:
            fresh = c.message_id in ours
            if not fresh and not c.message_id.startswith("generated-"):
                continue  # a fuzzed messageId may repeat an earlier example's: a repeat
            if c.anonymous:
                days = days_around(c.at)  # the server's clock gave `at` when none was sent
                found = s.scalars(
                    select(AnonymousCall).where(
                        AnonymousCall.call == c.call, AnonymousCall.day.in_(days)
                    )
                ).all()
                assert found and all(row.count >= 1 for row in found), c
                continue
            contact = account = None
            if c.contact is not None:
                contact = s.scalars(select(Contact).filter_by(external_id=c.contact)).one()
            if c.account is not None:
                account = s.scalars(select(Account).filter_by(external_id=c.account)).one()
            if c.event is not None:
                assert contact is not None
                where = {"message_id": c.message_id} if fresh else {"contact_id": contact.id}
                events = s.scalars(select(Event).filter_by(name=c.event, **where)).all()
                assert events, c
                if fresh:
                    [row] = events
                    assert row.contact_id == contact.id
                    assert abs(row.timestamp - c.at) < timedelta(minutes=1), (row, c)
                    if account is not None:
                        assert row.account_id == account.id
            elif fresh:
                assert s.get(IngestMessage, c.message_id) is not None, c
            if c.link and contact is not None:
                assert contact.account_id is not None, c


def check_nothing_stored(db: Engine, made: list[str]) -> None:
    """A refused call or batch stored none of its messages (all-or-nothing)."""
    if not made:
        return
    with Session(db) as s:
        events = s.scalar(select(func.count()).where(Event.message_id.in_(made)))
        claimed = s.scalar(select(func.count()).where(IngestMessage.message_id.in_(made)))
    assert events == claimed == 0, made


def send_and_check(api: httpx.Client, db: Engine, call: str, body: bytes, made: list[str]) -> None:
    r = api.post(f"/v1/{call}", content=body, headers={"Content-Type": "application/json"})
    event(f"HTTP {r.status_code}")  # see --hypothesis-show-statistics
    check_answer(r)
    if len(body) > (500 if call == "batch" else 32) * 1024:
        assert r.status_code == 413, r.text
    changes = parse_locally(call, body)
    if r.status_code == 200:
        assert changes is not None, "the API accepted what validation refuses"
        check_stored(db, changes, made)
    else:
        check_nothing_stored(db, made)
    if r.status_code == 400:
        assert changes is None, f"validation accepts what the API refused: {r.text}"


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.both_dbs
@pytest.mark.parametrize("call", ENDPOINTS)
@FUZZ
@given(data=st.data())
def test_structured_but_wrong_payloads_never_get_a_5xx(
    api: httpx.Client, db: Engine, call: str, data: st.DataObject
) -> None:
    payload = data.draw(PAYLOADS[call], label="payload")
    body, made = encode(payload, ascii_only=data.draw(st.booleans(), label="ascii"))
    send_and_check(api, db, call, body, made)


def mutate(body: bytes, op: int, at: int, junk: bytes) -> bytes:
    at = at % (len(body) + 1)
    if op == 0:
        return body[:at]
    if op == 1:
        return body[:at] + junk + body[at:]
    if op == 2:
        return body[:at] + junk + body[at + len(junk) :]
    return body[:at] + body[at + len(junk) :]


raw_bodies = st.one_of(
    st.binary(max_size=200),
    st.sampled_from(
        [
            b"",
            b"null",
            b"[]",
            b"{}",
            b'{"batch":null}',
            b"\xef\xbb\xbf{}",
            b'{"userId":"u\xff","event":"x"}',
            b'{"userId":"\xed\xa0\x80","event":"x"}',
            b"{" * 100_000,
            b'{"batch":' + b"[" * 40_000 + b"]" * 40_000 + b"}",
            b'{"batch":[' + b"[" * 20_000 + b"]" * 20_000 + b"]}",
            b'{"userId":"u","event":"x","properties":' + b'{"a":' * 5000 + b"1" + b"}" * 5001,
        ]
    ),
)


@pytest.mark.both_dbs
@pytest.mark.parametrize("call", ENDPOINTS)
@FUZZ
@given(data=st.data())
def test_raw_bytes_never_get_a_5xx(
    api: httpx.Client, db: Engine, call: str, data: st.DataObject
) -> None:
    if data.draw(st.booleans(), label="mutate a payload"):
        payload = data.draw(PAYLOADS[call], label="payload")
        body, made = encode(payload, ascii_only=data.draw(st.booleans(), label="ascii"))
        op, at = data.draw(st.integers(0, 3)), data.draw(st.integers(0, 10**6))
        body = mutate(body, op, at, data.draw(st.binary(min_size=1, max_size=8)))
    else:
        body, made = data.draw(raw_bodies, label="body"), []
    send_and_check(api, db, call, body, made)


# --- RELIABILITY 27 and 28 ------------------------------------------------------------------


def _count(db: Engine, model: Any, **where: Any) -> int:
    with Session(db) as s:
        return int(s.scalar(select(func.count()).select_from(model).filter_by(**where)) or 0)


def _one(db: Engine, model: Any, **where: Any) -> Any:
    with Session(db) as s:
        return s.scalars(select(model).filter_by(**where)).one()


@pytest.mark.both_dbs
def test_a_messageid_repeated_in_one_batch_stores_once(api: httpx.Client, db: Engine) -> None:
    r = api.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "track", "userId": "u1", "event": "login", "messageId": "b-1"},
                {"type": "track", "userId": "u1", "event": "login", "messageId": "b-1"},
                {"type": "identify", "userId": "u1", "traits": {"n": 1}, "messageId": "b-2"},
                {"type": "identify", "userId": "u1", "traits": {"n": 2}, "messageId": "b-2"},
                {"type": "group", "groupId": "acme", "traits": {"n": 1}, "messageId": "b-3"},
                {"type": "group", "groupId": "acme", "traits": {"n": 2}, "messageId": "b-3"},
            ]
        },
    )
    assert (r.status_code, r.json()) == (200, {"success": True})
    assert _count(db, Event) == 1
    assert _one(db, Contact, external_id="u1").traits == {"n": 1}
    assert _one(db, Account, external_id="acme").traits == {"n": 1}


@pytest.mark.both_dbs
def test_a_messageid_repeated_across_batches_stores_once_and_answers_the_same(
    api: httpx.Client, db: Engine
) -> None:
    def batch(n: int) -> dict[str, Any]:
        return {
            "batch": [
                {"type": "track", "userId": "u1", "event": "login", "messageId": "x-1"},
                {"type": "identify", "userId": "u1", "traits": {"n": n}, "messageId": "x-2"},
                {"type": "group", "groupId": "acme", "traits": {"n": n}, "messageId": "x-3"},
            ]
        }

    first = api.post("/v1/batch", json=batch(1))
    again = api.post("/v1/batch", json=batch(2))
    assert first.status_code == again.status_code == 200
    assert first.content == again.content
    assert _count(db, Event) == 1
    assert _one(db, Contact, external_id="u1").traits == {"n": 1}
    assert _one(db, Account, external_id="acme").traits == {"n": 1}
    # A batch mixing repeats with new messages stores only the new ones.
    mixed = batch(3)
    mixed["batch"].append({"type": "track", "userId": "u1", "event": "login", "messageId": "x-4"})
    assert api.post("/v1/batch", json=mixed).status_code == 200
    assert _count(db, Event) == 2
    assert _one(db, Contact, external_id="u1").traits == {"n": 1}


@pytest.mark.both_dbs
def test_a_batch_refused_for_one_message_stores_none_of_the_others(
    api: httpx.Client, db: Engine
) -> None:
    good = [
        {"type": "identify", "userId": "u1", "traits": {"plan": "pro"}, "messageId": "r-1"},
        {"type": "group", "userId": "u1", "groupId": "acme", "messageId": "r-2"},
        {"type": "track", "userId": "u1", "event": "login", "messageId": "r-3"},
        {"type": "track", "anonymousId": "a1", "event": "visit", "messageId": "r-4"},
    ]
    bad = [
        ({"type": "identify", "userId": "u2", "traits": {"stage": "s" * 101}}, "traits.stage"),
        (
            {"type": "track", "userId": "u2", "event": "x", "context": {"groupId": "a\x00"}},
            "context.groupId",
        ),
        ({"type": "track", "userId": 10**400, "event": "x"}, "userId"),
    ]
    for item, field in bad:
        r = api.post("/v1/batch", content=_dumps({"batch": [*good, item]}))
        assert r.status_code == 400, r.text
        fields = [e["field"] for e in r.json()["errors"]]
        assert all(f.startswith("batch[4]") for f in fields), fields
        if field is not None:
            assert f"batch[4].{field}" in fields
    for model in (Event, Contact, Account, AnonymousCall, IngestMessage):
        assert _count(db, model) == 0, model
    # The same messages without the bad one are stored (so nothing above was a repeat).
    assert api.post("/v1/batch", json={"batch": good}).status_code == 200
    assert _count(db, Event) == 1
    assert _count(db, AnonymousCall) == 1


def _dumps(value: Any) -> bytes:
    return to_json(value, True, []).encode()


# --- what the fuzzer found, pinned ----------------------------------------------------------


@pytest.mark.both_dbs
@pytest.mark.parametrize(
    ("call", "payload", "field"),
    [
        ("track", {"userId": Raw("9" * 400), "event": "x"}, "userId"),
        ("alias", {"userId": "u1", "previousId": Raw("-" + "9" * 400)}, "previousId"),
        ("track", {"userId": Raw("1e400"), "event": "x"}, "userId"),
        ("track", {"userId": Raw("NaN"), "event": "x"}, "userId"),
        ("group", {"groupId": Raw("-Infinity")}, "groupId"),
        (
            "identify",
            {"userId": "u", "traits": {"health_score": Raw("9" * 400)}},
            "traits.health_score",
        ),
        ("track", {"userId": "u", "event": "x", "context": {"groupId": "\x00"}}, "context.groupId"),
        ("page", {"userId": "u1", "name": "a\x00"}, "name"),
        ("identify", {"userId": "u1", "traits": {"stage": "s" * 101}}, "traits.stage"),
        ("identify", {"userId": "u1", "traits": {"email": "e" * 320 + "@x.io"}}, "traits.email"),
        ("identify", {"userId": "u1", "traits": {"email": "İ" * 160 + "@x"}}, "traits.email"),
        ("group", {"groupId": "g", "traits": {"owner": "b" * 330 + "@x.io"}}, "traits.owner"),
        ("group", {"groupId": "g", "traits": {"owner": "U" + "A" * 40}}, "traits.owner"),
        ("group", {"groupId": "g", "traits": {"owner": "U123ABC\n"}}, "traits.owner"),
    ],
)
def test_values_the_fuzzer_found_get_a_400_naming_the_field(
    api: httpx.Client, db: Engine, call: str, payload: dict[str, Any], field: str
) -> None:
    """Each was a 500, or a 400 blaming `body` for what the database refused (or, on SQLite,
    stored: a 101-character stage, a 33-character Slack id, a Slack id ending in a newline)."""
    batch = {"batch": [{"type": call, **payload}]}
    for path, body in ((f"/v1/{call}", payload), ("/v1/batch", batch)):
        r = api.post(path, content=_dumps(body))
        assert r.status_code == 400, r.text
        prefix = "batch[0]." if path == "/v1/batch" else ""
        assert [e["field"] for e in r.json()["errors"]] == [prefix + field], r.text
    for model in (Event, Contact, Account, IngestMessage):
        assert _count(db, model) == 0


@pytest.mark.both_dbs
@pytest.mark.parametrize(
    ("call", "body"),
    [
        ("page", b'{"userId":"u1","properties":' + b"[" * 16_000 + b"]" * 16_000 + b"}"),
        ("batch", b'{"batch":[' + b"[" * 20_000 + b"]" * 20_000 + b"]}"),  # over 32 KB
        ("screen", b'{"userId":"u1","name":"\\ud800"}'),  # a lone surrogate
        ("alias", b'{"userId":"u1","previousId":"\xed\xa0\x80"}'),  # one, as UTF-8
    ],
    ids=["page-deep", "batch-deep", "escaped-surrogate", "utf8-surrogate"],
)
def test_json_the_fuzzer_found_gets_a_400_naming_the_body(
    api: httpx.Client, call: str, body: bytes
) -> None:
    """Deep nesting was a RecursionError (500) from json.loads; a lone surrogate, a 500 or a
    400 blaming the database. Every endpoint now parses JSON as /v1/track does."""
    r = api.post(f"/v1/{call}", content=body)
    assert r.status_code == 400, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "body"
    assert error["message"].startswith("Invalid JSON")


@pytest.mark.both_dbs
def test_a_numeric_id_beyond_a_double_is_kept_exactly(api: httpx.Client, db: Engine) -> None:
    """A numeric id is its exact digits, past a double's precision too (ints skip float())."""
    big = 2**53 + 1
    r = api.post("/v1/track", content=_dumps({"userId": big, "event": "x", "messageId": "big"}))
    assert r.status_code == 200, r.text
    assert _one(db, Contact, external_id=str(big)) is not None
