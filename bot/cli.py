"""The `workflowbot` command: run everything, or one process of the Procfile, and tools."""

from __future__ import annotations

import logging
import os
import secrets
import signal
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from bot import (
    cli_control,
    cli_demo,
    cli_doctor,
    cli_drafts,
    cli_prune,
    cli_records,
    cli_stats,
    cli_users,
    cli_workflows,
    cli_workspace,
    importer,
)
from bot.cli_common import connect, fail, first_line, load_settings, safe_url, setup_logging
from engine.settings import Settings

log = logging.getLogger("workflowbot")


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="workflowbot")
def main() -> None:
    """Workflow Bot: customer-success workflows run from Slack.

    Settings come from the environment (see the README). With none at all, `workflowbot run`
    uses an SQLite file in this folder and an in-process broker.
    """


@main.command()
@click.option("--port", type=int, default=None, help="Port to listen on  [default: $PORT or 8000]")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("-v", "--verbose", is_flag=True, help="Debug logging.")
def run(port: int | None, host: str, verbose: bool) -> None:
    """Run web, worker and scheduler in one process (a laptop, a demo, a small team)."""
    setup_logging(verbose)
    settings = load_settings()
    port = port or settings.port
    if not settings.ingest_write_keys:
        key = "wk_" + secrets.token_urlsafe(18)
        settings = settings.model_copy(update={"ingest_write_keys": [key]})
        click.echo(f"No INGEST_WRITE_KEYS set; this run accepts the write key: {key}")
    if settings.slack_bot_token and not settings.slack_signing_secret:
        fail("SLACK_SIGNING_SECRET: required when SLACK_BOT_TOKEN is set")
    _upgrade(settings)
    rt = connect(settings, "workflowbot-run")

    import dramatiq

    from engine import tasks
    from engine.scheduler import Scheduler

    worker = dramatiq.Worker(rt.broker, worker_threads=4, worker_timeout=100)
    worker.start()
    stop = threading.Event()
    scheduler = Scheduler(
        rt,
        enqueue=tasks.enqueue_evaluation,
        enqueue_steps=tasks.enqueue_steps,
        steps_waiting=tasks.steps_waiting,
    )
    thread = threading.Thread(target=scheduler.run, args=(stop,), name="scheduler", daemon=True)
    thread.start()
    key = settings.ingest_write_keys[0]
    click.echo(
        f"Workflow Bot is running on http://{host}:{port}  (database: {safe_url(settings)})\n"
        f"Send events:  curl -u {key}: http://{host}:{port}/v1/track "
        '-H "Content-Type: application/json" -d \'{"userId":"u1","event":"login"}\''
    )
    try:
        _serve(rt, host=host, port=port, inprocess_worker=False, enqueue=tasks.enqueue_evaluation)
    finally:
        stop.set()
        thread.join(10)
        worker.stop()


def _upgrade(settings: Settings) -> None:
    from storage import migrate
    from storage.db import make_engine

    logging.getLogger("alembic").setLevel(logging.WARNING)  # `run` says what matters itself

    engine = make_engine(settings.database_url, application_name="workflowbot-migrate")
    try:
        migrate.upgrade(engine)
    except Exception as exc:
        fail(f"DATABASE_URL: migration failed ({type(exc).__name__}: {first_line(exc)})")
    finally:
        engine.dispose()


def _serve(
    rt: Any,
    *,
    host: str,
    port: int,
    inprocess_worker: bool,
    enqueue: Callable[..., None],
) -> None:
    import uvicorn

    from bot.web import create_web_app

    app = create_web_app(rt, enqueue=enqueue, inprocess_worker=inprocess_worker)
    config = uvicorn.Config(app, host=host, port=port, access_log=False, log_level="info")
    # uvicorn shuts down gracefully on SIGTERM/SIGINT and then re-raises the signal to the
    # handler in place before it; a no-op handler there lets us finish cleanly with exit 0.
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: None)
    uvicorn.Server(config).run()


