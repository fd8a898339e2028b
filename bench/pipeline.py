"""Pipeline benchmark: events in through /v1/batch, out as webhooks to a local sink.

    .venv/bin/python bench/pipeline.py [--events 20000] [--half-seconds 15] [--due-steps 100000]

Starts the three Procfile processes itself, `workflowbot web` (on a free port), `workflowbot
worker --processes 2 --threads 8` and `workflowbot scheduler`, on its own database
(`workflowbot_bench_pipeline`, dropped, created and migrated; emptied between phases) and its
own Redis db (flushed at start and end). A sink process (a minimal asyncio HTTP/1.1 server)
records each webhook's receipt time; a separate client process sends the events (a minimal
asyncio keep-alive client, as bench/ingest.py's). 20 live workflows, each triggered by its own
event and whose one step is a webhook to the sink; 5,000 accounts, each with one contact, sent
once before the phases (the events then come from known records: one outbox row per group
commit). Event k enrolls one account in one workflow, each (account, workflow) pair once, so
`enrollment: once` refuses nothing. Each event carries its id and the client's send time in its
properties, which the webhook's default body carries back (`data.event.properties`): arrival
at the web process is taken as the client's send time (one machine, one clock).

1. Throughput: --events (20,000) sent through /v1/batch, 100 a call, 4 connections, as fast as
   the API takes them, watched until the sink has them all or for --timeout (60) seconds (work
   still pending then is called off before the next phase); events/s from the first send to
   the sink's last receipt, enrollments/s with the step executed (step runs `done`, to the
   last `finished_at`; target >= 1,000/s), the CPU each side used per executed enrollment,
   PostgreSQL commits/s (pg_stat_database.xact_commit, the bench's own polls subtracted) and
   Dramatiq messages/s (derived from the rows: one evaluation message per outbox row, one
   step message per 10 steps an evaluation queued), the Redis queues' peak depth.
2. Latency: half of phase 1's events/s for --half-seconds (15), then 1 event/s for
   --trickle-seconds (20); p50 / p99 from send to the sink's receipt (targets: p99 <= 1 s at
   half load, p50 <= 150 ms at 1 event/s), and where it goes: send -> stored (the group
   commit's received_at) -> enrolled (the evaluation's now) -> received by the sink.
3. Scheduler: --due-steps (100,000) step runs inserted set-wise, due now (ANALYZEd in their
   transaction, as autovacuum would soon after); seconds from their commit until the running
   scheduler has moved every one out of `scheduled` (target <= 20 s for 100,000), then how
   fast the workers drain them for --drain-window seconds (reported, no target).
4. Memory: peak RSS of web + worker (Dramatiq's main process and its forked workers) +
   scheduler, each process's VmHWM summed (target: under 400 MiB together).

Prints each figure next to its target with PASS/FAIL; where a target is missed, a note names
the bound with the measured commits/s, messages/s and CPU of each side. Always exits 0: it is
a measurement; the machine has 2 cores and may be shared, so figures are noisy (the CPU other
processes took is printed). Runs in about 3.5 minutes. To see where a process spends its time:
`py-spy record -o /tmp/worker.svg --subprocesses --pid WORKER_PID` (the pids are printed first).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import math
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from multiprocessing import get_context
from multiprocessing.process import BaseProcess
from pathlib import Path
from typing import Any

import procfs
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "workflowbot_bench_pipeline"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/8"

ENROLL_TARGET = 1_000.0  # enrollments/s with the step executed
HALF_P99_TARGET_MS = 1_000.0
TRICKLE_P50_TARGET_MS = 150.0
DISPATCH_TARGET_S = 20.0  # for 100,000 due steps (scaled to --due-steps)
RSS_TARGET_MB = 400.0  # MiB, web + worker + scheduler

# What DESIGN.md's scale notes measured on these machines: the ceilings a bound is named by.
COMMITS_CEILING = 5_000.0  # PostgreSQL insert + commit, 8 connections
MESSAGES_CEILING = 4_200.0  # Dramatiq + Redis no-op actor, drained by 2 x 8
ENQUEUE_CEILING = 5_000.0  # messages enqueued by one client

WORKFLOWS = 20
POPULATION = 5_000  # accounts (one contact each): 100,000 (account, workflow) pairs
SETUP_EVENT = "bench_setup"  # the event that creates the population; no workflow listens
STEPS_CHUNK = 10  # engine.tasks.STEPS_CHUNK: step ids per run_steps message
QUEUES = ("evaluate", "steps")  # engine.tasks' Dramatiq queues


def trigger(index: int) -> str:
    return f"evt_{index:02d}"


def pair(seq: int) -> tuple[int, int]:
    """(account, workflow) of a phase's seq-th event: each pair once per phase (the database
    is emptied between phases), consecutive events spread over the accounts."""
    account = (seq // WORKFLOWS * 2_003) % POPULATION  # 2,003 is prime: a permutation
    return account, seq % WORKFLOWS


# --- the load generator (runs in its own process) --------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    port: int
    write_key: str
    prefix: str  # messageIds are prefix-seq, unique in the run
    first: int  # seq of the first event
    count: int
    rate: float = 0.0  # events/s; 0: as fast as the API takes them
    batch_size: int = 100
    connections: int = 4
    setup: bool = False  # the population's one event each, instead of trigger events


@dataclass
class Sent:
    events: int  # in calls answered 200
    requests: int
    first: float  # epoch seconds of the first send
    last: float  # epoch seconds of the last response
    statuses: Counter[int]
    errors: list[str]
    behind: float  # paced: the most seconds a batch went out after its time
    client_cpu: float  # seconds of CPU the client process used

    @property
    def bad(self) -> int:
        return sum(n for status, n in self.statuses.items() if status != 200) + len(self.errors)


def _call(spec: LoadSpec, seq: int, sent_at: float) -> dict[str, object]:
    if spec.setup:
        user, event, properties = seq, SETUP_EVENT, {}
    else:
        user, workflow = pair(seq)
        event, properties = trigger(workflow), {"bench_id": seq, "sent_at": sent_at}
    return {
        "type": "track",
        "userId": f"u-{user:05d}",
        "event": event,
        "messageId": f"{spec.prefix}-{seq}",
        "context": {"groupId": f"acct-{user:05d}"},
        "properties": properties,
    }


def _body(spec: LoadSpec, seqs: range) -> bytes:
    now = time.time()
    calls = [_call(spec, seq, now) for seq in seqs]
    return json.dumps({"batch": calls}, separators=(",", ":")).encode()


async def _read_response(reader: asyncio.StreamReader) -> int:
    """Read one response (status line, headers, Content-Length body); return the status."""
    head = await reader.readuntil(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    status = int(lines[0].split(b" ", 2)[1])
    length = None
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    if length is None:
        raise ValueError(f"response without Content-Length: {lines[0]!r}")
    await reader.readexactly(length)
    return status


Stream = tuple[asyncio.StreamReader, asyncio.StreamWriter]


async def _drive(spec: LoadSpec) -> Sent:
    """Send the events in batches: back to back on every connection, or paced at `rate`."""
    auth = base64.b64encode(f"{spec.write_key}:".encode()).decode()
    head = (
        f"POST /v1/batch HTTP/1.1\r\nHost: 127.0.0.1:{spec.port}\r\n"
        f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\n\r\n"
    )
    size = max(1, spec.batch_size)
    batches = [
        range(start, min(start + size, spec.first + spec.count))
        for start in range(spec.first, spec.first + spec.count, size)
    ]
    free: asyncio.Queue[Stream] = asyncio.Queue()
    for _ in range(spec.connections):
        free.put_nowait(await asyncio.open_connection("127.0.0.1", spec.port))
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    events = 0
    first, last, behind = 0.0, 0.0, 0.0

    async def send(seqs: range, due: float | None = None) -> None:
        nonlocal events, first, last, behind
        reader, writer = await free.get()
        if due is not None:  # late: the timer fired late or every connection was busy
            behind = max(behind, time.perf_counter() - due)
        body = _body(spec, seqs)
        first = first or time.time()
        try:
            writer.write(head.format(len(body)).encode() + body)
            status = await _read_response(reader)
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            errors.append(f"{type(exc).__name__}: {exc}")
            writer.close()
            free.put_nowait(await asyncio.open_connection("127.0.0.1", spec.port))
            return
        last = time.time()
        statuses[status] += 1
        if status == 200:
            events += len(seqs)
        free.put_nowait((reader, writer))

    cpu = time.process_time()
    if spec.rate <= 0:
        todo = iter(batches)

        async def connection() -> None:
            for seqs in todo:  # the iterator is shared: each batch is sent once
                await send(seqs)

        await asyncio.gather(*(connection() for _ in range(spec.connections)))
    else:
        started = time.perf_counter()
        tasks = []
        for n, seqs in enumerate(batches):
            due = started + n * size / spec.rate
            await asyncio.sleep(max(0.0, due - time.perf_counter()))
            tasks.append(asyncio.create_task(send(seqs, due)))
        await asyncio.gather(*tasks)
    while not free.empty():
        free.get_nowait()[1].close()
    return Sent(
        events=events,
        requests=sum(statuses.values()),
        first=first,
        last=last,
        statuses=statuses,
        errors=errors,
        behind=behind,
        client_cpu=time.process_time() - cpu,
    )


def run_load(spec: LoadSpec) -> Sent:
    """The client process's entry point: one batch of sends."""
    try:
        import uvloop  # installed with uvicorn[standard]: the cheapest event loop at hand
    except ImportError:
        return asyncio.run(_drive(spec))
    return uvloop.run(_drive(spec))


