"""GET /metrics on the web process answers Prometheus text that prometheus_client's parser
reads, with the engine's counters moving as steps run through the engine and the
database-derived backlog; the worker process serves its own (Dramatiq's middleware)."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import Engine

from engine.runtime import Runtime
from tests.conftest import REDIS_URL, REPO, LiveServer, ManualClock
from tests.engine.flow import Flow
from tests.helpers import free_port
from tests.sink import Sink

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]


def scrape(url: str) -> Samples:
    """Every sample of GET `url`, parsed as Prometheus text, by (name, sorted labels)."""
    response = httpx.get(url, timeout=10)
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    found: Samples = {}
    for family in text_string_to_metric_families(response.text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(samples: Samples, name: str, **labels: str) -> float:
    return samples.get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def flow(rt: Runtime) -> Flow:
    rt.clock = ManualClock()
    rt.settings = rt.settings.model_copy(update={"webhook_allowed_hosts": ["127.0.0.1"]})
    return Flow(rt)


def test_metrics_parse_and_count_step_outcomes_signals_and_scheduler_lag(
    flow: Flow, sink: Sink, live_api: LiveServer
) -> None:
    url = f"{live_api.url}/metrics"
    before = scrape(url)  # counters are this process's: compare differences
    flow.workflow(
        name="Hooks",
        trigger={"event": "login"},
        steps=[
            {"action": "webhook", "url": f"{sink.url}/a"},
            {"action": "webhook", "url": f"{sink.url}/b", "delay": "1h"},
        ],
    )
    sink.answers = [(200, {}), (200, {}), (500, {})]  # a's twice; b's first call fails
    for user in ("ada", "bob"):
        flow.group(f"acct-{user}", user)
        flow.track(user, "login")
    flow.evaluate()
    flow.run()
    flow.rt.clock.advance(hours=1, minutes=5)  # type: ignore[attr-defined]
    middle = scrape(url)
    assert value(middle, "workflowbot_steps_overdue") == 2  # both b steps, due 5 min ago
    assert value(middle, "workflowbot_steps_overdue_oldest_seconds") >= 300
    flow.run()
    after = scrape(url)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("workflowbot_step_runs_total", action="webhook", outcome="done") == 3
    assert moved("workflowbot_step_runs_total", action="webhook", outcome="retry") == 1
    assert moved("workflowbot_step_run_seconds_count", action="webhook") == 4
    assert moved("workflowbot_signals_total", kind="event") >= 2
    assert moved("workflowbot_enrollments_total", source="signal") == 2
    # the two b steps were dispatched by the scheduler 5 minutes late
    assert moved("workflowbot_scheduler_lag_seconds_count") == 2
    assert moved("workflowbot_scheduler_lag_seconds_bucket", le="60.0") == 0
    assert moved("workflowbot_scheduler_lag_seconds_bucket", le="900.0") == 2
    assert value(after, "workflowbot_steps_overdue") == 0


def test_a_request_id_header_is_kept_and_a_bad_one_replaced(live_api: LiveServer) -> None:
    for given in ("req-123", "bad id with spaces", "x" * 500):
        response = httpx.get(f"{live_api.url}/healthz", headers={"X-Request-Id": given})
        assert response.status_code == 200


@pytest.fixture
def worker_metrics(db: Engine, rt: Runtime, tmp_path: Path) -> Iterator[str]:
    """`workflowbot worker` on the test database with WORKER_METRICS_PORT on a free port."""
    port = free_port()
    env = {
        "PATH": str(Path(sys.executable).parent),
        "DATABASE_URL": db.url.render_as_string(hide_password=False),
        "REDIS_URL": REDIS_URL,
        "WORKER_METRICS_PORT": str(port),
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "metrics"),
        "dramatiq_prom_host": "127.0.0.1",
    }
    proc = subprocess.Popen(
        [str(Path(sys.executable).parent / "workflowbot"), "worker", "-p", "2", "-t", "1"],
        env=env,
        cwd=REPO,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    try:
        yield f"http://127.0.0.1:{port}/"
    finally:
        proc.terminate()
        out, _ = proc.communicate(timeout=40)
        assert proc.returncode == 0, out


def test_the_worker_serves_dramatiq_and_engine_metrics_from_all_its_processes(
    flow: Flow, sink: Sink, worker_metrics: str
) -> None:
    import time

    from engine import tasks

    flow.workflow(
        name="Hooks",
        trigger={"event": "login"},
        steps=[{"action": "webhook", "url": f"{sink.url}/a"}],
    )
    users = ["ada", "bob", "cy", "dee"]
    for user in users:
        flow.group(f"acct-{user}", user)
        flow.track(user, "login")
    flow.evaluate()
    for step_id in flow.pending:  # one message each, over Redis: both processes take some
        tasks.run_steps.send([step_id])
    deadline = time.monotonic() + 60
    samples: Samples = {}
    while time.monotonic() < deadline:
        try:
            samples = scrape(worker_metrics)
        except httpx.TransportError:
            samples = {}
        if value(samples, "workflowbot_step_runs_total", action="webhook", outcome="done") == 4:
            break
        time.sleep(0.2)
    done = value(samples, "workflowbot_step_runs_total", action="webhook", outcome="done")
    assert done == 4, sorted(k for k in samples if k[0].startswith("workflowbot"))
    assert len(sink.received) == 4
    messages = value(samples, "dramatiq_messages_total", queue_name="steps", actor_name="run_steps")
    assert messages >= 1
