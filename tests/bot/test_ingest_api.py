"""The ingestion API as a Segment pipeline sees it: calls in, records and events stored."""

from __future__ import annotations

from typing import Any

import pytest
from sqlalchemy import Engine, select

from storage.models import (
    Account,
    AnonymousCall,
    Contact,
    Event,
    IngestMessage,
    OutboxRow,
    User,
)
from tests.helpers import all_rows, count, one

pytestmark = pytest.mark.both_dbs


def test_track_stores_the_event_for_the_contact_and_the_named_account(api: Any, db: Engine) -> None:
    r = api.post(
        "/v1/track",
        json={
            "userId": "u1",
            "event": "login",
            "properties": {"plan": "pro"},
            "timestamp": "2026-11-01T10:00:00Z",
            "context": {"groupId": "acme"},
            "messageId": "m-1",
        },
    )
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}
    event = one(db, Event, message_id="m-1")
    contact, account = one(db, Contact, external_id="u1"), one(db, Account, external_id="acme")
    assert (event.name, event.contact_id, event.account_id) == ("login", contact.id, account.id)
    assert event.properties == {"plan": "pro"}
    assert event.timestamp.isoformat() == "2026-11-01T10:00:00+00:00"
    assert contact.last_seen_at == event.timestamp == account.last_seen_at


def test_identify_merges_traits_and_null_clears(api: Any, db: Engine) -> None:
    api.post("/v1/identify", json={"userId": "u1", "traits": {"plan": "trial", "mrr": 10}})
    api.post("/v1/identify", json={"userId": "u1", "traits": {"mrr": None, "seats": 3}})
    contact = one(db, Contact, external_id="u1")
    assert contact.traits == {"plan": "trial", "seats": 3}


def test_built_in_traits_fill_their_fields(api: Any, db: Engine) -> None:
    r = api.post(
        "/v1/identify",
        json={
            "userId": "u1",
            "traits": {
                "firstName": "Ada",
                "lastName": "Lovelace",
                "email": "Ada@Example.com",
                "stage": "Onboarding",
                "health_score": "72",
                "owner": "bob@acme.example",
                "createdAt": "2025-01-02T03:04:05Z",
            },
        },
    )
    assert r.status_code == 200, r.text
    contact = one(db, Contact, external_id="u1")
    assert contact.name == "Ada Lovelace"
    assert (contact.first_name, contact.last_name) == ("Ada", "Lovelace")
    assert contact.email == "ada@example.com"
    assert (contact.stage, contact.health_score) == ("Onboarding", 72.0)
    assert contact.created_at.isoformat() == "2025-01-02T03:04:05+00:00"
    assert one(db, User, id=contact.owner_id).email == "bob@acme.example"


def test_a_late_call_does_not_overwrite_a_newer_trait(api: Any, db: Engine) -> None:
    api.post(
        "/v1/identify",
        json={"userId": "u1", "traits": {"plan": "pro"}, "timestamp": "2026-11-02T00:00:00Z"},
    )
    api.post(
        "/v1/identify",
        json={
            "userId": "u1",
            "traits": {"plan": "trial", "seats": 5},
            "timestamp": "2026-11-01T00:00:00Z",
        },
    )
    assert one(db, Contact, external_id="u1").traits == {"plan": "pro", "seats": 5}
    api.post(
        "/v1/identify",
        json={"userId": "u1", "traits": {"plan": "team"}, "timestamp": "2026-11-02T00:00:00Z"},
    )
    assert one(db, Contact, external_id="u1").traits["plan"] == "team"  # as recent: applies


@pytest.mark.parametrize(
    "payload",
    [
        {"userId": "u1", "context": {"groupId": "acme"}},
        {"userId": "u1", "groupId": "acme"},
        {"userId": "u1", "traits": {"company": {"id": "acme", "name": "Acme"}}},
    ],
    ids=["context.groupId", "groupId", "traits.company.id"],
)
def test_identify_links_the_contact_to_its_account(
    api: Any, db: Engine, payload: dict[str, Any]
) -> None:
    assert api.post("/v1/identify", json=payload).status_code == 200
    contact, account = one(db, Contact, external_id="u1"), one(db, Account, external_id="acme")
    assert contact.account_id == account.id


def test_group_sets_account_traits_and_links_the_user(api: Any, db: Engine) -> None:
    r = api.post(
        "/v1/group",
        json={"userId": "u1", "groupId": "acme", "traits": {"name": "Acme", "plan": "pro"}},
    )
    assert r.status_code == 200, r.text
    account = one(db, Account, external_id="acme")
    assert (account.name, account.traits) == ("Acme", {"name": "Acme", "plan": "pro"})
    assert one(db, Contact, external_id="u1").account_id == account.id


