"""Ingestion benchmark: `workflowbot web` + `workflowbot worker` on PostgreSQL, loaded over HTTP.

    .venv/bin/python bench/ingest.py [--runs 3] [--seconds 10]

Starts the two Procfile processes on a free port, then drives them from a separate client
process (a minimal asyncio HTTP/1.1 keep-alive client, cheap enough to share a 2-core box):

- /v1/batch, 100 track events per call, 8 connections: events stored per second, counted in
  the events table (target >= 15,000/s);
- /v1/track, one event per call, 32 connections: requests per second (target >= 1,500/s) and
  p99 latency (target < 100 ms).

Prints each run, the median, the target and PASS/FAIL; the web process's peak RSS; the CPU
each side used (and what other processes on the machine took); the writer's group commits;
whether the worker drains the outbox; how both processes stop on SIGTERM. Always exits 0: it
is a measurement. To see where the web process spends its time during a run:
`py-spy record --nonblocking -o /tmp/profile.svg --pid WEB_PID` (the pid is printed first).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import http.client
import json
import os
import random
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import procfs
import psycopg
import redis

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "workflowbot_bench"
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/14"

BATCH_TARGET = 15_000  # stored events/s
TRACK_RPS_TARGET = 1_500  # requests/s
TRACK_P99_TARGET_MS = 100.0

# The population the client sends as: 10,000 users in 1,000 accounts; a third of events carry
# their account as context.groupId (as a browser library configured with a group would).
USERS = 10_000
USERS_PER_ACCOUNT = 10
EVENT_NAMES = (
    "Page Viewed", "Feature Used", "Report Exported", "Dashboard Opened",
    "Search Performed", "Invite Sent", "File Uploaded", "Logged In",
)  # fmt: skip
PLANS = ("free", "starter", "pro", "enterprise")
PATHS = ("/", "/dashboard", "/reports", "/settings", "/billing", "/search", "/team")


# --- the load generator (runs in its own process) --------------------------------------------


@dataclass(frozen=True)
class LoadSpec:
    path: str  # /v1/batch or /v1/track
    port: int
    write_key: str
    connections: int
    seconds: float
    batch_size: int = 0  # 0: one event per request, the body being the call itself


@dataclass
class LoadResult:
    requests: int
    events_sent: int  # in requests answered 200
    elapsed: float  # from the first request to the last response
    statuses: Counter[int]
    errors: list[str]  # connections that failed
    latencies: list[float]  # seconds, sorted
    client_cpu: float  # seconds of CPU the client process used

    @property
    def rps(self) -> float:
        return self.requests / self.elapsed

    def percentile_ms(self, p: float) -> float:
        if not self.latencies:
            return float("nan")
        index = min(len(self.latencies) - 1, round(p / 100 * (len(self.latencies) - 1)))
        return self.latencies[index] * 1000

    @property
    def bad(self) -> int:
        """Responses other than 200, plus connections that failed."""
        return sum(n for status, n in self.statuses.items() if status != 200) + len(self.errors)


class Population:
    """Track calls from 10,000 users, each with a unique messageId and a recent timestamp."""

    def __init__(self, seed: int) -> None:
        self._rng = random.Random(seed)
        self._prefix = f"bench-{uuid.uuid4().hex[:12]}"
        self._seq = 0

    def call(self) -> dict[str, object]:
        rng = self._rng
        self._seq += 1
        user = rng.randrange(USERS)
        at = datetime.fromtimestamp(time.time() - rng.random() * 5, UTC)
        call: dict[str, object] = {
            "userId": f"user-{user:05d}",
            "event": rng.choice(EVENT_NAMES),
            "messageId": f"{self._prefix}-{self._seq}",
            "timestamp": at.isoformat(timespec="milliseconds"),
            "properties": {
                "plan": PLANS[user % len(PLANS)],
                "path": rng.choice(PATHS),
                "duration_ms": rng.randrange(20, 5000),
                "items": rng.randrange(10),
            },
        }
        if user % 3 == 0:
            call["context"] = {"groupId": f"acct-{user // USERS_PER_ACCOUNT:04d}"}
        return call

    def body(self, batch_size: int) -> bytes:
        payload: object = (
            {"batch": [{"type": "track", **self.call()} for _ in range(batch_size)]}
            if batch_size
            else self.call()
        )
        return json.dumps(payload, separators=(",", ":")).encode()


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


async def _drive(spec: LoadSpec) -> LoadResult:
    """Open every connection, then send back-to-back on each until the time is up."""
    auth = base64.b64encode(f"{spec.write_key}:".encode()).decode()
    head = (
        f"POST {spec.path} HTTP/1.1\r\nHost: 127.0.0.1:{spec.port}\r\n"
        f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
        "Content-Length: {}\r\n\r\n"
    )
    streams = [
        await asyncio.open_connection("127.0.0.1", spec.port) for _ in range(spec.connections)
    ]
    statuses: Counter[int] = Counter()
    errors: list[str] = []
    latencies: list[float] = []
    events_sent = 0

    async def connection(index: int, deadline: float) -> None:
        nonlocal events_sent
        reader, writer = streams[index]
        population = Population(seed=index)
        try:
            while time.perf_counter() < deadline:
                body = population.body(spec.batch_size)
                started = time.perf_counter()
                writer.write(head.format(len(body)).encode() + body)
                status = await _read_response(reader)
                latencies.append(time.perf_counter() - started)
                statuses[status] += 1
                if status == 200:
                    events_sent += spec.batch_size or 1
        except (OSError, ValueError, asyncio.IncompleteReadError) as exc:
            errors.append(f"connection {index}: {type(exc).__name__}: {exc}")
        finally:
            writer.close()

    cpu = time.process_time()
    started = time.perf_counter()
    deadline = started + spec.seconds
    await asyncio.gather(*(connection(i, deadline) for i in range(spec.connections)))
    elapsed = time.perf_counter() - started
    return LoadResult(
        requests=sum(statuses.values()),
        events_sent=events_sent,
        elapsed=elapsed,
        statuses=statuses,
        errors=errors,
        latencies=sorted(latencies),
        client_cpu=time.process_time() - cpu,
    )


def run_load(spec: LoadSpec) -> LoadResult:
    """The client process's entry point: one run of one test."""
    try:
        import uvloop  # installed with uvicorn[standard]: the cheapest event loop at hand
    except ImportError:
        return asyncio.run(_drive(spec))
    return uvloop.run(_drive(spec))


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