# --- the sink (runs in its own process) ------------------------------------------------------


class SinkState:
    """What the sink received: (bench_id, sent_at, received_at) per first receipt."""

    def __init__(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.records: list[tuple[Any, float, float]] = []
        self.seen: set[Any] = set()
        self.duplicates = self.unparsed = 0
        self.last = 0.0

    def receive(self, body: bytes, at: float) -> None:
        self.last = at
        try:
            properties = json.loads(body)["event"]["properties"]
            key, sent = properties["bench_id"], float(properties["sent_at"])
        except (ValueError, KeyError, TypeError):
            self.unparsed += 1
            return
        if key in self.seen:
            self.duplicates += 1
            return
        self.seen.add(key)
        self.records.append((key, sent, at))

    def stats(self) -> dict[str, Any]:
        return {
            "received": len(self.records),
            "duplicates": self.duplicates,
            "unparsed": self.unparsed,
            "last": self.last,
        }

    def take(self) -> dict[str, Any]:
        """Everything so far, then start again empty."""
        taken = {**self.stats(), "records": self.records}
        self.reset()
        return taken


async def _sink_connection(
    state: SinkState, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        while True:
            head = await reader.readuntil(b"\r\n\r\n")
            line, _, headers = head.partition(b"\r\n")
            method, path, _ = line.split(b" ", 2)
            length = 0
            for header in headers.split(b"\r\n"):
                name, _, value = header.partition(b":")
                if name.strip().lower() == b"content-length":
                    length = int(value)
            body = await reader.readexactly(length) if length else b""
            status, answer = b"200 OK", b'{"ok":true}'
            if method == b"POST" and path.startswith(b"/w"):
                state.receive(body, time.time())
            elif path == b"/stats":
                answer = json.dumps(state.stats()).encode()
            elif path == b"/take":
                answer = json.dumps(state.take()).encode()
            else:
                status = b"404 Not Found"
            writer.write(
                b"HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n"
                % (status, len(answer))
                + answer
            )
    except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, OSError, ValueError):
        pass
    finally:
        writer.close()


async def _sink_main(port: int) -> None:
    state = SinkState()
    server = await asyncio.start_server(
        lambda r, w: _sink_connection(state, r, w), "127.0.0.1", port, backlog=4096
    )
    async with server:
        await server.serve_forever()


def serve_sink(port: int) -> None:
    """The sink process's entry point: serve until terminated."""
    try:
        import uvloop
    except ImportError:
        asyncio.run(_sink_main(port))
        return
    uvloop.run(_sink_main(port))


class Sink:
    """The sink process, seen from the bench: start, read its counts, take its records."""

    def __init__(self) -> None:
        self.port = _free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc: BaseProcess = get_context("spawn").Process(
            target=serve_sink, args=(self.port,), daemon=True
        )

    def start(self) -> None:
        self.proc.start()
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                self.stats()
                return
            except OSError:
                time.sleep(0.1)
        sys.exit("bench: the sink did not start in 30 s")

    def _get(self, path: str) -> dict[str, Any]:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=30)
        try:
            conn.request("GET", path)
            return dict(json.loads(conn.getresponse().read()))
        finally:
            conn.close()

    def stats(self) -> dict[str, Any]:
        return self._get("/stats")

    def take(self) -> dict[str, Any]:
        return self._get("/take")

    @property
    def pid(self) -> int:
        assert self.proc.pid is not None
        return self.proc.pid

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.join(10)


# --- the server side: database, processes ----------------------------------------------------


