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
        [--profile] [--lengths]

Needs only jax, flax, torch and numpy. On a machine with CUDA, torch runs on the GPU
(cuDNN) and jax on its default backend.
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

CELLS = ("lstm", "gru", "simple_rnn")  # names of seqjax.CELLS
IMPLS = ("seqjax", "torch", "flax")
SHAPES = ((64, 128, 128, 256), (16, 512, 64, 128))  # (batch, time, input, hidden)
QUICK_SHAPES = ((4, 16, 8, 16),)
MEMORY_TIMES = (1024, 2048, 4096, 8192, 16384)
QUICK_MEMORY_TIMES = (16, 64)
MEMORY_VARIANTS = (  # (label, remat, fast paths off)
    ("none", None, False),
    ("none, plain scan", None, True),
    ("sqrt", "sqrt", False),
    ("64", 64, False),
)
PARALLEL_CELLS = ("min_gru", "min_lstm", "lru", "rg_lru")  # cells with coefficients
PARALLEL_SHAPE = (16, 4096, 256, 256)  # (batch, time, input, hidden)
QUICK_PARALLEL_SHAPE = (2, 32, 8, 16)
PARALLEL_MEMORY_TIME = 16384
QUICK_PARALLEL_MEMORY_TIME = 64
LENGTHS_SEED = 1  # --lengths: the padded batch's lengths, the same for all implementations
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
    "matmuls per-step",
    "matmuls block/whole",
    "elementwise fusions",
    "slices/updates/copies/concatenates",
    "broadcasts",
    "other",
)


# --------------------------------------------------------------------------- implementations


def _kernels_disabled():
    try:
        from seqjax.kernels import disabled
    except ImportError:  # a checkout without fast paths
        return contextlib.nullcontext
    return disabled


def padded_lengths(shape, seed: int = LENGTHS_SEED) -> np.ndarray:
    """``int32[batch]`` lengths drawn uniformly from ``[t/2, t]`` (both ends included)."""
    b, t = shape[:2]
    return np.random.default_rng(seed).integers(t // 2, t, size=b, endpoint=True).astype(np.int32)


def _masked(ys, lengths):
    """Outputs times the mask ``steps < lengths``: zero past each length (for Flax, where the
    outputs there are unspecified; in all three, so that the work compared is the same)."""
    return ys * (jnp.arange(ys.shape[1]) < lengths[:, None])[..., None]


def _seqjax_fns(cell: str, shape, *, unroll: int, plain: bool, lengths=None):
    """Train step and forward pass; with ``lengths``, on the right-padded batch (masked)."""
    import seqjax

    disabled = _kernels_disabled()
    b, t, d, h = shape
    make = seqjax.CELLS[cell]
    layer = seqjax.recurrent(make(h), unroll=unroll)
    params = layer.init(jax.random.key(0), d)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((b, t, d), np.float32))

    def forward(p, x, *lens):
        with disabled(plain):
            if not lens:
                return layer.apply(p, x)[1]
            return _masked(layer.apply(p, x, lengths=lens[0])[1], lens[0])

    def loss(p, x, *lens):
        return forward(p, x, *lens).sum()

    return _jax_pair(forward, loss, params, xs, lengths)


def _flax_fns(cell: str, shape, lengths=None):
    """Flax's train step and forward pass; with ``lengths``, ``seq_lengths=`` (masked)."""
    import flax.linen as nn

    b, t, d, h = shape
    make = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "simple_rnn": nn.SimpleCell}[cell]
    model = nn.RNN(make(features=h))
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((b, t, d), np.float32))
    variables = model.init(jax.random.key(0), xs)

    def forward(v, x, *lens):
        if not lens:
            return model.apply(v, x)
        return _masked(model.apply(v, x, seq_lengths=lens[0]), lens[0])

    def loss(v, x, *lens):
        return forward(v, x, *lens).sum()

    return _jax_pair(forward, loss, variables, xs, lengths)


