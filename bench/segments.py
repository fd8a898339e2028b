"""Segments benchmark (issue 3): set-wise refresh, one record against many rules, the actor.

    .venv/bin/python bench/segments.py [--only refresh|record|actor] [--chunk 500] [--explain]

On PostgreSQL, in its own database (`workflowbot_bench_segments`, created and migrated when
missing), with 1,000,000 accounts, ~3 contacts each and 10,000,000 events over the 60 days
before a fixed NOW. The data is generated once from a fixed seed (COPY, indexes built after
the load, the migrated schema restored and checked; ~4 minutes) and kept: a later run finds
its marker (the database's comment) and skips the generation. Every figure is taken at NOW.

1. Full refresh with enter/leave diff: membership of `plan = "trial" and mrr < 500 and
   count(login, 7d) < 2` stored at NOW - 1 day, then `segments.refresh` at NOW (a real diff:
   logins leave and enter the 7-day window), commit included (target <= 10 s, median).
2. Refresh when nothing changed: `segments.refresh` at NOW again (target <= 3 s, median).
3. One changed account (a trait written, its outbox row) against 50 account segments:
   `signals.evaluate` for that one row in its own transaction (target <= 5 ms, median).
4. The evaluation actor, 2 processes x 8 threads on Redis, 20 segments: changed accounts and
   contacts (traits really changed; outbox ids sent as `tasks.enqueue_evaluation` sends them,
   500 a message, or --chunk) evaluated per second from the first send until every row is
   processed (target >= 2,000/s). Messages that failed (and were retried) are counted.

Segments are measured as they are once they exist: segment_members is ANALYZEd after each
creation, as autovacuum does within a minute or so. The worker is `dramatiq ... engine.tasks
--processes 2 --threads 8` as `workflowbot worker` runs it, with one difference: its broker
comes from `worker_broker` below, which calls `engine.broker.setup` and then pins the
runtime's clock to NOW, so that rules read the data at the instant it was generated for.
Segments, outbox rows and signals the bench makes are removed at the end and changed traits
restored (a journal in the temp directory restores them after a crash). Prints each figure
with its target and PASS/FAIL, peak RSS of this process and of the worker processes, and
EXPLAIN (ANALYZE, BUFFERS) of the refresh statements when a refresh target is missed (or with
--explain). Always exits 0: it is a measurement; the machine has 2 cores and may be shared,
so figures are noisy."""

from __future__ import annotations

import argparse
import itertools
import json
import os
import random
import re
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from array import array
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ProcessPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import procfs
import psycopg
import redis
from psycopg import sql
from sqlalchemy import Engine, event

ROOT = Path(__file__).resolve().parent.parent
BENCH_DATABASE = "workflowbot_bench_segments"
SERVER_URL = "postgresql://postgres@127.0.0.1:5432"
DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/9"
JOURNAL = Path(tempfile.gettempdir()) / f"{BENCH_DATABASE}-restore.json"

SEED = 20261125
NOW = datetime(2026, 11, 1, 12, 0, tzinfo=UTC)
EARLIER = NOW - timedelta(days=1)  # when the stored membership of figure 1 was computed
HISTORY_DAYS = 60
DATA_VERSION = 1

REFRESH_TARGET_S = 10.0
UNCHANGED_TARGET_S = 3.0
RECORD_TARGET_MS = 5.0
ACTOR_TARGET = 2_000.0  # records/s

NAME_PREFIX = "bench-segments"
FIGURES = ("refresh", "record", "actor")
ISSUE_RULE = 'plan = "trial" and mrr < 500 and count(login, 7d) < 2'

# 50 account rules a customer-success team would keep: trait tests, in, contains, is set,
# within / ago windows, counts (some with where) and trends.
ACCOUNT_RULES = (
    ISSUE_RULE,
    'plan = "trial" and trial_ends_at within next 7d',
    'plan in ["pro", "enterprise"] and mrr >= 2000',
    'plan = "enterprise" and health_score < 40',
    'tags contains "vip"',
    'tags contains "churn_risk" and count(login, 14d) = 0',
    "trend(login, 7d) <= -50",
    "count(login, 30d) >= 20",
    'count(export_created where properties.format = "csv", 30d) >= 3',
    "last_seen_at before 30d ago",
    "last_seen_at within 1d",
    "renewal_date within next 30d",
    "renewal_date within next 90d and health_score < 50",
    "created_at within 14d",
    'stage = "onboarding" and count(login, 7d) = 0',
    'stage in ["active", "expansion"] and seats >= 50',
    'industry = "fintech" and region = "emea"',
    'region = "na" and plan = "starter" and mrr > 100',
    'signup_source = "ads" and created_at within 30d',
    "nps is set and nps <= 6",
    'nps >= 9 and plan != "free"',
    "owner is not set and mrr >= 1000",
    "count(invite_sent, 30d) >= 5",
    "count(support_ticket, 14d) >= 2 and health_score < 60",
    "count(api_call, 7d) > 100",
    "trend(api_call, 7d) >= 50",
    'name contains "Labs"',
    'plan = "free" and count(login, 7d) >= 5',
    "seats > 100 or mrr > 10000",
    'not (plan = "trial") and mrr = 0',
    'health_score >= 70 and stage = "active"',
    'health_score < 40 and stage != "churned"',
    'plan = "pro" and count(report_viewed, 30d) = 0',
    'industry in ["retail", "ecommerce"] and tags contains "self_serve"',
    'tags contains "partner"',
    'tags contains "beta" and count(feature_used, 7d) >= 3',
    'last_seen_at before 14d ago and plan in ["pro", "enterprise"]',
    'plan = "trial" and trial_ends_at before 1d ago',
    "mrr >= 500 and mrr < 2000",
    'count(login where properties.method = "sso", 30d) >= 10',
    'plan = "trial" and count(export_created, 7d) >= 1',
    'region = "apac" and health_score is not set',
    'stage = "at_risk"',
    'stage = "churned" and count(login, 7d) >= 1',
    'signup_source = "referral" and plan = "trial"',
    'plan = "enterprise" and seats <= 5',
    'created_at > date("2026-06-01") and mrr > 1000',
    'plan != "free" and trend(report_viewed, 14d) <= -50',
    "count(login, 1d) >= 3",
    'industry = "saas" and count(invite_sent, 7d) = 0 and count(login, 7d) >= 3',
)
# The actor's 20: 14 of the account rules above and 6 contact rules (3 read the account).
ACTOR_ACCOUNT_RULES = (0, 2, 4, 5, 6, 9, 11, 14, 16, 19, 26, 33, 38, 40)
CONTACT_RULES = (
    'role = "admin" and count(login, 14d) = 0',
    'account.plan = "trial" and count(login, 7d) >= 3',
    'account.plan in ["pro", "enterprise"] and role = "owner"',
    "newsletter = true and last_seen_at before 30d ago",
    'email contains "@gmail.com"',
    'account.mrr >= 2000 and title contains "VP"',
)


