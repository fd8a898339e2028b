"""Statistics benchmark (the Insight issue): `workflow_stats` over a large history.

    .venv/bin/python bench/stats.py [--runs 5]

On PostgreSQL, in its own database (`workflowbot_bench_stats`, dropped, created and migrated
each run), one live workflow of five steps (an email step with approval first) with
1,000,000 enrollments and 5,000,000 step runs over the 365 days before a fixed NOW, plus a
draft for each email step run reached (approved and sent, edited, discarded, expired) and
their email events (opens by people and by Gmail's image proxy right after sending, clicks by
people and by link scanners, unsubscribes). Everything is generated set-wise in SQL
(generate_series) from fixed rules, then ANALYZEd.

Then the scheduler's rollup runs once (its time printed: the first pass rolls up the whole
year), and `engine.stats.workflow_stats` is timed, median of --runs, for the last 30 days and
for the whole year, each printed next to its target (<= 500 ms) with PASS/FAIL, as are
`summaries` for the last 30 days. Always exits 0: it is a measurement; the machine has 2
cores and may be shared, so figures are noisy."""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine import stats, stats_rollup  # noqa: E402
from storage import migrate  # noqa: E402
from storage.db import make_engine, session_scope  # noqa: E402

BENCH_DATABASE = "workflowbot_bench_stats"
SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
DAYS = 365
ENROLLMENTS = 1_000_000
STEPS = 5
TARGET_MS = 500.0

DOCUMENT = {
    "name": "Bench onboarding",
    "object": "account",
    "trigger": {"segment": "Trials"},
    "status": "live",
    "steps": [
        {
            "action": "email",
            "kind": "html",
            "to": ["{{ account.primary_contact.email }}"],
            "subject": "Welcome",
            "body": "<p>Hi</p>",
        },
        {"action": "webhook", "url": "https://hooks.example.com/a", "delay": "1d"},
        {"action": "slack", "channel": "#cs", "text": "Check in", "delay": "2d", "only_if": "x"},
        {"action": "webhook", "url": "https://hooks.example.com/b", "delay": "3d"},
        {"action": "update", "set": {"stage": "Active"}, "delay": "1d"},
    ],
}

