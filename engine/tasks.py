"""Actors only: they take ids, open a session scope and call the engine."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import timedelta

import dramatiq
from dramatiq.brokers.redis import RedisBroker
from dramatiq.brokers.stub import StubBroker

from engine import broker as _broker
from engine import runner, runtime, signals
from storage.db import session_scope

_broker.configured()  # never Dramatiq's implicit default broker

log = logging.getLogger(__name__)

EVALUATE_CHUNK = 500
# A message carries at most this many steps; they run one after another, so fewer when the
# lease is short: each action is bounded by the HTTP timeout (10 s).
MAX_STEPS_CHUNK = 20
MIN_STEPS_CHUNK = 8  # a message's fixed cost (two transactions) is shared by its steps
ACTION_SECONDS = 10


# Evaluation first: a step backlog must not delay the enrollments (and exits) of new changes.
# (Dramatiq: among the messages a worker holds, a lower priority number goes first.)
@dramatiq.actor(queue_name="evaluate", max_retries=5, time_limit=60_000, priority=0)
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
@dramatiq.actor(queue_name="steps", max_retries=0, priority=10)
def run_steps(step_ids: list[int]) -> None:
    """Run these steps (each a no-op unless it is still to run); enqueue what follows."""
    svc = runner.services(runtime.get(), enqueue_evaluation)
    enqueue_steps(runner.run_steps(svc, step_ids))


def steps_waiting() -> int:
    """Step messages sent and not yet taken by a worker (what a backlog looks like)."""
    broker = _broker.configured()
    if isinstance(broker, RedisBroker):
        return int(broker.client.llen(f"{broker.namespace}:{run_steps.queue_name}"))
    if isinstance(broker, StubBroker) and run_steps.queue_name in broker.queues:
        return int(broker.queues[run_steps.queue_name].qsize())
    return 0


def steps_chunk(count: int, lease_seconds: int) -> int:
    """Steps per message: spread over the workers' threads, at least a few together (a
    message's two transactions are its fixed cost; its calls run side by side), up to what
    the lease allows when many (fewer messages: the scheduler enqueues 100,000 in seconds).
    The calls of a message run at most CALL_THREADS at once, so the lease bounds rounds."""
    rounds = max(1, int(lease_seconds * 0.8) // ACTION_SECONDS)
    fits = rounds * runner.CALL_THREADS
    spread = max(MIN_STEPS_CHUNK, -(-count // 16))
    return max(1, min(MAX_STEPS_CHUNK, fits, spread))


def enqueue_steps(step_ids: Sequence[int]) -> None:
    """Send step ids to run, several per message, each message's time limit below the lease
    (a step is never still running when its lease ends)."""
    if not step_ids:
        return
    lease = runtime.get().settings.step_lease_seconds
    limit = max(1_000, int(lease * 800))
    chunk = steps_chunk(len(step_ids), lease)
    for start in range(0, len(step_ids), chunk):
        run_steps.send_with_options(args=(list(step_ids[start : start + chunk]),), time_limit=limit)


def enqueue_evaluation(outbox_ids: Sequence[int]) -> None:
    """Send the outbox ids for evaluation, many per message."""
    for start in range(0, len(outbox_ids), EVALUATE_CHUNK):
        evaluate_outbox.send(list(outbox_ids[start : start + EVALUATE_CHUNK]))
