"""Actors only: they take ids, open a session scope and call the engine."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import dramatiq

from engine import broker as _broker
from engine import runner, runtime, signals
from storage.db import session_scope

_broker.configured()  # never Dramatiq's implicit default broker

log = logging.getLogger(__name__)

EVALUATE_CHUNK = 500
STEPS_CHUNK = 10


@dramatiq.actor(queue_name="evaluate", max_retries=5, time_limit=60_000)
def evaluate_outbox(outbox_ids: list[int]) -> None:
    """Turn these outbox rows into signals (each row once; see engine.signals), enroll,
    exit; then enqueue the steps due now (committed by then)."""
    rt = runtime.get()
    lease = timedelta(seconds=rt.settings.step_lease_seconds)
    with session_scope(rt.db) as session:
        done = signals.evaluate(session, outbox_ids=outbox_ids, now=rt.clock.now(), lease=lease)
    enqueue_steps(done.due_steps)
    log.debug(
        "evaluated %d of %d outbox rows: %d signals, %d enrolled, %d exited",
        done.processed,
        len(outbox_ids),
        done.signals,
        done.enrolled,
        done.exited,
    )


# Retries are rows (engine.runner), never Dramatiq's: max_retries=0. The time limit is set per
# message, shorter than the step lease, so a step is never still running when its lease ends.
@dramatiq.actor(queue_name="steps", max_retries=0)
def run_steps(step_ids: list[int]) -> None:
    """Run these steps (each a no-op unless it is still to run); enqueue what follows."""
    svc = runner.services(runtime.get())
    for step_id in step_ids:
        enqueue_steps(runner.run_step(svc, step_id))


def enqueue_steps(step_ids: Sequence[int]) -> None:
    """Send step ids to run, a few per message (each message's time limit below the lease)."""
    if not step_ids:
        return
    lease_ms = runtime.get().settings.step_lease_seconds * 1000
    limit = max(1_000, int(lease_ms * 0.8))
    for start in range(0, len(step_ids), STEPS_CHUNK):
        run_steps.send_with_options(
            args=(list(step_ids[start : start + STEPS_CHUNK]),), time_limit=limit
        )


def enqueue_evaluation(outbox_ids: Sequence[int]) -> None:
    """Send the outbox ids for evaluation, many per message."""
    for start in range(0, len(outbox_ids), EVALUATE_CHUNK):
        evaluate_outbox.send(list(outbox_ids[start : start + EVALUATE_CHUNK]))