def test_an_event_without_group_counts_for_the_contacts_account(
    api: Any, db: Engine, worker: Any
) -> None:
    api.post("/v1/group", json={"userId": "u1", "groupId": "acme"})
    api.post(
        "/v1/track", json={"userId": "u1", "event": "export", "timestamp": "2026-11-03T00:00:00Z"}
    )
    account = one(db, Account, external_id="acme")
    assert one(db, Event, name="export").account_id == account.id
    wait_evaluated(db)  # the worker moves seen times from the events
    account = one(db, Account, external_id="acme")
    assert account.last_seen_at.isoformat() == "2026-11-03T00:00:00+00:00"


def test_seen_times_follow_events_late_ones_included(api: Any, db: Engine, worker: Any) -> None:
    for ts in ("2026-11-05T00:00:00Z", "2026-11-07T00:00:00Z", "2026-11-01T00:00:00Z"):
        call = {"userId": "u1", "event": "login", "timestamp": ts, "context": {"groupId": "acme"}}
        assert api.post("/v1/track", json=call).status_code == 200
    wait_evaluated(db)
    for record in (one(db, Contact, external_id="u1"), one(db, Account, external_id="acme")):
        assert record.last_seen_at.isoformat() == "2026-11-07T00:00:00+00:00"
        assert record.first_seen_at.isoformat() == "2026-11-01T00:00:00+00:00"
        assert record.created_at == record.first_seen_at  # no created_at trait: first seen


def wait_evaluated(db: Engine, timeout: float = 10.0) -> None:
    import time

    deadline = time.monotonic() + timeout
    while any(r.processed_at is None for r in all_rows(db, OutboxRow)):
        assert time.monotonic() < deadline, "the worker did not evaluate the outbox"
        time.sleep(0.02)


def test_a_repeated_message_id_stores_once_and_answers_the_same(api: Any, db: Engine) -> None:
    track = {"userId": "u1", "event": "login", "messageId": "dup-1"}
    identify = {"userId": "u1", "traits": {"n": 1}, "messageId": "dup-2"}
    first = [api.post("/v1/track", json=track), api.post("/v1/identify", json=identify)]
    api.post("/v1/identify", json={"userId": "u1", "traits": {"n": 2}})
    again = [api.post("/v1/track", json=track), api.post("/v1/identify", json=identify)]
    assert [r.json() for r in first] == [r.json() for r in again] == [{"success": True}] * 2
    assert count(db, Event) == 1
    assert one(db, Contact, external_id="u1").traits == {"n": 2}  # the repeat did not re-apply


def test_anonymous_calls_are_counted_not_stored(api: Any, db: Engine) -> None:
    assert api.post("/v1/track", json={"anonymousId": "a1", "event": "visit"}).status_code == 200
    assert (
        api.post("/v1/identify", json={"anonymousId": "a1", "traits": {"x": 1}}).status_code == 200
    )
    assert count(db, Event) == count(db, Contact) == 0
    from sqlalchemy.orm import Session

    with Session(db) as s:
        counts = {row.call: row.count for row in s.scalars(select(AnonymousCall))}
    assert counts == {"track": 1, "identify": 1}


def test_batch_stores_a_mix_of_calls(api: Any, db: Engine) -> None:
    r = api.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "identify", "userId": "u1", "traits": {"email": "a@x.io"}},
                {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"plan": "pro"}},
                {"type": "track", "userId": "u1", "event": "login"},
                {"type": "page", "userId": "u1", "name": "Pricing"},
            ]
        },
    )
    assert r.status_code == 200, r.text
    assert one(db, Contact, external_id="u1").email == "a@x.io"
    assert one(db, Account, external_id="acme").traits == {"plan": "pro"}
    assert sorted(e.name for e in all_rows(db, Event)) == ["login", "page"]
    assert all(e.account_id is not None for e in all_rows(db, Event))


def test_a_bad_batch_names_each_bad_message_and_writes_nothing(api: Any, db: Engine) -> None:
    r = api.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "track", "userId": "u1", "event": "login"},
                {"type": "track", "userId": "u2"},
                {"type": "identify", "userId": "u3", "traits": {"health_score": 140}},
                {"type": "rename", "userId": "u4"},
            ]
        },
    )
    assert r.status_code == 400
    fields = {e["field"]: e["message"] for e in r.json()["errors"]}
    assert set(fields) == {"batch[1].event", "batch[2].traits.health_score", "batch[3].type"}
    assert "0 to 100" in fields["batch[2].traits.health_score"]
    assert count(db, Event) == count(db, Contact) == 0