class Database:
    """The bench's own connection: counts events, group commits and pending outbox rows."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url.replace("+psycopg", "", 1), autocommit=True)
        self.name = self.conn.info.dbname

    def scalar(self, sql: str, *params: object) -> Any:
        row = self.conn.execute(sql, params or None).fetchone()
        return row[0] if row else None

    def events(self) -> int:
        return int(self.scalar("SELECT count(*) FROM events"))

    def last_event_id(self) -> int:
        return int(self.scalar("SELECT coalesce(max(id), 0) FROM events"))

    def commits_since(self, event_id: int) -> int:
        """Writer transactions that stored events after `event_id` (one received_at each)."""
        sql = "SELECT count(DISTINCT received_at) FROM events WHERE id > %s"
        return int(self.scalar(sql, event_id))

    def pending_outbox(self) -> int:
        return int(self.scalar("SELECT count(*) FROM outbox WHERE processed_at IS NULL"))

    def wait_drained(self, timeout: float) -> tuple[bool, float, int]:
        """Wait for the worker to process every outbox row: (drained, seconds, pending)."""
        started = time.monotonic()
        while True:
            pending = self.pending_outbox()
            waited = time.monotonic() - started
            if pending == 0 or waited > timeout:
                return pending == 0, waited, pending
            time.sleep(0.25)


@dataclass
class Server:
    """`workflowbot web` and `workflowbot worker`, their output in log files under `logs`."""

    env: dict[str, str]
    port: int
    logs: Path
    procs: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)

    def start(self) -> None:
        for name, argv in (
            ("web", [_workflowbot(), "web", "--host", "127.0.0.1", "--port", str(self.port)]),
            ("worker", [_workflowbot(), "worker"]),
        ):
            with (self.logs / f"{name}.log").open("wb") as log:
                self.procs[name] = subprocess.Popen(
                    argv, env=self.env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT
                )
        self._wait_ready(timeout=60)

    def _wait_ready(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for name, proc in self.procs.items():
                if proc.poll() is not None:
                    self.fail(f"{name} exited with {proc.returncode} at start")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=2)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return
            except OSError:
                pass
            time.sleep(0.2)
        self.fail(f"/readyz not ready after {timeout:.0f} s")

    def fail(self, message: str) -> None:
        self.stop()
        for name in self.procs:
            tail = (self.logs / f"{name}.log").read_text(errors="replace")[-3000:]
            print(f"--- {name} log (tail) ---\n{tail}", file=sys.stderr)
        sys.exit(f"bench: {message}")

    def stop(self, timeout: float = 30) -> dict[str, str]:
        """SIGTERM both; how each exited ("FAIL: ..." if not cleanly within the timeout)."""
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

    @property
    def web_pid(self) -> int:
        return self.procs["web"].pid

    def worker_pids(self) -> list[int]:
        """Dramatiq's main process and the worker processes it forked."""
        root = self.procs["worker"].pid
        return [root, *procfs.descendants(root)]


