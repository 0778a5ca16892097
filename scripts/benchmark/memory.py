"""The long-sequence section: memory of the LSTM train step for growing ``t``, with and
without remat, from the compiled executable's memory analysis (no run needed); and, with
``--memory-run``, one run of the longest step."""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp

from benchmark.implementations import seqjax_fns, seqjax_layer
from benchmark.timing import timed

MEMORY_TIMES = (1024, 2048, 4096, 8192, 16384)
QUICK_MEMORY_TIMES = (16, 64)
MEMORY_VARIANTS = (  # (label, remat, fast paths off)
    ("none", None, False),
    ("none, plain scan", None, True),
    ("sqrt", "sqrt", False),
    ("64", 64, False),
)


def train_step_memory(loss, params, xs: jax.ShapeDtypeStruct) -> dict:
    """Bytes of the compiled train step ``grad(loss, argnums=(0, 1))`` on ``xs``, and its
    compile time: temporaries, arguments, outputs, their total (less what aliases) and the
    peak where XLA reports one."""
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    start = time.perf_counter()
    stats = grad.lower(params, xs).compile().memory_analysis()
    compile_ms = (time.perf_counter() - start) * 1e3
    temp = int(stats.temp_size_in_bytes)
    args = int(stats.argument_size_in_bytes)
    out = int(stats.output_size_in_bytes)
    peak = int(getattr(stats, "peak_memory_in_bytes", 0) or 0)
    return {
        "temp_bytes": temp,
        "argument_bytes": args,
        "output_bytes": out,
        "total_bytes": temp + args + out - int(stats.alias_size_in_bytes),
        "peak_bytes": peak or None,
        "compile_ms": compile_ms,
    }


def abstract_params(layer, input_size: int):
    """The shapes and dtypes of ``layer.init(key, input_size)``, without running it."""
    return jax.eval_shape(lambda k: layer.init(k, input_size), jax.random.key(0))


def run_memory(times, variants, batch: int, input_size: int, hidden: int) -> list[dict]:
    """Memory of the LSTM train step from the compiled executables' memory analysis.

    Args:
      variants: ``(label, remat, plain)`` triples: ``recurrent(..., remat=remat)``, with the
        fast paths off when ``plain``.
    """
    rows = []
    for label, remat, plain in variants:
        layer, _, loss = seqjax_layer("lstm", hidden, plain=plain, remat=remat)
        params = abstract_params(layer, input_size)
        for t in times:
            xs = jax.ShapeDtypeStruct((batch, t, input_size), jnp.float32)
            rows.append(
                {
                    "variant": label,
                    "remat": remat,
                    "plain": plain,
                    "time": t,
                    "batch": batch,
                    "input": input_size,
                    "hidden": hidden,
                    **train_step_memory(loss, params, xs),
                }
            )
    return rows


def run_long(t: int, remat, batch: int, input_size: int, hidden: int) -> dict:
    """Runs the long-sequence LSTM train step once (it fits) and times it."""
    import resource

    train, _ = seqjax_fns("lstm", (batch, t, input_size, hidden), remat=remat)
    first = timed(train)
    again = timed(train)
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB
    return {
        "time": t,
        "remat": remat,
        "first_call_ms": first,
        "run_ms": again,
        "process_max_rss_bytes": rss,
    }