# --- the data: generated once from SEED, in time order, by COPY -------------------------------

PLANS = ("trial", "free", "starter", "pro", "enterprise")
PLAN_WEIGHTS = (20, 15, 25, 25, 15)
STAGES = ("onboarding", "active", "expansion", "at_risk", "churned")
STAGE_WEIGHTS = (15, 45, 15, 15, 10)
INDUSTRIES = ("saas", "fintech", "retail", "ecommerce", "health", "education", "media", "logistics")
REGIONS = ("na", "emea", "apac", "latam")
TAGS = ("vip", "churn_risk", "partner", "beta", "self_serve")
SOURCES = ("ads", "organic", "referral", "sales")
COMPANIES = ("Acme", "Globex", "Initech", "Umbrella", "Hooli", "Stark", "Wayne", "Wonka")
SUFFIXES = ("Labs", "Inc", "Systems", "Group", "Co")
ROLES = ("admin", "owner", "member", "viewer")
TITLES = ("VP Sales", "CTO", "Engineer", "Analyst", "VP Marketing", "Manager", "Founder")
FIRST_NAMES = ("Ann", "Bob", "Chen", "Dana", "Eli", "Fatima", "Gus", "Hana", "Ivan", "Jo")
LAST_NAMES = ("Smith", "Garcia", "Kim", "Novak", "Okafor", "Rossi", "Silva", "Weber")
# (name, properties) with their weights: login the most frequent event by far.
EVENT_KINDS = (
    ("login", {"method": "password"}, 28),
    ("login", {"method": "sso"}, 12),
    ("report_viewed", {"report": "usage"}, 10),
    ("report_viewed", {"report": "funnel"}, 8),
    ("api_call", {"endpoint": "/v2/items"}, 15),
    ("feature_used", {"feature": "automation"}, 7),
    ("feature_used", {"feature": "alerts"}, 5),
    ("export_created", {"format": "csv"}, 5),
    ("export_created", {"format": "pdf"}, 3),
    ("invite_sent", {"role": "member"}, 4),
    ("support_ticket", {"priority": "high"}, 3),
)
TABLES = ("accounts", "contacts", "events")
DAY = 86_400
NULL = r"\N"  # COPY's text format


@dataclass(frozen=True)
class Spec:
    """The size of the data; the marker names it with the seed, NOW and the version."""

    accounts: int

    @property
    def events(self) -> int:
        return self.accounts * 10

    @property
    def marker(self) -> str:
        return (
            f"bench/segments.py data v{DATA_VERSION}: seed {SEED}, {self.accounts} accounts, "
            f"~3 contacts each, {self.events} events, now {NOW.isoformat()}"
        )


class Stamps:
    """Epoch seconds -> PostgreSQL timestamptz text, by table lookup (millions per run)."""

    def __init__(self) -> None:
        self.base = int(NOW.timestamp()) // DAY - 2000
        self.days = [
            (datetime.fromtimestamp((self.base + d) * DAY, UTC)).strftime("%Y-%m-%d ")
            for d in range(2500)
        ]
        self.clock = [f"{s // 3600:02d}:{s // 60 % 60:02d}:{s % 60:02d}+00" for s in range(DAY)]

    def __call__(self, epoch: int) -> str:
        day, second = divmod(epoch, DAY)
        return self.days[day - self.base] + self.clock[second]


@dataclass
class Population:
    """Who exists and how active: what the events, contacts and accounts passes share."""

    created: array[int]  # account -> epoch seconds (index 0 unused: ids start at 1)
    active_from: array[int]  # account -> first day index of activity
    active_until: array[int]  # account -> day index activity stops (HISTORY_DAYS: never)
    contact_account: array[int] = field(default_factory=lambda: array("q", [0]))
    contact_created: array[int] = field(default_factory=lambda: array("q", [0]))
    contact_weights: array[float] = field(default_factory=lambda: array("d", [0.0]))


