"""Engines and sessions: made by the caller at start, never at import time."""

from __future__ import annotations

import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError
from sqlalchemy.orm import Session, sessionmaker

DEFAULT_DATABASE_URL = "sqlite:///workflowbot.db"

_POSTGRES_PREFIXES = ("postgres://", "postgresql://", "postgresql+psycopg://")


def normalize_url(url: str) -> str:
    """Return the SQLAlchemy URL for a DATABASE_URL; PostgreSQL always means psycopg 3."""
    url = url.strip()
    for prefix in _POSTGRES_PREFIXES:
        if url.startswith(prefix):
            url = "postgresql+psycopg://" + url[len(prefix) :]
            break
    else:
        if not url.startswith("sqlite:"):
            raise ValueError(
                "must start with postgres://, postgresql://, postgresql+psycopg:// or sqlite:///"
            )
    try:
        make_url(url)
    except ArgumentError as exc:
        raise ValueError(f"is not a database URL ({exc})") from None
    return url


def make_engine(url: str, *, application_name: str = "workflowbot", pool_size: int = 10) -> Engine:
    """Create an engine for a normalized URL, tuned for the dialect it names."""
    url = normalize_url(url)
    if url.startswith("sqlite"):
        engine = create_engine(url, connect_args={"timeout": 30, "check_same_thread": False})
        event.listen(engine, "connect", _sqlite_pragmas)
        event.listen(engine, "begin", _sqlite_begin)
        return engine
    return create_engine(
        url,
        pool_size=pool_size,
        # Ten kept open: a worker runs 8 threads, each holding one at a time; connections above
        # the pool are closed when returned, so a smaller pool churns under load.
        max_overflow=pool_size,
        pool_pre_ping=True,
        connect_args={"application_name": application_name, "connect_timeout": 5},
    )


def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
    # SQLAlchemy emits BEGIN itself (below), so a transaction that reads and then writes
    # waits for the write lock up front instead of failing half-way with "database is locked".
    dbapi_connection.isolation_level = None


def _sqlite_begin(connection: Any) -> None:
    connection.exec_driver_sql("BEGIN IMMEDIATE")


_factories: weakref.WeakKeyDictionary[Engine, sessionmaker[Session]] = weakref.WeakKeyDictionary()


@contextmanager
def session_scope(engine: Engine) -> Iterator[Session]:
    """One unit of work: commit on success, roll back on error, always close."""
    factory = _factories.get(engine)
    if factory is None:
        factory = _factories[engine] = sessionmaker(engine, expire_on_commit=False)
    session = factory()
    try:
        yield session
        session.commit()
    except BaseException:
        session.rollback()
        raise
    finally:
        session.close()