# Enrollment i: enrolled across the year in order; its fate by i % 100.
GENERATE = [
    (
        "workflow",
        """
        INSERT INTO workflows (id, name, name_key, object_type, status, version, trigger_kind,
                               trigger_key, live_since, created_at, updated_at)
        VALUES (1, 'Bench onboarding', 'bench onboarding', 'account', 'live', 1, 'segment',
                'enter:1', %(start)s, %(start)s, %(start)s)
        """,
    ),
    (
        "version",
        """
        INSERT INTO workflow_versions (id, workflow_id, number, document, created_at,
                                       created_by, summary)
        VALUES (1, 1, 1, %(document)s, %(start)s, 'bench', '')
        """,
    ),
    (
        "enrollments",
        """
        INSERT INTO enrollments (id, workflow_id, version_id, object_type, object_id, status,
                                 once, via, trigger, enrolled_at, ended_at, end_reason)
        SELECT i, 1, 1, 'account', i, s.status, true, 'signal', '{}', s.at,
               CASE WHEN s.status = 'active' THEN NULL ELSE s.at + interval '8 days' END,
               CASE s.status
                 WHEN 'completed' THEN 'completed'
                 WHEN 'failed' THEN 'step 4 (webhook) failed (on_failure: stop)'
                 WHEN 'exited' THEN CASE WHEN i %% 3 = 0 THEN 'exited by hand, by U0' || i %% 7
                                    ELSE 'exit_if `plan = "paid"` became true' END
               END
        FROM generate_series(1, %(n)s) AS i,
        LATERAL (SELECT %(start)s::timestamptz + (i - 1) * %(span)s::interval / %(n)s
                        + (i %% 97) * interval '1 second' AS at) AS t,
        LATERAL (SELECT t.at,
                   CASE WHEN t.at > %(now)s::timestamptz - interval '8 days' THEN 'active'
                        WHEN i %% 100 < 12 THEN 'exited'
                        WHEN i %% 100 < 14 THEN 'failed'
                        ELSE 'completed' END AS status) AS s
        """,
    ),
    (
        "step runs",
        """
        INSERT INTO step_runs (id, enrollment_id, step_index, status, due_at, attempt, claims,
                               idempotency_key, error, created_at, finished_at)
        SELECT (e.id - 1) * 5 + k + 1, e.id, k, r.status, r.created_at, 0, 1,
               'b' || e.id || '-' || k,
               CASE r.status
                 WHEN 'skipped' THEN CASE WHEN k = 0 AND e.id %% 10 < 2
                                          THEN 'draft #' || e.id || ' discarded by U0' || e.id %% 7
                                          WHEN k = 0 THEN 'draft #' || e.id || ' expired'
                                          ELSE 'only_if `x` is false' END
                 WHEN 'failed' THEN 'HTTP 500 from hooks.example.com: server error'
               END,
               r.created_at,
               CASE WHEN r.status IN ('scheduled', 'waiting') THEN NULL
                    ELSE r.created_at + r.wait END
        FROM enrollments e, generate_series(0, 4) AS k,
        LATERAL (SELECT
            e.enrolled_at + (ARRAY[0, 1, 3, 6, 7])[k + 1] * interval '1 day'
              + (k * 3600 + e.id %% 7200) * interval '1 second' AS created_at,
            CASE k WHEN 0 THEN (60 + e.id %% 20000) * interval '1 second'
                   ELSE (ARRAY[0, 1, 2, 3, 1])[k + 1] * interval '1 day'
                        + (e.id %% 600) * interval '1 second' END AS wait,
            CASE
              WHEN e.status = 'active' AND k > 0 THEN 'scheduled'
              WHEN e.status = 'active' THEN 'waiting'
              WHEN e.status = 'exited' AND k >= 2 THEN 'cancelled'
              WHEN e.status = 'failed' AND k = 3 THEN 'failed'
              WHEN e.status = 'failed' AND k = 4 THEN 'cancelled'
              WHEN k = 0 AND e.id %% 10 < 3 THEN 'skipped'
              WHEN k = 2 AND e.id %% 10 >= 7 THEN 'skipped'
              WHEN k = 1 AND e.id %% 50 = 0 THEN 'failed'
              ELSE 'done' END AS status) AS r
        """,
    ),
    (
        "drafts",
        """
        INSERT INTO drafts (id, step_run_id, enrollment_id, workflow_id, step_index, kind,
                            status, object_type, object_id, record_name, sender, "to", cc,
                            subject, body, message_id, approval_channel, edited, decided_by,
                            decided_at, sent_at, created_at, updated_at)
        SELECT s.enrollment_id, s.id, s.enrollment_id, 1, 0, 'html', d.status, 'account',
               s.enrollment_id, 'Acme', 'cs@acme.example', '["ada@globex.example"]', '[]',
               'Welcome', '<p>Hi</p>', 'm' || s.id || '@acme.example', '#cs',
               s.enrollment_id %% 10 = 5,
               CASE WHEN d.status = 'pending' THEN NULL ELSE 'U0' || s.enrollment_id %% 7 END,
               s.finished_at - interval '30 seconds',
               CASE WHEN d.status = 'sent' THEN s.finished_at END,
               s.created_at, coalesce(s.finished_at, s.created_at)
        FROM step_runs s,
        LATERAL (SELECT CASE
            WHEN s.status = 'waiting' THEN 'pending'
            WHEN s.status = 'done' THEN 'sent'
            WHEN s.error LIKE '%%discarded%%' THEN 'discarded'
            ELSE 'expired' END AS status) AS d
        WHERE s.step_index = 0
        """,
    ),
    (
        "email events",
        """
        INSERT INTO email_events (draft_id, kind, at, detail)
        SELECT d.id, e.kind, d.sent_at + e.after, e.detail
        FROM drafts d,
        LATERAL (SELECT (d.id / 10) %% 100 AS k) AS r,
        LATERAL (VALUES
            ('open', interval '3 seconds', %(proxy)s::jsonb, r.k %% 4 = 0),
            ('open', (d.id %% 86400) * interval '1 second' + interval '10 minutes',
             %(browser)s::jsonb, r.k < 40),
            ('click', interval '2 seconds', %(link_a)s::jsonb, r.k %% 20 = 3),
            ('click', interval '2 seconds', %(link_b)s::jsonb, r.k %% 20 = 3),
            ('click', (d.id %% 86400) * interval '1 second' + interval '15 minutes',
             %(link_a)s::jsonb, r.k < 40 AND r.k %% 4 = 1),
            ('unsubscribe', interval '2 hours', '{}'::jsonb, r.k = 7)
        ) AS e(kind, after, detail, yes)
        WHERE d.status = 'sent' AND e.yes
        """,
    ),
]


