"""Orbax checkpoints in ``workdir/checkpoints``: the last few and the best are kept.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so a
run killed while saving leaves the previous checkpoints intact and restarts from the last
complete one. Retention is applied here, by step, over every checkpoint on disk (also
those written by an earlier process): the ``keep`` latest, plus the steps the trainer
names (the best on validation, which it knows from ``metrics.jsonl``).
"""

from __future__ import annotations

import pathlib
from collections.abc import Iterable
from typing import Any

import jax
import orbax.checkpoint as ocp


class Checkpoints:
    """Saves and restores a train-state pytree by step.

    Args:
      workdir: the experiment's directory; checkpoints go to ``workdir/checkpoints``.
      keep: how many of the latest checkpoints :meth:`prune` keeps.
    """

    def __init__(self, workdir: str | pathlib.Path, *, keep: int):
        if int(keep) < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, received {keep!r}")
        self.keep = int(keep)
        self.directory = (pathlib.Path(workdir) / "checkpoints").absolute()
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=False, cleanup_tmp_directories=True, create=True
        )
        self.manager = ocp.CheckpointManager(self.directory, options=options)

    def latest_step(self) -> int | None:
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        return sorted(self.manager.all_steps())

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The state saved at ``step`` (default: the latest), shaped and sharded like ``like``."""
        step = self.latest_step() if step is None else step
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def save(self, step: int, state: Any) -> None:
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self.manager.wait_until_finished()

    def prune(self, also_keep: Iterable[int | None] = ()) -> None:
        """Deletes every checkpoint but the ``keep`` latest and the steps ``also_keep``."""
        steps = self.all_steps()
        kept = set(steps[-self.keep :]) | {s for s in also_keep if s is not None}
        for step in steps:
            if step not in kept:
                self.manager.delete(step)

    def close(self) -> None:
        self.manager.close()
