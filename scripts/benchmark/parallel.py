"""The parallel-scan section: for each cell linear in its carry, ``recurrent(cell,
parallel=True)`` (``jax.lax.associative_scan``, O(log t) depth) against the same cell's
sequential ``lax.scan``, train step and forward pass in interleaved rounds; and the memory of
each one's train step, with and without remat."""

from __future__ import annotations

import sys
import time

import jax
import jax.numpy as jnp

from benchmark.implementations import seqjax_fns, seqjax_layer, shape_dict
from benchmark.memory import abstract_params, train_step_memory
from benchmark.report import parallel_text
from benchmark.timing import bench_case

PARALLEL_CELLS = ("min_gru", "min_lstm", "lru", "rg_lru")  # cells with coefficients
QUICK_PARALLEL_CELLS = ("min_gru", "lru")  # a gated cell and a complex-valued one
PARALLEL_SHAPE = (16, 4096, 256, 256)  # (batch, time, input, hidden)
QUICK_PARALLEL_SHAPE = (2, 32, 8, 16)
PARALLEL_MEMORY_TIME = 16384
QUICK_PARALLEL_MEMORY_TIME = 16  # the parallel scan's compile time grows with log t


def run_parallel(cells, shape, repeats: int, warmup: int, memory_time: int) -> dict:
    """Parallel against sequential scans of each cell: speed rows and train-step memory."""
    speed, memory = [], []
    b, _, d, h = shape
    for cell in cells:
        start = time.perf_counter()
        pairs = {
            "sequential": seqjax_fns(cell, shape, parallel=False),
            "parallel": seqjax_fns(cell, shape, parallel=True),
        }
        for i, mode in enumerate(("train", "forward")):
            res = bench_case({k: v[i] for k, v in pairs.items()}, repeats, warmup)
            ratio = res["sequential"]["median_ms"] / res["parallel"]["median_ms"]
            speed.append(
                {
                    "cell": cell,
                    "shape": shape_dict(shape),
                    "mode": mode,
                    "times": res,
                    "speedup": ratio,  # sequential median / parallel median
                }
            )
            print(f"  {parallel_text(speed[-1])}", file=sys.stderr)
        for row in speed[-2:]:
            row["case_s"] = time.perf_counter() - start
        for parallel in (False, True):
            for remat in (None, "sqrt"):
                layer, _, loss = seqjax_layer(cell, h, parallel=parallel, remat=remat)
                xs = jax.ShapeDtypeStruct((b, memory_time, d), jnp.float32)
                stats = train_step_memory(loss, abstract_params(layer, d), xs)
                memory.append(
                    {
                        "cell": cell,
                        "scan": "parallel" if parallel else "sequential",
                        "remat": remat,
                        "time": memory_time,
                        "batch": b,
                        "input": d,
                        "hidden": h,
                        "temp_bytes": stats["temp_bytes"],
                        "total_bytes": stats["total_bytes"],
                    }
                )
    return {"speed": speed, "memory": memory}
