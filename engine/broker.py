"""Builds the Dramatiq broker from settings and sets it before any actor is declared.

The worker runs `dramatiq engine.broker:setup engine.tasks`; other processes call `setup`
themselves. Nothing here connects at import time, and Dramatiq's implicit default broker
is never used: importing `engine.tasks` before `setup` is an error.
"""

from __future__ import annotations

import sys

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from engine import runtime
from engine.settings import Settings, SettingsError, load

_configured: dramatiq.Broker | None = None


def build(settings: Settings) -> dramatiq.Broker:
    """Redis when REDIS_URL is set, else Dramatiq's in-process broker."""
    if settings.redis_url:
        return RedisBroker(url=settings.redis_url)
    return StubBroker()


def setup(
    settings: Settings | None = None, *, application_name: str = "workflowbot-worker"
) -> dramatiq.Broker:
    """Configure this process: settings, broker (set as Dramatiq's global) and runtime."""
    global _configured
    if settings is None:
        try:
            settings = load()
        except SettingsError as exc:
            sys.exit(f"workflowbot: {exc}")
    broker = build(settings)
    dramatiq.set_broker(broker)
    _configured = broker
    runtime.init(settings, broker=broker, application_name=application_name)
    return broker


def configured() -> dramatiq.Broker:
    """The broker `setup` made; raises if it has not run (never a silent default)."""
    if _configured is None:
        raise RuntimeError("engine.broker.setup() must run before engine.tasks is imported")
    return _configured


def ping(broker: dramatiq.Broker) -> None:
    """Raise if the broker cannot be reached (the in-process broker always can)."""
    if isinstance(broker, RedisBroker):
        broker.client.ping()