def _workflowbot() -> str:
    beside = Path(sys.executable).parent / "workflowbot"
    found = str(beside) if beside.exists() else shutil.which("workflowbot")
    if not found:
        sys.exit("bench: the `workflowbot` command is not installed (make install)")
    return found


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def prepare_database(url: str | None) -> str:
    """Drop and create the bench database (unless a URL was given), then migrate it."""
    if url is None:
        with psycopg.connect(ADMIN_URL, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
            conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
        url = f"postgresql://postgres@127.0.0.1:5432/{BENCH_DATABASE}"
    subprocess.run(
        [_workflowbot(), "db", "upgrade"],
        env={**os.environ, "DATABASE_URL": url},
        check=True,
        stdout=subprocess.DEVNULL,
    )
    return url


def create_workflows(url: str, sink_url: str) -> None:
    """The 20 live workflows, stored through `engine.workflows.save` (as `apply` stores them)."""
    from engine import workflows
    from engine.workflow_defs import WorkflowDef
    from storage.db import make_engine, session_scope

    engine = make_engine(url, application_name="workflowbot-bench-pipeline")
    try:
        with session_scope(engine) as session:
            for index in range(WORKFLOWS):
                document = {
                    "name": f"bench {trigger(index)}",
                    "object": "account",
                    "status": "live",
                    "trigger": {"event": trigger(index)},
                    "steps": [{"action": "webhook", "url": f"{sink_url}/w{index:02d}"}],
                }
                workflows.save(
                    session,
                    definition=WorkflowDef.model_validate(document),
                    by="bench",
                    now=datetime.now(UTC),
                )
    finally:
        engine.dispose()


# Everything a phase leaves, in one statement (the workflows and the population stay).
EMPTY = (
    "TRUNCATE email_events, drafts, step_runs, enrollment_logs, enrollments, signals, outbox, "
    "events"
)


class Database:
    """The bench's own connection (autocommit); counts its statements, which PostgreSQL counts
    as commits too, so that they can be subtracted from the product's."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True)
        self.name = self.conn.info.dbname
        self.statements = 0

    def row(self, sql: str, *params: object) -> tuple[Any, ...]:
        self.statements += 1
        found = self.conn.execute(sql.encode(), params or None).fetchone()
        assert found is not None
        return tuple(found)

    def scalar(self, sql: str, *params: object) -> Any:
        return self.row(sql, *params)[0]

    def pg_counters(self) -> tuple[int, int]:
        """(transactions committed, sessions opened) in this database so far."""
        sql = (
            "SELECT xact_commit, sessions FROM pg_stat_database WHERE datname = current_database()"
        )
        commits, sessions = self.row(sql)
        return int(commits), int(sessions)

    def progress(self) -> tuple[int, int]:
        """(enrollments, step runs done)."""
        enrolled = int(self.scalar("SELECT count(*) FROM enrollments"))
        done = int(self.scalar("SELECT count(*) FROM step_runs WHERE status = 'done'"))
        return enrolled, done

    def busy(self) -> int:
        """Outbox rows not processed plus step runs not finished: 0 when the pipeline is idle."""
        return int(
            self.scalar(
                "SELECT (SELECT count(*) FROM outbox WHERE processed_at IS NULL)"
                " + (SELECT count(*) FROM step_runs"
                "    WHERE status IN ('scheduled', 'queued', 'running', 'sending'))"
            )
        )

    def wait_idle(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while self.busy():
            if time.monotonic() > deadline:
                return False
            time.sleep(0.25)
        return True

    def call_off(self) -> int:
        """Cancel the steps not started and mark the outbox rows processed; how many."""
        self.statements += 2
        steps = self.conn.execute(
            "UPDATE step_runs SET status = 'cancelled', lease_until = NULL"
            " WHERE status IN ('scheduled', 'queued')"
        ).rowcount
        rows = self.conn.execute(
            "UPDATE outbox SET processed_at = now() WHERE processed_at IS NULL"
        ).rowcount
        return steps + rows

    def empty(self) -> None:
        self.statements += 1
        self.conn.execute(EMPTY)

    def population(self) -> int:
        return int(self.scalar("SELECT count(*) FROM accounts"))


@dataclass
class Server:
    """`workflowbot web`, `worker` and `scheduler`, their output in log files under `logs`."""

    env: dict[str, str]
    port: int
    logs: Path
    worker_processes: int
    worker_threads: int
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self, broker: redis.Redis) -> None:
        worker = [
            _workflowbot(), "worker",
            "--processes", str(self.worker_processes), "--threads", str(self.worker_threads),
        ]  # fmt: skip
        for name, argv in (
            ("web", [_workflowbot(), "web", "--host", "127.0.0.1", "--port", str(self.port)]),
            ("worker", worker),
            ("scheduler", [_workflowbot(), "scheduler"]),
        ):
            with (self.logs / f"{name}.log").open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
        self._wait_ready(broker, timeout=60)

    def _wait_ready(self, broker: redis.Redis, timeout: float) -> None:
        """/readyz answers 200 and every worker process has polled Redis (its heartbeat)."""
        deadline = time.monotonic() + timeout
        web = False
        while time.monotonic() < deadline:
            self.check()
            if not web:
                try:
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                    conn.request("GET", "/readyz")
                    web = conn.getresponse().status == 200
                except OSError:
                    pass
            if web and int(broker.zcard("dramatiq:__heartbeats__")) >= self.worker_processes:
                return
            time.sleep(0.2)
        self.fail(f"not ready after {timeout:.0f} s (/readyz: {'ok' if web else 'no'})")

    def check(self) -> None:
        for name, proc in self.procs.items():
            if proc.poll() is not None:
                self.fail(f"{name} exited with {proc.returncode}")

    def fail(self, message: str) -> None:
        self.stop()
        for name in self.procs:
            print(f"--- {name} log (tail) ---\n{self.log(name)[-3000:]}", file=sys.stderr)
        sys.exit(f"bench: {message}")

    def log(self, name: str) -> str:
        return (self.logs / f"{name}.log").read_text(errors="replace")

    def stop(self, timeout: float = 30) -> dict[str, str]:
        """SIGTERM each; how each exited ("FAIL: ..." if not cleanly within the timeout)."""
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        outcome = {}
        for name, proc in self.procs.items():
            try:
                code = proc.wait(timeout)
                outcome[name] = f"exited with {code}" if code == 0 else f"FAIL: exited with {code}"
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                outcome[name] = f"FAIL: still running {timeout:.0f} s after SIGTERM; killed"
        return outcome

    def pids(self) -> dict[str, list[int]]:
        """Each process's pids: Dramatiq's main process and the worker processes it forked."""
        root = self.procs["worker"].pid
        return {
            "web": [self.procs["web"].pid],
            "worker": [root, *procfs.descendants(root)],
            "scheduler": [self.procs["scheduler"].pid],
        }


# --- /proc: CPU and memory -------------------------------------------------------------------


class RssSampler:
    """Polls the VmRSS of every process of the server every 100 ms: each one's peak and the
    peak of their sum; `high_water` reads the kernel's own peaks (VmHWM)."""

    def __init__(self, server: Server) -> None:
        self.server = server
        self.groups = server.pids()
        self.peak: dict[int, int] = {}
        self.peak_total = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        polls = 0
        while not self._stop.wait(0.1):
            polls += 1
            if polls % 20 == 0:  # Dramatiq may fork a replacement for a worker that died
                self.groups = self.server.pids()
            total = 0
            for pid in (p for pids in self.groups.values() for p in pids):
                kb = procfs.status_kb(pid, "VmRSS")
                self.peak[pid] = max(self.peak.get(pid, 0), kb)
                total += kb
            self.peak_total = max(self.peak_total, total)

    def pss_kb(self) -> int:
        """Proportional set size of them all now: pages shared between them counted once."""
        total = 0
        for pid in (p for pids in self.server.pids().values() for p in pids):
            total += procfs.status_kb(pid, "Pss", f"/proc/{pid}/smaps_rollup")
        return total

    def high_water(self) -> dict[str, dict[int, int]]:
        """VmHWM of each process, by Procfile name (read while they run)."""
        return {
            name: {pid: procfs.status_kb(pid, "VmHWM") for pid in pids}
            for name, pids in self.server.pids().items()
        }

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


def _cpu_each(pids: Sequence[int]) -> dict[int, float]:
    return {pid: procfs.cpu_seconds([pid]) for pid in pids}


@contextmanager
def cpu_meter(sides: dict[str, Callable[[], list[int]]]) -> Iterator[dict[str, float]]:
    """Average cores each side used while in the block (per process, so a backend that
    closed meanwhile is not subtracted: its CPU counts as other processes'), and the whole
    machine's."""
    before = {name: _cpu_each(pids()) for name, pids in sides.items()}
    machine = procfs.machine_cpu_seconds()
    started = time.perf_counter()
    used: dict[str, float] = {}
    yield used
    elapsed = time.perf_counter() - started
    for name, pids in sides.items():
        now = _cpu_each(pids())
        used[name] = sum(cpu - before[name].get(pid, 0.0) for pid, cpu in now.items()) / elapsed
    used["machine"] = (procfs.machine_cpu_seconds() - machine) / elapsed


# --- the phases ------------------------------------------------------------------------------


@dataclass
class Bench:
    """What every phase uses: the processes, the client, the sink, the database, Redis."""

    server: Server
    sink: Sink
    db: Database
    broker: redis.Redis
    client: ProcessPoolExecutor
    write_key: str
    prefix: str = field(default_factory=lambda: f"bench-{uuid.uuid4().hex[:12]}")
    phase: int = 0

    def spec(self, first: int, count: int, **options: Any) -> LoadSpec:
        prefix = f"{self.prefix}-{self.phase}"
        return LoadSpec(self.server.port, self.write_key, prefix, first, count, **options)

    def sides(self) -> dict[str, Callable[[], list[int]]]:
        return {
            "web": lambda: self.server.pids()["web"],
            "worker": lambda: self.server.pids()["worker"],
            "scheduler": lambda: self.server.pids()["scheduler"],
            "postgres": lambda: procfs.postgres_pids(self.db.name),
            "sink": lambda: [self.sink.pid],
        }

    def depths(self) -> dict[str, int]:
        """Messages in each Dramatiq queue, enqueued and not yet acknowledged."""
        return {q: int(self.broker.hlen(f"dramatiq:{q}.msgs")) for q in QUEUES}

    def next_phase(self, timeout: float) -> None:
        """Wait for the pipeline to finish what it holds, then empty the tables and the sink.
        Work still pending then is called off first: steps cancelled and outbox rows marked
        processed (so that the messages the workers hold are no-ops), the queues deleted, the
        steps running let finish."""
        if not self.db.wait_idle(timeout):
            called_off = self.db.call_off()
            for queue in QUEUES:
                self.broker.delete(f"dramatiq:{queue}", f"dramatiq:{queue}.msgs")
            print(f"  note: {called_off:,} steps and outbox rows still pending called off")
            self.db.wait_idle(30)
        self.db.empty()
        self.sink.take()
        self.phase += 1


def setup_population(bench: Bench, timeout: float) -> float:
    """One event per account (each with its contact) through /v1/batch; waits until the worker
    has evaluated every outbox row. Returns the seconds taken."""
    started = time.perf_counter()
    sent = bench.client.submit(run_load, bench.spec(0, POPULATION, setup=True)).result()
    if sent.bad:
        sys.exit(f"bench: the population was refused: {dict(sent.statuses)} {sent.errors[:3]}")
    if not bench.db.wait_idle(timeout):
        sys.exit(f"bench: the worker did not evaluate the population within {timeout:.0f} s")
    if bench.db.population() != POPULATION:
        sys.exit(f"bench: {bench.db.population()} accounts after the setup, not {POPULATION}")
    return time.perf_counter() - started


@dataclass
class Sample:
    at: float  # seconds since the phase started
    received: int
    enrolled: int
    done: int
    depths: dict[str, int]


@dataclass
class Throughput:
    events: int
    sent: Sent
    received: int
    duplicates: int
    last_receipt: float
    enrolled: int
    done: int
    last_enrolled: float  # epoch seconds of the last enrollment (the evaluation's now)
    last_done: float  # epoch seconds of the last step run's finished_at
    commits: int  # PostgreSQL transactions over the phase, the bench's own subtracted
    sessions: int  # PostgreSQL connections opened over the phase
    eval_messages: int
    step_messages: int
    outbox_rows: int
    recovered: int  # outbox rows the scheduler re-enqueued (a message overdue)
    cpu: dict[str, float]  # cores used on average over `window`
    window: float  # seconds the phase was watched
    samples: list[Sample]
    latencies: list[float]  # seconds, sorted (a backlog's: for the record)

    @property
    def elapsed(self) -> float:
        """From the first send to the sink's last receipt."""
        return max(self.last_receipt - self.sent.first, 1e-9)

    @property
    def events_per_second(self) -> float:
        return self.received / self.elapsed

    @property
    def enrollments_per_second(self) -> float:
        """Enrollments whose step ran (step runs done), to the last one's finish."""
        return self.done / max(self.last_done - self.sent.first, 1e-9)

    @property
    def ingest_per_second(self) -> float:
        return self.sent.events / max(self.sent.last - self.sent.first, 1e-9)

    @property
    def commits_per_second(self) -> float:
        return self.commits / self.elapsed

    @property
    def messages_per_second(self) -> float:
        return (self.eval_messages + self.step_messages) / self.elapsed

    def cpu_ms_per_step(self, side: str) -> float:
        """Milliseconds of CPU `side` used per executed enrollment (evaluating those not yet
        executed included)."""
        return self.cpu[side] * self.window / max(self.done, 1) * 1000


def _messages(db: Database) -> tuple[int, int]:
    """(outbox rows, run_steps messages) of the phase. The web's writer sends one evaluation
    message per group commit's outbox ids (<= 500; one row here, as the records are known);
    each evaluation sends the steps it queued 10 a message, and its enrollments share its
    `now` (their enrolled_at)."""
    outbox_rows = int(db.scalar("SELECT count(*) FROM outbox"))
    sql = (
        "SELECT coalesce(sum(ceil(n / %s::numeric)), 0) FROM "
        "(SELECT count(*) AS n FROM enrollments GROUP BY enrolled_at) AS evaluations"
    )
    return outbox_rows, int(db.scalar(sql, STEPS_CHUNK))


def _recovered(log: str) -> int:
    found = re.findall(r"re-enqueued (\d+) outbox rows", log)
    return sum(int(n) for n in found)


def measure_throughput(bench: Bench, events: int, timeout: float) -> Throughput:
    """Phase 1: every event at once; polls until the sink has them all (or progress stops)."""
    db, sink = bench.db, bench.sink
    recovered_before = _recovered(bench.server.log("scheduler"))
    (commits_before, sessions_before), statements_before = db.pg_counters(), db.statements
    samples: list[Sample] = []
    started = time.perf_counter()
    with cpu_meter(bench.sides()) as cpu:
        future: Future[Sent] = bench.client.submit(run_load, bench.spec(0, events))
        stalled_since, last_progress = time.monotonic(), (-1, -1, -1)
        while True:
            time.sleep(0.5)
            bench.server.check()
            stats = sink.stats()
            enrolled, done = db.progress()
            sample = Sample(
                time.perf_counter() - started, stats["received"], enrolled, done, bench.depths()
            )
            samples.append(sample)
            if len(samples) % 10 == 0:
                print(
                    f"  {sample.at:5.1f} s: {sample.received:,} received by the sink, "
                    f"{enrolled:,} enrolled, {done:,} steps done, queued messages "
                    + ", ".join(f"{q} {n:,}" for q, n in sample.depths.items()),
                    flush=True,
                )
            progress = (sample.received, enrolled, done)
            if progress != last_progress:
                stalled_since, last_progress = time.monotonic(), progress
            if stats["received"] >= events and future.done():
                break
            if time.monotonic() - stalled_since > 30 or sample.at > timeout:
                print(f"  note: stopped waiting at {sample.at:.0f} s ({progress} so far)")
                break
    sent = future.result()
    cpu["client"] = sent.client_cpu / max(sample.at, 1e-9)
    time.sleep(1.5)  # backends report their commits to pg_stat_database within a second
    commits_after, sessions_after = db.pg_counters()
    commits = commits_after - commits_before - (db.statements - statements_before)
    taken = sink.take()
    enrolled, done = db.progress()
    last_enrolled, last_done = db.row(
        "SELECT extract(epoch FROM (SELECT max(enrolled_at) FROM enrollments)),"
        " extract(epoch FROM (SELECT max(finished_at) FROM step_runs))"
    )
    outbox_rows, step_messages = _messages(db)
    recovered = _recovered(bench.server.log("scheduler")) - recovered_before
    return Throughput(
        events=events,
        sent=sent,
        received=taken["received"],
        duplicates=taken["duplicates"],
        last_receipt=taken["last"],
        enrolled=enrolled,
        done=done,
        last_enrolled=float(last_enrolled or 0),
        last_done=float(last_done or 0),
        commits=commits,
        sessions=sessions_after - sessions_before,
        eval_messages=outbox_rows + recovered,
        step_messages=step_messages,
        outbox_rows=outbox_rows,
        recovered=recovered,
        cpu=cpu,
        window=sample.at,
        samples=samples,
        latencies=sorted(recv - sent for _, sent, recv in taken["records"]),
    )


@dataclass
class Latency:
    title: str
    rate: float  # events/s asked
    end: int  # seq after the last event sent
    sent: Sent
    latencies: list[float]  # seconds, sorted; events never received are not in it
    missing: int  # sent (answered 200) but not received by the sink in time
    duplicates: int
    hops: dict[str, list[float]]  # seconds, sorted: where the time went, per event
    cpu: dict[str, float]

    def percentile_ms(self, p: float) -> float:
        """The p-th percentile; an event never received counts as infinitely late."""
        ordered = self.latencies + [math.inf] * self.missing
        if not ordered:
            return math.nan
        return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))] * 1000