def prepare(url: str) -> None:
    with psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {BENCH_DATABASE} WITH (FORCE)")
        conn.execute(f"CREATE DATABASE {BENCH_DATABASE}")
    engine = make_engine(url)
    migrate.upgrade(engine)
    engine.dispose()


def generate(url: str) -> None:
    params = {
        "start": NOW - timedelta(days=DAYS),
        "now": NOW,
        "span": timedelta(days=DAYS - 1),
        "n": ENROLLMENTS,
        "document": json.dumps(DOCUMENT),
        "proxy": json.dumps({"user_agent": "Mozilla/5.0 (via ggpht.com GoogleImageProxy)"}),
        "browser": json.dumps({"user_agent": "Mozilla/5.0 (Macintosh) Version/17.1 Safari"}),
        "link_a": json.dumps({"url": "https://acme.example/a", "user_agent": "Safari"}),
        "link_b": json.dumps({"url": "https://acme.example/b", "user_agent": "Safari"}),
    }
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '256MB'")
        for name, statement in GENERATE:
            began = time.perf_counter()
            rows = conn.execute(statement, params).rowcount
            print(f"  {name}: {rows:,} rows in {time.perf_counter() - began:.1f} s", flush=True)
        began = time.perf_counter()
        conn.execute("ANALYZE")
        conn.execute("SELECT setval('email_events_id_seq', (SELECT max(id) FROM email_events))")
        print(f"  analyze: {time.perf_counter() - began:.1f} s", flush=True)


def timed(call: Callable[[], object], runs: int) -> float:
    """Median wall time in ms of `runs` calls (after one warm-up)."""
    call()
    took = []
    for _ in range(runs):
        began = time.perf_counter()
        call()
        took.append((time.perf_counter() - began) * 1000)
    return statistics.median(took)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    url = f"{SERVER_URL}/{BENCH_DATABASE}"
    print(f"database {BENCH_DATABASE}: dropped, created, migrated", flush=True)
    began = time.perf_counter()
    prepare(url)
    print(f"generating {ENROLLMENTS:,} enrollments, {ENROLLMENTS * STEPS:,} step runs", flush=True)
    generate(url)
    print(f"generated in {time.perf_counter() - began:.0f} s", flush=True)
    engine = make_engine(url)
    began = time.perf_counter()
    with session_scope(engine) as session:
        rolled = stats_rollup.roll_up(session, now=NOW, timezone="UTC")
    print(f"rollup, first pass: {rolled} workflow days in {time.perf_counter() - began:.1f} s")
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE stats_days")
        conn.commit()

    def report(days: int) -> Callable[[], object]:
        def call() -> object:
            with session_scope(engine) as session:
                return stats.workflow_stats(
                    session,
                    workflow_id=1,
                    range=stats.Range(NOW - timedelta(days=days), NOW),
                    now=NOW,
                )

        return call

    def overview() -> object:
        with session_scope(engine) as session:
            return stats.summaries(
                session, range=stats.Range(NOW - timedelta(days=30), NOW), now=NOW
            )

    year = report(DAYS)()
    assert isinstance(year, stats.WorkflowStats)
    print(
        f"\nthe year: {year.enrolled:,} enrolled, {year.active:,} active, {year.completed:,} "
        f"completed, exited {year.exited}; step 1 run {year.steps[0].run:,}, "
        f"sent {year.emails[0].sent:,}, opened {year.emails[0].opened.count:,} "
        f"(+{year.emails[0].machine_opened:,} machine), clicked {year.emails[0].clicked.count:,} "
        f"(+{year.emails[0].scanner_clicked:,} scanner)"
    )
    print(f"\nfigures (median of {args.runs}; 2 shared cores: numbers are noisy)")
    for label, call in (
        ("workflow_stats, last 30 days", report(30)),
        ("workflow_stats, the whole year", report(DAYS)),
        ("summaries, last 30 days", overview),
    ):
        ms = timed(call, args.runs)
        verdict = "PASS" if ms <= TARGET_MS else "FAIL"
        print(f"  {label:<34} {ms:8.1f} ms   target <= {TARGET_MS:.0f} ms   {verdict}")
    engine.dispose()


if __name__ == "__main__":
    main()
