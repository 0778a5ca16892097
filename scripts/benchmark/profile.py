"""``--profile``: where seqjax's time goes on the selected cases, from XLA's own profiler.

``jax.profiler.trace`` of a few warm calls (CPU backend) gives the op time per call by
category (matmuls run once per time step or once per block / whole sequence, elementwise
fusions, slices / updates / copies / concatenates, broadcasts, other), the time per step of
the ops that run once per step, and the top ops; with torch among the peers, torch's top
ops for the same case (``torch.profiler``, self CPU time) follow. Op times are summed over
threads, so they can exceed the wall time per call.
"""

from __future__ import annotations

import glob
import statistics
import tempfile
from collections.abc import Callable
from typing import Any

import jax

from benchmark.implementations import seqjax_fns, shape_dict, torch_fns
from benchmark.timing import timed

PROFILE_CALLS = 5  # traced calls per profiled case (and untraced runs timed)
QUICK_PROFILE_CALLS = 2
# XLA CPU profiler events that are not ops: markers and containers of other ops.
NOT_OPS = ("end:", "ThunkExecutor", "ThreadpoolListener", "while")
POOL_WAIT = "SlinkyThreadPool::Await"  # a matmul waiting for its worker threads
MOVES = set("bitcast concatenate copy dynamic-slice dynamic-update-slice slice transpose".split())
ELEMENTWISE = set(
    "abs add and ceil clamp compare convert cosine divide exponential exponential-minus-one floor"
    " log log-plus-one logistic maximum minimum multiply negate not or power remainder"
    " round-nearest-afz rsqrt select sign sine sqrt subtract tanh xor".split()
)
CATEGORIES = (
    "CPU kernel (whole layer)",
    "matmuls per-step",
    "matmuls block/whole",
    "elementwise fusions",
    "slices/updates/copies/concatenates",
    "broadcasts",
    "other",
)


def _op_category(name: str) -> str:
    """Category of an XLA CPU op from its HLO name; "matmuls" before the per-step split.

    A fusion is named after the ops it fuses (``bitcast_dynamic-update-slice_fusion.1``): it
    counts as a data movement only if all of them are, as a broadcast if they are moves and
    broadcasts (filling fresh memory), as elementwise if they are elementwise ops besides.
    """
    base = name.split(".")[0]
    if base in ("custom-call", "ffi_call"):  # seqjax.kernels.cpu: a layer's recurrence
        return "CPU kernel (whole layer)"
    parts = set(base.removeprefix("wrapped_").removesuffix("_fusion").split("_"))
    if base.startswith("ynn_fusion") or "dot" in parts:
        return "matmuls"
    if parts <= MOVES:
        return "slices/updates/copies/concatenates"
    if parts <= MOVES | {"broadcast"}:
        return "broadcasts"
    if parts <= MOVES | ELEMENTWISE | {"broadcast"}:
        return "elementwise fusions"
    return "other"


def _xla_profile(fn: Callable[[], Any], steps: int, calls: int) -> dict:
    """Where the time of a warm jitted call goes, from XLA's CPU profiler; times per call."""
    from jax.profiler import ProfileData

    wall = statistics.median(timed(fn) for _ in range(PROFILE_CALLS))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            traced = sum(timed(fn) for _ in range(calls)) / calls
        (path,) = glob.glob(f"{tmp}/**/*.xplane.pb", recursive=True)
        data = ProfileData.from_file(path)
    ops: dict[str, list[int]] = {}  # name -> [total ns, count]
    wait_ns = 0
    for plane in data.planes:
        for line in plane.lines:
            events = list(line.events)
            if line.name.startswith("tf_XLA"):
                is_op = lambda name: not name.startswith(NOT_OPS)  # noqa: E731
            else:  # a small program's ops run on the calling thread: those with an end marker
                ends = {e.name.removeprefix("end: ") for e in events if e.name.startswith("end:")}
                is_op = ends.__contains__
            for ev in events:
                if ev.name == POOL_WAIT:
                    wait_ns += ev.duration_ns
                elif is_op(ev.name):
                    op = ops.setdefault(ev.name, [0, 0])
                    op[0] += ev.duration_ns
                    op[1] += 1
    total = sum(ns for ns, _ in ops.values()) / calls / 1e6
    rows = []
    for name, (ns, count) in ops.items():
        ms, n = ns / calls / 1e6, count / calls
        category = _op_category(name)
        if category == "matmuls":
            category += " per-step" if n >= steps else " block/whole"
        rows.append({"name": name, "category": category, "ms": ms, "calls": n})
    rows.sort(key=lambda r: r["ms"], reverse=True)
    for r in rows:
        r["percent"] = 100 * r["ms"] / total
        r["us_per_call"] = 1e3 * r["ms"] / r["calls"]
    categories = {}
    for c in CATEGORIES:
        members = [r for r in rows if r["category"] == c]
        ms = sum(r["ms"] for r in members)
        categories[c] = {
            "ms": ms,
            "percent": 100 * ms / total if total else 0.0,
            "calls": sum(r["calls"] for r in members),
        }
    return {
        "calls_traced": calls,
        "wall_ms": wall,
        "traced_wall_ms": traced,
        "op_ms": total,
        "pool_wait_ms": wait_ns / calls / 1e6,
        # ops run once per step, and the CPU kernel's calls, whose time is the steps'
        "per_step_us": 1e3
        * sum(
            r["ms"]
            for r in rows
            if r["calls"] >= steps or r["category"] == "CPU kernel (whole layer)"
        )
        / steps,
        "categories": categories,
        "top_ops": rows[:12],
    }


def _torch_profile(fn: Callable[[], Any], calls: int) -> list[dict]:
    """torch's top 8 ops by self CPU time (ms per call), from ``torch.profiler``."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        for _ in range(calls):
            fn()
    events = sorted(prof.key_averages(), key=lambda e: e.self_cpu_time_total, reverse=True)
    return [
        {"name": e.key, "self_ms": e.self_cpu_time_total / calls / 1e3, "calls": e.count / calls}
        for e in events[:8]
    ]


def run_profile(args, shapes, torch_device: str) -> list[dict]:
    """Profiles seqjax (and torch, if a peer) on each selected case, train and forward."""
    calls = QUICK_PROFILE_CALLS if args.quick else PROFILE_CALLS
    rows = []
    for cell in args.cells:
        for shape in shapes:
            fns = {"seqjax": seqjax_fns(cell, shape, unroll=args.unroll, plain=False)}
            if "torch" in args.peers:
                fns["torch"] = torch_fns(cell, shape, torch_device)
            for i, mode in enumerate(("train", "forward")):
                for pair in fns.values():  # compile and warm up
                    pair[i]()
                    pair[i]()
                row = {
                    "cell": cell,
                    "shape": shape_dict(shape),
                    "mode": mode,
                    "seqjax": _xla_profile(fns["seqjax"][i], shape[1], calls),
                }
                if "torch" in fns:
                    row["torch_top_ops"] = _torch_profile(fns["torch"][i], calls)
                rows.append(row)
    return rows