def _jax_pair(forward, loss, params, xs, lengths=None):
    """Jitted train step (gradients for params and inputs) and forward pass, ready to time.

    ``lengths`` (when given) is passed as an argument, as data, not baked in as a constant.
    """
    fwd = jax.jit(forward)
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    extra = () if lengths is None else (jnp.asarray(lengths, jnp.int32),)
    return (
        lambda: jax.block_until_ready(grad(params, xs, *extra)),
        lambda: jax.block_until_ready(fwd(params, xs, *extra)),
    )


def _torch_fns(cell: str, shape, device: str, lengths=None):
    """torch's train step and forward pass; with ``lengths``, through ``pack_padded_sequence``
    and ``pad_packed_sequence`` (outputs masked, as in the JAX implementations)."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    b, t, d, h = shape
    make = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell]
    torch.manual_seed(0)
    model = make(d, h, batch_first=True).to(device)
    xs = torch.randn(b, t, d, device=device, requires_grad=True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if lengths is not None:
        lengths_cpu = torch.as_tensor(np.asarray(lengths), dtype=torch.int64)  # on the CPU
        mask = (torch.arange(t)[None, :] < lengths_cpu[:, None]).to(device)[..., None]

    def run(x):
        if lengths is None:
            return model(x)[0]
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        ys, _ = pad_packed_sequence(model(packed)[0], batch_first=True, total_length=t)
        return ys * mask

    def train():
        model.zero_grad(set_to_none=True)
        xs.grad = None
        run(xs).sum().backward()
        sync()

    def forward():
        with torch.inference_mode():
            run(xs)
        sync()

    return train, forward


# --------------------------------------------------------------------------- timing


def _timed(fn: Callable[[], Any]) -> float:
    return _timed_cpu(fn)[0]


def _timed_cpu(fn: Callable[[], Any]) -> tuple[float, float]:
    """Wall time and process CPU time (all threads) of one call, in ms."""
    cpu, start = time.process_time(), time.perf_counter()
    fn()
    return (time.perf_counter() - start) * 1e3, (time.process_time() - cpu) * 1e3


def _bench_case(fns: dict[str, Callable[[], Any]], repeats: int, warmup: int) -> dict:
    """First-call and median times (ms) and cores used of each function, in interleaved rounds."""
    first = {name: _timed(fn) for name, fn in fns.items()}
    for _ in range(warmup):
        for fn in fns.values():
            fn()
    samples: dict[str, list[tuple[float, float]]] = {name: [] for name in fns}
    for _ in range(repeats):
        for name, fn in fns.items():
            samples[name].append(_timed_cpu(fn))
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


def run_speed(args, shapes, torch_device: str) -> list[dict]:
    """Speed rows per cell and shape: train and forward, then (``--lengths``) the same on a
    right-padded batch, modes ``"train, padded"`` and ``"forward, padded"``."""
    rows = []
    for cell in args.cells:
        for shape in shapes:
            for padded in (False, True) if args.lengths else (False,):
                lengths = padded_lengths(shape) if padded else None
                rows += _speed_rows(args, cell, shape, torch_device, lengths)
    return rows


def _speed_rows(args, cell: str, shape, torch_device: str, lengths) -> list[dict]:
    start = time.perf_counter()
    kw = {"unroll": args.unroll, "lengths": lengths}
    fns = {"seqjax": _seqjax_fns(cell, shape, plain=False, **kw)}
    if args.plain:
        fns["seqjax-plain"] = _seqjax_fns(cell, shape, plain=True, **kw)
    if "torch" in args.peers:
        fns["torch"] = _torch_fns(cell, shape, torch_device, lengths)
    if "flax" in args.peers:
        fns["flax"] = _flax_fns(cell, shape, lengths)
    rows = []
    for i, mode in enumerate(("train", "forward")):
        res = _bench_case({k: v[i] for k, v in fns.items()}, args.repeats, args.warmup)
        ours = res["seqjax"]["median_ms"]
        ratios = {k: v["median_ms"] / ours for k, v in res.items() if k != "seqjax"}
        peers = [ratios[p] for p in args.peers]
        rows.append(
            {
                "cell": cell,
                "shape": dict(zip(("batch", "time", "input", "hidden"), shape)),
                "mode": mode if lengths is None else f"{mode}, padded",
                "lengths": None if lengths is None else [int(n) for n in lengths],
                "times": res,
                "ratios": ratios,  # peer median / seqjax median
                "best_peer_ratio": min(peers) if peers else None,
            }
        )
        print(f"  {_row_text(rows[-1], args.peers, args.plain)}", file=sys.stderr)
    for row in rows:  # wall time of the case: setup, compilation, both modes' rounds
        row["case_s"] = time.perf_counter() - start
    return rows


# --------------------------------------------------------------------------- memory


def run_memory(times, variants, batch: int, input_size: int, hidden: int) -> list[dict]:
    """Memory of the LSTM train step from the compiled executables' memory analysis.

    Args:
      variants: ``(label, remat, plain)`` triples: ``recurrent(..., remat=remat)``, with the
        fast paths off when ``plain``.
    """
    import seqjax

    disabled = _kernels_disabled()
    rows = []
    cell = seqjax.lstm(hidden)
    for label, remat, plain in variants:
        layer = seqjax.recurrent(cell, remat=remat)

        def loss(p, x, layer=layer, plain=plain):
            with disabled(plain):
                return layer.apply(p, x)[1].sum()

        grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
        params = jax.eval_shape(lambda k, layer=layer: layer.init(k, input_size), jax.random.key(0))
        for t in times:
            xs = jax.ShapeDtypeStruct((batch, t, input_size), jnp.float32)
            start = time.perf_counter()
            stats = grad.lower(params, xs).compile().memory_analysis()
            compile_ms = (time.perf_counter() - start) * 1e3
            temp = int(stats.temp_size_in_bytes)
            args_ = int(stats.argument_size_in_bytes)
            out = int(stats.output_size_in_bytes)
            alias = int(stats.alias_size_in_bytes)
            peak = int(getattr(stats, "peak_memory_in_bytes", 0) or 0)
            rows.append(
                {
                    "variant": label,
                    "remat": remat,
                    "plain": plain,
                    "time": t,
                    "batch": batch,
                    "input": input_size,
                    "hidden": hidden,
                    "temp_bytes": temp,
                    "argument_bytes": args_,
                    "output_bytes": out,
                    "total_bytes": temp + args_ + out - alias,
                    "peak_bytes": peak or None,
                    "compile_ms": compile_ms,
                }
            )
    return rows


def run_long(t: int, remat, batch: int, input_size: int, hidden: int) -> dict:
    """Runs the long-sequence LSTM train step once (it fits) and times it."""
    import resource

    import seqjax

    layer = seqjax.recurrent(seqjax.lstm(hidden), remat=remat)
    params = layer.init(jax.random.key(0), input_size)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((batch, t, input_size), np.float32))
    grad = jax.jit(jax.grad(lambda p, x: layer.apply(p, x)[1].sum(), argnums=(0, 1)))
    first = _timed(lambda: jax.block_until_ready(grad(params, xs)))
    again = _timed(lambda: jax.block_until_ready(grad(params, xs)))
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "time": t,
        "remat": remat,
        "first_call_ms": first,
        "run_ms": again,
        "process_max_rss_bytes": rss,
    }


# --------------------------------------------------------------------------- parallel scans


def _scan_fns(cell: str, shape, *, parallel: bool, remat=None):
    """Train step and forward pass of ``recurrent(CELLS[cell](h), parallel=parallel)``."""
    import seqjax

    b, t, d, h = shape
    layer = seqjax.recurrent(seqjax.CELLS[cell](h), parallel=parallel, remat=remat)
    params = layer.init(jax.random.key(0), d)
    xs = jnp.asarray(np.random.default_rng(0).standard_normal((b, t, d), np.float32))

    def forward(p, x):
        return layer.apply(p, x)[1]

    def loss(p, x):
        return forward(p, x).sum()

    return _jax_pair(forward, loss, params, xs), (loss, params, xs)


def run_parallel(cells, shape, repeats: int, warmup: int, memory_time: int) -> dict:
    """Parallel against sequential scans of each cell: speed rows and train-step memory."""
    speed, memory = [], []
    b, _, d, h = shape
    for cell in cells:
        start = time.perf_counter()
        pairs = {
            "sequential": _scan_fns(cell, shape, parallel=False)[0],
            "parallel": _scan_fns(cell, shape, parallel=True)[0],
        }
        for i, mode in enumerate(("train", "forward")):
            res = _bench_case({k: v[i] for k, v in pairs.items()}, repeats, warmup)
            ratio = res["sequential"]["median_ms"] / res["parallel"]["median_ms"]
            speed.append(
                {
                    "cell": cell,
                    "shape": dict(zip(("batch", "time", "input", "hidden"), shape)),
                    "mode": mode,
                    "times": res,
                    "speedup": ratio,  # sequential median / parallel median
                }
            )
            print(f"  {_parallel_text(speed[-1])}", file=sys.stderr)
        for row in speed[-2:]:
            row["case_s"] = time.perf_counter() - start
        for parallel in (False, True):
            for remat in (None, "sqrt"):
                _, (loss, params, _) = _scan_fns(cell, (b, 2, d, h), parallel=parallel, remat=remat)
                grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
                xs = jax.ShapeDtypeStruct((b, memory_time, d), jnp.float32)
                stats = grad.lower(params, xs).compile().memory_analysis()
                total = (
                    int(stats.temp_size_in_bytes)
                    + int(stats.argument_size_in_bytes)
                    + int(stats.output_size_in_bytes)
                    - int(stats.alias_size_in_bytes)
                )
                memory.append(
                    {
                        "cell": cell,
                        "scan": "parallel" if parallel else "sequential",
                        "remat": remat,
                        "time": memory_time,
                        "batch": b,
                        "input": d,
                        "hidden": h,
                        "temp_bytes": int(stats.temp_size_in_bytes),
                        "total_bytes": total,
                    }
                )
    return {"speed": speed, "memory": memory}


def _parallel_text(row: dict) -> str:
    s, t = row["shape"], row["times"]
    shape = f"{s['batch']}/{s['time']}/{s['input']}/{s['hidden']}"
    seq, par = t["sequential"], t["parallel"]
    cols = [row["cell"], shape, row["mode"], _ms(seq["median_ms"]), _ms(par["median_ms"])]
    cols += [f"{row['speedup']:.2f}x", f"{seq['cores_used']:.1f} / {par['cores_used']:.1f}"]
    return "| " + " | ".join(cols) + " |"


def _parallel_markdown(section: dict) -> list[str]:
    lines = [
        "",
        "Parallel (associative) scan against the same cell's sequential scan "
        "(sequential / parallel: above 1 the parallel scan is faster):",
        "",
        "| cell | b/t/d/h | pass | sequential ms | parallel ms | speed-up | cores (seq / par) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [_parallel_text(r) for r in section["speed"]]
    mem = section["memory"]
    if mem:
        m0 = mem[0]
        lines += [
            "",
            f"Their train step memory at t={m0['time']} (batch {m0['batch']}, input "
            f"{m0['input']}, hidden {m0['hidden']}), MiB from the compiled memory analysis:",
            "",
            "| cell | sequential | sequential, remat sqrt | parallel | parallel, remat |",
            "|---|---|---|---|---|",
        ]
        for cell in dict.fromkeys(r["cell"] for r in mem):
            by = {
                (r["scan"], r["remat"]): r["total_bytes"] / 2**20 for r in mem if r["cell"] == cell
            }
            cols = [
                by[k]
                for k in [
                    ("sequential", None),
                    ("sequential", "sqrt"),
                    ("parallel", None),
                    ("parallel", "sqrt"),
                ]
            ]
            lines.append(f"| {cell} | " + " | ".join(f"{c:.1f}" for c in cols) + " |")
    return lines


# --------------------------------------------------------------------------- profile


# --------------------------------------------------------------------------- trainer

TRAINER_CONFIG = {"num_steps": 150, "log_every": 50, "batch_size": 64}  # the dates experiment
QUICK_TRAINER_CONFIG = {"num_steps": 12, "log_every": 4, "batch_size": 8}
CHECKPOINT_SAVES = 5  # saves timed per mode (after one untimed)


def _trainer_setup(quick: bool, dtype: str | None = None):
    """The config, task, jitted loop step and initial state of the trainer rows."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
    from configs.dates import get_config
    from seqjax.train import loop, make_optimizer
    from seqjax.train.tasks import make_task

    config = get_config()
    config.update(QUICK_TRAINER_CONFIG if quick else TRAINER_CONFIG)
    config.update(progress_bar=False, tensorboard=False)
    config.eval_every = config.num_steps
    if quick:
        config.model.update(hidden_size=8, embed_size=8)
        config.data.update(n_train=200, n_test=40, n_examples=2)
    if dtype:
        config.dtype = dtype
    task = make_task(config)
    tx = make_optimizer(config)
    step = loop.make_loop_step(loop.make_train_step(task, tx, dtype=dtype))
    params = task.init(jax.random.PRNGKey(0))
    state = loop.TrainState(
        jnp.zeros((), jnp.int32), params, tx.init(params), jax.random.PRNGKey(1)
    )
    return config, task, jax.jit(step), state, loop._healthy()


