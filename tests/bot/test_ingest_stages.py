"""A record's stage from ingestion: matched against the workspace's stage list, or refused."""

from __future__ import annotations

import dataclasses
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from bot import importer as import_cli
from engine import lifecycle
from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Account, Contact, Event, IngestMessage, OutboxRow
from storage.queries import configuration
from tests.conftest import WRITE_KEY, ManualClock
from tests.helpers import count, one, serve

pytestmark = pytest.mark.both_dbs

STAGES = ("Onboarding", "Adoption", "Expansion", "Renewal", "Churned")
NOT_A_STAGE = '"Renewl" is not a stage; the stages are ' + ", ".join(STAGES)


def apply_stages(db: Engine, *names: str) -> None:
    """Store the workspace's stage list, as applying a workspace file does."""
    with session_scope(db) as s:
        configuration.put(s, key=lifecycle.STAGES_KEY, value=list(names), now=datetime.now(UTC))


def stage_of(db: Engine, model: Any, external_id: str) -> tuple[str | None, str | None]:
    """A record's stage column and its `stage` trait."""
    record = one(db, model, external_id=external_id)
    return record.stage, record.traits.get("stage")


def nothing_stored(db: Engine) -> bool:
    return all(count(db, m) == 0 for m in (Contact, Account, Event, IngestMessage, OutboxRow))


# --- the API ---------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/identify", {"userId": "u1", "groupId": "acme", "traits": {"stage": "renewal"}}),
        ("/v1/group", {"userId": "u1", "groupId": "acme", "traits": {"stage": " RENEWAL "}}),
        (
            "/v1/batch",
            {
                "batch": [
                    {"type": "identify", "userId": "u1", "traits": {"stage": "reNewal"}},
                    {"type": "group", "groupId": "acme", "traits": {"stage": "renewal"}},
                ]
            },
        ),
    ],
)
def test_a_stage_is_stored_in_the_listed_spelling(
    api: httpx.Client, db: Engine, path: str, body: dict[str, Any]
) -> None:
    apply_stages(db, *STAGES)
    r = api.post(path, json=body)
    assert r.status_code == 200, r.text
    model, external_id = (Account, "acme") if path == "/v1/group" else (Contact, "u1")
    assert stage_of(db, model, external_id) == ("Renewal", "Renewal")
    if path == "/v1/batch":
        assert stage_of(db, Account, "acme") == ("Renewal", "Renewal")


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/identify", {"userId": "u1", "traits": {"stage": "Renewl", "plan": "pro"}}),
        ("/v1/group", {"groupId": "acme", "traits": {"stage": "Renewl", "plan": "pro"}}),
    ],
)
def test_an_unknown_stage_is_a_400_naming_the_field_and_the_stages(
    api: httpx.Client, db: Engine, path: str, body: dict[str, Any]
) -> None:
    apply_stages(db, *STAGES)
    r = api.post(path, json=body)
    assert r.status_code == 400, r.text
    assert r.json() == {
        "success": False,
        "errors": [{"field": "traits.stage", "message": NOT_A_STAGE}],
    }
    assert nothing_stored(db)


def test_an_unknown_stage_leaves_the_old_one(api: httpx.Client, db: Engine) -> None:
    apply_stages(db, *STAGES)
    assert api.post(
        "/v1/group", json={"groupId": "acme", "traits": {"stage": "Adoption"}}
    ).is_success
    r = api.post("/v1/group", json={"groupId": "acme", "traits": {"stage": "Renewl", "seats": 3}})
    assert r.status_code == 400, r.text
    account = one(db, Account, external_id="acme")
    assert (account.stage, account.traits) == ("Adoption", {"stage": "Adoption"})


def test_a_batch_with_one_unknown_stage_writes_nothing(api: httpx.Client, db: Engine) -> None:
    apply_stages(db, *STAGES)
    r = api.post(
        "/v1/batch",
        json={
            "batch": [
                {"type": "identify", "userId": "u1", "traits": {"stage": "adoption"}},
                {"type": "track", "userId": "u1", "event": "login"},
                {"type": "group", "userId": "u1", "groupId": "acme", "traits": {"stage": "Renewl"}},
                {"type": "identify", "userId": "u2", "traits": {"stage": "Churned"}},
            ]
        },
    )
    assert r.status_code == 400, r.text
    assert r.json()["errors"] == [{"field": "batch[2].traits.stage", "message": NOT_A_STAGE}]
    assert nothing_stored(db)