def _population(spec: Spec) -> Population:
    rng = random.Random(SEED)
    now = int(NOW.timestamp())
    start = now - HISTORY_DAYS * DAY
    pop = Population(array("q", [0]), array("b", [0]), array("b", [0]))
    for _ in range(spec.accounts):
        recent = rng.random() < 0.1
        age = rng.randrange(DAY, HISTORY_DAYS * DAY) if recent else rng.randrange(60, 1500) * DAY
        created = now - age
        pop.created.append(created)
        pop.active_from.append(max(0, (created - start) // DAY))
        churning = rng.random() < 0.12
        pop.active_until.append(rng.randrange(HISTORY_DAYS) if churning else HISTORY_DAYS)
        activity = 0.0 if rng.random() < 0.15 else rng.lognormvariate(0, 1.2)
        for _ in range(rng.choices((1, 2, 3, 4, 5), (10, 20, 40, 20, 10))[0]):
            pop.contact_account.append(len(pop.created) - 1)
            pop.contact_created.append(created + rng.randrange(0, max(age // 2, 1)))
            pop.contact_weights.append(activity * rng.lognormvariate(0, 0.8))
    return pop


def _day_quotas(total: int) -> list[int]:
    """Events per day, weekends lighter, summing to `total` exactly."""
    start = NOW - timedelta(days=HISTORY_DAYS)
    weights = [0.45 if (start + timedelta(days=d)).weekday() >= 5 else 1.0 for d in range(60)]
    bounds = [round(total * w / sum(weights)) for w in itertools.accumulate(weights)]
    return [b - a for a, b in zip([0, *bounds], bounds, strict=False)]


def _copy_events(
    conn: psycopg.Connection, spec: Spec, pop: Population, stamps: Stamps
) -> array[int]:
    """COPY the events, day by day in time order (ids grow with time, as ingestion writes
    them); returns each contact's last event time (0: none)."""
    rng = random.Random(SEED + 1)
    kinds = [f"{name}\t{json.dumps(props)}\n" for name, props, _ in EVENT_KINDS]
    kind_weights = list(itertools.accumulate(w for _, _, w in EVENT_KINDS))
    contacts = range(len(pop.contact_weights))
    cumulative = array("d", itertools.accumulate(pop.contact_weights))
    last_seen = array("q", bytes(8 * len(contacts)))
    start = int(NOW.timestamp()) - HISTORY_DAYS * DAY
    event_id = 0
    columns = "id, message_id, contact_id, account_id, timestamp, received_at, name, properties"
    with conn.cursor().copy(f"COPY events ({columns}) FROM STDIN WITH (FREEZE)") as copy:
        for day, quota in enumerate(_day_quotas(spec.events)):
            who: list[int] = []
            while len(who) < quota:  # an account outside its active days does nothing
                for c in rng.choices(contacts, cum_weights=cumulative, k=quota - len(who)):
                    a = pop.contact_account[c]
                    if pop.active_from[a] <= day < pop.active_until[a]:
                        who.append(c)
            seconds = sorted(start + day * DAY + int(rng.random() * DAY) for _ in range(quota))
            what = rng.choices(kinds, cum_weights=kind_weights, k=quota)
            lines = []
            for c, at, kind in zip(who, seconds, what, strict=True):
                event_id += 1
                stamp = stamps(at)
                lines.append(
                    f"{event_id}\tev-{event_id}\t{c}\t{pop.contact_account[c]}\t"
                    f"{stamp}\t{stamp}\t{kind}"
                )
                last_seen[c] = at
            copy.write("".join(lines))
    return last_seen


def _account_traits(rng: random.Random, account_id: int, created: int) -> dict[str, Any]:
    plan = rng.choices(PLANS, PLAN_WEIGHTS)[0]
    low, high = {
        "trial": (0, 1000),
        "free": (0, 1),
        "starter": (50, 500),
        "pro": (500, 5000),
        "enterprise": (2000, 50000),
    }[plan]
    mrr: object = rng.randrange(low, high)
    if rng.random() < 0.1:  # as a CSV import gives it
        mrr = f"{mrr}.00" if rng.random() < 0.5 else str(mrr)
    now = int(NOW.timestamp())
    traits: dict[str, Any] = {
        "name": f"{rng.choice(COMPANIES)} {rng.choice(SUFFIXES)} {account_id}",
        "plan": plan,
        "seats": rng.randrange(1, 20)
        if plan in ("trial", "free", "starter")
        else rng.randrange(5, 500),
        "industry": rng.choice(INDUSTRIES),
        "region": rng.choice(REGIONS),
        "tags": rng.sample(TAGS, rng.choices((0, 1, 2, 3), (50, 30, 15, 5))[0]),
        "signup_source": rng.choice(SOURCES),
        "stage": rng.choices(STAGES, STAGE_WEIGHTS)[0],
        "created_at": datetime.fromtimestamp(created, UTC).isoformat(),
    }
    if rng.random() > 0.02:
        traits["mrr"] = mrr
    if rng.random() < 0.85:
        traits["health_score"] = round(rng.uniform(0, 100), 1)
    if plan != "trial":
        renewal = now + rng.randrange(-30 * DAY, 365 * DAY)
        traits["renewal_date"] = datetime.fromtimestamp(renewal, UTC).date().isoformat()
    else:
        ends = now + rng.randrange(-7 * DAY, 14 * DAY)
        traits["trial_ends_at"] = datetime.fromtimestamp(ends, UTC).isoformat()
    if rng.random() < 0.6:
        traits["nps"] = rng.randrange(11)
    return traits


def _copy_contacts(
    conn: psycopg.Connection, pop: Population, last_seen: array[int], stamps: Stamps
) -> array[int]:
    """COPY the contacts; returns each account's last event time (0: none)."""
    rng = random.Random(SEED + 2)
    account_last = array("q", bytes(8 * len(pop.created)))
    columns = (
        "id, external_id, account_id, email, first_name, last_name, name, traits, trait_times, "
        "created_at, first_seen_at, last_seen_at, updated_at, account_linked_at"
    )
    with conn.cursor().copy(f"COPY contacts ({columns}) FROM STDIN WITH (FREEZE)") as copy:
        lines = []
        for c in range(1, len(pop.contact_account)):
            a = pop.contact_account[c]
            first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
            domain = "gmail.com" if rng.random() < 0.15 else f"company{a}.example"
            email = f"{first.lower()}.{last.lower()}{c}@{domain}"
            traits = {
                "email": email,
                "first_name": first,
                "last_name": last,
                "role": rng.choices(ROLES, (15, 10, 55, 20))[0],
                "title": rng.choice(TITLES),
                "newsletter": rng.random() < 0.4,
            }
            created = stamps(pop.contact_created[c])
            times = json.dumps(dict.fromkeys(traits, created))
            seen = stamps(last_seen[c]) if last_seen[c] else NULL
            account_last[a] = max(account_last[a], last_seen[c])
            lines.append(
                f"{c}\tc-{c}\t{a}\t{email}\t{first}\t{last}\t{first} {last}\t{json.dumps(traits)}\t"
                f"{times}\t{created}\t{created}\t{seen}\t{created}\t{created}\n"
            )
            if len(lines) >= 20_000:
                copy.write("".join(lines))
                lines.clear()
        copy.write("".join(lines))
    return account_last


def _copy_accounts(
    conn: psycopg.Connection, pop: Population, account_last: array[int], stamps: Stamps
) -> None:
    rng = random.Random(SEED + 3)
    columns = (
        "id, external_id, name, stage, health_score, traits, trait_times, "
        "created_at, first_seen_at, last_seen_at, updated_at"
    )
    with conn.cursor().copy(f"COPY accounts ({columns}) FROM STDIN WITH (FREEZE)") as copy:
        lines = []
        for a in range(1, len(pop.created)):
            traits = _account_traits(rng, a, pop.created[a])
            created = stamps(pop.created[a])
            health = traits.get("health_score")
            seen = stamps(account_last[a]) if account_last[a] else NULL
            lines.append(
                f"{a}\ta-{a}\t{traits['name']}\t{traits['stage']}\t"
                f"{NULL if health is None else health}\t"
                f"{json.dumps(traits)}\t{json.dumps(dict.fromkeys(traits, created))}\t"
                f"{created}\t{created}\t{seen}\t{created}\n"
            )
            if len(lines) >= 20_000:
                copy.write("".join(lines))
                lines.clear()
        copy.write("".join(lines))


def _schema(conn: psycopg.Connection) -> list[tuple[str, str, str, str, str]]:
    """Keys, foreign keys and indexes of the loaded tables: what the load drops and rebuilds."""
    rows = conn.execute(
        """
        SELECT 'constraint', conrelid::regclass::text, conname, contype::text,
               pg_get_constraintdef(oid)
        FROM pg_constraint
        WHERE contype IN ('p', 'u', 'f')
          AND (conrelid = ANY(%(t)s::text[]::regclass[])
               OR confrelid = ANY(%(t)s::text[]::regclass[]))
        UNION ALL
        SELECT 'index', tablename, indexname, '', indexdef
        FROM pg_indexes
        WHERE schemaname = current_schema() AND tablename = ANY(%(t)s::text[])
          AND indexname NOT IN (SELECT conname FROM pg_constraint)
        ORDER BY 1, 2, 3
        """,
        {"t": list(TABLES)},
    ).fetchall()
    return [(str(a), str(b), str(c), str(d), str(e)) for a, b, c, d, e in rows]


def _drop_keys(conn: psycopg.Connection, schema: list[tuple[str, str, str, str, str]]) -> None:
    for kind in ("f", "u", "p"):  # foreign keys first: they need the keys they point at
        for _, table, name, _, _ in (r for r in schema if r[0] == "constraint" and r[3] == kind):
            conn.execute(
                sql.SQL("ALTER TABLE {} DROP CONSTRAINT {}").format(
                    sql.Identifier(table), sql.Identifier(name)
                )
            )
    for _, _, name, _, _ in (r for r in schema if r[0] == "index"):
        conn.execute(sql.SQL("DROP INDEX {}").format(sql.Identifier(name)))


def _build_keys(conn: psycopg.Connection, schema: list[tuple[str, str, str, str, str]]) -> None:
    """Keys first, then indexes, then foreign keys (checked against the keys), as migrated."""
    ordered = [r for r in schema if r[3] in ("p", "u")]
    ordered += [r for r in schema if r[0] == "index"] + [r for r in schema if r[3] == "f"]
    for kind, table, name, _, definition in ordered:
        started = time.perf_counter()
        if kind == "index":
            conn.execute(definition.encode())
        else:
            conn.execute(
                sql.SQL("ALTER TABLE {} ADD CONSTRAINT {} ").format(
                    sql.Identifier(table), sql.Identifier(name)
                )
                + sql.SQL(definition)  # pg_get_constraintdef's text
            )
        print(f"  {name}: {time.perf_counter() - started:.1f} s", flush=True)


def generate(url: str, spec: Spec) -> None:
    """Load the data into a freshly migrated database: keys dropped, COPY FREEZE in time
    order, the same keys and indexes rebuilt (checked), sequences moved on, VACUUM ANALYZE,
    then the marker. Runs in a child process, so the bench's own peak memory stays its own."""
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute("SET maintenance_work_mem = '1GB'")
        schema = _schema(conn)
        _drop_keys(conn, schema)
        _load(conn, spec)
        _build_keys(conn, schema)
        if _schema(conn) != schema:
            raise RuntimeError("the rebuilt keys and indexes differ from the migrated schema")
        for table in TABLES:
            conn.execute(
                sql.SQL("SELECT setval(pg_get_serial_sequence(%s, 'id'), max(id)) FROM {}").format(
                    sql.Identifier(table)
                ),
                [table],
            )
        started = time.perf_counter()
        conn.execute("VACUUM (ANALYZE) accounts, contacts, events")
        print(f"  VACUUM ANALYZE: {time.perf_counter() - started:.1f} s", flush=True)
        conn.execute(
            sql.SQL("COMMENT ON DATABASE {} IS {}").format(
                sql.Identifier(conn.info.dbname), sql.Literal(spec.marker)
            )
        )


def _load(conn: psycopg.Connection, spec: Spec) -> None:
    """The three COPYs, each in the transaction that truncates its table (FREEZE needs it)."""
    stamps = Stamps()
    started = time.perf_counter()
    pop = _population(spec)
    print(
        f"  population: {spec.accounts:,} accounts, {len(pop.contact_account) - 1:,} contacts: "
        f"{time.perf_counter() - started:.1f} s",
        flush=True,
    )
    last_seen: array[int] = array("q")
    account_last: array[int] = array("q")
    for table in TABLES[::-1]:  # events first: they tell when each record was last seen
        started = time.perf_counter()
        with conn.transaction():
            conn.execute(sql.SQL("TRUNCATE {}").format(sql.Identifier(table)))
            if table == "events":
                last_seen = _copy_events(conn, spec, pop, stamps)
            elif table == "contacts":
                account_last = _copy_contacts(conn, pop, last_seen, stamps)
            else:
                _copy_accounts(conn, pop, account_last, stamps)
        print(f"  COPY {table}: {time.perf_counter() - started:.1f} s", flush=True)


def marker(conn: psycopg.Connection) -> str | None:
    """The database's comment: the spec of the data in it, set once the load is complete."""
    row = conn.execute(
        "SELECT shobj_description(oid, 'pg_database') FROM pg_database "
        "WHERE datname = current_database()"
    ).fetchone()
    return row[0] if row else None


# --- the bench's own connection: counts, bulk changes, cleanup --------------------------------


class Database:
    """psycopg on the bench database, autocommit: what the bench does besides the product."""

    def __init__(self, url: str) -> None:
        self.conn = psycopg.connect(url, autocommit=True)

    def scalar(self, query: str, *params: object) -> Any:
        row = self.conn.execute(query.encode(), params or None).fetchone()
        return row[0] if row else None

    def traits(self, table: str, ids: Sequence[int]) -> dict[int, dict[str, Any]]:
        rows = self.conn.execute(
            sql.SQL("SELECT id, traits FROM {} WHERE id = ANY(%s)").format(sql.Identifier(table)),
            [list(ids)],
        )
        return {int(i): t for i, t in rows}

    def set_traits(self, table: str, traits: dict[int, dict[str, Any]]) -> None:
        self.conn.execute(
            sql.SQL(
                "UPDATE {} AS r SET traits = v.traits FROM (SELECT unnest(%s::bigint[]) AS id, "
                "unnest(%s::text[])::jsonb AS traits) AS v WHERE r.id = v.id"
            ).format(sql.Identifier(table)),
            [list(traits), [json.dumps(t) for t in traits.values()]],
        )

    def add_outbox(self, rows: Sequence[tuple[str, int, dict[str, Any]]]) -> list[int]:
        """Outbox rows as ingestion writes them for a changed record; returns their ids."""
        found = self.conn.execute(
            """
            INSERT INTO outbox (object_type, object_id, changes, signals, created_at, enqueued_at)
            SELECT t, i, c::jsonb, true, %s, %s
            FROM unnest(%s::text[], %s::bigint[], %s::text[]) WITH ORDINALITY AS u(t, i, c, n)
            ORDER BY n
            RETURNING id
            """,
            [
                NOW,
                NOW,
                [r[0] for r in rows],
                [r[1] for r in rows],
                [json.dumps(r[2]) for r in rows],
            ],
        )
        return sorted(int(r[0]) for r in found)

    def pending(self, first: int, last: int) -> int:
        query = "SELECT count(*) FROM outbox WHERE processed_at IS NULL AND id BETWEEN %s AND %s"
        return int(self.scalar(query, first, last))

    def reset(self) -> None:
        """Forget what bench runs leave: segments and members, outbox, signals, scores."""
        self.conn.execute("TRUNCATE segment_members, segments, outbox, signals, health_scores")


class Journal:
    """Original traits of the records a run changes, on disk until they are written back."""

    def __init__(self, path: Path = JOURNAL) -> None:
        self.path = path
        self.saved: dict[str, dict[int, dict[str, Any]]] = {"accounts": {}, "contacts": {}}
        if path.exists():
            loaded = json.loads(path.read_text())
            self.saved = {t: {int(i): v for i, v in rows.items()} for t, rows in loaded.items()}

    def keep(self, table: str, originals: dict[int, dict[str, Any]]) -> None:
        for record_id, traits in originals.items():
            self.saved[table].setdefault(record_id, traits)
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(self.saved))
        temporary.replace(self.path)

    def restore(self, db: Database) -> int:
        restored = 0
        for table, originals in self.saved.items():
            if originals:
                db.set_traits(table, originals)
                restored += len(originals)
        self.saved = {"accounts": {}, "contacts": {}}
        self.path.unlink(missing_ok=True)
        return restored


def changed_account(traits: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    """Another plan and mrr, as a group call from the billing system would send them."""
    plan = rng.choice([p for p in PLANS if p != traits.get("plan")])
    return {**traits, "plan": plan, "mrr": rng.randrange(0, 6000)}


def changed_contact(traits: dict[str, Any], rng: random.Random) -> dict[str, Any]:
    role = rng.choice([r for r in ROLES if r != traits.get("role")])
    return {**traits, "role": role, "newsletter": not traits.get("newsletter")}


# --- the product, driven in this process -------------------------------------------------------


def engine_for(url: str) -> Engine:
    from storage.db import make_engine

    return make_engine(url, application_name="workflowbot-bench-segments")


def create_segments(engine: Engine, rules: Sequence[str], object_type: str, label: str) -> float:
    """Create one segment per rule at NOW (first computations); returns the seconds taken."""
    from engine import segments
    from storage.db import session_scope

    started = time.perf_counter()
    for i, rule in enumerate(rules):
        with session_scope(engine) as session:
            segments.create(
                session,
                name=f"{NAME_PREFIX} {label} {i + 1:02d}",
                object_type=object_type,
                rule=rule,
                now=NOW,
            )
    created = time.perf_counter() - started
    analyze_members(engine)
    return created


def analyze_members(engine: Engine) -> None:
    """ANALYZE segment_members, as autovacuum does within a minute or so of a bulk fill: the
    figures are of segments that exist, not of the minute after their creation (until then
    the planner may read all members of the segments to find a few records: ~200 ms a query)."""
    with engine.connect() as conn:
        conn.exec_driver_sql("ANALYZE segment_members")
        conn.commit()


@dataclass
class RefreshRun:
    created: float  # first computation at EARLIER, seconds
    size: int
    refresh: float  # at NOW, the diff stored as signals, commit included
    entered: int
    left: int
    unchanged: float  # at NOW again
    unchanged_moves: int


def _refresh(engine: Engine, segment_id: int) -> tuple[float, Any]:
    from engine import segments
    from storage.db import session_scope
    from storage.models import Segment

    started = time.perf_counter()
    with session_scope(engine) as session:
        segment = session.get(Segment, segment_id)
        assert segment is not None
        refreshed = segments.refresh(session, segment=segment, now=NOW)
    return time.perf_counter() - started, refreshed


def measure_refresh(engine: Engine, runs: int) -> list[RefreshRun]:
    """Figures 1 and 2: membership stored at NOW - 1 day, refreshed at NOW, then again."""
    from engine import segments
    from storage.db import session_scope

    done = []
    for i in range(runs):
        name = f"{NAME_PREFIX} refresh {i + 1}"
        started = time.perf_counter()
        with session_scope(engine) as session:
            segment, size = segments.create(
                session, name=name, object_type="account", rule=ISSUE_RULE, now=EARLIER
            )
        created = time.perf_counter() - started
        analyze_members(engine)
        seconds, moved = _refresh(engine, segment.id)
        again, unmoved = _refresh(engine, segment.id)
        with session_scope(engine) as session:
            segments.delete(session, name=name)
        run = RefreshRun(
            created, size, seconds, moved.entered, moved.left, again, unmoved.entered + unmoved.left
        )
        done.append(run)
        print(
            f"  refresh run {i + 1}: first computation {created:.2f} s ({size:,} members), "
            f"refresh {seconds:.2f} s (+{moved.entered:,} -{moved.left:,}), "
            f"unchanged {again:.2f} s",
            flush=True,
        )
    return done


@contextmanager
def captured(engine: Engine, prefixes: tuple[str, ...]) -> Iterator[list[tuple[str, Any]]]:
    """The statements (and parameters) starting with `prefixes` run on `engine` meanwhile."""
    found: list[tuple[str, Any]] = []

    def listen(_c: Any, _cur: Any, statement: str, parameters: Any, *_: Any) -> None:
        if statement.lstrip().startswith(prefixes):
            found.append((statement, parameters))

    event.listen(engine, "before_cursor_execute", listen)
    try:
        yield found
    finally:
        event.remove(engine, "before_cursor_execute", listen)


def explain_refresh(engine: Engine) -> None:
    """EXPLAIN (ANALYZE, BUFFERS) of the refresh's two statements, as figure 1 runs them
    (membership stored at NOW - 1 day), each in a transaction rolled back."""
    from engine import segments
    from storage.db import session_scope

    name = f"{NAME_PREFIX} explain"
    with session_scope(engine) as session:
        segment, _ = segments.create(
            session, name=name, object_type="account", rule=ISSUE_RULE, now=EARLIER
        )
    prefixes = ("INSERT INTO segment_members", "DELETE FROM segment_members")
    with captured(engine, prefixes) as statements, engine.connect() as conn:
        with conn.begin() as transaction:
            from sqlalchemy.orm import Session

            with Session(bind=conn) as session:
                segments.refresh(session, segment=session.merge(segment), now=NOW)
            transaction.rollback()
        with conn.begin() as transaction:
            for statement, parameters in list(statements):
                plan = conn.exec_driver_sql("EXPLAIN (ANALYZE, BUFFERS) " + statement, parameters)
                print(f"\n{statement.split(chr(10))[0][:60]} ...")
                print("\n".join(f"    {row[0]}" for row in plan))
            transaction.rollback()
    with session_scope(engine) as session:
        segments.delete(session, name=name)


def measure_record(
    engine: Engine, db: Database, journal: Journal, ids: Sequence[int], warmup: int
) -> tuple[list[float], int]:
    """Figure 3: for each account, a trait change and its outbox row (one transaction), then
    `signals.evaluate` of that row in its own, timed with its commit. Returns the seconds of
    each (after `warmup`) and the signals they stored."""
    from engine import signals
    from storage.db import session_scope

    rng = random.Random(SEED + 30)
    originals = db.traits("accounts", ids)
    journal.keep("accounts", originals)
    seconds: list[float] = []
    stored = 0
    for n, account_id in enumerate(ids):
        with db.conn.transaction():
            db.set_traits("accounts", {account_id: changed_account(originals[account_id], rng)})
            [outbox_id] = db.add_outbox([("account", account_id, {"traits": ["mrr", "plan"]})])
        started = time.perf_counter()
        with session_scope(engine) as session:
            done = signals.evaluate(session, outbox_ids=[outbox_id], now=NOW)
        if n >= warmup:
            seconds.append(time.perf_counter() - started)
            stored += done.signals
    return seconds, stored


def worker_broker() -> Any:
    """The worker's broker for figure 4: `engine.broker.setup`, then the clock pinned to NOW.

    `dramatiq segments:worker_broker engine.tasks` imports this module (bench/ on PYTHONPATH).
    """
    from engine import broker, runtime

    configured = broker.setup(application_name="workflowbot-bench-worker")
    runtime.get().clock = FixedClock()
    return configured


class FixedClock:
    def now(self) -> datetime:
        return NOW


def backends(db: Database) -> list[int]:
    """The server processes serving the bench database (the bench's and the worker's)."""
    database = db.conn.info.dbname
    found = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            title = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
        except (OSError, UnicodeDecodeError):
            continue
        if title.startswith("postgres:") and f" {database} " in title:
            found.append(int(entry.name))
    return found


class CpuMeter:
    """Cores each group of processes used since the meter was made, and the rest of the box
    (kernel, I/O, this process, other users; backends that closed meanwhile count there)."""

    def __init__(self, groups: dict[str, Callable[[], list[int]]]) -> None:
        self.groups = groups
        self.start = {name: self._each(pids()) for name, pids in groups.items()}
        self.machine = procfs.machine_cpu_seconds()

    @staticmethod
    def _each(pids: Sequence[int]) -> dict[int, float]:
        return {pid: procfs.cpu_seconds([pid]) for pid in pids}

    def cores(self, elapsed: float) -> dict[str, float]:
        used = {}
        for name, pids in self.groups.items():
            now = self._each(pids())
            before = self.start[name]
            used[name] = sum(cpu - before.get(pid, 0.0) for pid, cpu in now.items()) / elapsed
        machine = (procfs.machine_cpu_seconds() - self.machine) / elapsed
        used["rest of the machine"] = max(0.0, machine - sum(used.values()))
        return used


def _peak_rss_kb(pid: int) -> int:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


class Worker:
    """`python -m dramatiq segments:worker_broker engine.tasks --processes 2 --threads 8`."""

    def __init__(self, env: dict[str, str], log: Path) -> None:
        argv = [
            sys.executable, "-m", "dramatiq", "segments:worker_broker", "engine.tasks",
            "--processes", "2", "--threads", "8",
        ]  # fmt: skip
        env = {
            **env,
            "PYTHONPATH": os.pathsep.join([str(ROOT / "bench"), str(ROOT)]),
            "dramatiq_worker_timeout": "100",
        }
        self.log = log
        with log.open("wb") as out:
            self.proc = subprocess.Popen(argv, env=env, cwd=ROOT, stdout=out, stderr=out)

    def pids(self) -> list[int]:
        return [self.proc.pid, *procfs.descendants(self.proc.pid)]

    def check(self) -> None:
        if self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-3000:]
            sys.exit(f"bench: the worker exited with {self.proc.returncode}\n{tail}")

    def stop(self) -> int | None:
        self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            return None


@dataclass
class ActorRun:
    rows: int
    chunk: int  # outbox ids per message
    seconds: float | None  # None: not every row processed within the timeout
    signals: int
    cpu: dict[str, float]  # cores used on average: worker, postgres, rest of the machine
    rss_kb: dict[int, int]  # worker pid -> peak RSS
    failures: Counter[str]  # messages that raised (and were retried), by error

    @property
    def rate(self) -> float:
        return self.rows / self.seconds if self.seconds else 0.0


def _wait_processed(db: Database, ids: Sequence[int], worker: Worker, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while db.pending(ids[0], ids[-1]):
        worker.check()
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _changed_records(
    db: Database, journal: Journal, accounts: Sequence[int], contacts: Sequence[int]
) -> list[tuple[str, int, dict[str, Any]]]:
    """Really change these records' traits (originals journaled); their outbox rows, mixed."""
    rng = random.Random(SEED + 40)
    rows: list[tuple[str, int, dict[str, Any]]] = []
    for table, ids, change, traits in (
        ("accounts", accounts, changed_account, ["mrr", "plan"]),
        ("contacts", contacts, changed_contact, ["newsletter", "role"]),
    ):
        originals = db.traits(table, ids)
        journal.keep(table, originals)
        db.set_traits(table, {i: change(originals[i], rng) for i in ids})
        rows += [(table[:-1], i, {"traits": traits}) for i in ids]
    rng.shuffle(rows)
    return rows


def measure_actor(
    db: Database,
    journal: Journal,
    *,
    accounts: Sequence[int],
    contacts: Sequence[int],
    env: dict[str, str],
    timeout: float,
    chunk: int,
) -> ActorRun:
    """Figure 4: outbox rows of changed records, `chunk` ids per message (500: what
    `tasks.enqueue_evaluation` sends), drained by the worker (started and warmed up first);
    timed from the first send until every row is processed."""
    from engine import broker
    from engine.settings import Settings

    broker.setup(
        Settings(database_url=env["DATABASE_URL"], redis_url=env["REDIS_URL"]),
        application_name="workflowbot-bench-segments",
    )
    from engine import tasks  # only once the broker is set (engine.tasks checks)

    rows = _changed_records(db, journal, accounts, contacts)
    outbox_ids = db.add_outbox(rows)
    warmup_ids = db.add_outbox([("account", i, {"traits": []}) for i in accounts[:16]])
    with tempfile.TemporaryDirectory(prefix="workflowbot-bench-") as logs:
        worker = Worker(env, Path(logs) / "worker.log")
        try:
            for outbox_id in warmup_ids:  # one message per thread: connections, caches
                tasks.evaluate_outbox.send([outbox_id])
            if not _wait_processed(db, warmup_ids, worker, 120):
                sys.exit("bench: the worker did not process the warm-up rows in 120 s")
            pids, signals_before = worker.pids(), db.scalar("SELECT count(*) FROM signals")
            meter = CpuMeter({"worker": lambda: pids, "postgres": lambda: backends(db)})
            started = time.perf_counter()
            if chunk == tasks.EVALUATE_CHUNK:
                tasks.enqueue_evaluation(outbox_ids)
            else:
                for start in range(0, len(outbox_ids), chunk):
                    tasks.evaluate_outbox.send(outbox_ids[start : start + chunk])
            drained = _wait_processed(db, outbox_ids, worker, timeout)
            elapsed = time.perf_counter() - started
            used = meter.cores(elapsed)
            signals = db.scalar("SELECT count(*) FROM signals") - signals_before
            rss = {pid: _peak_rss_kb(pid) for pid in worker.pids()}
        finally:
            code = worker.stop()
            if code not in (0, None):
                print(f"  note: the worker exited with {code} on SIGTERM")
        failures = _failures(worker.log.read_text(errors="replace"))
    return ActorRun(len(rows), chunk, elapsed if drained else None, signals, used, rss, failures)


def _failures(log: str) -> Counter[str]:
    """The worker's failed messages by the database error they raised (Dramatiq retries
    each after a backoff of 15 s or more); other failures counted together."""
    found = Counter(re.findall(r"^psycopg\.errors\.(\w+: .*)$", log, re.MULTILINE))
    failed = log.count("Failed to process message")
    if failed > sum(found.values()):
        found["other errors (see the worker log)"] = failed - sum(found.values())
    return found


# --- the report ---------------------------------------------------------------------------------


class Report:
    """Each figure with its runs, median, target and PASS/FAIL; failures listed at the end."""

    def __init__(self) -> None:
        self.failures: list[str] = []

    def figure(
        self,
        label: str,
        values: Sequence[float],
        target: float,
        *,
        above: bool,
        unit: str,
        digits: int = 2,
    ) -> bool:
        median = statistics.median(values)
        ok = median >= target if above else median <= target
        runs = " ".join(f"{v:,.{digits}f}" for v in values) if len(values) <= 5 else ""
        goal = f"{'>=' if above else '<='} {target:,g} {unit}"
        print(
            f"  {label:<46}{runs:>16}  median {median:>7,.{digits}f} {unit:<6}"
            f"target {goal:<16}{'PASS' if ok else 'FAIL'}"
        )
        if not ok:
            self.failures.append(f"FAIL {label}: median {median:,.{digits}f} {unit}, target {goal}")
        return ok

    @staticmethod
    def info(label: str, text: str) -> None:
        print(f"  {label:<46}{text}")


def percentile(values: Sequence[float], p: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(p / 100 * (len(ordered) - 1)))]


def report_refresh(report: Report, runs: list[RefreshRun]) -> bool:
    print(f"\n1-2. refresh of `{ISSUE_RULE}` (account segment)")
    ok = report.figure(
        "full refresh at NOW, stored at NOW - 1 d",
        [r.refresh for r in runs],
        REFRESH_TARGET_S,
        above=False,
        unit="s",
    )
    moves = ", ".join(f"+{r.entered:,} -{r.left:,}" for r in runs)
    report.info("  entered / left (signals stored)", moves)
    ok &= report.figure(
        "refresh when nothing changed",
        [r.unchanged for r in runs],
        UNCHANGED_TARGET_S,
        above=False,
        unit="s",
    )
    report.info("  moves when nothing changed", ", ".join(str(r.unchanged_moves) for r in runs))
    report.info(
        "first computation (create at NOW - 1 d)",
        ", ".join(f"{r.created:.2f} s" for r in runs) + f"; {runs[0].size:,} members",
    )
    return ok


def report_record(report: Report, seconds: list[float], stored: int, created: float) -> None:
    ms = [s * 1000 for s in seconds]
    print(f"\n3. one changed account against {len(ACCOUNT_RULES)} account segments")
    report.figure(
        f"signals.evaluate, 1 outbox row ({len(ms)} records)",
        ms,
        RECORD_TARGET_MS,
        above=False,
        unit="ms",
    )
    report.info(
        "  p90 / p99 / max",
        f"{percentile(ms, 90):.2f} / {percentile(ms, 99):.2f} / {max(ms):.2f} ms; "
        f"{stored / len(ms):.2f} signals per record",
    )
    report.info(f"first computation of the {len(ACCOUNT_RULES)} segments", f"{created:.1f} s")


def report_actor(report: Report, run: ActorRun, created: float) -> None:
    segments = len(ACTOR_ACCOUNT_RULES) + len(CONTACT_RULES)
    print(f"\n4. evaluation actor, 2 processes x 8 threads, Redis, {segments} segments")
    if run.seconds is None:
        report.failures.append("FAIL actor: not every outbox row was processed in time")
        report.info("changed records/s", "not drained within the timeout")
        return
    label = f"changed records/s, {run.chunk} ids a message"
    report.figure(label, [run.rate], ACTOR_TARGET, above=True, unit="rec/s", digits=0)
    report.info(
        "  rows / seconds / signals",
        f"{run.rows:,} outbox rows ({run.rows // 2:,} accounts, {run.rows - run.rows // 2:,} "
        f"contacts) in {run.seconds:.1f} s; {run.signals:,} signals stored",
    )
    failed = ", ".join(f"{n} x {error}" for error, n in run.failures.most_common()) or "none"
    report.info("  messages failed (retried after backoff)", failed)
    report.info(
        "  CPU cores used",
        ", ".join(f"{name} {cores:.2f}" for name, cores in run.cpu.items()),
    )
    report.info(
        "  worker peak RSS (VmHWM)",
        ", ".join(f"pid {pid}: {kb / 1024:.0f} MB" for pid, kb in run.rss_kb.items()),
    )
    report.info("first computation of its segments", f"{created:.1f} s")


# --- main ---------------------------------------------------------------------------------------


def _migrate(url: str) -> None:
    from storage import migrate

    engine = engine_for(url)
    migrate.upgrade(engine)
    engine.dispose()


def prepare(database: str, spec: Spec, regenerate: bool) -> str:
    """Create and migrate the database and generate the data, unless its marker says the
    data is there (it is then kept, and only migrated)."""
    url = f"{SERVER_URL}/{database}"
    with psycopg.connect(f"{SERVER_URL}/postgres", autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database])
        if exists.fetchone():
            with psycopg.connect(url) as bench:
                found = marker(bench)
            if found == spec.marker and not regenerate:
                _migrate(url)  # a newer migration applies to the kept data
                print(f"data: kept from an earlier run ({found})")
                return url
            # Incomplete, another size, or asked for: start again from an empty schema.
            conn.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(database)))
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database)))
    _migrate(url)
    print(f"data: generating ({spec.marker})", flush=True)
    started = time.perf_counter()
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        peak_kb = pool.submit(_generate_child, url, spec).result()
    print(
        f"data: generated in {time.perf_counter() - started:.0f} s "
        f"(generator process peak RSS {peak_kb / 1024:.0f} MB)"
    )
    return url