# --- /proc: CPU and memory -------------------------------------------------------------------


class RssSampler:
    """Polls a process's VmRSS every 50 ms; `peak` is the highest since the last `reset`."""

    def __init__(self, pid: int) -> None:
        self.pid, self.peak = pid, 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        while not self._stop.wait(0.05):
            try:
                self.peak = max(self.peak, procfs.status_kb(self.pid, "VmRSS"))
            except OSError:
                return

    def reset(self) -> None:
        self.peak = procfs.status_kb(self.pid, "VmRSS")

    def high_water_kb(self) -> int:
        """The kernel's own peak (VmHWM) over the process's whole life."""
        return procfs.status_kb(self.pid, "VmHWM")

    def close(self) -> None:
        self._stop.set()
        self._thread.join()


# --- one run ---------------------------------------------------------------------------------


@dataclass
class Run:
    load: LoadResult
    stored: int  # count(*) of events after the run minus before
    commits: int  # writer transactions that stored events
    cpu: dict[str, float]  # cores used on average, per side
    rss_peak_kb: int
    drain_seconds: float | None  # None: the outbox was not drained within the timeout

    @property
    def stored_per_second(self) -> float:
        return self.stored / self.load.elapsed


@contextmanager
def cpu_meter(server: Server, database: str) -> Iterator[dict[str, float]]:
    """Average cores used by web, worker, postgres and everything else while in the block."""
    sides: dict[str, Callable[[], list[int]]] = {
        "web": lambda: [server.web_pid],
        "worker": server.worker_pids,
        "postgres": lambda: procfs.postgres_pids(database),
    }
    before = {name: procfs.cpu_seconds(pids()) for name, pids in sides.items()}
    machine = procfs.machine_cpu_seconds()
    started = time.perf_counter()
    used: dict[str, float] = {}
    yield used
    elapsed = time.perf_counter() - started
    for name, pids in sides.items():
        used[name] = (procfs.cpu_seconds(pids()) - before[name]) / elapsed
    used["machine"] = (procfs.machine_cpu_seconds() - machine) / elapsed


def run_once(
    spec: LoadSpec,
    client: ProcessPoolExecutor,
    server: Server,
    db: Database,
    rss: RssSampler,
    drain_timeout: float,
) -> Run:
    count_before, last_id = db.events(), db.last_event_id()
    rss.reset()
    with cpu_meter(server, db.name) as cpu:
        load = client.submit(run_load, spec).result()
    stored = db.events() - count_before
    cpu["client"] = load.client_cpu / load.elapsed
    ours = sum(cpu[side] for side in ("web", "worker", "postgres", "client"))
    cpu["other"] = max(0.0, cpu["machine"] - ours)
    peak = rss.peak
    commits = db.commits_since(last_id)
    # The worker catches up before the next run, so that each run starts from an empty outbox.
    drained, waited, _pending = db.wait_drained(drain_timeout)
    return Run(load, stored, commits, cpu, peak, waited if drained else None)


