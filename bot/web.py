"""The web process's Starlette app: ingestion API, /healthz and /readyz, email tracking, and
Slack's /slack/events when SLACK_BOT_TOKEN is set.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable, Sequence

from sqlalchemy import text
from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bot import email_web, ingest_api, oauth_web, reports_web, slack_web
from engine import broker as broker_mod
from engine import lifecycle
from engine import runtime as runtime_mod
from engine.ingest.writer import IngestWriter
from engine.runtime import Runtime

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

    routes = [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/readyz", readyz, methods=["GET"]),
        *ingest_api.make_routes(
            writer=writer, write_keys=rt.settings.ingest_write_keys, stages=stages
        ),
        *oauth_web.make_routes(rt),
        *email_web.make_routes(rt),
        *reports_web.make_routes(rt),
        *(slack_web.make_routes(rt) if rt.settings.slack_bot_token else []),
    ]
    return Starlette(routes=routes, lifespan=lifespan)


def _ping_database(rt: Runtime) -> None:
    with rt.db.connect() as conn:
        conn.execute(text("SELECT 1"))
