"""Forecasting a series ``data.horizon`` steps ahead from windows of one or more columns.

The model sees each window relative to its last values and predicts the target's change
from its last value (so a trend that leaves the training range does not leave the model's
input range). The series is split in time: train, then the validation block, then the
held-out tail; scaling is fitted on the training part only.
"""

from __future__ import annotations

import jax
import numpy as np

from seqjax.train import losses, plots
from seqjax.train.tasks.base import (
    Accumulator,
    build_model,
    build_seq,
    check_examples,
    check_split,
    chunks,
    describe_model,
    rows,
    take,
)


def load_series(d) -> tuple[np.ndarray, int, list[str]]:
    """``(values [n, k], target column index, column names)`` from ``config.data``."""
    from seqjax.data import default_series, load_csv_columns

    if not d.path:
        if d.columns:
            raise ValueError("data.columns needs data.path (the default series has one column)")
        return default_series()[:, None], 0, ["value"]
    columns = [str(c) for c in (d.columns or [])]
    target = str(d.column)
    if target not in columns:
        columns = [target, *columns]
    values, names = load_csv_columns(d.path, columns)
    return values, columns.index(target), names


def _test_size(value) -> int | float | None:
    """``data.test_size``: points when >= 1, a fraction when in (0, 1), 0 for none."""
    if value >= 1:
        if value != int(value):
            raise ValueError(f"data.test_size in points must be a whole number, received {value}")
        return int(value)
    return float(value) or None


class ForecastTask:
    """MSE and MAE in the series' own units (and scaled, named as such), beside naive,
    seasonal naive and least-squares AR(p) forecasts of exactly the same test points."""

    name = "forecast"
    eval_metric = "mse"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import prepare_series, series_baselines
        from seqjax.nn import Forecaster, TransformerForecaster

        self.config = config
        d = config.data
        values, target, self.columns = load_series(d)
        self.data = prepare_series(
            values,
            d.window,
            test_frac=d.test_fraction,
            valid_frac=d.val_fraction,
            horizon=d.horizon,
            test_size=_test_size(d.test_size),
            target=target,
        )
        self.target = target
        check_examples(len(self.data.train["x"]), config.batch_size, "the series")
        # The baselines need only the data: computed now, so a series too short for them
        # fails before training rather than after it.
        self.baselines = series_baselines(self.data, p=d.ar_order, season=d.season or None)
        self.splits = {"val": self.data.valid, "test": self.data.test}
        self.model = build_model(
            config.model,
            rnn=lambda: Forecaster(build_seq(config.model), features=1, horizon=d.horizon),
            transformer=lambda c: TransformerForecaster(1, c, horizon=d.horizon),
            max_length=d.window,
        )
        self._predict = jax.jit(self._forward)

    def _forward(self, params, x):
        """Scaled forecasts ``[b, horizon]`` from scaled windows ``x: [b, w, k]``."""
        last = x[:, -1, self.target]
        return last[:, None] + self.model.apply(params, x - x[:, -1:])[..., 0]

    def init(self, key):
        return self.model.init(key, self.data.train["x"][:2])

    def loss(self, params, batch, key):
        return losses.masked_mse(self._forward(params, batch["x"]), batch["y"]), {}

    def train_batch(self, step, batch_size):
        index = rows(len(self.data.train["x"]), step, batch_size, self.config.seed)
        return take(self.data.train, index)

    def forecasts(self, params, split) -> tuple[np.ndarray, np.ndarray]:
        """``(forecast, truth)``, each ``[m, horizon]`` in scaled units."""
        data = self.splits[check_split(split)]
        pred = [np.asarray(self._predict(params, b["x"])) for b, _ in chunks(data, 1000)]
        return np.concatenate(pred), data["y"]

    def evaluate(self, params, split):
        scaled, truth = self.forecasts(params, split)
        inverse = self.data.scaler.inverse
        acc = Accumulator()
        for suffix, (p, t) in {
            "": (inverse(scaled), inverse(truth)),
            "_scaled": (scaled, truth),
        }.items():
            acc.add("mse" + suffix, np.sum((p - t) ** 2), p.size)
            acc.add("mae" + suffix, np.sum(np.abs(p - t)), p.size)
        return acc.means()

    def report(self, params, workdir):
        scaled, truth = self.forecasts(params, "test")
        inverse = self.data.scaler.inverse
        naive = inverse(self.data.test["x"][:, -1, self.target])
        shown = slice(0, 300)
        plots.forecast(
            inverse(truth[shown, 0]),
            {"seqjax": inverse(scaled[shown, 0]), "naive": naive[shown]},
            workdir,
        )
        flat = {f"{name}_{k}": float(v) for name, m in self.baselines.items() for k, v in m.items()}
        return {"baselines": flat, "columns": self.columns}

    @staticmethod
    def readme_row(s):
        ev, base, d = s["eval"], s["baselines"], s["config"]["data"]
        parts = [f"naive: MSE {base['naive_mse']:.4f}, MAE {base['naive_mae']:.4f}"]
        if "seasonal_naive_mse" in base:
            parts.append(
                f"seasonal naive: MSE {base['seasonal_naive_mse']:.4f}, "
                f"MAE {base['seasonal_naive_mae']:.4f}"
            )
        parts.append(f"AR({int(base['ar_p'])}): MSE {base['ar_mse']:.4f}, MAE {base['ar_mae']:.4f}")
        columns = len(s.get("columns", [1]))
        what = describe_model(s["config"]["model"])
        if columns > 1 or d["horizon"] > 1:
            what += f", {columns} columns, horizon {d['horizon']}"
        return what, f"test MSE {ev['mse']:.4f}, MAE {ev['mae']:.4f}", "; ".join(parts)