# --- the report ------------------------------------------------------------------------------


class Table:
    """Rows of per-run figures with their median; target rows say PASS or FAIL."""

    def __init__(self, runs: int) -> None:
        self.failures: list[str] = []
        self.heading = "".join(f"{f'run {i + 1}':>10}" for i in range(runs))
        self.heading += f"{'median':>10}  {'target':<11}result"

    def section(self, title: str) -> None:
        print(f"\n{title:<36}{self.heading}")

    def _print(self, label: str, cells: list[str], median: str, target: str, verdict: str) -> None:
        print(
            f"  {label:<34}{''.join(f'{c:>10}' for c in cells)}{median:>10}  {target:<11}{verdict}"
        )

    def info(self, label: str, values: list[float], digits: int = 0) -> None:
        median = statistics.median(values)
        self._print(label, [f"{v:,.{digits}f}" for v in values], f"{median:,.{digits}f}", "", "")

    def target(
        self, label: str, values: list[float], target: float, *, above: bool, digits: int = 0
    ) -> None:
        median = statistics.median(values)
        ok = median >= target if above else median < target
        goal = f"{'>=' if above else '<'} {target:,.0f}"
        verdict = "PASS" if ok else "FAIL"
        self._print(
            label, [f"{v:,.{digits}f}" for v in values], f"{median:,.{digits}f}", goal, verdict
        )
        if not ok:
            self.failures.append(f"FAIL {label}: median {median:,.{digits}f}, target {goal}")

    def zero(self, label: str, values: list[int], detail: list[str]) -> None:
        """A count that must be 0 in every run (`detail` explains the runs where it is not)."""
        ok = not any(values)
        self._print(label, [str(v) for v in values], "", "0 each run", "PASS" if ok else "FAIL")
        if not ok:
            self.failures += [f"FAIL {label}: {d}" for d in detail if d]


def report_test(table: Table, title: str, runs: list[Run], *, batch: bool) -> None:
    table.section(title)
    if batch:
        table.target(
            "stored events/s", [r.stored_per_second for r in runs], BATCH_TARGET, above=True
        )
        table.info("requests/s", [r.load.rps for r in runs])
    else:
        table.target("requests/s", [r.load.rps for r in runs], TRACK_RPS_TARGET, above=True)
        p99 = [r.load.percentile_ms(99) for r in runs]
        table.target("p99 latency ms", p99, TRACK_P99_TARGET_MS, above=False, digits=1)
        table.info("stored events/s", [r.stored_per_second for r in runs])
    table.info("p50 latency ms", [r.load.percentile_ms(50) for r in runs], 1)
    if batch:
        table.info("p99 latency ms", [r.load.percentile_ms(99) for r in runs], 1)
    table.zero(
        "non-200 responses",
        [r.load.bad for r in runs],
        [
            f"run {i + 1}: {dict(r.load.statuses)} {r.load.errors[:3]}"
            for i, r in enumerate(runs)
            if r.load.bad
        ],
    )
    table.zero(
        "accepted events not stored",
        [r.load.events_sent - r.stored for r in runs],
        [
            f"run {i + 1}: {r.load.events_sent:,} accepted, {r.stored:,} stored"
            for i, r in enumerate(runs)
            if r.load.events_sent != r.stored
        ],
    )
    table.info("writer commits/s", [r.commits / r.load.elapsed for r in runs])
    table.info("events per commit", [r.stored / max(r.commits, 1) for r in runs], 1)
    for side in ("web", "postgres", "worker", "client", "other"):
        label = "CPU cores: other processes" if side == "other" else f"CPU cores: {side}"
        table.info(label, [r.cpu[side] for r in runs], 2)
    table.info("web peak RSS MB", [r.rss_peak_kb / 1024 for r in runs], 1)
    drains = [r.drain_seconds for r in runs]
    table.info("outbox drained after, s", [d if d is not None else float("nan") for d in drains], 1)
    if None in drains:
        table.failures.append(f"FAIL {title}: the outbox was not drained after some runs")


