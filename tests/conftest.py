"""Shared fixtures: migrated PostgreSQL (and SQLite for `both_dbs`), real Redis, the web app.

Service fixtures fail when CI is set and the service is down; on a laptop they skip.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import dramatiq
import httpx
import pytest
import redis
from sqlalchemy import Engine, create_engine, text
from sqlalchemy.engine import make_url

from engine import broker as broker_mod
from engine import runtime
from engine.rules import sqlite as rules_sqlite
from engine.runtime import Runtime
from engine.settings import Settings
from storage import migrate
from storage.base import Base
from storage.db import make_engine, normalize_url
from tests.helpers import serve
from tests.sink import Sink, webhook_sink
from tests.smtp_peer import SmtpPeer, smtp_peer

PG_URL = normalize_url(
    os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/workflowbot_test")
)
REDIS_URL = os.environ.get("TEST_REDIS_URL", "redis://127.0.0.1:6379/15")
WRITE_KEY = "test-write-key"


def unavailable(what: str, exc: BaseException) -> None:
    """A missing service fails the run in CI and skips on a laptop."""
    message = f"{what} is not reachable: {exc}"
    if os.environ.get("CI"):
        pytest.fail(message, pytrace=False)
    pytest.skip(message)


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "backend" in metafunc.fixturenames:
        both = metafunc.definition.get_closest_marker("both_dbs") is not None
        metafunc.parametrize("backend", ["postgresql", "sqlite"] if both else ["postgresql"])


def ensure_pg_database(url: str) -> None:
    """Create the PostgreSQL database named in `url` if it does not exist."""
    target = make_url(url)
    admin = create_engine(target.set(database="postgres"), isolation_level="AUTOCOMMIT")
    try:
        with admin.connect() as conn:
            exists = conn.scalar(
                text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": target.database}
            )
            if not exists:
                conn.execute(text(f'CREATE DATABASE "{target.database}"'))
    finally:
        admin.dispose()


def reset_pg_schema(engine: Engine) -> None:
    with engine.begin() as conn:
        conn.execute(text("DROP SCHEMA public CASCADE"))
        conn.execute(text("CREATE SCHEMA public"))


@pytest.fixture(scope="session")
def pg_engine() -> Iterator[Engine]:
    try:
        ensure_pg_database(PG_URL)
        engine = make_engine(PG_URL, application_name="workflowbot-tests", pool_size=10)
        reset_pg_schema(engine)
    except Exception as exc:
        unavailable("PostgreSQL", exc)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


@pytest.fixture(scope="session")
def sqlite_engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    path = tmp_path_factory.mktemp("sqlite") / "workflowbot.db"
    engine = make_engine(f"sqlite:///{path}")
    rules_sqlite.install(engine)
    migrate.upgrade(engine)
    yield engine
    engine.dispose()


def clean(engine: Engine) -> None:
    """Empty every table (tests cross threads and processes, so no outer transaction)."""
    names = [t.name for t in Base.metadata.sorted_tables]
    with engine.begin() as conn:
        if engine.dialect.name == "postgresql":
            conn.execute(text(f"TRUNCATE {', '.join(names)} RESTART IDENTITY CASCADE"))
        else:
            for name in reversed(names):
                conn.execute(text(f"DELETE FROM {name}"))


@pytest.fixture
def db(request: pytest.FixtureRequest, backend: str) -> Engine:
    """A migrated, empty database: PostgreSQL, and SQLite too for `both_dbs` tests."""
    engine: Engine = request.getfixturevalue(
        f"{'pg' if backend == 'postgresql' else 'sqlite'}_engine"
    )
    clean(engine)
    return engine


@pytest.fixture(scope="session")
def redis_client() -> Iterator[redis.Redis]:
    client = redis.Redis.from_url(REDIS_URL)
    try:
        client.ping()
    except Exception as exc:
        unavailable("Redis", exc)
    yield client
    client.close()


@pytest.fixture(scope="session")
def session_broker(redis_client: redis.Redis) -> dramatiq.Broker:
    """The real Redis broker, set once before engine.tasks declares its actors."""
    redis_client.flushdb()
    settings = Settings(database_url=PG_URL, redis_url=REDIS_URL)
    broker = broker_mod.setup(settings, application_name="workflowbot-tests")
    import engine.tasks  # noqa: F401  (declares the actors on this broker)

    return broker


class ManualClock:
    """A clock the test moves by hand."""

    def __init__(self, start: Any = None) -> None:
        from datetime import UTC, datetime

        self.current = start or datetime.now(UTC)

    def now(self) -> Any:
        return self.current

    def advance(self, **kwargs: float) -> None:
        from datetime import timedelta

        self.current += timedelta(**kwargs)


@pytest.fixture
def rt(db: Engine, session_broker: dramatiq.Broker, redis_client: redis.Redis) -> Runtime:
    """This process's runtime on the test database and the Redis broker (queues emptied)."""
    redis_client.flushdb()
    session_broker.flush_all()
    settings = Settings(
        database_url=str(db.url.render_as_string(hide_password=False)),
        redis_url=REDIS_URL,
        ingest_write_keys=[WRITE_KEY],
    )
    return runtime.init(
        settings, broker=session_broker, application_name="workflowbot-tests", db=db
    )