def test_null_clears_the_stage(api: httpx.Client, db: Engine) -> None:
    apply_stages(db, *STAGES)
    api.post("/v1/identify", json={"userId": "u1", "traits": {"stage": "churned"}})
    assert stage_of(db, Contact, "u1") == ("Churned", "Churned")
    r = api.post("/v1/identify", json={"userId": "u1", "traits": {"stage": None}})
    assert r.status_code == 200, r.text
    assert stage_of(db, Contact, "u1") == (None, None)


def test_without_a_stage_list_any_stage_is_taken_as_sent(api: httpx.Client, db: Engine) -> None:
    r = api.post("/v1/identify", json={"userId": "u1", "traits": {"stage": "renewl"}})
    assert r.status_code == 200, r.text
    assert stage_of(db, Contact, "u1") == ("renewl", "renewl")
    r = api.post("/v1/identify", json={"userId": "u1", "traits": {"stage": ""}})
    assert r.status_code == 400  # still a non-empty string
    assert r.json()["errors"][0]["field"] == "traits.stage"


def test_a_changed_stage_list_is_seen_once_the_cache_expires(rt: Runtime, db: Engine) -> None:
    from bot.web import create_web_app

    clock = ManualClock()
    app = create_web_app(
        dataclasses.replace(rt, clock=clock), enqueue=lambda ids: None, inprocess_worker=False
    )
    apply_stages(db, "Onboarding", "Renewal")
    with serve(app) as url, httpx.Client(base_url=url, auth=(WRITE_KEY, "")) as api:

        def identify(stage: str) -> httpx.Response:
            return api.post("/v1/identify", json={"userId": "u1", "traits": {"stage": stage}})

        assert identify("renewal").status_code == 200
        apply_stages(db, "Onboarding", "Adoption")
        clock.advance(seconds=4.9)
        assert identify("renewal").status_code == 200  # the cached list still has it
        refused = identify("adoption")
        assert refused.status_code == 400
        assert "the stages are Onboarding, Renewal" in refused.json()["errors"][0]["message"]
        clock.advance(seconds=0.2)
        assert identify("adoption").status_code == 200, "the list is read again after 5 s"
        assert identify("renewal").status_code == 400
    assert stage_of(db, Contact, "u1") == ("Adoption", "Adoption")


# --- import ----------------------------------------------------------------------------------


def run_import(rt: Runtime, path: Path, *flags: str) -> int:
    """`workflowbot import accounts PATH` as the command runs it, on the test runtime."""
    return import_cli.run(
        rt,
        path=path,
        kind="accounts",
        fmt=None,
        skip_invalid="--skip-invalid" in flags,
        signals=True,
        batch_size=1000,
        enqueue=lambda ids: None,
    )


def test_import_reports_an_unknown_stage_at_its_line_and_writes_nothing(
    rt: Runtime, db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_stages(db, *STAGES)
    path = tmp_path / "accounts.csv"
    path.write_text("id,stage\nacme,renewal\nglobex,Renewl\ninitech,churned\n", encoding="utf-8")
    assert run_import(rt, path) == 1
    assert f"{path}:3: stage: {NOT_A_STAGE}" in capsys.readouterr().err.splitlines()
    assert count(db, Account) == 0


def test_import_skip_invalid_writes_the_rows_with_listed_stages(
    rt: Runtime, db: Engine, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    apply_stages(db, *STAGES)
    path = tmp_path / "accounts.csv"
    path.write_text("id,stage\nacme,renewal\nglobex,Renewl\ninitech,churned\n", encoding="utf-8")
    assert run_import(rt, path, "--skip-invalid") == 0
    assert f"{path}:3: stage: {NOT_A_STAGE}" in capsys.readouterr().err.splitlines()
    with Session(db) as s:
        stored = {a.external_id: a.stage for a in s.scalars(select(Account))}
    assert stored == {"acme": "Renewal", "initech": "Churned"}
    assert one(db, Account, external_id="acme").traits == {"stage": "Renewal"}
