"""``train_and_evaluate(config, workdir)``: one experiment from its config, end to end."""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from ml_collections import ConfigDict

from seqjax.train import plots
from seqjax.train.checkpoints import Checkpoints
from seqjax.train.optim import make_optimizer
from seqjax.train.writers import MetricWriter, read_metrics
from seqjax.typing import Array, Params, PRNGKey


class Task(Protocol):
    """What an experiment provides to the trainer (see ``seqjax.train.tasks``)."""

    eval_metric: str  # the metric that ranks checkpoints and is reported
    eval_mode: str  # "max" or "min"

    def init(self, key: PRNGKey) -> Params: ...

    def loss(self, params: Params, batch: dict, key: PRNGKey) -> tuple[Array, dict]:
        """Training loss (stochastic parts fed by ``key``) and extra metrics, traced."""

    def train_batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """The global training batch of ``step``: a pure function of the step (exact resume)."""

    def evaluate(self, params: Params) -> dict[str, float]: ...

    def report(self, params: Params, workdir: pathlib.Path) -> dict[str, Any]:
        """Plots in ``workdir/plots`` and printable extras (examples, baselines)."""


class TrainState(NamedTuple):
    step: Array  # int32 [], steps taken
    params: Params
    opt_state: optax.OptState
    key: Array  # uint32 [2], feeds dropout and other stochastic parts


def make_train_step(task: Task, tx: optax.GradientTransformation) -> Callable:
    """``train_step(state, batch) -> (state, metrics)``: one optimizer update, to be jitted."""

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key, sub = jax.random.split(state.key)
        (loss, aux), grads = jax.value_and_grad(task.loss, has_aux=True)(state.params, batch, sub)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(params),  # non-finite updates show here first
            **aux,
        }
        return TrainState(state.step + 1, params, opt_state, key), metrics

    return train_step


def data_mesh() -> Mesh:
    """A one-axis mesh over every device: the batch is split along ``"data"``."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def _shard_batch(batch: dict, sharding: NamedSharding, batch_size: int) -> dict:
    """This process's rows of the global batch, assembled into one sharded global array."""
    n_proc, index = jax.process_count(), jax.process_index()
    rows = batch_size // n_proc
    local = {k: v[index * rows : (index + 1) * rows] for k, v in batch.items()}
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def _check_config(config: ConfigDict) -> None:
    n = jax.device_count()
    if config.batch_size % n:
        raise ValueError(
            f"batch_size must be divisible by the number of devices ({n}) for data "
            f"parallelism, received {config.batch_size}"
        )
    for name in ("num_steps", "eval_every", "log_every"):
        if int(config[name]) < 1:
            raise ValueError(f"{name} must be a positive int, received {config[name]!r}")


def train_and_evaluate(config: ConfigDict, workdir: str | pathlib.Path) -> dict:
    """Trains ``config.task`` into ``workdir`` and returns the summary.

    Resumes from the latest checkpoint in ``workdir`` when there is one; batches are a pure
    function of the step and the PRNG key is part of the state, so a resumed run takes the
    same steps as an uninterrupted one. Writes ``metrics.jsonl``, TensorBoard events,
    ``checkpoints/``, ``plots/`` and finally ``summary.json``.

    Raises:
      FloatingPointError: when a loss or gradient norm is not finite; the message names the
        step, and no checkpoint is written past the last good one.
    """
    from seqjax.train.tasks import make_task

    start_time = time.time()
    workdir = pathlib.Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    _check_config(config)
    task = make_task(config)
    tx = make_optimizer(config)
    mesh = data_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))

    k_init, k_train = jax.random.split(jax.random.PRNGKey(config.seed))
    params = task.init(k_init)
    state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), k_train)
    state = jax.device_put(state, replicated)
    ckpt = Checkpoints(
        workdir, keep=config.keep_checkpoints, metric=task.eval_metric, mode=task.eval_mode
    )
    if ckpt.latest_step() is not None:
        state = ckpt.restore(state)
    start = int(state.step)
    writer = MetricWriter(workdir, resume_step=start, tensorboard=config.tensorboard)
    train_step = jax.jit(make_train_step(task, tx))
    eval_metrics: dict[str, float] = {}

    def evaluate(step: int) -> dict[str, float]:
        metrics = task.evaluate(state.params)
        writer.write(step, "eval", metrics)
        ckpt.save(step, state, metrics)
        return metrics

    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.num_steps,
        initial=start,
        disable=not config.progress_bar,
        file=sys.stderr,
        desc=config.task,
        dynamic_ncols=True,
        mininterval=1.0,
    )
    window_start, window_steps = time.time(), 0
    try:
        for step in range(start, config.num_steps):
            batch = _shard_batch(
                task.train_batch(step, config.batch_size), batch_sharding, config.batch_size
            )
            new_state, metrics = train_step(state, batch)
            loss, grad_norm = float(metrics["loss"]), float(metrics["grad_norm"])
            param_norm = float(metrics["param_norm"])
            if not all(math.isfinite(v) for v in (loss, grad_norm, param_norm)):
                last = ckpt.latest_step()
                raise FloatingPointError(
                    f"non-finite training loss ({loss}), gradient norm ({grad_norm}) or updated "
                    f"parameters (norm {param_norm}) at step {step}: the run stopped without "
                    "saving this step; the last good checkpoint "
                    f"({'none' if last is None else f'step {last}'}) in {ckpt.directory} is intact"
                )
            state = new_state
            window_steps += 1
            bar.update(1)
            done = step + 1
            if done % config.log_every == 0 or done == config.num_steps:
                elapsed = time.time() - window_start
                logged = {k: float(v) for k, v in jax.device_get(metrics).items()}
                logged["examples_per_s"] = window_steps * config.batch_size / max(elapsed, 1e-9)
                writer.write(done, "train", logged)
                bar.set_postfix(loss=f"{loss:.4f}", ex_s=f"{logged['examples_per_s']:.0f}")
                window_start, window_steps = time.time(), 0
            if done % config.eval_every == 0 or done == config.num_steps:
                eval_metrics = evaluate(done)
                bar.write(
                    f"step {done}: " + ", ".join(f"{k}={v:.4g}" for k, v in eval_metrics.items())
                )
        if not eval_metrics:  # resumed after the last step: evaluate the restored state
            eval_metrics = task.evaluate(state.params)
    finally:
        bar.close()
        writer.close()
        ckpt.close()

    extras = task.report(state.params, workdir)
    plots.learning_curves(read_metrics(workdir), workdir, eval_metric=task.eval_metric)
    summary = {
        "task": config.task,
        "eval": eval_metrics,
        "step": int(state.step),
        "wall_time_s": time.time() - start_time,
        "devices": jax.device_count(),
        "platform": jax.devices()[0].platform,
        **extras,
        "config": config.to_dict(),
    }
    (workdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary
