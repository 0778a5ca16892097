"""The experiments, one file each, over the shared pieces of :mod:`.base`.

``make_task(config)`` builds the task named by ``config.task``. Training batches are a pure
function of the step (rows drawn with a generator seeded by ``(seed, step)``, or data
generated from that seed), so resuming from a checkpoint replays exactly the same batches.
Each task class also has ``readme_row(summary)``: its row of the README's results table.
"""

from __future__ import annotations

from ml_collections import ConfigDict

from seqjax.train.tasks.adding import AddingTask
from seqjax.train.tasks.base import Accumulator, Task
from seqjax.train.tasks.charlm import CharLMTask
from seqjax.train.tasks.classify import ClassifyTask
from seqjax.train.tasks.copy import CopyTask
from seqjax.train.tasks.distill import DistillTask, maybe_distill
from seqjax.train.tasks.forecast import ForecastTask
from seqjax.train.tasks.seq2seq import AdditionTask, DatesTask, Seq2SeqTask, TransductionTask
from seqjax.train.tasks.tag import TagTask

TASKS: dict[str, type] = {
    "dates": DatesTask,
    "addition": AdditionTask,
    "adding": AddingTask,
    "copy": CopyTask,
    "charlm": CharLMTask,
    "forecast": ForecastTask,
    "classify": ClassifyTask,
    "tag": TagTask,
    "seq2seq": TransductionTask,
}


def task_class(name: str) -> type:
    """The task class registered as ``name``, or a ValueError listing the names."""
    if name not in TASKS:
        raise ValueError(f"config.task must be one of {sorted(TASKS)}, received {name!r}")
    return TASKS[name]


def make_task(config: ConfigDict) -> Task:
    """The task object named by ``config.task`` (distilled from ``config.distill.teacher``
    when that is set)."""
    return maybe_distill(task_class(config.task)(config), config)


__all__ = [
    "TASKS",
    "Accumulator",
    "AddingTask",
    "AdditionTask",
    "CharLMTask",
    "ClassifyTask",
    "CopyTask",
    "DatesTask",
    "DistillTask",
    "ForecastTask",
    "Seq2SeqTask",
    "TagTask",
    "Task",
    "TransductionTask",
    "make_task",
    "task_class",
]
