"""``train_and_evaluate(config, workdir, task=None)``: one experiment, end to end.

Checkpoints are ranked on the validation split; at the end the best-validation checkpoint
is restored and evaluated once on the test split.
"""

from __future__ import annotations

import json
import math
import pathlib
import sys
import time
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec
from ml_collections import ConfigDict

from seqjax.train import plots
from seqjax.train.checkpoints import Checkpoints
from seqjax.train.optim import make_optimizer
from seqjax.train.pipeline import Prefetcher
from seqjax.train.tasks.base import Task
from seqjax.train.writers import MetricWriter, read_metrics
from seqjax.typing import Array, Params


class TrainState(NamedTuple):
    step: Array  # int32 [], steps taken
    params: Params
    opt_state: optax.OptState
    key: Array  # uint32 [2], feeds dropout and other stochastic parts


COMPUTE_DTYPES = ("float32", "bfloat16")


def cast_floating(tree: Any, dtype: Any) -> Any:
    """Every floating leaf of ``tree`` cast to ``dtype``; integer leaves and keys untouched."""

    def leaf(x):
        x = jnp.asarray(x)
        return x.astype(dtype) if jnp.issubdtype(x.dtype, jnp.floating) else x

    return jax.tree.map(leaf, tree)


def make_train_step(
    task: Task,
    tx: optax.GradientTransformation,
    *,
    dtype: Any = None,
    value_and_grad: Callable | None = None,
) -> Callable:
    """``train_step(state, batch) -> (state, metrics)``: one optimizer update, to be jitted.

    With ``dtype`` (``"bfloat16"``) the model runs on a copy of the parameters cast to it,
    so its matmuls run in that dtype, while the parameters, their gradients and the
    optimizer state stay float32 (the cells keep their carries in float32 under narrower
    parameters); the loss is taken in float32.

    A step whose loss, gradient norm or updated parameters are not finite is skipped on the
    device: the state is returned unchanged and ``metrics["finite"]`` is False. So the
    trainer needs no host read per step to keep non-finite values out of the state.

    ``value_and_grad`` turns the loss function into ``(loss, aux), grads`` (default
    ``jax.value_and_grad(loss_fn, has_aux=True)``); DP-SGD passes its private one
    (:meth:`seqjax.train.privacy.Privacy.value_and_grad`).
    """

    def loss_fn(params, batch, key):
        model_params = params if dtype is None else cast_floating(params, dtype)
        loss, aux = task.loss(model_params, batch, key)
        return jnp.asarray(loss, jnp.float32), aux

    grad_fn = (
        jax.value_and_grad(loss_fn, has_aux=True)
        if value_and_grad is None
        else value_and_grad(loss_fn)
    )

    def train_step(state: TrainState, batch: dict) -> tuple[TrainState, dict]:
        key, sub = jax.random.split(state.key)
        (loss, aux), grads = grad_fn(state.params, batch, sub)
        updates, opt_state = tx.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        metrics = {
            "loss": loss,
            "grad_norm": optax.tree.norm(grads),
            "param_norm": optax.tree.norm(params),  # non-finite updates show here first
            **aux,
        }
        finite = jnp.isfinite(metrics["loss"])
        for name in ("grad_norm", "param_norm"):
            finite &= jnp.isfinite(metrics[name])
        new = TrainState(state.step + 1, params, opt_state, key)
        kept = jax.tree.map(lambda n, o: jnp.where(finite, n, o), new, state)
        return kept, {**metrics, "finite": finite}

    return train_step


HEALTH_FIELDS = ("loss", "grad_norm", "param_norm")


def _healthy() -> dict:
    """The first non-finite step (``-1``: none yet) and its metrics, kept on the device."""
    return {
        "step": jnp.asarray(-1, jnp.int32),
        **{k: jnp.zeros((), jnp.float32) for k in HEALTH_FIELDS},
    }


