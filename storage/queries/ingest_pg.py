"""PostgreSQL fast path for ingestion: fixed-text statements over one JSON parameter.

The SQL text never changes with the number of rows, so psycopg parses it once and the server
runs it as a prepared statement. The rows travel as a single JSON array (`json_to_recordset`):
encoding that is one C call, where adapting per-row parameters or Python lists to arrays
costs microseconds per value. Same contracts as the portable `storage.queries.ingest`.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import Connection, Row

_CLAIM = """
INSERT INTO ingest_messages (message_id, received_at)
SELECT m, %(now)s FROM json_array_elements_text(%(ids)s::json) AS u(m) ORDER BY m
ON CONFLICT (message_id) DO NOTHING
RETURNING message_id
"""

_UPSERT = """
INSERT INTO {table} AS t
    (external_id, traits, trait_times, created_at, first_seen_at, last_seen_at, updated_at)
SELECT x, '{{}}'::jsonb, '{{}}'::jsonb, f, f, l, %(now)s
FROM json_to_recordset(%(rows)s::json) AS r(x text, f timestamptz, l timestamptz)
ORDER BY x
ON CONFLICT (external_id) DO UPDATE SET
    first_seen_at = LEAST(t.first_seen_at, EXCLUDED.first_seen_at),
    created_at = CASE
        WHEN t.created_at = t.first_seen_at AND EXCLUDED.first_seen_at < t.first_seen_at
        THEN EXCLUDED.first_seen_at ELSE t.created_at END,
    last_seen_at = GREATEST(t.last_seen_at, EXCLUDED.last_seen_at)
RETURNING id, external_id, (xmax = 0) AS created{extra}
"""
_UPSERT_SQL = {
    "accounts": _UPSERT.format(table="accounts", extra=""),
    "contacts": _UPSERT.format(table="contacts", extra=", account_id"),
}

_BUMP = """
UPDATE accounts AS t SET last_seen_at = u.s
FROM json_to_recordset(%(rows)s::json) AS u(i bigint, s timestamptz)
WHERE t.id = u.i AND t.id = ANY(%(ids)s::bigint[])
    AND (t.last_seen_at IS NULL OR t.last_seen_at < u.s)
"""

_SEEN_SET = """
    first_seen_at = LEAST(t.first_seen_at, EXCLUDED.first_seen_at),
    created_at = CASE
        WHEN t.created_at = t.first_seen_at AND EXCLUDED.first_seen_at < t.first_seen_at
        THEN EXCLUDED.first_seen_at ELSE t.created_at END,
    last_seen_at = GREATEST(t.last_seen_at, EXCLUDED.last_seen_at)"""

# A group of events only (the bulk of traffic) in one statement, so one round trip: records
# upserted (contacts, then accounts, each in key order: the lock order of every writer),
# events stored with their ids joined in, one outbox row for the events and one per new record.
# An event without an account takes its contact's; that account's seen times move too.
_EVENT_GROUP = (
    """
WITH r AS MATERIALIZED (
    SELECT * FROM json_to_recordset(%(rows)s::json)
        AS r(m text, n text, u text, g text, ts timestamptz, p jsonb)
), c AS (
    INSERT INTO contacts AS t
        (external_id, traits, trait_times, created_at, first_seen_at, last_seen_at, updated_at)
    SELECT u, '{}'::jsonb, '{}'::jsonb, min(ts), min(ts), max(ts), %(now)s
    FROM r GROUP BY u ORDER BY u
    ON CONFLICT (external_id) DO UPDATE SET"""
    + _SEEN_SET
    + """
    RETURNING id, external_id, account_id, (xmax = 0) AS created
), reached AS (
    SELECT coalesce(r.g, acc.external_id) AS g, r.ts
    FROM r JOIN c ON c.external_id = r.u LEFT JOIN accounts AS acc ON acc.id = c.account_id
), a AS (
    INSERT INTO accounts AS t
        (external_id, traits, trait_times, created_at, first_seen_at, last_seen_at, updated_at)
    SELECT g, '{}'::jsonb, '{}'::jsonb, min(ts), min(ts), max(ts), %(now)s
    FROM reached WHERE g IS NOT NULL GROUP BY g ORDER BY g
    ON CONFLICT (external_id) DO UPDATE SET"""
    + _SEEN_SET
    + """
    RETURNING id, external_id, (xmax = 0) AS created
), e AS (
    INSERT INTO events
        (message_id, name, contact_id, account_id, timestamp, properties, received_at)
    SELECT r.m, r.n, c.id, coalesce(a.id, c.account_id), r.ts, r.p, %(now)s
    FROM r JOIN c ON c.external_id = r.u LEFT JOIN a ON a.external_id = r.g
    ON CONFLICT (message_id) DO NOTHING
    RETURNING id
), o AS (
    INSERT INTO outbox
        (object_type, object_id, event_ids, changes, signals, created_at, enqueued_at)
    SELECT kind, id, ids, changes, %(signals)s, %(now)s, %(now)s FROM (
        SELECT 'contact' AS kind, id, NULL::jsonb AS ids, '{"created": true}'::jsonb AS changes
        FROM c WHERE created
        UNION ALL
        SELECT 'account', id, NULL, '{"created": true}'::jsonb FROM a WHERE created
        UNION ALL
        SELECT NULL, NULL, jsonb_agg(id ORDER BY id), NULL FROM e HAVING count(*) > 0
    ) AS rows
    RETURNING id
)
SELECT (SELECT count(*) FROM e) AS events, ARRAY(SELECT id FROM o ORDER BY id) AS outbox_ids
"""
)

_EVENTS = """
INSERT INTO events
    (message_id, name, contact_id, account_id, timestamp, properties, received_at)
