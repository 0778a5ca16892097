"""Benchmark of seqjax against PyTorch and Flax linen, in one process.

Times, in float32 on batch-major inputs, the train step (forward and backward of a sum loss,
gradients with respect to the parameters and the inputs) and the forward pass of an LSTM, a
GRU and an Elman RNN in seqjax (jit), ``torch.nn.LSTM/GRU/RNN`` and Flax linen's
``nn.RNN(OptimizedLSTMCell / GRUCell / SimpleCell)`` (jit). The three implementations are
timed in interleaved rounds, so that a change of machine load hits them alike; each figure
is the median of ``--repeats`` runs after warm-up, and ratios are peer time / seqjax time.
The first call of each (compilation included) is reported separately.

``--lengths`` adds, for each cell and shape, the train step and forward pass on a
right-padded batch ("train, padded", "forward, padded") whose lengths are drawn uniformly
from ``[t/2, t]`` with a fixed seed, the same for the three: seqjax
``layer.apply(params, xs, lengths=lengths)``, torch ``pack_padded_sequence(...,
enforce_sorted=False)`` -> model -> ``pad_packed_sequence(..., total_length=t)``, Flax
``nn.RNN`` with ``seq_lengths=lengths``. Flax leaves the outputs past a length unspecified,
so all three multiply their outputs by the mask ``steps < lengths`` (loss and forward alike).

"Cores used" is the median over the timed runs of process CPU time (``time.process_time``:
user + system, all threads) divided by wall time, measured around each call only: 1.0 means
one core busy for the whole call, the machine's core count is the ceiling. It counts busy
waiting too (a thread pool spinning for work), and CPU that a thread pool burns after a call
returns (torch's OpenMP threads spin for a while) falls into whatever is timed next.

``--profile`` shows where seqjax's time goes on the selected cases, from XLA's own profiler
(``jax.profiler.trace`` of a few warm calls, CPU backend): the op time per call by category
(matmuls run once per time step or once per block / whole sequence, elementwise fusions,
slices / updates / copies / concatenates, broadcasts, other), the time per step of the ops
that run once per step, and the top ops. Op times are summed over threads (XLA runs
independent ops side by side), so they can exceed the wall time per call, which is shown
with and without the profiler (its overhead). With torch among the peers, torch's top ops
for the same case (``torch.profiler``, self CPU time) follow.

A trainer section compares the examples per second of ``train_and_evaluate`` (its logged
windows after the first, which holds the compilation) with a bare Python loop of the same
jitted step over the same batches already on the device, times the step in bfloat16
against float32, and times how long a checkpoint save blocks the loop, with Orbax writing
synchronously and asynchronously (the median of a few saves, the next save only once the
previous one is written).

A parallel-scan section times, for each cell linear in its carry (minGRU, minLSTM, LRU,
RG-LRU), ``recurrent(cell, parallel=True)`` (``jax.lax.associative_scan``, O(log t) depth)
against the same cell's sequential ``lax.scan``, train step and forward pass, at batch 16,
time 4096, hidden 256, in interleaved rounds; the ratio is sequential time / parallel
time. It also reports the memory of each one's train step at time 16384 with and
without remat (``remat="sqrt"``: chunked for the sequential scan, the whole scan
recomputed for the parallel one). ``--only-parallel`` runs this section alone.

A long-sequence section reports the peak memory of the LSTM train step for growing ``t``,
with and without ``remat``, from the compiled executable's memory analysis (no run needed).

Usage::

    python scripts/bench.py [--quick] [--out bench.json] [--no-memory] [--no-trainer]
        [--profile] [--lengths] [--keep-freed-memory]

``--keep-freed-memory`` keeps the process's freed memory for reuse (glibc, for the three
implementations alike): XLA's temporaries block, above glibc's 32 MiB mmap ceiling in the
larger train steps, is otherwise mapped afresh and faulted in on every call
(``seqjax.kernels.cpu.keep_freed_memory``, docs/speed.md).

Needs only jax, flax, torch and numpy. On a machine with CUDA, torch runs on the GPU
(cuDNN) and jax on its default backend. The sections are the modules of
``scripts/benchmark/``; this file is their command line.
"""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

import jax

# The sections live in scripts/benchmark/; loaded by path (as the tests do), this folder is
# not yet on the import path.
_HERE = os.path.dirname(os.path.abspath(__file__))
if _HERE not in sys.path:
    sys.path.insert(0, _HERE)

from benchmark.implementations import CELLS, IMPLS, LENGTHS_SEED, padded_lengths  # noqa: E402
from benchmark.memory import (  # noqa: E402
    MEMORY_TIMES,
    MEMORY_VARIANTS,
    QUICK_MEMORY_TIMES,
    run_long,
    run_memory,
)
from benchmark.parallel import (  # noqa: E402
    PARALLEL_CELLS,
    PARALLEL_MEMORY_TIME,
    PARALLEL_SHAPE,
    QUICK_PARALLEL_CELLS,
    QUICK_PARALLEL_MEMORY_TIME,
    QUICK_PARALLEL_SHAPE,
    run_parallel,
)
from benchmark.profile import CATEGORIES, run_profile  # noqa: E402
from benchmark.report import machine_info, markdown, save  # noqa: E402
from benchmark.speed import QUICK_SHAPES, SHAPES, run_speed  # noqa: E402
from benchmark.trainer import run_trainer  # noqa: E402

from seqjax.kernels.cpu import keep_freed_memory  # noqa: E402