def make_loop_step(train_step: Callable) -> Callable:
    """``(state, health, batch) -> (state, health, metrics)``: ``train_step`` that also
    records the first step it skipped as non-finite in ``health`` (see :func:`_healthy`)."""

    def loop_step(state, health, batch):
        new_state, metrics = train_step(state, batch)
        first = (~metrics["finite"]) & (health["step"] < 0)
        seen = {"step": state.step, **{k: metrics[k].astype(jnp.float32) for k in HEALTH_FIELDS}}
        health = jax.tree.map(lambda s, h: jnp.where(first, s, h), seen, health)
        return new_state, health, metrics

    return loop_step


def data_mesh() -> Mesh:
    """A one-axis mesh over every device: the batch is split along ``"data"``."""
    return Mesh(np.asarray(jax.devices()), ("data",))


def _shard_batch(batch: dict, sharding: NamedSharding, batch_size: int) -> dict:
    """This process's rows of the global batch, assembled into one sharded global array."""
    n_proc, index = jax.process_count(), jax.process_index()
    rows = batch_size // n_proc
    local = {k: v[index * rows : (index + 1) * rows] for k, v in batch.items()}
    return {k: jax.make_array_from_process_local_data(sharding, v) for k, v in local.items()}


def _local(tree: Any) -> Any:
    """Replicated global arrays as this process's own copy (for the task's host-side
    evaluation, which then runs on this process's devices alone)."""
    if jax.process_count() == 1:
        return tree
    return jax.tree.map(lambda x: x.addressable_data(0) if isinstance(x, jax.Array) else x, tree)


class _NoWriter:
    """What processes other than 0 write: nothing (process 0 writes the run's files)."""

    def write(self, *args: Any) -> None: ...

    def flush(self) -> None: ...

    def rewrite_tensorboard(self, *args: Any, **kwargs: Any) -> None: ...

    def close(self) -> None: ...


def _check_config(config: ConfigDict) -> None:
    for name in ("num_steps", "eval_every", "log_every", "batch_size", "keep_checkpoints"):
        if isinstance(config[name], bool) or not isinstance(config[name], int) or config[name] < 1:
            raise ValueError(f"{name} must be a positive int, received {config[name]!r}")
    if (
        isinstance(config.patience, bool)
        or not isinstance(config.patience, int)
        or config.patience < 0
    ):
        raise ValueError(
            f"patience must be an int >= 0 (0: no early stopping), received {config.patience!r}"
        )
    if config.get("dtype", "float32") not in COMPUTE_DTYPES:
        raise ValueError(f"dtype must be one of {COMPUTE_DTYPES}, received {config.dtype!r}")
    prefetch = config.data.get("prefetch", 2) if "data" in config else 2
    if isinstance(prefetch, bool) or not isinstance(prefetch, int) or prefetch < 0:
        raise ValueError(f"data.prefetch must be an int >= 0, received {prefetch!r}")
    n = jax.device_count()
    if config.resume not in RESUME_MODES:
        raise ValueError(f"resume must be one of {RESUME_MODES}, received {config.resume!r}")
    if config.batch_size % n:
        raise ValueError(
            f"batch_size must be divisible by the number of devices ({n}) for data "
            f"parallelism, received {config.batch_size}"
        )


RESUME_MODES = ("auto", "strict", "fresh")
RUN_FILES = (
    "checkpoints",
    "checkpoints.json",
    "metrics.jsonl",
    "tensorboard",
    "plots",
    "summary.json",
)


def _discard_run(workdir: pathlib.Path) -> None:
    """Removes what a run writes into ``workdir`` (``--config.resume=fresh``)."""
    import shutil

    for name in RUN_FILES:
        path = workdir / name
        if path.is_dir():
            shutil.rmtree(path)
        elif path.exists():
            path.unlink()


def _finished_summary(workdir: pathlib.Path, step: int, num_steps: int) -> dict | None:
    """The summary of a run that already ended at checkpoint ``step``, else ``None``."""
    path = workdir / "summary.json"
    if not path.exists():
        return None
    try:
        summary = json.loads(path.read_text())
    except ValueError:
        return None
    if summary.get("step") == step and (step >= num_steps or summary.get("stopped_early")):
        return summary
    return None


