"""The ingestion API over real HTTP: auth, size limits, health checks and routing."""

from __future__ import annotations

import base64
import contextlib
import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from dramatiq.brokers.redis import RedisBroker
from sqlalchemy import Engine, func, select
from sqlalchemy.orm import Session

from engine.runtime import Runtime
from engine.settings import Settings
from storage.db import make_engine
from storage.models import Account, AnonymousCall, Contact, Event, IngestMessage, OutboxRow
from tests.conftest import WRITE_KEY, LiveServer
from tests.helpers import free_port, serve

KB = 1024
STORED = (Event, Contact, Account, AnonymousCall, IngestMessage, OutboxRow)


def stored(db: Engine) -> dict[str, int]:
    """Row counts of every table ingestion writes to."""
    with Session(db) as s:
        return {
            m.__tablename__: int(s.scalar(select(func.count()).select_from(m)) or 0) for m in STORED
        }


def nothing_stored(db: Engine) -> bool:
    return not any(stored(db).values())


def basic(user: str, password: str = "") -> str:
    return "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()


TRACK = {"userId": "u1", "event": "login", "messageId": "m-auth"}


# --- auth -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "authorization",
    [basic(WRITE_KEY), f"Bearer {WRITE_KEY}", f"bearer  {WRITE_KEY}", basic(WRITE_KEY, "x")],
    ids=["basic-user", "bearer", "bearer-lowercase-spaces", "basic-user-any-password"],
)
def test_the_write_key_is_accepted_as_basic_user_or_bearer(
    live_api: LiveServer, db: Engine, authorization: str
) -> None:
    r = httpx.post(f"{live_api.url}/v1/track", json=TRACK, headers={"Authorization": authorization})
    assert r.status_code == 200, r.text
    assert r.json() == {"success": True}
    assert stored(db)["events"] == 1


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        basic("wrong-key"),
        basic("", WRITE_KEY),
        basic(WRITE_KEY[:-1]),
        basic(WRITE_KEY + "x"),
        "Basic",
        basic(""),
        "Basic !!!not-base64!!!",
        "Basic dGVzdC13cml0ZS1rZXk",  # base64 without its padding
        "Basic " + base64.b64encode(b"\xff\xfe:").decode(),  # not UTF-8
        "Bearer",
        "Bearer wrong-key",
        f"Token {WRITE_KEY}",
        WRITE_KEY,
        f"Basic {WRITE_KEY}",
    ],
    ids=[
        "no-header",
        "empty-header",
        "wrong-key",
        "key-as-password",
        "key-prefix",
        "key-suffix",
        "basic-no-credentials",
        "basic-empty-user",
        "basic-not-base64",
        "basic-no-padding",
        "basic-not-utf8",
        "bearer-no-token",
        "bearer-wrong-key",
        "unknown-scheme",
        "bare-key",
        "basic-unencoded-key",
    ],
)
@pytest.mark.parametrize("path", ["/v1/track", "/v1/batch"])
def test_a_missing_or_wrong_write_key_is_a_401_and_stores_nothing(
    live_api: LiveServer, db: Engine, authorization: str | None, path: str
) -> None:
    headers = {} if authorization is None else {"Authorization": authorization}
    body = {"batch": [{"type": "track", **TRACK}]} if path == "/v1/batch" else TRACK
    r = httpx.post(f"{live_api.url}{path}", json=body, headers=headers)
    assert r.status_code == 401, r.text
    assert r.headers["WWW-Authenticate"].startswith("Basic")
    assert r.headers["content-type"] == "application/json"
    assert r.json()["success"] is False
    assert [e["field"] for e in r.json()["errors"]] == ["Authorization"]
    assert all(e["message"] for e in r.json()["errors"])
    assert nothing_stored(db)


def test_a_401_does_not_read_the_body_first(live_api: LiveServer, db: Engine) -> None:
    r = httpx.post(f"{live_api.url}/v1/track", content=b"{not json")
    assert r.status_code == 401
    assert nothing_stored(db)


# --- size limits ----------------------------------------------------------------------------