def _generate_child(url: str, spec: Spec) -> int:
    generate(url, spec)
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--runs", type=int, default=3, help="refresh runs (figures 1 and 2)")
    parser.add_argument("--records", type=int, default=200, help="records timed in figure 3")
    parser.add_argument("--actor-rows", type=int, default=40_000, help="outbox rows, figure 4")
    parser.add_argument("--accounts", type=int, default=1_000_000, help="size of the data")
    parser.add_argument("--database", default=BENCH_DATABASE, help="on 127.0.0.1:5432")
    parser.add_argument("--redis-url", default=DEFAULT_REDIS_URL, help="flushed at start")
    parser.add_argument("--regenerate", action="store_true", help="generate the data again")
    parser.add_argument("--explain", action="store_true", help="EXPLAIN the refresh always")
    parser.add_argument(
        "--only",
        action="append",
        choices=FIGURES,
        help="run only these figures (repeatable): refresh (1, 2), record (3), actor (4)",
    )
    parser.add_argument("--timeout", type=float, default=600.0, help="for figure 4, seconds")
    parser.add_argument("--chunk", type=int, default=500, help="outbox ids a message, figure 4")
    args = parser.parse_args()
    args.only = args.only or list(FIGURES)
    return args


def main() -> None:
    args = parse_args()
    url = prepare(args.database, Spec(args.accounts), args.regenerate)
    redis.Redis.from_url(args.redis_url).flushdb()
    db = Database(url)
    journal = Journal()
    if restored := journal.restore(db):
        print(f"restored the traits of {restored:,} records an interrupted run had changed")
    db.reset()
    counts = {t: int(db.scalar(f"SELECT count(*) FROM {t}")) for t in TABLES}
    print(
        f"workflowbot segments bench: PostgreSQL {db.scalar('SHOW server_version')}, "
        f"{os.cpu_count()} CPUs, now = {NOW.isoformat()}\n"
        + ", ".join(f"{n:,} {t}" for t, n in counts.items()),
        flush=True,
    )
    engine = engine_for(url)
    try:
        results = run_figures(args, engine, db, journal, counts)
    finally:
        journal.restore(db)
        db.reset()
        db.conn.execute("VACUUM (ANALYZE) accounts, contacts, segment_members, outbox, signals")
        engine.dispose()
    report = Report()
    print("\nfigures (the machine has 2 cores and may be shared with tests: numbers are noisy)")
    if "refresh" in results:
        report_refresh(report, results["refresh"])
    if "record" in results:
        report_record(report, *results["record"])
    if "actor" in results:
        report_actor(report, *results["actor"])
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(f"\nbench process peak RSS (ru_maxrss): {peak / 1024:.0f} MB")
    print("\n".join(report.failures) if report.failures else "all targets met (of the figures run)")