@pytest.fixture
def worker(session_broker: dramatiq.Broker) -> Iterator[dramatiq.Worker]:
    """A real Dramatiq worker on the Redis broker, in this process."""
    w = dramatiq.Worker(session_broker, worker_threads=2, worker_timeout=50)
    w.start()
    yield w
    w.stop()


@pytest.fixture
def smtp() -> Iterator[SmtpPeer]:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps what it receives."""
    with smtp_peer() as peer:
        yield peer


@pytest.fixture
def sink() -> Iterator[Sink]:
    """A webhook receiver on 127.0.0.1 recording every request (tests.sink)."""
    with webhook_sink() as receiver:
        yield receiver


@dataclass
class LiveServer:
    url: str


@pytest.fixture
def live_api(rt: Runtime) -> Iterator[LiveServer]:
    """The web app served by uvicorn on 127.0.0.1, over real HTTP."""
    from bot.web import create_web_app
    from engine import tasks

    app = create_web_app(rt, enqueue=tasks.enqueue_evaluation, inprocess_worker=False)
    with serve(app) as url:
        yield LiveServer(url=url)


@pytest.fixture
def api(live_api: LiveServer) -> Iterator[httpx.Client]:
    """An HTTP client on the live API, authenticated with the test write key."""
    with httpx.Client(base_url=live_api.url, auth=(WRITE_KEY, ""), timeout=30) as client:
        yield client


REPO = Path(__file__).resolve().parent.parent


@pytest.fixture
def cli(rt: Runtime, db: Engine) -> Iterator[Any]:
    """Run `workflowbot ARGS` on the test database and Redis, as a user would.

    A command sets up its own broker and runtime (process globals); they are put back
    afterwards so later tests keep the session's broker. `rt` has engine.tasks bound first.
    """
    from click.testing import CliRunner

    from bot.cli import main

    env = {"DATABASE_URL": db.url.render_as_string(hide_password=False), "REDIS_URL": REDIS_URL}

    def run(*args: object, input: str | None = None) -> Any:
        saved = (dramatiq.get_broker(), broker_mod._configured, runtime._current)
        made_engines: list[Engine] = []

        def tracked(*a: Any, **kw: Any) -> Engine:
            made_engines.append(make_engine(*a, **kw))
            return made_engines[-1]

        try:
            with pytest.MonkeyPatch.context() as patch:
                # A process's connections close when it exits; here they are closed by hand.
                patch.setattr(runtime, "make_engine", tracked)
                return CliRunner().invoke(main, [str(a) for a in args], env=env, input=input)
        finally:
            for engine in made_engines:
                engine.dispose()
            made = broker_mod._configured
            dramatiq.set_broker(saved[0])
            broker_mod._configured, runtime._current = saved[1], saved[2]
            if made is not None and made is not saved[1]:
                made.close()

    yield run