def _hops(db: Database, records: Sequence[Sequence[Any]], first: int) -> dict[str, list[float]]:
    """Per event (seq >= first): send -> stored (its group commit's received_at), stored ->
    enrolled (the evaluation's now: the evaluate message's wait and the evaluation), enrolled ->
    received by the sink (the step message's wait, the claim, the webhook call)."""
    received = {int(key): at for key, _, at in records if int(key) >= first}
    rows = db.conn.execute(
        """
        SELECT (e.trigger -> 'detail' -> 'properties' ->> 'bench_id')::bigint,
               (e.trigger -> 'detail' -> 'properties' ->> 'sent_at')::float8,
               extract(epoch FROM ev.received_at)::float8,
               extract(epoch FROM e.enrolled_at)::float8
        FROM enrollments AS e
        JOIN events AS ev ON ev.id = (e.trigger -> 'detail' ->> 'event_id')::bigint
        WHERE (e.trigger -> 'detail' -> 'properties' ->> 'bench_id')::bigint >= %s
        """,
        [first],
    ).fetchall()
    db.statements += 1
    hops: dict[str, list[float]] = {"send -> stored": [], "stored -> enrolled": []}
    hops["enrolled -> sink"] = []
    for seq, sent, stored, enrolled in rows:
        hops["send -> stored"].append(stored - sent)
        hops["stored -> enrolled"].append(enrolled - stored)
        if seq in received:
            hops["enrolled -> sink"].append(received[seq] - enrolled)
    return {name: sorted(values) for name, values in hops.items()}