@pytest.mark.parametrize(
    ("path", "payload", "field"),
    [
        ("/v1/track", {"event": "login"}, "userId"),
        ("/v1/track", {"userId": "u1"}, "event"),
        ("/v1/track", {"userId": True, "event": "x"}, "userId"),
        ("/v1/identify", {"userId": "u1", "traits": {"owner": "bob"}}, "traits.owner"),
        ("/v1/identify", {"userId": "u1", "traits": {"email": "nope"}}, "traits.email"),
        ("/v1/identify", {"userId": "u1", "timestamp": "yesterday"}, "timestamp"),
        ("/v1/group", {"userId": "u1"}, "groupId"),
        (
            "/v1/track",
            {"userId": "u1", "event": "x", "properties": {"a": "\u0000"}},
            "properties.a",
        ),
    ],
)
def test_bad_input_gets_400_naming_the_field(
    api: Any, db: Engine, path: str, payload: dict[str, Any], field: str
) -> None:
    r = api.post(path, json=payload)
    assert r.status_code == 400, r.text
    assert field in [e["field"] for e in r.json()["errors"]]
    assert all(e["message"] for e in r.json()["errors"])
    assert count(db, Contact) == 0


def test_invalid_json_is_a_400(api: Any) -> None:
    r = api.post("/v1/track", content=b"{not json", headers={"Content-Type": "application/json"})
    assert r.status_code == 400
    assert r.json()["errors"][0]["field"] == "body"


def test_outbox_rows_are_written_with_the_change(api: Any, db: Engine) -> None:
    api.post("/v1/identify", json={"userId": "u1", "traits": {"stage": "Trial"}})
    api.post("/v1/track", json={"userId": "u1", "event": "login"})
    rows = all_rows(db, OutboxRow)
    changes = [r.changes for r in rows if r.object_type == "contact"]
    assert {"stage": [None, "Trial"], "traits": ["stage"], "created": True} in changes
    assert any(r.event_ids == [one(db, Event, name="login").id] for r in rows)


def test_an_anonymous_repeat_is_counted_once(api: Any, db: Engine) -> None:
    call = {"anonymousId": "a1", "event": "visit", "messageId": "anon-1"}
    assert [api.post("/v1/track", json=call).status_code for _ in range(3)] == [200] * 3
    from sqlalchemy.orm import Session

    with Session(db) as s:
        assert [row.count for row in s.scalars(select(AnonymousCall))] == [1]


def test_only_message_ids_sent_by_the_caller_are_remembered(api: Any, db: Engine) -> None:
    api.post("/v1/identify", json={"userId": "u1", "traits": {"a": 1}})
    api.post("/v1/identify", json={"userId": "u1", "traits": {"a": 2}, "messageId": "given"})
    assert [m.message_id for m in all_rows(db, IngestMessage)] == ["given"]
    assert one(db, Contact, external_id="u1").traits == {"a": 2}


def test_a_late_link_does_not_move_a_newer_one(api: Any, db: Engine) -> None:
    newer = {"userId": "u1", "groupId": "new-co", "timestamp": "2026-11-02T00:00:00Z"}
    older = {"userId": "u1", "groupId": "old-co", "timestamp": "2026-11-01T00:00:00Z"}
    assert api.post("/v1/group", json=newer).status_code == 200
    assert api.post("/v1/group", json=older).status_code == 200
    contact = one(db, Contact, external_id="u1")
    assert contact.account_id == one(db, Account, external_id="new-co").id
    assert contact.account_linked_at.isoformat() == "2026-11-02T00:00:00+00:00"


def test_a_batch_of_events_moves_the_account_reached_both_ways(api: Any, db: Engine) -> None:
    assert api.post("/v1/group", json={"userId": "u1", "groupId": "acme"}).status_code == 200
    r = api.post(
        "/v1/batch",
        json={
            "batch": [
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "login",
                    "timestamp": "2026-11-01T00:00:00Z",
                    "context": {"groupId": "acme"},
                },
                {
                    "type": "track",
                    "userId": "u1",
                    "event": "export",
                    "timestamp": "2026-11-04T00:00:00Z",
                },
                {"type": "track", "userId": "u2", "event": "login", "context": {"groupId": "beta"}},
            ]
        },
    )
    assert r.status_code == 200, r.text
    acme = one(db, Account, external_id="acme")
    assert {
        e.name: e.account_id
        for e in all_rows(db, Event)
        if e.contact_id == one(db, Contact, external_id="u1").id
    } == {
        "login": acme.id,
        "export": acme.id,
    }
    assert acme.last_seen_at.isoformat() == "2026-11-04T00:00:00+00:00"
    created = {
        (r.object_type, r.object_id)
        for r in all_rows(db, OutboxRow)
        if r.changes == {"created": True}
    }
    assert ("contact", one(db, Contact, external_id="u2").id) in created
    assert ("account", one(db, Account, external_id="beta").id) in created
