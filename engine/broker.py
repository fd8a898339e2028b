"""Builds the Dramatiq broker from settings and sets it before any actor is declared.

The worker runs `dramatiq engine.broker:setup engine.tasks`; other processes call `setup`
themselves. Nothing here connects at import time, and Dramatiq's implicit default broker
is never used: importing `engine.tasks` before `setup` is an error.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from engine import runtime
from engine.settings import Settings, SettingsError, load

_configured: dramatiq.Broker | None = None
WORKER = "workflowbot-worker"  # the application name Dramatiq's worker processes run as


def build(settings: Settings) -> dramatiq.Broker:
    """Redis when REDIS_URL is set, RabbitMQ when RABBITMQ_URL is, else the in-process broker."""
    if settings.redis_url:
        return RedisBroker(url=settings.redis_url)
    if settings.rabbitmq_url:
        # Imported here: pika (dramatiq[rabbitmq]) is needed only by those who choose RabbitMQ.
        from dramatiq.brokers.rabbitmq import RabbitmqBroker

        # confirm_delivery: an enqueue returns once RabbitMQ has the message (and a deleted
        # queue is declared again), as a Redis LPUSH does.
        return RabbitmqBroker(url=settings.rabbitmq_url, confirm_delivery=True)
    return StubBroker()


def setting_name(settings: Settings) -> str | None:
    """The variable naming the configured broker, or None for the in-process one."""
    if settings.redis_url:
        return "REDIS_URL"
    if settings.rabbitmq_url:
        return "RABBITMQ_URL"
    return None


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
    if application_name == WORKER:
        _observe_worker(broker, settings)
    dramatiq.set_broker(broker)
    _configured = broker
    runtime.init(settings, broker=broker, application_name=application_name)
    return broker


def _observe_worker(broker: dramatiq.Broker, settings: Settings) -> None:
    """A Dramatiq worker process: JSON log lines if asked (Dramatiq set up logging before
    this runs), and with WORKER_METRICS_PORT Dramatiq's Prometheus middleware, whose HTTP
    server (on dramatiq_prom_port, set by `workflowbot worker`) sums every worker process's
    metrics, the engine's included: they go to the same multiprocess directory."""
    from engine import logs

    if settings.log_format == "json":
        logs.setup("json", secrets=logs.secrets_of(settings))
    if not settings.worker_metrics_port:
        return
    from dramatiq.middleware.prometheus import DB_PATH, Prometheus

    # Set before engine.metrics is imported (engine.tasks comes after this): prometheus_client
    # chooses multiprocess values when its first metric is made.
    os.environ.setdefault("PROMETHEUS_MULTIPROC_DIR", DB_PATH)
    broker.add_middleware(Prometheus())


def configured() -> dramatiq.Broker:
    """The broker `setup` made; raises if it has not run (never a silent default)."""
    if _configured is None:
        raise RuntimeError("engine.broker.setup() must run before engine.tasks is imported")
    return _configured


def ping(broker: dramatiq.Broker, *, timeout: float | None = None) -> None:
    """Raise if the broker cannot be reached (the in-process broker always can); `timeout`
    bounds the attempt on a connection of its own (else the broker's own client is used)."""
    if isinstance(broker, RedisBroker):
        if timeout is None:
            broker.client.ping()
            return
        pool: Any = broker.client.connection_pool
        kwargs = {**pool.connection_kwargs, "socket_timeout": timeout}
        kwargs["socket_connect_timeout"] = timeout
        client = type(broker.client)(connection_pool=type(pool)(pool.connection_class, **kwargs))
        try:
            client.ping()
        finally:
            client.close()
        return
    if type(broker).__name__ == "RabbitmqBroker":
        _ping_rabbitmq(broker, timeout if timeout is not None else 10.0)


def _ping_rabbitmq(broker: Any, timeout: float) -> None:
    """Open and close one AMQP connection with the broker's parameters."""
    import copy

    import pika

    params = broker.parameters if isinstance(broker.parameters, list) else [broker.parameters]
    tries = []
    for given in params:
        one = copy.copy(given)
        one.connection_attempts, one.retry_delay = 1, 0
        one.socket_timeout = one.stack_timeout = one.blocked_connection_timeout = timeout
        tries.append(one)
    connection = pika.BlockingConnection(tries)
    connection.close()