@main.command()
@click.option("--port", type=int, default=None, help="Port to listen on  [default: $PORT or 8000]")
@click.option("--host", default="0.0.0.0", show_default=True, help="Address to listen on.")
def web(port: int | None, host: str) -> None:
    """The web process: Slack endpoint, ingestion API, /healthz and /readyz on $PORT."""
    setup_logging()
    settings = load_settings()
    port = port or settings.port
    if not settings.ingest_write_keys:
        fail("INGEST_WRITE_KEYS: required by the web process (comma-separated write keys)")
    if settings.slack_bot_token and not settings.slack_signing_secret:
        fail("SLACK_SIGNING_SECRET: required when SLACK_BOT_TOKEN is set")
    rt = connect(settings, "workflowbot-web")
    from engine import tasks

    _serve(rt, host=host, port=port, inprocess_worker=True, enqueue=tasks.enqueue_evaluation)


@main.command()
@click.option("--processes", "-p", type=int, default=1, show_default=True)
@click.option("--threads", "-t", type=int, default=8, show_default=True)
def worker(processes: int, threads: int) -> None:
    """The worker process: Dramatiq workers on Redis (stops cleanly on SIGTERM)."""
    settings = load_settings()
    if not (settings.redis_url or settings.rabbitmq_url):
        fail(
            "REDIS_URL (or RABBITMQ_URL): required by a separate worker process "
            "(without Redis, `workflowbot run` and `web` run their own in-process worker)"
        )
    connect(settings, "workflowbot-worker")
    env = {
        **os.environ,
        # Dramatiq's own (lower-case) variable: poll every 100 ms so a lone event is not late.
        "dramatiq_worker_timeout": os.environ.get("dramatiq_worker_timeout", "100"),  # noqa: SIM112
        # glibc gives each thread's allocations their own arena; two keep 8 threads' freed
        # memory from piling up in eight (the usual advice for threaded Python servers).
        "MALLOC_ARENA_MAX": os.environ.get("MALLOC_ARENA_MAX", "2"),
        **_worker_metrics_env(settings),
    }
    argv = [
        sys.executable, "-m", "dramatiq", "engine.broker:setup", "engine.tasks",
        "--processes", str(processes), "--threads", str(threads),
    ]  # fmt: skip
    os.execvpe(sys.executable, argv, env)


def _worker_metrics_env(settings: Settings) -> dict[str, str]:
    """Dramatiq's Prometheus middleware (engine.broker) serves on WORKER_METRICS_PORT what
    every worker process wrote to one multiprocess directory, emptied here at start (its files
    would carry the last run's counts)."""
    if not settings.worker_metrics_port:
        return {}
    import tempfile

    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR") or os.path.join(
        tempfile.gettempdir(), f"workflowbot-metrics-{settings.worker_metrics_port}"
    )
    os.makedirs(folder, exist_ok=True)
    for name in os.listdir(folder):
        if name.endswith(".db"):
            os.remove(os.path.join(folder, name))
    return {
        "PROMETHEUS_MULTIPROC_DIR": folder,
        "dramatiq_prom_db": folder,
        "dramatiq_prom_port": str(settings.worker_metrics_port),
    }


@main.command()
@click.option("--tick", type=float, default=1.0, show_default=True, help="Seconds between rounds.")
def scheduler(tick: float) -> None:
    """The scheduler process: one loop of due work and recovery (stops cleanly on SIGTERM)."""
    setup_logging()
    settings = load_settings()
    rt = connect(settings, "workflowbot-scheduler")
    from engine import runtime, tasks
    from engine.scheduler import Scheduler

    worker = runtime.start_inprocess_worker(rt.broker)
    if settings.scheduler_metrics_port:  # its lag, alerts, refresh signals (README)
        import prometheus_client

        prometheus_client.start_http_server(settings.scheduler_metrics_port)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    Scheduler(
        rt,
        enqueue=tasks.enqueue_evaluation,
        enqueue_steps=tasks.enqueue_steps,
        steps_waiting=tasks.steps_waiting,
        tick_seconds=tick,
    ).run(stop)
    if worker is not None:
        worker.stop()


