"""RELIABILITY 3, 5 and 7 under real faults: the `workflowbot worker` (Dramatiq's CLI) and
`workflowbot scheduler` run as processes with short leases while 500 enrollments go through
a 3-step webhook workflow, and the test crashes workers (SIGKILL of the process group it
started), flushes its own Redis database or cuts the processes' PostgreSQL connections
(`pg_terminate_backend` on their `application_name`, in the test database only). Every
enrollment completes, every step reaches the peer, and a repeat carries the same `webhook-id`.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import threading
import time
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import redis
from sqlalchemy import Engine, func, select, text

from engine.runtime import Runtime
from storage.db import session_scope
from storage.models import Account
from storage.workflow_models import Enrollment, EnrollmentLog, StepRun
from tests.conftest import REDIS_URL, REPO
from tests.engine.flow import Flow
from tests.sink import Received, Sink, webhook_sink

BIN = Path(sys.executable).parent
ENROLLMENTS = 500
STEPS = 3
LEASE_SECONDS = 5
# A run that has not completed by then fails, saying what the rows are doing.
RUN_TIMEOUT = 90.0
QUEUES = ("evaluate", "steps")
# Settings of the processes: short leases and recovery, the local sink allowed.
PROCESS_SETTINGS = {
    "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
    "STEP_LEASE_SECONDS": str(LEASE_SECONDS),
    "STEP_RETRY_SECONDS": "1",
    "OUTBOX_RECOVERY_SECONDS": "2",
    "dramatiq_worker_timeout": "100",
}
# Only the processes this test starts; `workflowbot-tests` (this process) is never cut.
CUT_CONNECTIONS = text(
    "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
    "WHERE datname = current_database() AND pid <> pg_backend_pid() "
    "AND (application_name LIKE 'workflowbot-worker%' "
    "OR application_name LIKE 'workflowbot-scheduler%')"
)


@pytest.fixture
def sink() -> Iterator[Sink]:
    with webhook_sink() as s:
        yield s


@dataclass
class Processes:
    """The worker and scheduler processes of one test, each in a process group of its own."""

    env: dict[str, str]
    logs: Path
    worker: subprocess.Popen[bytes] | None = None
    scheduler: subprocess.Popen[bytes] | None = None
    started: list[Path] = field(default_factory=list)

    def _start(self, *args: str) -> subprocess.Popen[bytes]:
        log = self.logs / f"{len(self.started) + 1:02d}-{args[0]}.log"
        self.started.append(log)
        with log.open("wb") as out:
            return subprocess.Popen(
                [str(BIN / "workflowbot"), *args],
                env=self.env,
                cwd=REPO,
                stdout=out,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )

    def start_worker(self) -> None:
        self.worker = self._start("worker", "--processes", "2", "--threads", "4")

    def start_scheduler(self) -> None:
        self.scheduler = self._start("scheduler", "--tick", "0.2")

    def kill_worker(self) -> None:
        """SIGKILL the worker's whole group (Dramatiq's CLI and the processes it forked); safe
        from another thread, as the group's leader is reaped only by `restart_worker`."""
        assert self.worker is not None
        _signal_group(self.worker, signal.SIGKILL)

    def restart_worker(self) -> None:
        assert self.worker is not None
        self.worker.wait(timeout=10)
        self.start_worker()

    def stop(self) -> None:
        """SIGTERM, then SIGKILL what has not stopped after a few seconds."""
        running = [p for p in (self.scheduler, self.worker) if p is not None]
        for proc in running:
            _signal_group(proc, signal.SIGTERM)
        deadline = time.monotonic() + 10
        for proc in running:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                _signal_group(proc, signal.SIGKILL)
                proc.wait(timeout=10)

    def tails(self, lines: int = 15) -> str:
        """The last lines of every process's log, for a failure message."""
        parts = []
        for log in self.started:
            said = log.read_text(errors="replace").splitlines()
            tail = [line for line in said if "HTTP Request:" not in line][-lines:]
            parts.append(f"--- {log.name}\n" + "\n".join(tail))
        return "\n".join(parts)


def _signal_group(proc: subprocess.Popen[bytes], signum: int) -> None:
    """Signal the group led by `proc`, a process this test started and has not reaped."""
    if proc.returncode is not None:
        return
    with contextlib.suppress(ProcessLookupError):
        os.killpg(proc.pid, signum)


