"""The web process's Starlette app: ingestion API, /healthz and /readyz, /metrics
(Prometheus), email tracking, and Slack's /slack/events when SLACK_BOT_TOKEN is set.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator, Sequence

import prometheus_client
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest, multiprocess
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp, Receive, Scope, Send

from bot import email_web, ingest_api, oauth_web, reports_web, slack_web
from engine import broker as broker_mod
from engine import lifecycle, logs
from engine import runtime as runtime_mod
from engine.ingest.writer import IngestWriter
from engine.runtime import Runtime
from storage.db import session_scope
from storage.queries import alerts

log = logging.getLogger(__name__)


def create_web_app(
    rt: Runtime,
    *,
    enqueue: Callable[[Sequence[int]], None],
    inprocess_worker: bool = True,
) -> Starlette:
    """Build the app; its lifespan starts the ingest writer (and, with no REDIS_URL, a worker)."""
    writer = IngestWriter(rt.db, clock=rt.clock, on_commit=lambda ids: enqueue(ids))
    stages = lifecycle.StageCache(lambda: lifecycle.load_stages(rt.db), clock=rt.clock)

    @contextlib.asynccontextmanager
    async def lifespan(_app: Starlette) -> AsyncIterator[None]:
        worker = runtime_mod.start_inprocess_worker(rt.broker) if inprocess_worker else None
        writer.start()
        try:
            yield
        finally:
            writer.stop()
            if worker is not None:
                worker.stop()

    async def healthz(_request: Request) -> JSONResponse:
        return JSONResponse({"status": "ok"})

    async def readyz(_request: Request) -> JSONResponse:
        checks = {"database": "ok", "broker": "ok"}
        try:
            await run_in_threadpool(_ping_database, rt)
        except Exception as exc:
            checks["database"] = f"unreachable: {type(exc).__name__}"
        try:
            await run_in_threadpool(broker_mod.ping, rt.broker)
        except Exception as exc:
            checks["broker"] = f"unreachable: {type(exc).__name__}"
        ready = all(value == "ok" for value in checks.values())
        return JSONResponse({"ready": ready, **checks}, 200 if ready else 503)

    async def metrics(_request: Request) -> Response:
        body = await run_in_threadpool(exposition, rt)
        return Response(body, media_type=CONTENT_TYPE_LATEST)

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        *ingest_api.make_routes(
            writer=writer, write_keys=rt.settings.ingest_write_keys, stages=stages
        ),
        *oauth_web.make_routes(rt),
        *email_web.make_routes(rt),
        *reports_web.make_routes(rt),
        *(slack_web.make_routes(rt) if rt.settings.slack_bot_token else []),
    ]
    app = Starlette(routes=routes, lifespan=lifespan)
    app.add_middleware(RequestIds)
    return app


class RequestIds:
    """ASGI middleware: every line logged while serving a request carries its `request_id`
    (the caller's X-Request-Id when it is a plain id, else a fresh one)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        given = dict(scope.get("headers") or ()).get(b"x-request-id", b"").decode("latin-1")
        with logs.log_context(request_id=given if logs.is_id(given) else uuid.uuid4().hex):
            await self.app(scope, receive, send)


def exposition(rt: Runtime) -> bytes:
    """Prometheus text: this process's metrics (every process's, in multiprocess mode) and
    the figures read from the database on each scrape: step runs due and not dispatched."""
    registry = prometheus_client.REGISTRY
    if "PROMETHEUS_MULTIPROC_DIR" in os.environ:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    database = CollectorRegistry()
    database.register(_Overdue(rt))
    return generate_latest(registry) + generate_latest(database)


class _Overdue(Collector):
    """Step runs due and not yet dispatched (the scheduler's backlog), read on scrape with
    one count over the partial index of scheduled steps."""

    def __init__(self, rt: Runtime) -> None:
        self._rt = rt

    def collect(self) -> Iterator[GaugeMetricFamily]:
        now = self._rt.clock.now()
        with session_scope(self._rt.db) as session:
            count, oldest = alerts.overdue(session, now=now)
        yield GaugeMetricFamily(
            "workflowbot_steps_overdue", "Step runs due and not yet dispatched.", value=count
        )
        age = (now - oldest).total_seconds() if oldest is not None else 0.0
        yield GaugeMetricFamily(
            "workflowbot_steps_overdue_oldest_seconds",
            "How long the oldest due step run has waited for dispatch.",
            value=age,
        )


def _ping_database(rt: Runtime) -> None:
    with rt.db.connect() as conn:
        conn.execute(text("SELECT 1"))
