"""Training and experiments: ``train_and_evaluate(config, workdir)``.

Needs the training dependencies (optax, orbax-checkpoint, ml-collections, and the ``train``
extra: tqdm, matplotlib, tensorboardX); ``import seqjax`` does not load this package.
"""

from seqjax.train.config import base_config
from seqjax.train.loop import Task, TrainState, make_train_step, train_and_evaluate
from seqjax.train.optim import make_optimizer


def print_summary(summary: dict) -> None:
    """Prints a run's final metrics, baselines and decoded examples."""
    print(f"\n{summary['task']}: step {summary['step']}, {summary['wall_time_s']:.0f} s")
    for name, value in summary["eval"].items():
        print(f"  eval {name}: {value:.6g}")
    for name, value in summary.get("baselines", {}).items():
        print(f"  baseline {name}: {value:.6g}")
    if summary.get("examples"):
        print("examples:")
        for line in summary["examples"]:
            print(f"  {line}")


__all__ = [
    "Task",
    "TrainState",
    "base_config",
    "make_optimizer",
    "make_train_step",
    "print_summary",
    "train_and_evaluate",
]