@dataclass
class Run:
    """One run: 500 signups stored (not yet evaluated), the processes, the sink."""

    db: Engine
    sink: Sink
    procs: Processes
    outbox_ids: list[int]
    deadline: float = 0.0

    def begin(self) -> None:
        """Start the scheduler and the worker, and enqueue the evaluation of the signups."""
        from engine import tasks  # bound to the session's broker by the `rt` fixture

        self.deadline = time.monotonic() + RUN_TIMEOUT
        self.procs.start_scheduler()
        self.procs.start_worker()
        tasks.enqueue_evaluation(self.outbox_ids)

    def state(self) -> str:
        """Counts by status, for a failure message."""
        with session_scope(self.db) as s:
            enrolled = Counter(s.scalars(select(Enrollment.status)))
            steps = Counter(s.scalars(select(StepRun.status)))
        return (
            f"enrollments by status {dict(enrolled)}, step runs by status {dict(steps)}, "
            f"{len(self.sink.received)} requests received"
        )

    def completed(self) -> int:
        with session_scope(self.db) as s:
            return int(
                s.scalar(
                    select(func.count())
                    .select_from(Enrollment)
                    .where(Enrollment.status == "completed")
                )
                or 0
            )

    def claimed_since(self, since: datetime) -> bool:
        """Whether a step run was claimed after `since` and is running."""
        with session_scope(self.db) as s:
            return bool(
                s.scalar(
                    select(func.count())
                    .select_from(StepRun)
                    .where(
                        StepRun.status == "running",
                        StepRun.lease_until > since + timedelta(seconds=LEASE_SECONDS),
                    )
                )
            )

    def wait(self, what: str, predicate: Callable[[], bool]) -> None:
        """Poll until `predicate()`, or fail at the run's deadline saying what the rows are
        doing and what the processes said last."""
        while not predicate():
            if time.monotonic() > self.deadline:
                raise AssertionError(
                    f"{what}: not reached {RUN_TIMEOUT:.0f} s after the start; {self.state()}\n"
                    + self.procs.tails()
                )
            time.sleep(0.05)

    def wait_completed(self) -> None:
        self.wait(
            f"all {ENROLLMENTS} enrollments completed", lambda: self.completed() == ENROLLMENTS
        )


@pytest.fixture
def run(rt: Runtime, db: Engine, sink: Sink, tmp_path: Path) -> Iterator[Run]:
    """A live 3-step webhook workflow on `signup` and 500 signups stored through the
    ingestion path (`rt` emptied the test's Redis database); the processes are stopped after
    the test."""
    flow = Flow(rt)
    flow.workflow(
        name="Onboarding",
        trigger={"event": "signup"},
        steps=[{"action": "webhook", "url": f"{sink.url}/s{i + 1}"} for i in range(STEPS)],
    )
    calls: list[dict[str, Any]] = []
    for i in range(ENROLLMENTS):
        calls.append({"type": "group", "groupId": f"acct-{i}", "userId": f"user-{i}"})
        calls.append({"type": "track", "userId": f"user-{i}", "event": "signup"})
    outbox_ids = flow.send(*calls)
    env = {k: v for k, v in os.environ.items() if k not in ("DATABASE_URL", "REDIS_URL", "PORT")}
    env |= PROCESS_SETTINGS
    env |= {"DATABASE_URL": db.url.render_as_string(hide_password=False), "REDIS_URL": REDIS_URL}
    procs = Processes(env, tmp_path)
    try:
        yield Run(db, sink, procs, outbox_ids)
    finally:
        procs.stop()


def on_request(sink: Sink, action: Callable[[Received], None]) -> Callable[[int], None]:
    """Call `action(request)` in the sink's handler, before it answers, on the request counted
    `n` for each `n` armed with the returned function (a number already passed: the next)."""
    armed: set[int] = set()
    lock = threading.Lock()
    seen = 0

    def handle(got: Received) -> None:
        nonlocal seen
        with lock:
            seen += 1
            fire = seen in armed
            armed.discard(seen)
        if fire:
            action(got)

    sink.on_request = handle

    def arm(n: int) -> None:
        with lock:
            armed.add(max(n, seen + 1))

    return arm


def whole(request: Received) -> bool:
    """Whether the request arrived whole: a worker killed while sending leaves a torn one,
    which a receiver drops (its body is shorter than its Content-Length)."""
    return len(request.body) == int(request.headers.get("content-length", "-1"))


