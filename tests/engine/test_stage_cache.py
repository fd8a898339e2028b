"""engine.lifecycle.StageCache: the stage list read at most once per TTL, shared by threads."""

from __future__ import annotations

import threading
from datetime import timedelta

from engine.lifecycle import StageCache, Stages
from tests.conftest import ManualClock


class Loader:
    """A stage list the test changes, counting the reads."""

    def __init__(self, *names: str) -> None:
        self.names, self.reads = names, 0

    def __call__(self) -> Stages:
        self.reads += 1
        return Stages(self.names)


def test_the_list_is_read_once_per_ttl() -> None:
    clock, load = ManualClock(), Loader("Onboarding")
    cache = StageCache(load, clock=clock, ttl=timedelta(seconds=5))
    assert cache.fresh() is None  # nothing read yet
    assert cache.get().names == ("Onboarding",)
    load.names = ("Adoption",)
    clock.advance(seconds=4)
    assert cache.get().names == cache.fresh().names == ("Onboarding",)
    clock.advance(seconds=1)
    assert cache.fresh() is None
    assert cache.get().names == ("Adoption",)
    assert load.reads == 2


def test_a_clock_that_went_back_reads_the_list_again() -> None:
    clock, load = ManualClock(), Loader("Onboarding")
    cache = StageCache(load, clock=clock)
    cache.get()
    clock.advance(hours=-1)
    cache.get()
    assert load.reads == 2


def test_threads_asking_a_stale_cache_share_one_read() -> None:
    release, load = threading.Event(), Loader("Onboarding")

    def slow() -> Stages:
        release.wait(5)
        return load()

    cache = StageCache(slow, clock=ManualClock())
    results: list[Stages] = []
    threads = [threading.Thread(target=lambda: results.append(cache.get())) for _ in range(4)]
    for thread in threads:
        thread.start()
    release.set()
    for thread in threads:
        thread.join(5)
    assert [r.names for r in results] == [("Onboarding",)] * 4
    assert load.reads == 1