# --- main ------------------------------------------------------------------------------------


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=10.0, help="duration of each run")
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of batch load before the runs"
    )
    parser.add_argument(
        "--database-url", help=f"default: drop, create and migrate {BENCH_DATABASE} on 127.0.0.1"
    )
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="flushed at start")
    parser.add_argument("--batch-size", type=int, default=100)
    parser.add_argument("--batch-connections", type=int, default=8)
    parser.add_argument("--track-connections", type=int, default=32)
    parser.add_argument("--drain-timeout", type=float, default=60.0)
    return parser.parse_args()


def main() -> None:
    args = parse_args()
    database_url = prepare_database(args.database_url)
    redis.Redis.from_url(args.redis_url).flushdb()
    port = _free_port()
    write_key = "wk_bench_" + secrets.token_hex(8)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": args.redis_url,
        "INGEST_WRITE_KEYS": write_key,
        "PORT": str(port),
    }
    batch_title = f"/v1/batch: {args.batch_size} events/call, {args.batch_connections} conns"
    track_title = f"/v1/track: 1 event/call, {args.track_connections} conns"
    batch_spec = LoadSpec(
        "/v1/batch", port, write_key, args.batch_connections, args.seconds, args.batch_size
    )
    track_spec = LoadSpec("/v1/track", port, write_key, args.track_connections, args.seconds)

    with tempfile.TemporaryDirectory(prefix="workflowbot-bench-") as logs:
        server = Server(env=env, port=port, logs=Path(logs))
        try:
            server.start()
            db = Database(database_url)
            rss = RssSampler(server.web_pid)
            print(
                f"workflowbot ingest bench: {args.runs} runs x {args.seconds:g} s per test, "
                f"{os.cpu_count()} CPUs, PostgreSQL {db.scalar('SHOW server_version')}\n"
                f"web pid {server.web_pid} on 127.0.0.1:{port} "
                f"(RSS at ready {procfs.status_kb(server.web_pid, 'VmRSS') / 1024:.1f} MB), "
                f"worker pids {server.worker_pids()}"
            )
            results: dict[str, list[Run]] = {batch_title: [], track_title: []}
            with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as client:
                if args.warmup > 0:
                    warmup = replace(batch_spec, seconds=args.warmup)
                    run_once(warmup, client, server, db, rss, args.drain_timeout)
                    print(f"warm-up: {args.warmup:g} s of /v1/batch (not counted)")
                for title, spec in ((batch_title, batch_spec), (track_title, track_spec)):
                    for i in range(args.runs):
                        run = run_once(spec, client, server, db, rss, args.drain_timeout)
                        results[title].append(run)
                        print(
                            f"  {spec.path} run {i + 1}: {run.load.requests:,} requests, "
                            f"{run.stored:,} events stored in {run.load.elapsed:.2f} s"
                        )
            drained, waited, pending = db.wait_drained(args.drain_timeout)
            total_events = db.events()
            peak_kb = rss.high_water_kb()
            rss.close()
            db.conn.close()
        finally:
            outcome = server.stop()

    table = Table(args.runs)
    report_test(table, batch_title, results[batch_title], batch=True)
    report_test(table, track_title, results[track_title], batch=False)
    print(f"\nweb process peak RSS (VmHWM): {peak_kb / 1024:.1f} MB")
    if drained:
        print(
            f"outbox: drained by the worker (0 rows with processed_at IS NULL "
            f"{waited:.1f} s after the last run; {total_events:,} events stored in all)"
        )
    else:
        table.failures.append(f"FAIL outbox: {pending:,} rows still pending after {waited:.0f} s")
    for name, how in outcome.items():
        print(f"{name} process on SIGTERM: {how}")
        if how.startswith("FAIL"):
            table.failures.append(f"FAIL {name} process on SIGTERM: {how}")
    if any(r.cpu["other"] > 0.2 for runs in results.values() for r in runs):
        print("note: other processes used CPU during some runs; the figures may be low")
    print()
    print("\n".join(table.failures) if table.failures else "all targets met")


if __name__ == "__main__":
    main()