def _check_task(task) -> None:
    missing = [
        name
        for name in (
            "eval_metric",
            "eval_mode",
            "init",
            "loss",
            "train_batch",
            "evaluate",
            "report",
        )
        if not hasattr(task, name)
    ]
    if missing:
        raise TypeError(
            f"task must follow the seqjax.train.Task protocol; {type(task).__name__} lacks "
            f"{missing}"
        )
    if task.eval_mode not in ("max", "min"):
        raise ValueError(f'task.eval_mode must be "max" or "min", received {task.eval_mode!r}')


class BestTracker:
    """The best validation evaluation so far and the evaluations since it improved.

    Rebuilt on resume from the ``"val"`` records of ``metrics.jsonl``, so that early
    stopping and the best step are the same as in an uninterrupted run.
    """

    def __init__(self, metric: str, mode: str, patience: int):
        self.metric, self.mode, self.patience = metric, mode, patience
        self.best_step: int | None = None
        self.best: dict[str, float] = {}
        self.since_best = 0

    def update(self, step: int, metrics: dict[str, float]) -> bool:
        """Records an evaluation; returns whether it is the new best."""
        if self.metric not in metrics:
            raise KeyError(
                f"the task's evaluate() returned {sorted(metrics)}, without its eval_metric "
                f"{self.metric!r}"
            )
        value = float(metrics[self.metric])
        old = self.best.get(self.metric)
        better = math.isfinite(value) and (
            old is None or (value > old if self.mode == "max" else value < old)
        )
        if better:
            self.best_step, self.best, self.since_best = step, dict(metrics), 0
        else:
            self.since_best += 1
        return better

    @property
    def should_stop(self) -> bool:
        return self.patience > 0 and self.since_best >= self.patience


