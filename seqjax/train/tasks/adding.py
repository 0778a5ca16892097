"""The adding problem (Hochreiter and Schmidhuber 1997): regression from the last state."""

from __future__ import annotations

import jax
import numpy as np

from seqjax.train import losses
from seqjax.train.tasks.base import (
    TEST_SEED,
    VAL_SEED,
    Accumulator,
    build_model,
    build_seq,
    check_split,
    chunks,
    describe_model,
    step_seed,
)


class AddingTask:
    """Fresh sequences every step; fixed validation and test sets of other seeds."""

    name = "adding"
    eval_metric = "mse"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import make_adding
        from seqjax.nn import SequenceClassifier, TransformerClassifier

        self.config = config
        self._make = make_adding
        d = config.data
        self.splits = {
            "val": make_adding(d.n_val, d.length, seed=VAL_SEED + config.seed),
            "test": make_adding(d.n_test, d.length, seed=TEST_SEED + config.seed),
        }
        self.model = build_model(
            config.model,
            rnn=lambda: SequenceClassifier(build_seq(config.model), num_classes=1, pooling="last"),
            transformer=lambda c: TransformerClassifier(1, c, pooling="mean"),
            max_length=d.length,
        )
        self._eval = jax.jit(self._mse)

    def _mse(self, params, x, y):
        return losses.masked_mse(self.model.apply(params, x)[..., 0], y)

    def init(self, key):
        return self.model.init(key, self.splits["test"]["x"][:2])

    def loss(self, params, batch, key):
        return self._mse(params, batch["x"], batch["y"]), {}

    def train_batch(self, step, batch_size):
        seed = step_seed(self.config.seed, step)
        return self._make(batch_size, self.config.data.length, seed=seed)

    def evaluate(self, params, split):
        acc = Accumulator()
        for b, n in chunks(self.splits[check_split(split)], 1000):
            acc.add("mse", float(self._eval(params, b["x"], b["y"])) * n, n)
        return acc.means()

    def report(self, params, workdir):
        y = self.splits["test"]["y"]
        return {"baselines": {"predict_the_mean_mse": float(np.mean((y - y.mean()) ** 2))}}

    @staticmethod
    def readme_row(s):
        base = s["baselines"]["predict_the_mean_mse"]
        return (
            describe_model(s["config"]["model"]),
            f"test MSE {s['eval']['mse']:.2g}",
            f"predict the mean: MSE {base:.3f}",
        )
