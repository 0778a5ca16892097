"""A finished run read back from its workdir: config, task, best-validation parameters.

What :func:`~seqjax.train.train_and_evaluate` leaves in a workdir is enough to rebuild the
run: ``summary.json`` holds the config and the step of the best validation checkpoint, and
``checkpoints/`` the train state at that step (verified against its SHA-256 digest). A
distillation teacher and ``scripts/inspect.py`` both start here.
"""

from __future__ import annotations

import json
import pathlib
from typing import Any, NamedTuple

from ml_collections import ConfigDict

from seqjax.typing import Params


class Run(NamedTuple):
    """A finished run."""

    workdir: pathlib.Path
    config: ConfigDict  # the run's config, as summary.json recorded it
    task: Any  # the task the config builds (data included), never distilled itself
    params: Params  # the best-validation parameters (the ones the test split scored)
    summary: dict  # summary.json
    step: int  # the step of those parameters
    digest: str  # SHA-256 of that checkpoint's files


def load_run(workdir: str | pathlib.Path) -> Run:
    """Rebuilds the finished run in ``workdir`` and restores its best checkpoint.

    Raises:
      FileNotFoundError: when ``workdir`` holds no ``summary.json`` (not a finished run).
      ValueError: when the checkpoint of the best step is missing or fails its digest.
    """
    from seqjax.train.checkpoints import Checkpoints
    from seqjax.train.loop import TrainState
    from seqjax.train.optim import make_optimizer
    from seqjax.train.tasks import task_class

    workdir = pathlib.Path(workdir)
    path = workdir / "summary.json"
    if not path.is_file():
        raise FileNotFoundError(
            f"{workdir} is not a finished run: it has no summary.json (train it to the end "
            "with scripts/train.py first)"
        )
    summary = json.loads(path.read_text())
    config = ConfigDict(summary["config"])
    task = task_class(config.task)(config)
    step = int(summary["val"]["step"])

    import jax
    import jax.numpy as jnp

    params = task.init(jax.random.PRNGKey(config.seed))
    tx = make_optimizer(config)
    like = TrainState(jnp.zeros((), jnp.int32), params, tx.init(params), jax.random.PRNGKey(0))
    ckpt = Checkpoints(workdir, keep=max(int(config.get("keep_checkpoints", 1)), 1))
    try:
        problem = ckpt.problem(step)
        if problem is not None:
            raise ValueError(
                f"the best checkpoint (step {step}) of the run in {workdir} is not usable: "
                f"{problem}"
            )
        state = ckpt.restore(like, step)
        digest = ckpt.record(step)["sha256"]
    finally:
        ckpt.close()
    return Run(workdir, config, task, state.params, summary, step, digest)


def count_params(params: Params) -> int:
    """Number of scalars in a parameter pytree."""
    import jax
    import numpy as np

    return int(sum(np.size(leaf) for leaf in jax.tree.leaves(params)))
