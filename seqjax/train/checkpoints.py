"""Orbax checkpoints in ``workdir/checkpoints``: the last few and the best are kept.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so a
run killed while saving leaves the previous checkpoints intact and restarts from the last
complete one.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import orbax.checkpoint as ocp
from orbax.checkpoint import checkpoint_managers as policies


class Checkpoints:
    """Saves and restores a train-state pytree by step.

    Args:
      workdir: the experiment's directory; checkpoints go to ``workdir/checkpoints``.
      keep: how many of the latest checkpoints to keep.
      metric: the evaluation metric that ranks checkpoints; the best one is kept too.
      mode: ``"max"`` or ``"min"``: whether a larger metric is better.
    """

    def __init__(self, workdir: str | pathlib.Path, *, keep: int, metric: str, mode: str):
        if mode not in ("max", "min"):
            raise ValueError(f'mode must be "max" or "min", received {mode!r}')
        self.directory = (pathlib.Path(workdir) / "checkpoints").absolute()
        preserve = policies.AnyPreservationPolicy(
            [
                policies.LatestN(n=keep),
                policies.BestN(get_metric_fn=lambda m: m[metric], reverse=mode == "min", n=1),
            ]
        )
        options = ocp.CheckpointManagerOptions(
            preservation_policy=preserve,
            enable_async_checkpointing=False,
            cleanup_tmp_directories=True,
            create=True,
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def best_step(self) -> int | None:
        return self.manager.best_step()

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The state saved at ``step`` (default: the latest), shaped and sharded like ``like``."""
        step = self.latest_step() if step is None else step
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def save(self, step: int, state: Any, metrics: dict[str, float] | None = None) -> None:
        metrics = None if metrics is None else {k: float(v) for k, v in metrics.items()}
        self.manager.save(step, args=ocp.args.StandardSave(state), metrics=metrics, force=True)
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.close()
