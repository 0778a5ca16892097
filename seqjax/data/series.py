"""Univariate time-series forecasting: CSV loading, windows, leakage-free scaling, baselines.

The series is split in time: the first part trains, the next validates, the tail tests.
Every window's targets lie inside one part (its inputs may reach back into the part
before, as they would in deployment). The scaler is fitted on the training part alone,
and the baselines (:func:`naive_forecast`, :func:`ar_least_squares`) see only what a
model sees, so all errors are comparable; :func:`series_baselines` reports them in the
series' original units.
"""

from __future__ import annotations

import csv
import math
import os
import pathlib
from typing import NamedTuple

import numpy as np

from seqjax.data._checks import check_fraction, check_int

__all__ = [
    "ARModel",
    "Scaler",
    "SeriesData",
    "ar_least_squares",
    "default_series",
    "load_csv_series",
    "mae",
    "make_windows",
    "mse",
    "naive_forecast",
    "prepare_series",
    "series_baselines",
]


def _parse_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None


def load_csv_series(path: str | os.PathLike, column: str | int) -> np.ndarray:
    """Reads one numeric column of a CSV file.

    The first row is taken as a header when any of its cells is not a number.

    Args:
        path: the CSV file.
        column: a header name, or a 0-based column index (negative counts from the end).

    Returns:
        ``float64 [n]``, the column's values in file order.

    Raises:
        FileNotFoundError: if there is no such file.
        TypeError: if ``column`` is neither a str nor an int.
        ValueError: if the column does not exist (the message lists the available
            columns), a value is empty, non-numeric or non-finite (the message names the
            line), or the file holds fewer than two values.
    """
    path = pathlib.Path(path)
    if isinstance(column, bool) or not isinstance(column, str | int):
        raise TypeError(f"column must be a str (header name) or an int index, got {column!r}")
    if not path.is_file():
        raise FileNotFoundError(f"no CSV file at {path}")
    with path.open(newline="", encoding="utf-8") as f:
        reader = csv.reader(f)
        rows = [(reader.line_num, row) for row in reader if any(c.strip() for c in row)]
    if not rows:
        raise ValueError(f"{path} holds no rows")
    first = rows[0][1]
    has_header = any(_parse_float(c.strip()) is None for c in first)
    names = [c.strip() for c in first] if has_header else None
    available = (
        f"available columns: {names}"
        if names
        else f"the file has no header row and {len(first)} columns (indices 0..{len(first) - 1})"
    )
    if isinstance(column, str):
        if names is None or column.strip() not in names:
            raise ValueError(f"column {column!r} not found in {path}; {available}")
        index = names.index(column.strip())
    else:
        if not -len(first) <= column < len(first):
            raise ValueError(f"column index {column} out of range in {path}; {available}")
        index = column % len(first)
    label = names[index] if names else f"#{index}"
    values = []
    for line, row in rows[1:] if has_header else rows:
        if index >= len(row):
            raise ValueError(
                f"line {line} of {path} has {len(row)} fields, none for column {label!r}"
            )
        value = _parse_float(row[index].strip())
        if value is None or not math.isfinite(value):
            raise ValueError(
                f"non-numeric value {row[index]!r} in column {label!r} at line {line} of "
                f"{path}; expected a finite number (fill missing values before loading)"
            )
        values.append(value)
    if len(values) < 2:
        raise ValueError(f"column {label!r} of {path} holds {len(values)} values; need >= 2")
    return np.asarray(values, dtype=np.float64)


def default_series(n: int = 4000, seed: int = 0) -> np.ndarray:
    """A deterministic synthetic series: trend, two seasonalities and threshold-AR noise.

    .. math::
        s_t = 10 + 0.002\\,t + 2 \\sin(2\\pi t / 24) + \\sin(2\\pi t / 168 + 1) + e_t,
        \\quad e_t = \\phi(e_{t-1})\\, e_{t-1} + \\varepsilon_t,
        \\quad \\varepsilon_t \\sim \\mathcal{N}(0, 0.3^2)

    with :math:`\\phi(e) = 0.95` for :math:`e < 0` and :math:`-0.6` otherwise: hourly data
    with a daily and a weekly cycle, and noise that is persistent below its mean and
    oscillating above it (a self-exciting threshold AR, Tong and Lim 1980). The threshold
    makes the series nonlinear, so a linear AR(p) model is not the best forecaster by
    construction; the best possible one-step MSE is the innovation variance, 0.09.

    Args:
        n: number of steps.
        seed: seed of the noise.

    Returns:
        ``float64 [n]``.
    """
    n = check_int("n", n, 2)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    t = np.arange(n, dtype=np.float64)
    eps = rng.normal(0.0, 0.3, size=n)
    noise = np.zeros(n)
    noise[0] = eps[0]
    for i in range(1, n):
        prev = noise[i - 1]
        noise[i] = (0.95 if prev < 0 else -0.6) * prev + eps[i]
    seasonal = 2.0 * np.sin(2 * np.pi * t / 24) + np.sin(2 * np.pi * t / 168 + 1.0)
    return 10.0 + 0.002 * t + seasonal + noise


