"""The input pipeline: batches in step order, built ahead on a thread, failures raised at
their own step, a bounded look-ahead, and a clean stop."""

from __future__ import annotations

import threading
import time

import pytest

from seqjax.train.pipeline import Prefetcher


@pytest.mark.parametrize("depth", [0, 1, 2, 5])
def test_batches_come_in_step_order(depth):
    with Prefetcher(lambda s: {"step": s}, 3, 9, depth=depth) as batches:
        assert [(s, b["step"]) for s, b in batches] == [(s, s) for s in range(3, 9)]


def test_batches_are_built_on_another_thread_ahead_of_use():
    made, threads = [], set()

    def make(step):
        made.append(step)
        threads.add(threading.get_ident())
        return step

    batches = Prefetcher(make, 0, 100, depth=2)
    it = iter(batches)
    assert next(it) == (0, 0)
    deadline = time.time() + 10
    while len(made) < 4 and time.time() < deadline:
        time.sleep(0.01)
    time.sleep(0.1)
    # One taken, two waiting in the queue, one built and waiting for a free slot: no more.
    assert made == [0, 1, 2, 3]
    assert threads and threading.get_ident() not in threads
    batches.close()
    assert not batches._thread.is_alive()


def test_a_failure_is_raised_at_its_own_step():
    def make(step):
        if step == 4:
            raise RuntimeError("bad data at 4")
        return step

    seen = []
    with pytest.raises(RuntimeError, match="bad data at 4"):
        with Prefetcher(make, 0, 10, depth=3) as batches:
            for step, _ in batches:
                seen.append(step)
    assert seen == [0, 1, 2, 3]


def test_closing_early_stops_the_thread():
    batches = Prefetcher(lambda s: s, 0, 10**9, depth=2)
    for step, _ in batches:
        if step == 5:
            break
    batches.close()
    assert not batches._thread.is_alive()


@pytest.mark.parametrize("depth", [-1, 1.5, True, "2"])
def test_a_bad_depth_is_a_clear_error(depth):
    with pytest.raises(ValueError, match="data.prefetch must be an int >= 0"):
        Prefetcher(lambda s: s, 0, 1, depth=depth)
