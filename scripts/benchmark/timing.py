"""Timing in interleaved rounds: first call, medians and cores used.

The functions of a case are timed in turn within each round, so that a change of machine
load hits them alike. "Cores used" is process CPU time (``time.process_time``: user +
system, all threads) over wall time, around each call only.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of one call, in ms."""
    return timed_cpu(fn)[0]


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall time and process CPU time (all threads) of one call, in ms."""
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3


def bench_case(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict:
    """First-call and median times (ms) and cores used of each function, in interleaved rounds."""
    first = {name: timed(fn) for name, fn in fns.items()}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(timed_cpu(fn))
    res = {}
    for name, pairs in samples.items():
        wall = [w for w, _ in pairs]
        res[name] = {
            "median_ms": statistics.median(wall),
            "cores_used": statistics.median(c / w for w, c in pairs),
            "min_ms": min(wall),
            "first_call_ms": first[name],
            "samples_ms": wall,
            "samples_cpu_ms": [c for _, c in pairs],
        }
    return res