def _bare_loop(step, state, health, batches) -> float:
    """Seconds for the jitted step over device-resident batches, one read at the end."""
    start = time.perf_counter()
    for batch in batches:
        state, health, metrics = step(state, health, batch)
    jax.block_until_ready((state, metrics))
    return time.perf_counter() - start


def run_trainer(quick: bool) -> dict:
    """``train_and_evaluate``'s training throughput against a bare loop of the same jitted
    step on the same batches; bfloat16 against float32 step time; the time a checkpoint
    write blocks the loop, synchronous against asynchronous."""
    from seqjax.train import train_and_evaluate
    from seqjax.train.checkpoints import Checkpoints
    from seqjax.train.writers import read_metrics

    config, task, step, state, health = _trainer_setup(quick)
    n, log_every, bs = config.num_steps, config.log_every, config.batch_size
    with tempfile.TemporaryDirectory() as tmp:
        train_and_evaluate(config, os.path.join(tmp, "run"), task=task)
        # The first window holds the compilation; the others are steady training.
        trained = [
            r["examples_per_s"]
            for r in read_metrics(os.path.join(tmp, "run"))
            if r["split"] == "train" and r["step"] > log_every
        ]
    batches = [jax.device_put(task.train_batch(s, bs)) for s in range(n)]
    _bare_loop(step, state, health, batches[:log_every])  # compilation
    bare_s = _bare_loop(step, state, health, batches[log_every:])
    bare = (n - log_every) * bs / bare_s
    trainer = statistics.mean(trained)

    step_ms = {}
    for dtype in ("float32", "bfloat16"):
        _, _, fn, st, hl = _trainer_setup(quick, None if dtype == "float32" else dtype)
        few = batches[: max(4, log_every // 2)]
        _bare_loop(fn, st, hl, few[:1])
        step_ms[dtype] = 1e3 * min(_bare_loop(fn, st, hl, few) for _ in range(3)) / len(few)

    # DP-SGD's per-example gradients (vmap of the gradient, clipping, noise) against the
    # ordinary step, on the same batches (every row sampled), in interleaved rounds.
    from seqjax.train import loop, make_optimizer
    from seqjax.train.privacy import WEIGHT, private_value_and_grad

    tx = make_optimizer(config)
    private = jax.jit(
        loop.make_loop_step(
            loop.make_train_step(
                task,
                tx,
                value_and_grad=lambda f: private_value_and_grad(
                    f, clip_norm=1.0, noise_multiplier=1.0, expected_batch=float(bs)
                ),
            )
        )
    )
    few = batches[: max(4, log_every // 2)]
    weighted = [{**b, WEIGHT: jnp.ones(bs, jnp.float32)} for b in few]
    _bare_loop(private, state, health, weighted[:1])
    rounds: dict[str, list[float]] = {"plain": [], "private": []}
    for _ in range(3):
        rounds["plain"].append(_bare_loop(step, state, health, few))
        rounds["private"].append(_bare_loop(private, state, health, weighted))
    dp_ms = {k: 1e3 * min(v) / len(few) for k, v in rounds.items()}

    blocked_ms: dict[str, dict] = {}
    big = {"w": jnp.ones((4 if quick else 64, 2**18), jnp.float32)}  # 4 MiB / 64 MiB
    for label, tree in (("dates state", state), (f"{big['w'].nbytes >> 20} MiB array", big)):
        blocked_ms[label] = {}
        for mode in ("sync", "async"):
            with tempfile.TemporaryDirectory() as tmp:
                ckpt = Checkpoints(tmp, keep=2, async_save=mode == "async")
                times = []
                for i in range(CHECKPOINT_SAVES + 1):
                    start = time.perf_counter()
                    ckpt.save(i + 1, tree)
                    times.append(1e3 * (time.perf_counter() - start))
                    ckpt.wait()
                ckpt.close()
            blocked_ms[label][mode] = statistics.median(times[1:])
    return {
        "task": "dates",
        "batch_size": bs,
        "steps": n,
        "trainer_examples_per_s": trainer,
        "bare_examples_per_s": bare,
        "ratio": trainer / bare,
        "step_ms": step_ms,
        "bf16_over_f32": step_ms["bfloat16"] / step_ms["float32"],
        "checkpoint_blocked_ms": blocked_ms,
        "dp_step_ms": dp_ms,
        "dp_over_plain": dp_ms["private"] / dp_ms["plain"],
    }


def _trainer_text(row: dict) -> list[str]:
    lines = [
        "",
        f"Trainer ({row['task']}, batch {row['batch_size']}, {row['steps']} steps): "
        f"train_and_evaluate {row['trainer_examples_per_s']:.0f} examples/s, a bare loop of "
        f"the same jitted step on the same batches {row['bare_examples_per_s']:.0f}: "
        f"ratio {row['ratio']:.3f} (target >= 0.95). Step time float32 "
        f"{row['step_ms']['float32']:.2f} ms, bfloat16 {row['step_ms']['bfloat16']:.2f} ms "
        f"({row['bf16_over_f32']:.2f}x).",
        "",
        f"DP-SGD step (per-example gradients, clipping, noise) "
        f"{row['dp_step_ms']['private']:.2f} ms against the ordinary step "
        f"{row['dp_step_ms']['plain']:.2f} ms: {row['dp_over_plain']:.2f}x.",
        "",
        "| checkpoint of | sync: loop blocked ms | async: loop blocked ms |",
        "|---|---|---|",
    ]
    for label, ms in row["checkpoint_blocked_ms"].items():
        lines.append(f"| {label} | {ms['sync']:.1f} | {ms['async']:.1f} |")
    return lines


def _op_category(name: str) -> str:
    """Category of an XLA CPU op from its HLO name; "matmuls" before the per-step split.

    A fusion is named after the ops it fuses (``bitcast_dynamic-update-slice_fusion.1``): it
    counts as a data movement only if all of them are, as a broadcast if they are moves and
    broadcasts (filling fresh memory), as elementwise if they are elementwise ops besides.
    """
    base = name.split(".")[0]
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

    wall = statistics.median(_timed(fn) for _ in range(PROFILE_CALLS))
    with tempfile.TemporaryDirectory() as tmp:
        with jax.profiler.trace(tmp):
            traced = sum(_timed(fn) for _ in range(calls)) / calls
        (path,) = glob.glob(f"{tmp}/**/*.xplane.pb", recursive=True)
        data = ProfileData.from_file(path)
    ops: dict[str, list[int]] = {}  # name -> [total ns, count]
    wait_ns = 0
    for plane in data.planes:
        for line in plane.lines:
            if not line.name.startswith("tf_XLA"):
                continue
            for ev in line.events:
                if ev.name == POOL_WAIT:
                    wait_ns += ev.duration_ns
                elif not ev.name.startswith(NOT_OPS):
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
        "per_step_us": 1e3 * sum(r["ms"] for r in rows if r["calls"] >= steps) / steps,
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
            fns = {"seqjax": _seqjax_fns(cell, shape, unroll=args.unroll, plain=False)}
            if "torch" in args.peers:
                fns["torch"] = _torch_fns(cell, shape, torch_device)
            for i, mode in enumerate(("train", "forward")):
                for pair in fns.values():  # compile and warm up
                    pair[i]()
                    pair[i]()
                row = {
                    "cell": cell,
                    "shape": dict(zip(("batch", "time", "input", "hidden"), shape)),
                    "mode": mode,
                    "seqjax": _xla_profile(fns["seqjax"][i], shape[1], calls),
                }
                if "torch" in fns:
                    row["torch_top_ops"] = _torch_profile(fns["torch"][i], calls)
                rows.append(row)
    return rows


def _profile_text(row: dict) -> list[str]:
    s, p = row["shape"], row["seqjax"]
    lines = [
        f"{row['cell']} {s['batch']}/{s['time']}/{s['input']}/{s['hidden']} {row['mode']}: "
        f"seqjax {_ms(p['wall_ms'])} ms per call ({_ms(p['traced_wall_ms'])} ms traced), "
        f"XLA ops {_ms(p['op_ms'])} ms per call summed over threads "
        f"({p['calls_traced']} calls traced)",
        f"  {'category':<40} {'ms/call':>8} {'%':>6} {'calls':>7}",
    ]
    for name, c in p["categories"].items():
        lines.append(f"  {name:<40} {c['ms']:8.2f} {c['percent']:6.1f} {c['calls']:7.0f}")
    lines.append(f"  {'thread-pool waits (inside matmuls)':<40} {p['pool_wait_ms']:8.2f}")
    lines.append(
        f"  ops that run once per step: {p['per_step_us']:.1f} us per step (t={s['time']})"
    )
    lines.append(f"  {'top ops':<40} {'ms/call':>8} {'%':>6} {'calls':>7} {'us/call':>8}  category")
    for r in p["top_ops"]:
        lines.append(
            f"  {r['name']:<40} {r['ms']:8.2f} {r['percent']:6.1f} {r['calls']:7.0f} "
            f"{r['us_per_call']:8.1f}  {r['category']}"
        )
    if "torch_top_ops" in row:
        lines.append(f"  {'torch top ops, self CPU':<40} {'ms/call':>8} {'calls':>14}  name")
        for r in row["torch_top_ops"]:
            lines.append(f"  {'':<40} {r['self_ms']:8.2f} {r['calls']:14.0f}  {r['name']}")
    return lines


# --------------------------------------------------------------------------- report


def _ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _row_text(row: dict, peers, plain: bool) -> str:
    s = row["shape"]
    shape = f"{s['batch']}/{s['time']}/{s['input']}/{s['hidden']}"
    t = row["times"]
    names = ["seqjax", *(["seqjax-plain"] if plain else []), *peers]
    cols = [row["cell"], shape, row["mode"]]
    cols += [_ms(t[n]["median_ms"]) for n in names]
    cols += [f"{row['ratios'][n]:.2f}x" for n in names[1:]]
    cols.append("-" if row["best_peer_ratio"] is None else f"{row['best_peer_ratio']:.2f}x")
    cols.append(" / ".join(f"{t[n]['first_call_ms'] / 1e3:.2f}" for n in names))
    cols.append(" / ".join(f"{t[n]['cores_used']:.1f}" for n in names))
    return "| " + " | ".join(cols) + " |"


def markdown(result: dict) -> str:
    peers = result["config"]["peers"]
    plain = result["config"]["plain"]
    names = ["seqjax", *(["seqjax-plain"] if plain else []), *peers]
    head = ["cell", "b/t/d/h", "pass", *(f"{n} ms" for n in names)]
    head += [f"{n}/seqjax" for n in names[1:]]
    head += ["best peer/seqjax", "first call s (" + " / ".join(names) + ")"]
    head.append("cores (" + " / ".join(names) + ")")
    lines = [f"Machine: {result['machine']['summary']}", ""]
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [_row_text(r, peers, plain) for r in result["speed"]]
    padded = [r for r in result["speed"] if r.get("lengths") is not None]
    if padded:
        seconds = sum(r["case_s"] for r in padded if r["mode"].startswith("train"))
        lines += [
            "",
            "padded: right-padded batch, lengths uniform in [t/2, t] (seed "
            f"{result['config']['lengths_seed']}, the same for all), outputs times the mask "
            "steps < lengths; seqjax lengths=, torch pack_padded_sequence / pad_packed_sequence, "
            f"Flax nn.RNN seq_lengths=. These rows took {seconds:.0f} s of the run; mean length: "
            + ", ".join(
                dict.fromkeys(
                    f"t={r['shape']['time']} (batch {r['shape']['batch']}): "
                    f"{statistics.mean(r['lengths']):.1f}"
                    for r in padded
                )
            )
            + ".",
        ]
    if result.get("memory"):
        mem = result["memory"]
        m0 = mem[0]
        lines += [
            "",
            f"LSTM train step memory (batch {m0['batch']}, input {m0['input']}, "
            f"hidden {m0['hidden']}), MiB from the compiled memory analysis "
            "(temporaries + arguments + outputs):",
            "",
        ]
        times = sorted({r["time"] for r in mem})
        labels = list(dict.fromkeys(r["variant"] for r in mem))
        head = " | ".join(f"t={t}" for t in times)
        lines.append(f"| remat | {head} | growth t={times[0]}->{times[-1]} |")
        lines.append("|" + "---|" * (len(times) + 2))
        for label in labels:
            by_t = {r["time"]: r for r in mem if r["variant"] == label}
            cells = [f"{by_t[t]['total_bytes'] / 2**20:.1f}" for t in times]
            growth = by_t[times[-1]]["total_bytes"] / by_t[times[0]]["total_bytes"]
            lines.append(f"| {label} | " + " | ".join(cells) + f" | {growth:.1f}x |")
        if result.get("long_run"):
            run = result["long_run"]
            lines += [
                "",
                f"Ran the t={run['time']} train step with remat={run['remat']!r}: "
                f"{run['run_ms'] / 1e3:.1f} s per step (first call {run['first_call_ms'] / 1e3:.1f}"
                f" s), process peak RSS {run['process_max_rss_bytes'] / 2**30:.2f} GiB.",
            ]
    if result.get("trainer"):
        lines += _trainer_text(result["trainer"])
    if result.get("parallel"):
        lines += _parallel_markdown(result["parallel"])
    if result.get("profile"):
        lines += ["", "Where the seqjax time goes (XLA's CPU profiler), per case:", "", "```"]
        for row in result["profile"]:
            lines += [*_profile_text(row), ""]
        lines[-1] = "```"
    return "\n".join(lines)


def machine_info(torch_device: str) -> dict:
    import flax
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch_device == "cuda" else None
    jax_dev = str(jax.devices()[0].device_kind)
    summary = f"{cpu}, {os.cpu_count()} cores; jax on {jax.default_backend()} ({jax_dev})"
    summary += f", torch on {torch_device}" + (f" ({gpu})" if gpu else "")
    return {
        "summary": summary,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_device": jax_dev,
        "torch_device": torch_device,
        "gpu": gpu,
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }


def parse_args(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--quick", action="store_true", help="tiny shapes, few repeats (a test)")
    p.add_argument("--out", default="bench.json", help="where to write the JSON results")
    p.add_argument("--repeats", type=int, default=None, help="timed runs per case (>= 7)")
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
    args = p.parse_args(argv)
    args.cells = [c for c in args.cells.split(",") if c]
    args.peers = [c for c in args.peers.split(",") if c]
    if bad := set(args.cells) - set(CELLS):
        p.error(f"unknown cells {sorted(bad)}; choose from {CELLS}")
    if bad := set(args.peers) - {"torch", "flax"}:
        p.error(f"unknown peers {sorted(bad)}; choose from torch, flax")
    if args.repeats is None:
        args.repeats = 3 if args.quick else 9
    if args.warmup is None:
        args.warmup = 1 if args.quick else 2
    if args.only_parallel:
        args.no_speed = args.no_memory = args.no_trainer = True
        args.profile = args.no_parallel = False
    return args


def main(argv=None) -> dict:
    args = parse_args(argv)
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
        },
        "speed": [] if args.no_speed else run_speed(args, shapes, torch_device),
        "memory": [],
        "profile": run_profile(args, shapes, torch_device) if args.profile else [],
    }
    if not args.no_parallel:
        result["parallel"] = run_parallel(
            PARALLEL_CELLS,
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
        with open(args.out, "w") as f:
            json.dump(result, f, indent=1)
    return result


if __name__ == "__main__":
    main()