def assert_nothing_lost(run: Run) -> Counter[str]:
    """Every enrollment completed, every step done once (in its row and its timeline) and
    received by the sink, a repeat always with its step's `webhook-id`; returns how many times
    each `webhook-id` was received."""
    with session_scope(run.db) as s:
        enrolled = Counter(s.scalars(select(Enrollment.status)))
        rows = s.execute(
            select(StepRun.idempotency_key, StepRun.step_index, StepRun.status, Account.external_id)
            .join(Enrollment, Enrollment.id == StepRun.enrollment_id)
            .join(Account, Account.id == Enrollment.object_id)
        ).all()
        lines = Counter(
            (r.enrollment_id, r.kind, r.step_index)
            for r in s.execute(
                select(
                    EnrollmentLog.enrollment_id, EnrollmentLog.kind, EnrollmentLog.step_index
                ).where(EnrollmentLog.kind.in_(["run", "completed"]))
            )
        )
    assert enrolled == {"completed": ENROLLMENTS}, run.state()
    assert Counter(r.status for r in rows) == {"done": ENROLLMENTS * STEPS}, run.state()
    # Each timeline tells each step's run once and the completion once, repeats or not.
    assert Counter(kind for _, kind, _ in lines) == {
        "run": ENROLLMENTS * STEPS,
        "completed": ENROLLMENTS,
    }
    assert set(lines.values()) == {1}
    steps = {r.idempotency_key: (f"/s{r.step_index + 1}", r.external_id) for r in rows}
    with run.sink.lock:
        received = [
            (r.headers["webhook-id"], r.path, r.json["object"]["id"])
            for r in run.sink.received
            if whole(r)
        ]
    assert {key for key, _, _ in received} == set(steps)  # every step reached the sink
    ids_by_call: dict[tuple[str, str], set[str]] = defaultdict(set)
    for key, path, record in received:
        assert steps[key] == (path, record)  # one key: one step of one record
        ids_by_call[path, record].add(key)
    assert all(len(ids) == 1 for ids in ids_by_call.values())  # a repeat: the same key
    return Counter(key for key, _, _ in received)


def test_killed_workers_lose_nothing_and_a_repeat_carries_the_same_webhook_id(run: Run) -> None:
    """RELIABILITY 3 and 5: every worker process SIGKILLed after the peer received a call
    (before it answered), when a claim appears, and after a call again; each time restarted."""
    crashed_on: list[str] = []
    crashed = threading.Event()

    def crash(got: Received) -> None:
        run.procs.kill_worker()
        crashed_on.append(got.headers["webhook-id"])
        crashed.set()

    arm = on_request(run.sink, crash)
    arm(150)
    run.begin()
    run.wait("the sink's 150th request", crashed.is_set)
    crashed.clear()
    run.procs.restart_worker()
    restarted = datetime.now(UTC)
    run.wait("a claim by the restarted worker", lambda: run.claimed_since(restarted))
    run.procs.kill_worker()
    run.procs.restart_worker()
    arm(len(run.sink.received) + 300)
    run.wait("300 more requests", crashed.is_set)
    run.procs.restart_worker()
    run.wait_completed()
    received = assert_nothing_lost(run)
    # The calls cut short by a crash were made again, with the same id.
    assert [received[key] >= 2 for key in crashed_on] == [True, True]


def test_a_flushed_redis_loses_nothing(run: Run, redis_client: redis.Redis) -> None:
    """RELIABILITY 1 and 7: FLUSHDB of the test's Redis database twice mid-run (pending
    messages included); the scheduler requests again what the rows say is pending."""
    pending: list[int] = []

    def flush(_: Received) -> None:
        pending.append(sum(int(redis_client.llen(f"dramatiq:{q}")) for q in QUEUES))
        redis_client.flushdb()

    arm = on_request(run.sink, flush)
    arm(1)
    arm(700)
    run.begin()
    run.wait("two flushes", lambda: len(pending) == 2)
    run.wait_completed()
    assert_nothing_lost(run)
    assert pending[0] > 0  # messages were waiting when Redis was flushed


def test_cut_database_connections_lose_nothing(run: Run, db: Engine) -> None:
    """Every PostgreSQL connection of the worker and the scheduler terminated twice mid-run
    (transactions in flight included); they reconnect and nothing is lost."""
    cut: list[int] = []

    def terminate(_: Received) -> None:
        with db.connect() as conn:
            cut.append(int(conn.execute(CUT_CONNECTIONS).scalar_one()))
            conn.commit()

    arm = on_request(run.sink, terminate)
    arm(200)
    arm(900)
    run.begin()
    run.wait("two cuts", lambda: len(cut) == 2)
    run.wait_completed()
    assert_nothing_lost(run)
    assert all(n > 0 for n in cut), cut  # the processes' connections were there to cut