__all__ = [
    "CATEGORIES",
    "CELLS",
    "IMPLS",
    "LENGTHS_SEED",
    "MEMORY_TIMES",
    "MEMORY_VARIANTS",
    "PARALLEL_CELLS",
    "QUICK_PARALLEL_CELLS",
    "PARALLEL_MEMORY_TIME",
    "PARALLEL_SHAPE",
    "QUICK_MEMORY_TIMES",
    "QUICK_PARALLEL_MEMORY_TIME",
    "QUICK_PARALLEL_SHAPE",
    "QUICK_SHAPES",
    "SHAPES",
    "machine_info",
    "main",
    "markdown",
    "padded_lengths",
    "parse_args",
    "run_long",
    "run_memory",
    "run_parallel",
    "run_profile",
    "run_speed",
    "run_trainer",
]


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (a test)")
    p.add_argument("--out", default="bench.json", help="where to write the JSON results")
    p.add_argument(
        "--repeats",
        type=int,
        default=None,
        help="timed rounds per case (>= 7; default 15, 3 with --quick)",
    )
    p.add_argument("--warmup", type=int, default=None, help="untimed runs after the first")
    p.add_argument("--cells", default=",".join(CELLS), help="comma-separated subset of cells")
    p.add_argument("--peers", default="torch,flax", help="comma-separated: torch, flax")
    p.add_argument("--shapes", default=None, help="e.g. 64x128x128x256,16x512x64x128")
    p.add_argument("--unroll", type=int, default=1, help="seqjax recurrent(..., unroll=)")
    p.add_argument("--plain", action="store_true", help="also time seqjax without kernels")
    p.add_argument(
        "--lengths",
        action="store_true",
        help="also time train and forward on right-padded batches (lengths uniform in [t/2, t])",
    )
    p.add_argument("--no-memory", action="store_true", help="skip the long-sequence section")
    p.add_argument(
        "--memory-run", action="store_true", help="also run the longest remat train step once"
    )
    p.add_argument(
        "--torch-threads", type=int, default=None, help="torch threads (default: all cores)"
    )
    p.add_argument("--no-speed", action="store_true", help="skip the speed section")
    p.add_argument("--no-trainer", action="store_true", help="skip the trainer section")
    p.add_argument("--no-parallel", action="store_true", help="skip the parallel-scan section")
    p.add_argument(
        "--only-parallel",
        action="store_true",
        help="run only the parallel-scan section (no speed, memory or profile)",
    )
    p.add_argument(
        "--profile", action="store_true", help="profile seqjax (and torch) on the selected cases"
    )
    p.add_argument(
        "--keep-freed-memory",
        action="store_true",
        help="keep freed memory in the process for reuse (seqjax.kernels.cpu.keep_freed_memory), "
        "for every implementation alike; by default glibc's settings stay",
    )
    args = p.parse_args(argv)
    args.cells = [c for c in args.cells.split(",") if c]
    args.peers = [c for c in args.peers.split(",") if c]
    if bad := set(args.cells) - set(CELLS):
        p.error(f"unknown cells {sorted(bad)}; choose from {CELLS}")
    if bad := set(args.peers) - {"torch", "flax"}:
        p.error(f"unknown peers {sorted(bad)}; choose from torch, flax")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 15  # interleaved rounds
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.only_parallel:
        args.no_speed = args.no_memory = args.no_trainer = True
        args.profile = args.no_parallel = False
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
    # An allocator setting applies to the whole process, so to torch, Flax and seqjax alike.
    kept = keep_freed_memory() if args.keep_freed_memory else False
    if args.profile and jax.default_backend() != "cpu":
        sys.exit(f"--profile reads XLA's CPU op events; jax runs on {jax.default_backend()}")
    import torch

    torch.set_num_threads(args.torch_threads or os.cpu_count() or 1)
    torch_device = "cuda" if torch.cuda.is_available() else "cpu"
    if args.shapes:
        shapes = [tuple(int(v) for v in s.split("x")) for s in args.shapes.split(",")]
    else:
        shapes = QUICK_SHAPES if args.quick else SHAPES
    result: dict[str, Any] = {
        "machine": machine_info(torch_device),
        "config": {
            "quick": args.quick,
            "repeats": args.repeats,
            "warmup": args.warmup,
            "unroll": args.unroll,
            "peers": args.peers,
            "plain": args.plain,
            "lengths": args.lengths,
            "lengths_seed": LENGTHS_SEED if args.lengths else None,
            "torch_threads": args.torch_threads or os.cpu_count(),
            "dtype": "float32",
            "layout": "batch-major [batch, time, features]",
            "keep_freed_memory": kept,
        },
        "speed": [] if args.no_speed else run_speed(args, shapes, torch_device),
        "memory": [],
        "profile": run_profile(args, shapes, torch_device) if args.profile else [],
    }
    if not args.no_parallel:
        result["parallel"] = run_parallel(
            QUICK_PARALLEL_CELLS if args.quick else PARALLEL_CELLS,
            QUICK_PARALLEL_SHAPE if args.quick else PARALLEL_SHAPE,
            args.repeats,
            args.warmup,
            QUICK_PARALLEL_MEMORY_TIME if args.quick else PARALLEL_MEMORY_TIME,
        )
    if not args.no_memory:
        times = QUICK_MEMORY_TIMES if args.quick else MEMORY_TIMES
        b, d, h = (2, 8, 16) if args.quick else (16, 64, 256)
        variants = [MEMORY_VARIANTS[0], MEMORY_VARIANTS[2]] if args.quick else MEMORY_VARIANTS
        result["memory"] = run_memory(times, variants, b, d, h)
        if args.memory_run:
            result["long_run"] = run_long(max(times), "sqrt", b, d, h)
    if not args.no_trainer:
        result["trainer"] = run_trainer(args.quick)
    print(markdown(result))
    if args.out:
        save(result, args.out)
    return result


if __name__ == "__main__":
    main()