def measure_latency(
    bench: Bench, title: str, first: int, rate: float, seconds: float, wait: float
) -> Latency:
    """Phase 2: events paced at `rate` for `seconds`; then up to `wait` seconds for the sink."""
    count = max(1, round(rate * seconds))
    if first + count > POPULATION * WORKFLOWS:
        sys.exit(f"bench: {first + count:,} events in one phase; only {POPULATION * WORKFLOWS:,}")
    per_call = max(1, round(rate / 50))  # ~50 calls a second at most
    spec = bench.spec(first, count, rate=rate, batch_size=per_call, connections=4)
    with cpu_meter(bench.sides()) as cpu:
        sent = bench.client.submit(run_load, spec).result()
        deadline = time.monotonic() + wait
        while bench.sink.stats()["received"] < sent.events and time.monotonic() < deadline:
            time.sleep(0.1)
    cpu["client"] = sent.client_cpu / max(sent.last - sent.first, 1e-9)
    taken = bench.sink.take()
    records = [r for r in taken["records"] if first <= int(r[0]) < first + count]
    return Latency(
        title=title,
        rate=rate,
        end=first + count,
        sent=sent,
        latencies=sorted(recv - sent_at for _, sent_at, recv in records),
        missing=max(0, sent.events - len(records)),
        duplicates=taken["duplicates"],
        hops=_hops(bench.db, records, first),
        cpu=cpu,
    )


