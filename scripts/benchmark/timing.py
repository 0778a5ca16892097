"""Timing in interleaved rounds: first call, medians, cores used and page faults.

The functions of a case are timed in turn within each round, so that a change of machine
load hits them alike. "Cores used" is process CPU time (``time.process_time``: user +
system, all threads) over wall time, around each call only. Each call's minor page faults
and system time (``getrusage``) are kept too: a call that maps fresh memory (XLA's
temporaries above glibc's 32 MiB mmap ceiling) faults it in every time, which on a virtual
machine can cost a large and varying share of the call (docs/speed.md).
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from typing import Any

try:
    import resource
except ImportError:  # not on Windows: no fault counts there
    resource = None  # type: ignore[assignment]


def timed(fn: Callable[[], Any]) -> float:
    """Wall time of one call, in ms."""
    return timed_cpu(fn)[0]


def timed_cpu(fn: Callable[[], Any]) -> tuple[float, float, float, int]:
    """Wall time, process CPU time (all threads) and system time of one call in ms, and
    its minor page faults (0 and 0 where ``resource`` is missing)."""
    before = resource.getrusage(resource.RUSAGE_SELF) if resource else None
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    wall, used = (time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3
    if before is None:
        return wall, used, 0.0, 0
    after = resource.getrusage(resource.RUSAGE_SELF)
    return wall, used, (after.ru_stime - before.ru_stime) * 1e3, after.ru_minflt - before.ru_minflt


def bench_case(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict:
    """First-call and median times (ms) and cores used of each function, in interleaved rounds."""
    first = {name: timed(fn) for name, fn in fns.items()}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[tuple[float, float, float, int]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(timed_cpu(fn))
    res = {}
    for name, rows in samples.items():
        wall = [r[0] for r in rows]
        res[name] = {
            "median_ms": statistics.median(wall),
            "cores_used": statistics.median(r[1] / r[0] for r in rows),
            "min_ms": min(wall),
            "first_call_ms": first[name],
            "samples_ms": wall,
            "samples_cpu_ms": [r[1] for r in rows],
            "samples_sys_ms": [r[2] for r in rows],
            "samples_faults": [r[3] for r in rows],
            "faults_per_call": statistics.median(r[3] for r in rows),
        }
    return res
