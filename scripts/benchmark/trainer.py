"""The trainer section, on the dates experiment.

Compares the examples per second of ``train_and_evaluate`` (its logged windows after the
first, which holds the compilation) with a bare Python loop of the same jitted step over the
same batches already on the device, the two timed in turn over several rounds (medians);
times the step in bfloat16 against float32 and the DP-SGD step against the ordinary one;
and times how long a checkpoint save blocks the loop, with Orbax writing synchronously and
asynchronously (the median of a few saves, the next save only once the previous one is
written).
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time

import jax
import jax.numpy as jnp

TRAINER_CONFIG = {"num_steps": 150, "log_every": 50, "batch_size": 64}  # the dates experiment
QUICK_TRAINER_CONFIG = {"num_steps": 12, "log_every": 4, "batch_size": 8}
CHECKPOINT_SAVES = 5  # saves timed per mode (after one untimed)
QUICK_CHECKPOINT_SAVES = 2
TRAINER_ROUNDS = 5  # train_and_evaluate and the bare loop in turn, medians compared


def _trainer_setup(quick: bool, dtype: str | None = None):
    """The config, task, jitted loop step and initial state of the trainer rows."""
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
    from configs.dates import get_config
    from seqjax.train import loop, make_optimizer
    from seqjax.train.tasks import make_task

    config = get_config()
    config.update(QUICK_TRAINER_CONFIG if quick else TRAINER_CONFIG)
    config.update(progress_bar=False, tensorboard=False)
    config.eval_every = config.num_steps
    if quick:
        # One-way encoder, no attention: a third of the compile time of each step variant.
        config.model.update(hidden_size=8, embed_size=8, bidirectional=False, attention=None)
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
    batches = [jax.device_put(task.train_batch(s, bs)) for s in range(n)]
    _bare_loop(step, state, health, batches[:log_every])  # compilation
    # Whole runs vary by 10-15% from one to the next on a shared 2-core machine, so the
    # two are timed in turn, TRAINER_ROUNDS times, and compared by their medians.
    trained, bare_rates = [], []
    for _ in range(1 if quick else TRAINER_ROUNDS):
        with tempfile.TemporaryDirectory() as tmp:
            train_and_evaluate(config, os.path.join(tmp, "run"), task=task)
            # The first window holds the compilation; the others are steady training.
            windows = [
                r["examples_per_s"]
                for r in read_metrics(os.path.join(tmp, "run"))
                if r["split"] == "train" and r["step"] > log_every
            ]
        trained.append(statistics.mean(windows))
        bare_s = _bare_loop(step, state, health, batches[log_every:])
        bare_rates.append((n - log_every) * bs / bare_s)
    trainer, bare = statistics.median(trained), statistics.median(bare_rates)

    step_ms = {}
    bf16 = _trainer_setup(quick, "bfloat16")[2:]  # float32 is the step above, compiled
    for dtype, (fn, st, hl) in (("float32", (step, state, health)), ("bfloat16", bf16)):
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
                for i in range((QUICK_CHECKPOINT_SAVES if quick else CHECKPOINT_SAVES) + 1):
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
        "rounds": {"trainer_examples_per_s": trained, "bare_examples_per_s": bare_rates},
        "step_ms": step_ms,
        "bf16_over_f32": step_ms["bfloat16"] / step_ms["float32"],
        "checkpoint_blocked_ms": blocked_ms,
        "dp_step_ms": dp_ms,
        "dp_over_plain": dp_ms["private"] / dp_ms["plain"],
    }
