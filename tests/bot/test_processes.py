"""The Procfile's processes and `workflowbot run` start, do their work and stop on SIGTERM."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import httpx
import pytest
from sqlalchemy import Engine, func, insert, select

from storage.db import make_engine, session_scope
from storage.models import Event, OutboxRow, Signal
from tests.conftest import REDIS_URL, REPO
from tests.helpers import free_port, wait_until

BIN = Path(sys.executable).parent
SETTINGS = ("DATABASE_URL", "REDIS_URL", "INGEST_WRITE_KEYS", "PORT", "SLACK_BOT_TOKEN")


def clean_env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    return {**env, **extra}


def start(args: list[str], *, env: dict[str, str], cwd: Path) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [str(BIN / "workflowbot"), *args],
        env=env,
        cwd=cwd,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )


def stop(proc: subprocess.Popen[str], timeout: float = 20) -> tuple[int, str]:
    proc.send_signal(signal.SIGTERM)
    out, _ = proc.communicate(timeout=timeout)
    return proc.returncode, out


def wait_http(url: str, proc: subprocess.Popen[str], timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise AssertionError(
                f"process exited early:\n{proc.stdout.read() if proc.stdout else ''}"
            )
        try:
            if httpx.get(url, timeout=1).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.1)
    raise AssertionError(f"{url} never answered")


def unprocessed(engine: Engine) -> int:
    with session_scope(engine) as s:
        return int(s.scalar(select(func.count()).where(OutboxRow.processed_at.is_(None))) or 0)


def test_run_needs_no_setting_at_all(tmp_path: Path) -> None:
    port = free_port()
    proc = start(["run", "--port", str(port)], env=clean_env(), cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        key = ""
        assert proc.stdout is not None
        while not key:
            line = proc.stdout.readline()
            match = re.search(r"write key: (\S+)", line)
            key = match.group(1) if match else ""
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/track",
            json={"userId": "u1", "event": "login"},
            auth=(key, ""),
        )
        assert r.status_code == 200, r.text
        assert httpx.post(f"http://127.0.0.1:{port}/v1/track", json={}).status_code == 401
        engine = make_engine(f"sqlite:///{tmp_path / 'workflowbot.db'}")
        try:
            wait_until(lambda: unprocessed(engine) == 0)  # the in-process worker ran
            with session_scope(engine) as s:
                assert s.scalar(select(func.count()).select_from(Event)) == 1
        finally:
            engine.dispose()
    finally:
        code, out = stop(proc)
    assert code == 0, out


def test_run_without_redis_evaluates_what_an_import_committed(tmp_path: Path) -> None:
    """The embedded default end to end: a segment applied from a file, an import by another
    process (no Redis to tell anyone), and `run` finds the rows itself and signals."""
    workflows = tmp_path / "workspace.yaml"
    workflows.write_text(
        "version: 1\nsegments:\n  - name: Trials\n    object: account\n"
        "    rule: 'plan = \"trial\"'\n",
        encoding="utf-8",
    )
    accounts = tmp_path / "accounts.csv"
    accounts.write_text("id,plan\nacme,trial\nglobex,pro\n", encoding="utf-8")
    port = free_port()
    proc = start(["run", "--port", str(port)], env=clean_env(), cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        for args in (["apply", str(workflows)], ["import", "accounts", str(accounts)]):
            done = subprocess.run(
                [str(BIN / "workflowbot"), *args], env=clean_env(), cwd=tmp_path,
                capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
        engine = make_engine(f"sqlite:///{tmp_path / 'workflowbot.db'}")
        try:
            wait_until(lambda: unprocessed(engine) == 0, timeout=20)
            with session_scope(engine) as s:
                kinds = list(s.scalars(select(Signal.kind)))
            assert kinds == ["segment_enter"]  # acme entered Trials
        finally:
            engine.dispose()
    finally:
        code, out = stop(proc)
    assert code == 0, out


def test_run_on_sqlite_runs_a_workflow_end_to_end(tmp_path: Path) -> None:
    """The single-process path: a live workflow applied by another process, an event over
    HTTP, and `run` enrolls, queues the step in process and the webhook reaches the peer."""
    from tests.sink import webhook_sink

    with webhook_sink() as sink:
        workspace = tmp_path / "workspace.yaml"
        workspace.write_text(
            "version: 1\nworkflows:\n  - name: Signups\n    object: contact\n"
            "    trigger: {event: signup}\n    status: live\n    steps:\n"
            f"      - action: webhook\n        url: '{sink.url}/hook'\n",
            encoding="utf-8",
        )
        env = clean_env(WEBHOOK_ALLOWED_HOSTS="127.0.0.1", INGEST_WRITE_KEYS="k1")
        port = free_port()
        proc = start(["run", "--port", str(port)], env=env, cwd=tmp_path)
        try:
            wait_http(f"http://127.0.0.1:{port}/readyz", proc)
            done = subprocess.run(
                [str(BIN / "workflowbot"), "apply", str(workspace), "--yes"], env=env,
                cwd=tmp_path, capture_output=True, text=True, timeout=60,
            )  # fmt: skip
            assert done.returncode == 0, done.stdout + done.stderr
            r = httpx.post(
                f"http://127.0.0.1:{port}/v1/track",
                json={"userId": "ada", "event": "signup"},
                auth=("k1", ""),
            )
            assert r.status_code == 200, r.text
            wait_until(lambda: len(sink.received) == 1, timeout=20)
            assert sink.received[0].path == "/hook"
            assert sink.received[0].json["event"]["name"] == "signup"
        finally:
            code, out = stop(proc)
        assert code == 0, out


def test_run_on_postgresql_and_redis(db: Engine, tmp_path: Path) -> None:
    port = free_port()
    url = db.url.render_as_string(hide_password=False)
    env = clean_env(DATABASE_URL=url, REDIS_URL=REDIS_URL, INGEST_WRITE_KEYS="k1")
    proc = start(["run", "--port", str(port)], env=env, cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/readyz", proc)
        r = httpx.post(
            f"http://127.0.0.1:{port}/v1/identify",
            json={"userId": "u1", "traits": {"plan": "pro"}},
            headers={"Authorization": "Bearer k1"},
        )
        assert r.status_code == 200
        wait_until(lambda: unprocessed(db) == 0)
    finally:
        code, out = stop(proc)
    assert code == 0, out


@pytest.mark.parametrize(
    ("args", "env", "variable"),
    [
        (["web"], {}, "INGEST_WRITE_KEYS"),
        (["web"], {"INGEST_WRITE_KEYS": "k", "SLACK_BOT_TOKEN": "t"}, "SLACK_SIGNING_SECRET"),
        (["web"], {"INGEST_WRITE_KEYS": "k", "DATABASE_URL": "mysql://x/y"}, "DATABASE_URL"),
        (
            ["web"],
            {"INGEST_WRITE_KEYS": "k", "DATABASE_URL": "postgresql://postgres@127.0.0.1:1/x"},
            "DATABASE_URL",
        ),
        (
            ["web"],
            {"INGEST_WRITE_KEYS": "k", "DATABASE_URL": "sqlite:///never-migrated.db"},
            "DATABASE_URL",
        ),
        (["worker"], {}, "REDIS_URL"),
        (["run"], {"REDIS_URL": "redis://127.0.0.1:1/0"}, "REDIS_URL"),
        (["run"], {"PORT": "http"}, "PORT"),
    ],
)
def test_a_missing_or_wrong_setting_stops_the_process_with_one_line(
    tmp_path: Path, args: list[str], env: dict[str, str], variable: str
) -> None:
    done = subprocess.run(
        [str(BIN / "workflowbot"), *args],
        env=clean_env(**env),
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode != 0
    lines = [line for line in done.stderr.splitlines() if line.startswith("workflowbot:")]
    assert len(lines) == 1 and variable in lines[0], done.stderr


@pytest.fixture
def pg_env(db: Engine) -> Iterator[dict[str, str]]:
    yield clean_env(
        DATABASE_URL=db.url.render_as_string(hide_password=False),
        REDIS_URL=REDIS_URL,
        INGEST_WRITE_KEYS="k1",
    )


def _stale_rows(db: Engine, n: int) -> None:
    old = datetime.now(UTC) - timedelta(hours=1)
    with session_scope(db) as s:
        s.execute(
            insert(OutboxRow),
            [
                {"event_ids": [i], "signals": True, "created_at": old, "enqueued_at": old}
                for i in range(n)
            ],
        )


def test_worker_and_scheduler_processes_recover_and_process_outbox_rows(
    db: Engine, rt: Any, pg_env: dict[str, str], tmp_path: Path
) -> None:
    _stale_rows(db, 3)  # written, but their message never reached Redis
    worker = start(["worker", "--processes", "1", "--threads", "2"], env=pg_env, cwd=REPO)
    scheduler = start(["scheduler", "--tick", "0.2"], env=pg_env, cwd=REPO)
    try:
        wait_until(lambda: unprocessed(db) == 0, timeout=30)
    finally:
        results = [stop(scheduler), stop(worker, timeout=40)]
    for code, out in results:
        assert code == 0, out


def test_web_process_serves_on_port(pg_env: dict[str, str], tmp_path: Path) -> None:
    port = free_port()
    proc = start(["web"], env={**pg_env, "PORT": str(port)}, cwd=tmp_path)
    try:
        wait_http(f"http://127.0.0.1:{port}/healthz", proc)
        assert httpx.get(f"http://127.0.0.1:{port}/readyz").json()["ready"] is True
    finally:
        code, out = stop(proc)
    assert code == 0, out


def test_every_command_has_help() -> None:
    commands = [[], ["run"], ["web"], ["worker"], ["scheduler"], ["db"], ["db", "upgrade"]]
    for args in commands:
        done = subprocess.run(
            [str(BIN / "workflowbot"), *args, "--help"], capture_output=True, text=True
        )
        assert done.returncode == 0 and "Usage:" in done.stdout, (args, done.stderr)


def test_procfile_names_the_four_processes() -> None:
    lines = dict(
        line.split(":", 1) for line in (REPO / "Procfile").read_text().splitlines() if line.strip()
    )
    assert set(lines) == {"release", "web", "worker", "scheduler"}
    assert lines["release"].strip() == "alembic upgrade head"