def track_of_size(size: int, **extra: Any) -> dict[str, Any]:
    """A valid track call whose compact JSON is exactly `size` bytes."""
    call: dict[str, Any] = {"userId": "u1", "event": "big", **extra, "properties": {"pad": ""}}
    base = len(json.dumps(call, separators=(",", ":")).encode())
    call["properties"]["pad"] = "x" * (size - base)
    assert len(json.dumps(call, separators=(",", ":")).encode()) == size
    return call


def compact(value: Any) -> bytes:
    return json.dumps(value, separators=(",", ":")).encode()


def chunked(body: bytes, size: int = 8 * KB) -> Iterator[bytes]:
    """A request body httpx sends with Transfer-Encoding: chunked (no Content-Length)."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_a_31_kb_call_is_accepted(api: httpx.Client, db: Engine) -> None:
    body = compact(track_of_size(31 * KB, messageId="m-31k"))
    r = api.post("/v1/track", content=body)
    assert r.status_code == 200, r.text
    assert stored(db)["events"] == 1


def test_a_call_of_exactly_32_kb_is_accepted(api: httpx.Client, db: Engine) -> None:
    r = api.post("/v1/track", content=compact(track_of_size(32 * KB)))
    assert r.status_code == 200, r.text


@pytest.mark.parametrize("path", ["/v1/track", "/v1/identify", "/v1/group", "/v1/page"])
def test_a_call_over_32_kb_is_a_413_naming_the_body(
    api: httpx.Client, db: Engine, path: str
) -> None:
    body = compact(track_of_size(32 * KB + 1, groupId="acme"))
    r = api.post(path, content=body)
    assert r.status_code == 413, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "body"
    assert "32768" in error["message"]
    assert nothing_stored(db)


def test_a_chunked_call_over_32_kb_is_a_413(api: httpx.Client, db: Engine) -> None:
    body = compact(track_of_size(40 * KB))
    r = api.post("/v1/track", content=chunked(body))
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json()["errors"][0]["field"] == "body"
    assert nothing_stored(db)


def test_a_chunked_call_under_the_limit_is_accepted(api: httpx.Client, db: Engine) -> None:
    body = compact(track_of_size(20 * KB, messageId="m-chunked"))
    r = api.post("/v1/track", content=chunked(body, 1000))
    assert r.request.headers.get("transfer-encoding") == "chunked"
    assert r.status_code == 200, r.text
    assert stored(db)["events"] == 1


def batch_of(count: int, size: int) -> dict[str, Any]:
    """A batch of `count` track calls, each `size` bytes of compact JSON with its type."""
    return {"batch": [track_of_size(size, type="track") for _ in range(count)]}


def test_a_batch_over_500_kb_is_a_413(api: httpx.Client, db: Engine) -> None:
    body = compact(batch_of(17, 30 * KB))  # every message fits; the batch does not
    assert len(body) > 500 * KB
    r = api.post("/v1/batch", content=body)
    assert r.status_code == 413, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "body"
    assert "512000" in error["message"]
    assert nothing_stored(db)


def test_a_chunked_batch_over_500_kb_is_a_413(api: httpx.Client, db: Engine) -> None:
    body = compact(batch_of(17, 30 * KB))
    r = api.post("/v1/batch", content=chunked(body))
    assert "content-length" not in r.request.headers
    assert r.status_code == 413, r.text
    assert r.json()["errors"][0]["field"] == "body"
    assert nothing_stored(db)


def test_a_batch_under_500_kb_with_a_message_over_32_kb_is_a_413_naming_it(
    api: httpx.Client, db: Engine
) -> None:
    batch = batch_of(3, 10 * KB)
    batch["batch"].insert(2, track_of_size(32 * KB + 1, type="track"))
    r = api.post("/v1/batch", content=compact(batch))
    assert r.status_code == 413, r.text
    [error] = r.json()["errors"]
    assert error["field"] == "batch[2]"
    assert "32768" in error["message"]
    assert nothing_stored(db)


def test_a_batch_near_500_kb_of_messages_under_32_kb_is_accepted(
    api: httpx.Client, db: Engine
) -> None:
    body = compact(batch_of(15, 32 * KB))
    assert 32 * KB < len(body) <= 500 * KB
    r = api.post("/v1/batch", content=body)
    assert r.status_code == 200, r.text
    assert stored(db)["events"] == 15


def test_a_non_ascii_message_under_32_kb_is_accepted_in_a_batch(
    api: httpx.Client, db: Engine
) -> None:
    """32 KB is measured in UTF-8 bytes: not in `\\uXXXX` escapes (6 bytes for one `é`)."""
    call = {"type": "track", "userId": "u1", "event": "i18n", "properties": {"t": "é" * 12_000}}
    assert len(json.dumps(call, ensure_ascii=False).encode()) < 32 * KB
    body = json.dumps({"batch": [call, call]}, ensure_ascii=False).encode()
    r = api.post("/v1/batch", content=body)
    assert r.status_code == 200, r.text
    assert stored(db)["events"] == 2


# --- health checks --------------------------------------------------------------------------


def test_healthz(live_api: LiveServer) -> None:
    r = httpx.get(f"{live_api.url}/healthz")
    assert (r.status_code, r.json()) == (200, {"status": "ok"})


def test_readyz_when_database_and_broker_are_up(live_api: LiveServer) -> None:
    r = httpx.get(f"{live_api.url}/readyz")
    assert r.status_code == 200, r.text
    assert r.json() == {"ready": True, "database": "ok", "broker": "ok"}


@contextlib.contextmanager
def serve_runtime(rt: Runtime) -> Iterator[str]:
    """create_web_app for `rt`, served on a free 127.0.0.1 port; yields its URL."""
    from bot.web import create_web_app

    with serve(create_web_app(rt, enqueue=lambda ids: None, inprocess_worker=False)) as url:
        yield url


def test_readyz_is_503_naming_the_broker_when_redis_is_unreachable(rt: Runtime) -> None:
    broker = RedisBroker(url="redis://127.0.0.1:1/0")  # nothing listens on port 1
    try:
        with serve_runtime(
            Runtime(settings=rt.settings, db=rt.db, broker=broker, clock=rt.clock)
        ) as url:
            r = httpx.get(f"{url}/readyz", timeout=30)
    finally:
        broker.close()
    assert r.status_code == 503, r.text
    body = r.json()
    assert body["ready"] is False
    assert body["database"] == "ok"
    assert body["broker"].startswith("unreachable")


def test_readyz_is_503_naming_the_database_when_it_is_unreachable(rt: Runtime) -> None:
    url = f"postgresql://postgres@127.0.0.1:{free_port()}/workflowbot_test"  # a closed port
    settings = Settings(database_url=url, ingest_write_keys=[WRITE_KEY])
    down = make_engine(settings.database_url)
    try:
        with serve_runtime(
            Runtime(settings=settings, db=down, broker=rt.broker, clock=rt.clock)
        ) as base:
            ready = httpx.get(f"{base}/readyz", timeout=30)
            track = httpx.post(f"{base}/v1/track", json=TRACK, auth=(WRITE_KEY, ""), timeout=30)
    finally:
        down.dispose()
    assert ready.status_code == 503, ready.text
    body = ready.json()
    assert body["ready"] is False
    assert body["database"].startswith("unreachable")
    assert body["broker"] == "ok"
    # Ingesting while the database is down is a retryable 503, never a 500.
    assert track.status_code == 503, track.text
    assert track.headers["Retry-After"]
    assert track.json()["errors"][0]["field"] == "body"


# --- routing --------------------------------------------------------------------------------


def test_an_unknown_path_is_a_404(live_api: LiveServer) -> None:
    r = httpx.post(f"{live_api.url}/v1/unknown", json=TRACK, auth=(WRITE_KEY, ""))
    assert r.status_code == 404


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE"])
def test_a_method_other_than_post_is_a_405(live_api: LiveServer, db: Engine, method: str) -> None:
    r = httpx.request(method, f"{live_api.url}/v1/track", auth=(WRITE_KEY, ""))
    assert r.status_code == 405
    assert "POST" in r.headers["allow"]
    assert nothing_stored(db)