@main.command()
def socket() -> None:
    """Serve the Slack app over Socket Mode (SLACK_APP_TOKEN) instead of a public
    /slack/events URL; stops cleanly on SIGTERM."""
    setup_logging()
    settings = load_settings()
    if not settings.slack_app_token:
        fail(
            "SLACK_APP_TOKEN: required by `workflowbot socket` (an app-level token, xapp-…, "
            "with the connections:write scope; see the README, Slack app)"
        )
    if not settings.slack_bot_token:
        fail("SLACK_BOT_TOKEN: required by `workflowbot socket` (the bot token, xoxb-…)")
    rt = connect(settings, "workflowbot-socket")
    from slack_bolt.adapter.socket_mode import SocketModeHandler

    from bot.app import create_app
    from engine import runtime

    worker = runtime.start_inprocess_worker(rt.broker)
    handler = SocketModeHandler(create_app(settings, rt=rt), settings.slack_app_token)
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    handler.connect()
    click.echo("Workflow Bot is connected to Slack over Socket Mode")
    stop.wait()
    handler.close()
    if worker is not None:
        worker.stop()


@main.group()
def db() -> None:
    """Database schema (Alembic is the only way it is made)."""


@db.command("upgrade")
@click.argument("revision", default="head")
def db_upgrade(revision: str) -> None:
    """Migrate DATABASE_URL to REVISION (default: head)."""
    settings = load_settings()
    from storage import migrate
    from storage.db import make_engine

    engine = make_engine(settings.database_url, application_name="workflowbot-migrate")
    try:
        migrate.upgrade(engine, revision)
        click.echo(f"database at {migrate.current(engine)} ({safe_url(settings)})")
    except Exception as exc:
        fail(f"DATABASE_URL: migration failed ({type(exc).__name__}: {first_line(exc)})")
    finally:
        engine.dispose()


@main.command("import", help=importer.HELP)
@click.argument("kind", type=click.Choice(["accounts", "contacts", "events"]))
@click.argument("file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--format",
    "fmt",
    type=click.Choice(["csv", "jsonl"]),
    help="The file's format (default: from its extension, .csv, .jsonl or .ndjson).",
)
@click.option("--skip-invalid", is_flag=True, help="Write the valid rows even if some are invalid.")
@click.option("--no-signals", is_flag=True, help="A backfill: store the data, fire no workflow.")
@click.option(
    "--batch-size",
    type=click.IntRange(1, 100_000),
    default=1000,
    show_default=True,
    help="Rows per committed transaction.",
)
def import_(
    kind: str, file: Path, fmt: str | None, skip_invalid: bool, no_signals: bool, batch_size: int
) -> None:
    """`workflowbot import`; its help text is `bot.importer.HELP`."""
    settings = load_settings()
    rt = connect(settings, "workflowbot-import")
    from engine import tasks

    try:
        status = importer.run(
            rt,
            path=file,
            kind=kind,
            fmt=fmt,
            skip_invalid=skip_invalid,
            signals=not no_signals,
            batch_size=batch_size,
            # Without Redis nobody would consume the in-process queue: `run` recovers the outbox.
            enqueue=tasks.enqueue_evaluation
            if settings.redis_url or settings.rabbitmq_url
            else _leave_to_recovery,
        )
    finally:
        rt.db.dispose()
    sys.exit(status)


def _leave_to_recovery(outbox_ids: list[int]) -> None:
    """Enqueue nothing: the scheduler of a running process re-enqueues unprocessed outbox rows."""


main.add_command(cli_workspace.apply)
main.add_command(cli_workspace.segments)
main.add_command(cli_workspace.signals)
main.add_command(cli_workflows.validate)
main.add_command(cli_workflows.export)
main.add_command(cli_workflows.workflows_group)
main.add_command(cli_records.suppress)
main.add_command(cli_records.records)
main.add_command(cli_drafts.drafts)
main.add_command(cli_users.users)
main.add_command(cli_control.logs)
main.add_command(cli_control.enroll)
main.add_command(cli_control.enrollments)
main.add_command(cli_control.pause_all)
main.add_command(cli_control.resume_all)
main.add_command(cli_stats.stats_command)
main.add_command(cli_stats.report_command)
main.add_command(cli_doctor.doctor)
main.add_command(cli_prune.prune_command)
main.add_command(cli_demo.demo)