def _as_series(series, name: str = "series") -> np.ndarray:
    series = np.asarray(series)
    if series.ndim != 1 or not np.issubdtype(series.dtype, np.number):
        raise ValueError(f"{name} must be a 1-D numeric array, got shape {series.shape}")
    return series.astype(np.float64, copy=False)


def make_windows(
    series: np.ndarray, window: int, horizon: int = 1
) -> tuple[np.ndarray, np.ndarray]:
    """Cuts a series into (input window, next values) pairs, one per start position.

    Args:
        series: ``[n]`` values.
        window: input steps per example.
        horizon: future steps to predict after each window.

    Returns:
        ``(x, y)``: ``x: float64 [m, window]``, ``y: float64 [m, horizon]`` with
        ``m = max(n - window - horizon + 1, 0)``; ``y[i] = series[i + window :
        i + window + horizon]``.
    """
    series = _as_series(series)
    window = check_int("window", window, 1)
    horizon = check_int("horizon", horizon, 1)
    m = max(len(series) - window - horizon + 1, 0)
    idx = np.arange(m)[:, None]
    x = series[idx + np.arange(window)] if m else np.zeros((0, window))
    y = series[idx + window + np.arange(horizon)] if m else np.zeros((0, horizon))
    return x, y


class Scaler(NamedTuple):
    """Standardisation ``(x - mean) / std``, fitted on the training part only."""

    mean: float
    std: float

    @classmethod
    def fit(cls, values: np.ndarray) -> Scaler:
        """Mean and standard deviation of ``values`` (std 1 for a constant series)."""
        values = _as_series(values, "values")
        std = float(values.std())
        return cls(float(values.mean()), std if std > 0 else 1.0)

    def transform(self, x: np.ndarray) -> np.ndarray:
        """To scaled units."""
        return (np.asarray(x) - self.mean) / self.std

    def inverse(self, x: np.ndarray) -> np.ndarray:
        """Back to original units."""
        return np.asarray(x) * self.std + self.mean


class SeriesData(NamedTuple):
    """A forecasting dataset from :func:`prepare_series`."""

    train: dict[str, np.ndarray]  # x: float32 [n, window, 1] scaled; y: float32 [n, horizon]
    valid: dict[str, np.ndarray]  # the same, targets in the validation part
    test: dict[str, np.ndarray]  # the same, targets in the test tail
    scaler: Scaler  # fitted on series[:sizes[0]]; scaler.inverse gives original units
    series: np.ndarray  # float64 [n], the original series
    sizes: tuple[int, int, int]  # steps in the train, valid and test parts
    window: int
    horizon: int


def prepare_series(
    series: np.ndarray,
    window: int,
    test_frac: float = 0.2,
    valid_frac: float = 0.1,
    *,
    horizon: int = 1,
) -> SeriesData:
    """Splits a series in time, fits the scaler on the training part, and windows it.

    Args:
        series: ``[n]`` values, in time order.
        window: input steps per example.
        test_frac: fraction of steps in the test tail.
        valid_frac: fraction of steps in the validation part, just before the test tail
            (0 gives an empty validation set).
        horizon: future steps to predict.

    Returns:
        A :class:`SeriesData` whose splits hold scaled ``float32`` windows
        ``x: [m, window, 1]`` and targets ``y: [m, horizon]``.

    Raises:
        ValueError: if a part is too short for one window (the message gives the sizes).
    """
    series = _as_series(series)
    window = check_int("window", window, 1)
    horizon = check_int("horizon", horizon, 1)
    test_frac = check_fraction("test_frac", test_frac)
    valid_frac = check_fraction("valid_frac", valid_frac)
    if not np.isfinite(series).all():
        raise ValueError("series holds NaN or infinite values")
    n = len(series)
    n_test, n_valid = round(n * test_frac), round(n * valid_frac)
    n_train = n - n_test - n_valid
    if n_train < window + horizon:
        raise ValueError(
            f"the training part has {n_train} of {n} steps; need >= window + horizon "
            f"= {window + horizon}"
        )
    if n_test < horizon:
        raise ValueError(f"the test part has {n_test} steps; need >= horizon = {horizon}")
    if valid_frac > 0 and n_valid < horizon:
        raise ValueError(f"the validation part has {n_valid} steps; need >= horizon = {horizon}")
    scaler = Scaler.fit(series[:n_train])
    scaled = scaler.transform(series)
    a, b = n_train, n_train + n_valid
    splits = {
        "train": scaled[:a],
        "valid": scaled[a - window : b] if n_valid else scaled[:0],
        "test": scaled[b - window :],
    }
    out = {}
    for name, part in splits.items():
        x, y = make_windows(part, window, horizon)
        out[name] = {"x": x[..., None].astype(np.float32), "y": y.astype(np.float32)}
    return SeriesData(
        out["train"],
        out["valid"],
        out["test"],
        scaler,
        series,
        (a, n_valid, n_test),
        window,
        horizon,
    )


