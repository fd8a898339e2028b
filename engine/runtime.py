"""The process's wiring: settings, database engine, broker and clock, made once at start."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field

import dramatiq
from dramatiq.brokers.stub import StubBroker
from sqlalchemy import Engine

from engine.clock import Clock, SystemClock
from engine.http import Resolver, SystemResolver
from engine.rules import sqlite as rules_sqlite
from engine.settings import Settings
from storage.db import make_engine

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    settings: Settings
    db: Engine
    broker: dramatiq.Broker
    clock: Clock = field(default_factory=SystemClock)
    resolver: Resolver = field(default_factory=SystemResolver)


_current: Runtime | None = None


def init(
    settings: Settings,
    *,
    broker: dramatiq.Broker,
    application_name: str,
    db: Engine | None = None,
    clock: Clock | None = None,
) -> Runtime:
    """Make this process's runtime; actors and the scheduler find it through `get()`."""
    global _current
    if db is None:
        db = make_engine(settings.database_url, application_name=application_name)
        rules_sqlite.install(db)
    _current = Runtime(
        settings=settings,
        db=db,
        broker=broker,
        clock=clock or SystemClock(),
    )
    return _current


def get() -> Runtime:
    """The runtime made by `init`; refuses to guess one."""
    if _current is None:
        raise RuntimeError("engine.runtime.init() has not run in this process")
    return _current


def start_inprocess_worker(broker: dramatiq.Broker, *, threads: int = 4) -> dramatiq.Worker | None:
    """With the in-process broker, run a worker here so nothing enqueued is stranded."""
    if not isinstance(broker, StubBroker):
        return None
    worker = dramatiq.Worker(broker, worker_threads=threads, worker_timeout=100)
    worker.start()
    log.info("in-process worker started (no REDIS_URL)")
    return worker