@dataclass
class Dispatch:
    rows: int
    insert_seconds: float
    seconds: float | None  # None: not every row left `scheduled` within the timeout
    commits: int
    sessions: int  # PostgreSQL connections opened during the dispatch
    peak_steps_queue: int
    drain_window: float
    drained: int  # step runs done within the window after the dispatch
    left: int  # step runs not finished at the end of the window
    cpu: dict[str, float]


# Step runs due now, set-wise: one enrollment per (workflow, account), each with its first
# step `scheduled`; the trigger carries an event's detail, so the sink counts the receipts.
_DUE_ENROLLMENTS = """
INSERT INTO enrollments
    (workflow_id, version_id, object_type, object_id, status, once, via, trigger, enrolled_at)
SELECT w.id, v.id, 'account', a.id, 'active', true, 'manual',
       jsonb_build_object('kind', 'event', 'key', w.trigger_key, 'detail', jsonb_build_object(
           'event', w.trigger_key, 'properties', jsonb_build_object(
               'bench_id', row_number() OVER (), 'sent_at', extract(epoch FROM now())))),
       now()
FROM workflows AS w
JOIN workflow_versions AS v ON v.workflow_id = w.id AND v.number = w.version
CROSS JOIN (SELECT id FROM accounts ORDER BY id LIMIT %(accounts)s) AS a
LIMIT %(rows)s
"""
_DUE_STEPS = """
INSERT INTO step_runs
    (enrollment_id, step_index, status, due_at, attempt, idempotency_key, created_at)
SELECT id, 0, 'scheduled', now(), 0, 'bench-' || id, now() FROM enrollments ORDER BY id
"""


def measure_dispatch(bench: Bench, rows: int, timeout: float, window: float) -> Dispatch:
    """Phase 3: `rows` due step runs committed at once; the scheduler's time to queue them all,
    then the workers' progress for `window` seconds."""
    db = bench.db
    accounts = math.ceil(rows / WORKFLOWS)
    if accounts > POPULATION:
        sys.exit(f"bench: --due-steps is at most {POPULATION * WORKFLOWS:,}")
    started = time.perf_counter()
    with db.conn.transaction():
        db.conn.execute(_DUE_ENROLLMENTS, {"accounts": accounts, "rows": rows})
        db.conn.execute(_DUE_STEPS)
        db.conn.execute("ANALYZE enrollments, step_runs")
    db.statements += 1
    inserted = time.perf_counter()
    (commits_before, sessions_before), statements_before = db.pg_counters(), db.statements
    peak_queue = 0
    seconds: float | None = None
    with cpu_meter(bench.sides()) as cpu:
        while time.perf_counter() - inserted < timeout:
            left = int(db.scalar("SELECT count(*) FROM step_runs WHERE status = 'scheduled'"))
            peak_queue = max(peak_queue, bench.depths()["steps"])
            if left == 0:
                seconds = time.perf_counter() - inserted
                break
            time.sleep(0.2)
    time.sleep(1.5)  # backends report their commits to pg_stat_database within a second
    commits_after, sessions_after = db.pg_counters()
    commits = commits_after - commits_before - (db.statements - statements_before)
    done_before = db.progress()[1]
    window_started = time.perf_counter()
    while time.perf_counter() - window_started < window:
        bench.server.check()
        peak_queue = max(peak_queue, bench.depths()["steps"])
        if db.progress()[1] >= rows:
            break
        time.sleep(0.5)
    waited = time.perf_counter() - window_started
    done = db.progress()[1]
    return Dispatch(
        rows=rows,
        insert_seconds=inserted - started,
        seconds=seconds,
        commits=commits,
        sessions=sessions_after - sessions_before,
        peak_steps_queue=peak_queue,
        drain_window=waited,
        drained=done - done_before,
        left=rows - done,
        cpu=cpu,
    )


# --- the report ------------------------------------------------------------------------------