def _windows_2d(x: np.ndarray) -> np.ndarray:
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 3 and x.shape[-1] == 1:
        x = x[..., 0]
    if x.ndim != 2:
        raise ValueError(f"x must be windows [n, window] or [n, window, 1], got shape {x.shape}")
    return x


def naive_forecast(x: np.ndarray, horizon: int = 1) -> np.ndarray:
    """Predicts the last value of each window for every future step.

    Args:
        x: windows ``[n, window]`` or ``[n, window, 1]``.
        horizon: future steps.

    Returns:
        ``float64 [n, horizon]``.
    """
    x = _windows_2d(x)
    horizon = check_int("horizon", horizon, 1)
    return np.repeat(x[:, -1:], horizon, axis=1)


class ARModel(NamedTuple):
    """A linear autoregression ``s_t = intercept + sum_i coef[i] s_{t-p+i}``."""

    coef: np.ndarray  # float64 [p], oldest lag first (the order of a window's last p values)
    intercept: float

    @property
    def p(self) -> int:
        return len(self.coef)

    def predict(self, x: np.ndarray, horizon: int = 1) -> np.ndarray:
        """Forecasts ``horizon`` steps after each window, feeding predictions back in.

        Args:
            x: windows ``[n, window]`` or ``[n, window, 1]`` with ``window >= p``.
            horizon: future steps.

        Returns:
            ``float64 [n, horizon]``.
        """
        x = _windows_2d(x)
        horizon = check_int("horizon", horizon, 1)
        if x.shape[1] < self.p:
            raise ValueError(f"windows of {x.shape[1]} steps are shorter than p = {self.p}")
        hist, preds = x[:, x.shape[1] - self.p :], []
        for _ in range(horizon):
            nxt = hist @ self.coef + self.intercept
            preds.append(nxt)
            hist = np.concatenate([hist[:, 1:], nxt[:, None]], axis=1)
        return np.stack(preds, axis=1)


def ar_least_squares(x: np.ndarray, y: np.ndarray, p: int) -> ARModel:
    """Fits AR(p) with an intercept by least squares on training windows.

    Args:
        x: training windows ``[n, window]`` or ``[n, window, 1]`` (``window >= p``).
        y: their targets ``[n]`` or ``[n, horizon]``; only the first step is fitted.
        p: the order: how many of the latest values of each window are used.

    Returns:
        The fitted :class:`ARModel`, in the units of ``x`` and ``y``.
    """
    x = _windows_2d(x)
    p = check_int("p", p, 1)
    y = np.asarray(y, dtype=np.float64)
    y = y.reshape(len(y), -1)[:, 0] if y.ndim else y
    if len(y) != len(x):
        raise ValueError(f"x has {len(x)} windows but y has {len(y)} targets")
    if x.shape[1] < p:
        raise ValueError(f"windows of {x.shape[1]} steps are shorter than p = {p}")
    if len(x) <= p:
        raise ValueError(f"need more than p = {p} training windows, got {len(x)}")
    design = np.concatenate([x[:, -p:], np.ones((len(x), 1))], axis=1)
    sol, *_ = np.linalg.lstsq(design, y, rcond=None)
    return ARModel(sol[:-1], float(sol[-1]))


def mse(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean squared error over all elements (shapes must match)."""
    pred, target = _pair(pred, target)
    return float(np.mean((pred - target) ** 2))


def mae(pred: np.ndarray, target: np.ndarray) -> float:
    """Mean absolute error over all elements (shapes must match)."""
    pred, target = _pair(pred, target)
    return float(np.mean(np.abs(pred - target)))


def _pair(pred, target) -> tuple[np.ndarray, np.ndarray]:
    pred, target = np.asarray(pred, np.float64), np.asarray(target, np.float64)
    if pred.shape != target.shape:
        raise ValueError(f"pred shape {pred.shape} differs from target shape {target.shape}")
    if pred.size == 0:
        raise ValueError("cannot score empty predictions")
    return pred, target


def series_baselines(data: SeriesData, p: int | None = None) -> dict[str, dict[str, float]]:
    """Naive and AR(p) test errors in original units, on the split the model is tested on.

    Args:
        data: from :func:`prepare_series`.
        p: AR order (default: the window length); fitted on the training windows only.

    Returns:
        ``{"naive": {"mse", "mae"}, "ar": {"mse", "mae", "p"}}``.
    """
    if not isinstance(data, SeriesData):
        raise TypeError(f"data must be a SeriesData, got {type(data).__name__}")
    p = data.window if p is None else check_int("p", p, 1)
    a, n_valid, _ = data.sizes
    train_x, train_y = make_windows(data.series[:a], data.window, data.horizon)
    test_x, test_y = make_windows(
        data.series[a + n_valid - data.window :], data.window, data.horizon
    )
    ar = ar_least_squares(train_x, train_y, p)
    naive = naive_forecast(test_x, data.horizon)
    ar_pred = ar.predict(test_x, data.horizon)
    return {
        "naive": {"mse": mse(naive, test_y), "mae": mae(naive, test_y)},
        "ar": {"mse": mse(ar_pred, test_y), "mae": mae(ar_pred, test_y), "p": p},
    }