def train_and_evaluate(
    config: ConfigDict, workdir: str | pathlib.Path, task: Task | None = None
) -> dict:
    """Trains a task into ``workdir`` and returns the summary.

    Every ``eval_every`` steps the task is evaluated on its validation split and a
    checkpoint is saved; with ``config.patience > 0`` training stops after that many
    evaluations without improvement. At the end the best-validation checkpoint is restored
    and evaluated once on the test split. Resumes from the latest checkpoint in ``workdir``
    when there is one; batches are a pure function of the step, the PRNG key is part of the
    state, and the validation history is read back from ``metrics.jsonl``, so a resumed
    run takes the same steps and picks the same checkpoint as an uninterrupted one.

    The host never waits for the devices between steps: the batches of the next
    ``config.data.prefetch`` steps are built on a background thread and placed on the
    devices ahead of use (:class:`seqjax.train.pipeline.Prefetcher`), the metrics stay on
    the devices until a ``log_every`` boundary, a non-finite step is skipped on the device
    and reported at the next boundary, and checkpoints are written while training goes on
    (``config.async_checkpoints``). ``config.dtype = "bfloat16"`` runs the model in
    bfloat16 over float32 parameters and optimizer state.

    Args:
      config: the trainer's fields (:func:`seqjax.train.base_config`) and the task's.
      workdir: where ``metrics.jsonl``, TensorBoard events, ``checkpoints/``, ``plots/``
        and finally ``summary.json`` go.
      task: any object that follows :class:`seqjax.train.Task`; default: the built-in
        experiment named by ``config.task``.

    Returns:
      The summary, also written to ``workdir/summary.json``: ``"val"`` (the best
      validation metrics and their ``"step"``), ``"eval"`` (test metrics of that
      checkpoint), baselines and examples from the task, the last ``"step"`` trained,
      ``"stopped_early"``, wall time, devices and the config.

    Raises:
      FloatingPointError: when a loss, gradient norm or updated parameter is not finite; the
        message names the first such step, and no checkpoint is written past the last good
        one (the device skips the bad update; the host finds it at the next log, evaluation
        or checkpoint boundary and stops there).
    """
    start_time = time.time()
    workdir = pathlib.Path(workdir)
    _check_config(config)
    if task is None:
        from seqjax.train.tasks import make_task

        task = make_task(config)  # bad data fails here, before anything is written
    _check_task(task)
    private = None
    if config.get("privacy") and config.privacy.enabled:
        from seqjax.train.privacy import Privacy

        # A task this cannot train privately fails here, before any file is opened.
        private = Privacy(config, task, devices=jax.device_count())
    name = getattr(task, "name", None) or config.task or type(task).__name__
    primary = jax.process_index() == 0
    if primary:
        workdir.mkdir(parents=True, exist_ok=True)
    tx = make_optimizer(config)
    dtype = None if config.get("dtype", "float32") == "float32" else jnp.dtype(config.dtype)
    mesh = data_mesh()
    replicated = NamedSharding(mesh, PartitionSpec())
    batch_sharding = NamedSharding(mesh, PartitionSpec("data"))

    def model_params(params):
        """What the task evaluates: this process's copy, in the compute dtype."""
        params = _local(params)
        return params if dtype is None else cast_floating(params, dtype)

    k_init, k_train = jax.random.split(jax.random.PRNGKey(config.seed))
    params = jax.jit(task.init)(k_init)  # one program, not one compile per init primitive
    state = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), k_train)
    state = jax.device_put(state, replicated)
    if config.resume == "fresh":
        if primary:
            _discard_run(workdir)
        _sync("seqjax: fresh workdir")
    ckpt = Checkpoints(
        workdir, keep=config.keep_checkpoints, async_save=config.get("async_checkpoints", True)
    )
    try:
        restored = ckpt.restore_intact(state, strict=config.resume == "strict")
    except BaseException:
        ckpt.close()
        raise
    earlier_wall_time = 0.0
    if restored is not None:
        state, step = restored
        earlier_wall_time = ckpt.record(step).get("wall_time_s", 0.0)
        finished = _finished_summary(workdir, step, config.num_steps)
        if finished is not None:
            ckpt.close()
            print(
                f"seqjax: the run in {workdir} already finished at step {step} (summary.json); "
                "not training again. Pass --config.resume=fresh to start over.",
                file=sys.stderr,
            )
            return finished
    start = int(state.step)
    if primary:
        writer = MetricWriter(workdir, resume_step=start, tensorboard=config.tensorboard)
    else:
        writer = _NoWriter()
    if restored is not None:
        after = ckpt.record(start).get("tensorboard_step", 0)
        writer.rewrite_tensorboard(read_metrics(workdir), after=after)
    tracker = BestTracker(task.eval_metric, task.eval_mode, config.patience)
    for record in read_metrics(workdir) if (workdir / "metrics.jsonl").exists() else []:
        if record["split"] == "val":
            tracker.update(record["step"], {k: v for k, v in record.items() if k != "split"})
    # Donated state buffers are updated in place; the CPU client would only warn that it
    # cannot reuse them.
    donate = () if jax.devices()[0].platform == "cpu" else (0, 1)
    train_step = make_train_step(
        task, tx, dtype=dtype, value_and_grad=None if private is None else private.value_and_grad
    )
    loop_step = jax.jit(make_loop_step(train_step), donate_argnums=donate)
    health = jax.device_put(_healthy(), replicated)

    def check_health(health) -> None:
        """Raises when a step was skipped as non-finite (one host read, at boundaries)."""
        seen = jax.device_get(health)
        if int(seen["step"]) < 0:
            return
        last = ckpt.latest_step()
        raise FloatingPointError(
            f"non-finite training loss ({float(seen['loss'])}), gradient norm "
            f"({float(seen['grad_norm'])}) or updated parameters (norm "
            f"{float(seen['param_norm'])}) at step {int(seen['step'])}: the run stopped "
            "without saving this step or any after it; the last good checkpoint "
            f"({'none' if last is None else f'step {last}'}) in {ckpt.directory} is intact"
        )

    from tqdm.auto import tqdm

    bar = tqdm(
        total=config.num_steps,
        initial=start,
        disable=not (config.progress_bar and primary),
        file=sys.stderr,
        desc=name,
        dynamic_ncols=True,
        mininterval=1.0,
    )

    def make_batch(step: int) -> dict:
        if private is not None:  # a Poisson sample in the fixed physical batch
            return _shard_batch(private.train_batch(step), batch_sharding, private.sampler.rows)
        return _shard_batch(
            task.train_batch(step, config.batch_size), batch_sharding, config.batch_size
        )

    prefetch = config.data.get("prefetch", 2) if "data" in config else 2
    batches = Prefetcher(make_batch, start, config.num_steps, depth=prefetch)
    window_start, window_steps = time.time(), 0
    stopped_early = tracker.should_stop
    try:
        for step, batch in batches:
            if stopped_early:
                break
            # Dispatched without waiting: the metrics stay on the device until a boundary.
            state, health, metrics = loop_step(state, health, batch)
            window_steps += 1
            bar.update(1)
            done = step + 1
            if done % config.log_every == 0 or done == config.num_steps:
                logged = {k: float(v) for k, v in jax.device_get(metrics).items() if k != "finite"}
                check_health(health)
                elapsed = time.time() - window_start
                logged["examples_per_s"] = window_steps * config.batch_size / max(elapsed, 1e-9)
                writer.write(done, "train", logged)
                bar.set_postfix(
                    loss=f"{logged['loss']:.4f}", ex_s=f"{logged['examples_per_s']:.0f}"
                )
                window_start, window_steps = time.time(), 0
            if done % config.eval_every == 0 or done == config.num_steps:
                check_health(health)  # no checkpoint past a skipped step
                val = task.evaluate(model_params(state.params), "val")
                writer.write(done, "val", val)
                writer.flush()
                wall = earlier_wall_time + time.time() - start_time
                ckpt.save(done, state, val=val, wall_time_s=wall, tensorboard_step=done)
                best = tracker.update(done, val)
                ckpt.prune(also_keep=[tracker.best_step])
                stopped_early = tracker.should_stop
                if primary:
                    bar.write(
                        f"step {done}: val "
                        + ", ".join(f"{k}={v:.4g}" for k, v in val.items())
                        + (" (best)" if best else "")
                        + (
                            f"; early stop after {tracker.since_best} evaluations without "
                            "improvement"
                            if stopped_early
                            else ""
                        )
                    )
        check_health(health)
        if tracker.best_step is None:  # no finite validation metric: use the last state
            val = task.evaluate(model_params(state.params), "val")
            tracker.best_step, tracker.best = int(state.step), dict(val)
            if ckpt.latest_step() != int(state.step):
                wall = earlier_wall_time + time.time() - start_time
                ckpt.save(int(state.step), state, val=val, wall_time_s=wall)
        best_state = state
        if tracker.best_step != int(state.step):
            best_state = ckpt.restore(state, tracker.best_step)
        test = task.evaluate(model_params(best_state.params), "test")
    finally:
        batches.close()
        bar.close()
        writer.close()
        ckpt.close()  # waits for the checkpoint in flight

    summary = {
        "task": name,
        "val": {**tracker.best, "step": tracker.best_step},
        "eval": test,
        "step": int(state.step),
        "stopped_early": stopped_early,
        "wall_time_s": earlier_wall_time + time.time() - start_time,
        "devices": jax.device_count(),
        "processes": jax.process_count(),
        "platform": jax.devices()[0].platform,
        "config": config.to_dict(),
    }
    if private is not None:
        summary["privacy"] = private.summary(int(state.step))
    if primary:
        extras = task.report(model_params(best_state.params), workdir)
        plots.learning_curves(read_metrics(workdir), workdir, eval_metric=task.eval_metric)
        config_dict = summary.pop("config")
        summary = {**summary, **extras, "config": config_dict}
        (workdir / "summary.json").write_text(json.dumps(summary, indent=2, default=str))
    return summary


def _sync(name: str) -> None:
    """A barrier across processes (nothing with one process)."""
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        multihost_utils.sync_global_devices(name)