class Report:
    """Each figure with its target and PASS/FAIL; failures listed at the end."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def figure(
        self, label: str, value: float, target: float, *, above: bool, unit: str, digits: int = 0
    ) -> bool:
        ok = value >= target if above else value <= target
        goal = f"{'>=' if above else '<='} {target:,g} {unit}"
        print(
            f"  {label:<46}{value:>12,.{digits}f} {unit:<6}target {goal:<18}"
            f"{'PASS' if ok else 'FAIL'}"
        )
        if not ok:
            self.failures.append(f"FAIL {label}: {value:,.{digits}f} {unit}, target {goal}")
        return ok

    @staticmethod
    def info(label: str, text: str) -> None:
        print(f"  {label:<46}{text}")


def _quantile(values: Sequence[float], p: float) -> float:
    """The p-th percentile of sorted values (nan when there are none)."""
    if not values:
        return math.nan
    return values[min(len(values) - 1, round(p / 100 * (len(values) - 1)))]


def _ms(values: Sequence[float], p: float) -> str:
    return "-" if not values else f"{_quantile(values, p) * 1000:,.0f}"


def _cores(cpu: dict[str, float]) -> str:
    ours = sum(v for k, v in cpu.items() if k != "machine")
    other = max(0.0, cpu["machine"] - ours)
    sides = ", ".join(f"{k} {v:.2f}" for k, v in cpu.items() if k != "machine")
    return f"{sides}, other processes {other:.2f} (of {os.cpu_count()})"


def _disturbed(cpu: dict[str, float]) -> bool:
    ours = sum(v for k, v in cpu.items() if k != "machine")
    return cpu["machine"] - ours > 0.2


def bound(t: Throughput) -> str:
    """The resource that limits phase 1, named by the measured rates and CPU."""
    cores = os.cpu_count() or 1
    rates = (
        f"{t.commits_per_second:,.0f} commits/s (ceiling ~{COMMITS_CEILING:,.0f}), "
        f"{t.messages_per_second:,.0f} messages/s (ceiling ~{MESSAGES_CEILING:,.0f})"
    )
    if t.commits_per_second >= 0.8 * COMMITS_CEILING:
        return f"PostgreSQL commits: {rates}"
    if t.messages_per_second >= 0.8 * MESSAGES_CEILING:
        return f"Redis / Dramatiq messages: {rates}"
    sides = {k: v for k, v in t.cpu.items() if k != "machine"}
    top = max(sides, key=lambda k: sides[k])
    if t.cpu["machine"] >= 0.85 * cores:
        return (
            f"CPU: the machine's {cores} cores were {t.cpu['machine'] / cores:.0%} busy, "
            f"{top} taking {sides[top]:.2f} cores; not commits or messages ({rates})"
        )
    return f"waiting, not CPU ({t.cpu['machine']:.2f} of {cores} cores busy): {rates}"


def report_throughput(report: Report, t: Throughput, processes: int, threads: int) -> None:
    print(
        f"\n1. throughput: {t.events:,} events through /v1/batch, {WORKFLOWS} workflows, "
        f"{processes} worker processes x {threads} threads"
    )
    ok = report.figure(
        "enrollments/s with the step executed",
        t.enrollments_per_second,
        ENROLL_TARGET,
        above=True,
        unit="/s",
    )
    report.info(
        "  events/s, first send -> sink's last receipt",
        f"{t.events_per_second:,.0f} ({t.received:,} of {t.events:,} received in "
        f"{t.elapsed:.1f} s; {t.duplicates} duplicates)",
    )
    report.info(
        "  enrollments / step runs done",
        f"{t.enrolled:,} (last {t.last_enrolled - t.sent.first:.1f} s after the first send) / "
        f"{t.done:,} (last {t.last_done - t.sent.first:.1f} s)",
    )
    report.info(
        "  ingestion: events accepted/s",
        f"{t.ingest_per_second:,.0f} ({t.sent.requests:,} calls in "
        f"{t.sent.last - t.sent.first:.2f} s, {t.sent.bad} refused or failed)",
    )
    report.info(
        "  PostgreSQL commits/s",
        f"{t.commits_per_second:,.0f} ({t.commits:,} commits, "
        f"{t.commits / max(t.done, 1):.1f} per executed enrollment)",
    )
    report.info(
        "  PostgreSQL connections opened/s",
        f"{t.sessions / t.elapsed:,.1f} ({t.sessions:,}: "
        f"{t.sessions / max(t.done, 1):.2f} per executed enrollment)",
    )
    report.info(
        "  Dramatiq messages/s enqueued",
        f"{t.messages_per_second:,.0f} ({t.eval_messages:,} evaluate for {t.outbox_rows:,} "
        f"group commits, {t.step_messages:,} run_steps; {t.recovered:,} outbox rows "
        "re-enqueued by the scheduler)",
    )
    peaks = {q: max(s.depths[q] for s in t.samples) for q in QUEUES} if t.samples else {}
    report.info(
        "  peak queued messages",
        ", ".join(f"{q} {n:,}" for q, n in peaks.items()) or "-",
    )
    report.info(
        "  latency under the backlog p50 / p99",
        f"{_ms(t.latencies, 50)} / {_ms(t.latencies, 99)} ms (a backlog's, no target)",
    )
    report.info("  CPU cores", _cores(t.cpu))
    each = {side: t.cpu_ms_per_step(side) for side in ("worker", "postgres", "web")}
    cores = os.cpu_count() or 1
    report.info(
        "  CPU ms per executed enrollment",
        ", ".join(f"{side} {ms:.1f}" for side, ms in each.items())
        + f": {cores} cores run at most ~{cores * 1000 / max(sum(each.values()), 1e-9):,.0f}/s",
    )
    if not ok:
        report.failures.append(f"  bound: {bound(t)}")


def report_latency(report: Report, run: Latency, *, p: float, target: float) -> None:
    print(f"\n2. latency, {run.title}: {run.sent.events:,} events at {run.rate:,.1f}/s")
    ok = report.figure(
        f"p{p:g} send -> sink receipt", run.percentile_ms(p), target, above=False, unit="ms"
    )
    report.info(
        "  p50 / p90 / p99 / max",
        " / ".join(f"{run.percentile_ms(q):,.0f}" for q in (50, 90, 99, 100))
        + f" ms; {run.missing} not received, {run.duplicates} duplicates",
    )
    for name, values in run.hops.items():
        report.info(f"  {name} p50 / p99", f"{_ms(values, 50)} / {_ms(values, 99)} ms")
    report.info(
        "  client", f"{run.sent.bad} calls refused or failed; most late {run.sent.behind:.3f} s"
    )
    report.info("  CPU cores", _cores(run.cpu))
    if not ok and any(run.hops.values()):
        slowest = max(run.hops, key=lambda name: _quantile(run.hops[name], p))
        report.failures.append(
            f"  bound: the hop {slowest} (p{p:g} {_ms(run.hops[slowest], p)} ms); "
            f"CPU cores: {_cores(run.cpu)}"
        )


def report_dispatch(report: Report, d: Dispatch) -> None:
    target = DISPATCH_TARGET_S * d.rows / 100_000
    print(f"\n3. scheduler: {d.rows:,} step runs due at once")
    report.info("  inserted (one transaction, ANALYZEd)", f"{d.insert_seconds:.1f} s")
    messages = math.ceil(d.rows / STEPS_CHUNK)
    if d.seconds is None:
        report.failures.append(f"FAIL scheduler dispatch: not done within the timeout ({d.rows:,})")
        report.info("seconds until none is scheduled", "not within the timeout")
    else:
        ok = report.figure(
            f"seconds until all {d.rows:,} are queued",
            d.seconds,
            target,
            above=False,
            unit="s",
            digits=1,
        )
        report.info(
            "  dispatched/s; commits/s; messages/s sent",
            f"{d.rows / d.seconds:,.0f}; {d.commits / d.seconds:,.0f}; "
            f"{messages / d.seconds:,.0f} ({messages:,} run_steps messages)",
        )
        if not ok:
            report.failures.append(f"  bound: {dispatch_bound(d, messages)}")
    report.info("  peak queued run_steps messages", f"{d.peak_steps_queue:,}")
    report.info("  PostgreSQL connections opened meanwhile", f"{d.sessions:,} (workers' included)")
    report.info(
        "  workers after the dispatch (no target)",
        f"{d.drained:,} step runs done in {d.drain_window:.1f} s "
        f"({d.drained / max(d.drain_window, 1e-9):,.0f}/s), {d.left:,} left",
    )
    report.info("  CPU cores during the dispatch", _cores(d.cpu))


def dispatch_bound(d: Dispatch, messages: int) -> str:
    """What limits the dispatch, named by the scheduler's CPU and the rates it reached."""
    assert d.seconds is not None
    cores = os.cpu_count() or 1
    rates = (
        f"{d.commits / d.seconds:,.0f} commits/s (ceiling ~{COMMITS_CEILING:,.0f}), "
        f"{messages / d.seconds:,.0f} messages/s sent (~{ENQUEUE_CEILING:,.0f} by one client)"
    )
    scheduler = d.cpu["scheduler"]
    if scheduler >= 0.8:
        return f"CPU of the scheduler process ({scheduler:.2f} cores): {rates}"
    return (
        f"round trips, one at a time: the scheduler used {scheduler:.2f} cores and PostgreSQL "
        f"{d.cpu['postgres']:.2f} while the machine's {cores} cores were "
        f"{d.cpu['machine'] / cores:.0%} busy; {rates}"
    )


