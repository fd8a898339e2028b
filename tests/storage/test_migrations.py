"""Alembic is the only way the schema is made, on an empty PostgreSQL and an empty SQLite."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, inspect
from sqlalchemy.engine import make_url

from storage import migrate
from storage.db import make_engine
from tests.conftest import PG_URL, REPO, ensure_pg_database, reset_pg_schema, unavailable

pytestmark = pytest.mark.both_dbs


@pytest.fixture
def empty(backend: str, tmp_path: Path) -> Iterator[Engine]:
    if backend == "sqlite":
        engine = make_engine(f"sqlite:///{tmp_path / 'empty.db'}")
    else:
        url = make_url(PG_URL).set(database="workflowbot_migrations")
        try:
            ensure_pg_database(url.render_as_string(hide_password=False))
            engine = make_engine(url.render_as_string(hide_password=False))
            reset_pg_schema(engine)
        except Exception as exc:
            unavailable("PostgreSQL", exc)
    yield engine
    engine.dispose()


def test_upgrade_head_on_an_empty_database_matches_the_models(empty: Engine) -> None:
    migrate.upgrade(empty)
    tables = set(inspect(empty).get_table_names())
    assert {"accounts", "contacts", "events", "users", "outbox", "ingest_messages"} <= tables
    migrate.check(empty)  # raises when models and migrations drift apart


def test_downgrade_to_base_and_back(empty: Engine) -> None:
    migrate.upgrade(empty)
    migrate.upgrade(empty, "head")  # a second upgrade is a no-op
    from alembic import command

    config = migrate._config(empty)
    with empty.begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "base")
    assert set(inspect(empty).get_table_names()) <= {"alembic_version"}
    migrate.upgrade(empty)
    assert migrate.current(empty) is not None


def test_the_release_command_alembic_upgrade_head(empty: Engine) -> None:
    url = empty.url.render_as_string(hide_password=False)
    env = {**os.environ, "DATABASE_URL": url}
    alembic = Path(sys.executable).with_name("alembic")
    done = subprocess.run(
        [str(alembic), "upgrade", "head"], cwd=REPO, env=env, capture_output=True, text=True
    )
    assert done.returncode == 0, done.stderr
    assert "accounts" in inspect(empty).get_table_names()