SELECT m, n, c, a, ts, p, %(now)s
FROM json_to_recordset(%(rows)s::json)
    AS r(m text, n text, c bigint, a bigint, ts timestamptz, p jsonb)
ON CONFLICT (message_id) DO NOTHING
RETURNING id, message_id
"""

_OUTBOX = """
INSERT INTO outbox
    (object_type, object_id, event_ids, changes, signals, created_at, enqueued_at)
SELECT ot, oi, ei, ch, %(signals)s, %(now)s, %(now)s
FROM json_to_recordset(%(rows)s::json) AS r(ot text, oi bigint, ei jsonb, ch jsonb)
RETURNING id
"""


def _dumps(rows: list[dict[str, Any]]) -> str:
    return json.dumps(rows, separators=(",", ":"), default=_iso)


def _iso(value: Any) -> str:
    if isinstance(value, datetime):
        return value.isoformat()
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


def claim_message_ids(conn: Connection, *, ids: list[str], now: datetime) -> set[str]:
    result = conn.exec_driver_sql(_CLAIM, {"ids": json.dumps(ids), "now": now})
    return {row[0] for row in result}


def upsert_records(
    conn: Connection,
    *,
    table: str,
    seen: Mapping[str, tuple[datetime, datetime | None]],
    now: datetime,
) -> dict[str, Row[Any]]:
    rows = _dumps([{"x": k, "f": first, "l": last} for k, (first, last) in sorted(seen.items())])
    params = {"rows": rows, "now": now}
    return {row.external_id: row for row in conn.exec_driver_sql(_UPSERT_SQL[table], params)}


def bump_last_seen(conn: Connection, *, seen: Mapping[int, datetime]) -> None:
    rows = _dumps([{"i": i, "s": at} for i, at in sorted(seen.items())])
    conn.exec_driver_sql(_BUMP, {"rows": rows, "ids": sorted(seen)})


def store_event_group(
    conn: Connection, *, rows: Sequence[Mapping[str, Any]], signals: bool, now: datetime
) -> tuple[int, list[int]]:
    """Store events (message_id, name, user, group, timestamp, properties) and their records.

    Returns how many events were new and the outbox ids to enqueue.
    """
    payload = _dumps(
        [
            {
                "m": r["message_id"],
                "n": r["name"],
                "u": r["user"],
                "g": r["group"],
                "ts": r["timestamp"],
                "p": r["properties"],
            }
            for r in rows
        ]
    )
    params = {"rows": payload, "signals": signals, "now": now}
    events, outbox_ids = conn.exec_driver_sql(_EVENT_GROUP, params).one()
    return int(events), list(outbox_ids)


def insert_events(
    conn: Connection, *, rows: Sequence[Mapping[str, Any]], now: datetime
) -> dict[str, int]:
    payload = _dumps(
        [
            {
                "m": r["message_id"],
                "n": r["name"],
                "c": r["contact_id"],
                "a": r["account_id"],
                "ts": r["timestamp"],
                "p": r["properties"],
            }
            for r in rows
        ]
    )
    return {row[1]: row[0] for row in conn.exec_driver_sql(_EVENTS, {"rows": payload, "now": now})}


def insert_outbox(
    conn: Connection, *, rows: Sequence[Mapping[str, Any]], signals: bool, now: datetime
) -> list[int]:
    payload = _dumps(
        [
            {"ot": r["object_type"], "oi": r["object_id"], "ei": r["event_ids"], "ch": r["changes"]}
            for r in rows
        ]
    )
    params = {"rows": payload, "signals": signals, "now": now}
    return [row[0] for row in conn.exec_driver_sql(_OUTBOX, params)]
