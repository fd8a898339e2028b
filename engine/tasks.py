"""Actors only: they take ids, open a session scope and call the engine."""

from __future__ import annotations

import logging
from collections.abc import Sequence

import dramatiq

from engine import broker as _broker
from engine import runtime, signals
from storage.db import session_scope

_broker.configured()  # never Dramatiq's implicit default broker

log = logging.getLogger(__name__)

EVALUATE_CHUNK = 500


@dramatiq.actor(queue_name="evaluate", max_retries=5, time_limit=60_000)
def evaluate_outbox(outbox_ids: list[int]) -> None:
    """Turn these outbox rows into signals (each row once; see engine.signals)."""
    rt = runtime.get()
    with session_scope(rt.db) as session:
        done = signals.evaluate(session, outbox_ids=outbox_ids, now=rt.clock.now())
    log.debug(
        "evaluated %d of %d outbox rows: %d signals", done.processed, len(outbox_ids), done.signals
    )


def enqueue_evaluation(outbox_ids: Sequence[int]) -> None:
    """Send the outbox ids for evaluation, many per message."""
    for start in range(0, len(outbox_ids), EVALUATE_CHUNK):
        evaluate_outbox.send(list(outbox_ids[start : start + EVALUATE_CHUNK]))