def report_memory(
    report: Report, high: dict[str, dict[int, int]], rss: RssSampler, pss: int
) -> None:
    print("\n4. memory, peak over the whole run")
    total = 0
    for name, pids in high.items():
        kb = sum(pids.values())
        total += kb
        each = ", ".join(f"{pid}: {v / 1024:.0f}" for pid, v in pids.items())
        report.info(f"  {name} VmHWM MiB", f"{kb / 1024:.0f} ({each})")
    report.figure(
        "web + worker + scheduler, sum of peaks",
        total / 1024,
        RSS_TARGET_MB,
        above=False,
        unit="MiB",
    )
    report.info("  peak of the sum (sampled every 100 ms)", f"{rss.peak_total / 1024:.0f} MiB")
    report.info("  PSS at the end (shared pages once)", f"{pss / 1024:.0f} MiB")


def _log_problems(server: Server) -> list[str]:
    """Failed messages and tracebacks in the processes' logs."""
    found = []
    for name in server.procs:
        log = server.log(name)
        failed = log.count("Failed to process message")
        tracebacks = log.count("Traceback (most recent call last)")
        if failed or tracebacks:
            found.append(f"{name}: {failed} failed messages, {tracebacks} tracebacks")
    return found


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--events", type=int, default=20_000, help="phase 1")
    parser.add_argument("--half-seconds", type=float, default=15.0, help="phase 2, half load")
    parser.add_argument("--trickle-seconds", type=float, default=20.0, help="phase 2, 1 event/s")
    parser.add_argument("--due-steps", type=int, default=100_000, help="phase 3")
    parser.add_argument("--drain-window", type=float, default=20.0, help="phase 3, seconds")
    parser.add_argument("--timeout", type=float, default=60.0, help="phase 1, seconds at most")
    parser.add_argument("--worker-processes", type=int, default=2)
    parser.add_argument("--worker-threads", type=int, default=8)
    parser.add_argument(
        "--database-url", help=f"default: drop, create and migrate {BENCH_DATABASE} on 127.0.0.1"
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="flushed at start and end")
    return parser.parse_args()


@dataclass
class Results:
    throughput: Throughput
    half: Latency
    trickle: Latency
    dispatch: Dispatch


def run_phases(args: argparse.Namespace, bench: Bench) -> Results:
    """The population, then the three phases, each on emptied tables."""
    took = setup_population(bench, timeout=120)
    print(f"setup: {POPULATION:,} accounts and contacts in {took:.1f} s", flush=True)
    bench.next_phase(timeout=30)
    print(f"phase 1: {args.events:,} events", flush=True)
    throughput = measure_throughput(bench, args.events, args.timeout)
    bench.next_phase(timeout=5)  # phase 1 waited already
    rate = max(1.0, throughput.events_per_second / 2)
    print(f"phase 2: {rate:,.0f} events/s for {args.half_seconds:g} s", flush=True)
    half = measure_latency(bench, "half load", 0, rate, args.half_seconds, wait=30)
    bench.db.wait_idle(30)
    print(f"phase 2: 1 event/s for {args.trickle_seconds:g} s", flush=True)
    trickle = measure_latency(bench, "1 event/s", half.end, 1.0, args.trickle_seconds, wait=10)
    bench.next_phase(timeout=30)
    print(f"phase 3: {args.due_steps:,} due step runs", flush=True)
    dispatch = measure_dispatch(bench, args.due_steps, timeout=120, window=args.drain_window)
    return Results(throughput, half, trickle, dispatch)


def main() -> None:
    args = parse_args()
    database_url = prepare_database(args.database_url)
    broker = redis.Redis.from_url(args.redis_url)
    broker.flushdb()
    port = _free_port()
    write_key = "wk_bench_" + secrets.token_hex(8)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "INGEST_WRITE_KEYS": write_key,
        "WEBHOOK_ALLOWED_HOSTS": "127.0.0.1",
        "PORT": str(port),
    }
    logs = Path(tempfile.mkdtemp(prefix="workflowbot-bench-pipeline-"))
    server = Server(env, port, logs, args.worker_processes, args.worker_threads)
    sink = Sink()
    sink.start()
    try:
        create_workflows(database_url, sink.url)
        server.start(broker)
        rss = RssSampler(server)
        db = Database(database_url)
        print(
            f"workflowbot pipeline bench: {os.cpu_count()} CPUs, PostgreSQL "
            f"{db.scalar('SHOW server_version')}, {WORKFLOWS} live workflows -> sink "
            f"{sink.url} (pid {sink.pid})\n"
            + ", ".join(f"{name} pids {pids}" for name, pids in server.pids().items()),
            flush=True,
        )
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client:
            results = run_phases(args, Bench(server, sink, db, broker, client, write_key))
        high, pss = rss.high_water(), rss.pss_kb()
        rss.close()
        problems = _log_problems(server)
        db.conn.close()
    finally:
        outcome = server.stop() if server.procs else {}
        sink.stop()
        broker.flushdb()  # the messages the workers had not run yet

    report = Report()
    print("\nfigures (the machine has 2 cores and may be shared with tests: numbers are noisy)")
    report_throughput(report, results.throughput, args.worker_processes, args.worker_threads)
    report_latency(report, results.half, p=99, target=HALF_P99_TARGET_MS)
    report_latency(report, results.trickle, p=50, target=TRICKLE_P50_TARGET_MS)
    report_dispatch(report, results.dispatch)
    report_memory(report, high, rss, pss)
    print()
    for name, how in outcome.items():
        print(f"{name} process on SIGTERM: {how}")
        if how.startswith("FAIL"):
            report.failures.append(f"FAIL {name} process on SIGTERM: {how}")
    for problem in problems:
        print(f"note: {problem}")
    if problems:
        print(f"the processes' logs are kept in {logs}")
    else:
        shutil.rmtree(logs)
    phases = (results.throughput, results.half, results.trickle, results.dispatch)
    if any(_disturbed(phase.cpu) for phase in phases):
        print("note: other processes used CPU during some phases; the figures may be low")
    print()
    print("\n".join(report.failures) if report.failures else "all targets met")


if __name__ == "__main__":
    main()