def run_figures(
    args: argparse.Namespace, engine: Engine, db: Database, journal: Journal, counts: dict[str, int]
) -> dict[str, Any]:
    """The figures asked for, in order, each with its own segments; returns what to report."""
    rng = random.Random(SEED + 20)
    warmup = 10
    picked = rng.sample(range(1, counts["accounts"] + 1), args.records + warmup + args.actor_rows)
    results: dict[str, Any] = {}
    if "refresh" in args.only:
        results["refresh"] = measure_refresh(engine, args.runs)
        slow = statistics.median(r.refresh for r in results["refresh"]) > REFRESH_TARGET_S
        slow |= statistics.median(r.unchanged for r in results["refresh"]) > UNCHANGED_TARGET_S
        if slow or args.explain:
            explain_refresh(engine)
    actor_rules = [ACCOUNT_RULES[i] for i in ACTOR_ACCOUNT_RULES]
    if "record" in args.only:
        created = create_segments(engine, ACCOUNT_RULES, "account", "account")
        print(f"  {len(ACCOUNT_RULES)} account segments created in {created:.1f} s", flush=True)
        record = measure_record(engine, db, journal, picked[: args.records + warmup], warmup)
        results["record"] = (*record, created)
        kept = [f"{NAME_PREFIX} account {i + 1:02d}" for i in ACTOR_ACCOUNT_RULES]
        db.conn.execute("DELETE FROM segments WHERE NOT name = ANY(%s)", [kept])
        actor_rules = []  # the actor's 14 account segments are among the 50
    if "actor" in args.only:
        created = create_segments(engine, actor_rules, "account", "actor account")
        created += create_segments(engine, CONTACT_RULES, "contact", "contact")
        print(f"  the actor's segments created in {created:.1f} s", flush=True)
        half = args.actor_rows // 2
        actor = measure_actor(
            db,
            journal,
            accounts=picked[args.records + warmup :][:half],
            contacts=rng.sample(range(1, counts["contacts"] + 1), args.actor_rows - half),
            env={**os.environ, "DATABASE_URL": url_of(db), "REDIS_URL": args.redis_url},
            timeout=args.timeout,
            chunk=args.chunk,
        )
        results["actor"] = (actor, created)
    return results


def url_of(db: Database) -> str:
    return f"{SERVER_URL}/{db.conn.info.dbname}"


if __name__ == "__main__":
    main()
