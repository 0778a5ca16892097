"""Time-series forecasting: CSV loading, windows, leakage-free scaling, baselines.

A series has one or more columns (inputs, ``[n, k]``), one of them the target. It is
split in time: the first part trains, the next validates, the tail tests. Every window's
targets lie inside one part (its inputs may reach back into the part before, as they
would in deployment). Each column's scaler is fitted on the training part alone, and the
baselines (:func:`naive_forecast`, :func:`seasonal_naive_forecast`,
:func:`ar_least_squares`) see only what a model sees, so all errors are comparable;
:func:`series_baselines` reports them in the target's original units.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Sequence
from typing import NamedTuple

import numpy as np

from seqjax.data._checks import check_fraction, check_int
from seqjax.data._csv import existing_file, parse_float, read_rows

__all__ = [
    "ARModel",
    "Scaler",
    "SeriesData",
    "ar_least_squares",
    "default_series",
    "load_csv_columns",
    "load_csv_series",
    "mae",
    "make_windows",
    "max_ar_order",
    "mse",
    "naive_forecast",
    "prepare_series",
    "seasonal_naive_forecast",
    "series_baselines",
]


def _column_index(column, names: list[str] | None, width: int, path) -> int:
    """The 0-based index of ``column`` (a name, an int, or an int written as a string)."""
    if names is not None and isinstance(column, str) and column.strip() in names:
        return names.index(column.strip())
    index = column
    if isinstance(column, str):
        try:
            index = int(column.strip())
        except ValueError:
            index = None
    available = (
        f"available columns: {names}"
        if names
        else f"the file has no header row and {width} columns (indices 0..{width - 1})"
    )
    if index is None:
        raise ValueError(f"column {column!r} not found in {path}; {available}")
    if not -width <= index < width:
        raise ValueError(f"column index {index} out of range in {path}; {available}")
    return index % width


def load_csv_columns(
    path: str | os.PathLike, columns: Sequence[str | int]
) -> tuple[np.ndarray, list[str]]:
    """Reads numeric columns of a CSV file.

    The first row is taken as a header when any of its cells is not a number. A column is
    chosen by its header name, by a 0-based index (negative counts from the end), or by
    an index written as a string (``"0"``, as a command line passes it) when the header
    has no column of that name. Blank rows at the end of the file are ignored; a blank row
    anywhere else is an error naming its line. Columns that are not selected may hold
    anything (dates, say).

    Args:
        path: the CSV file.
        columns: the columns to read, in the order wanted (at least one).

    Returns:
        ``(values, names)``: ``float64 [n, k]`` in file order, and the names of the ``k``
        columns (``"#i"`` for column ``i`` of a file without header).

    Raises:
        FileNotFoundError: if there is no such file.
        TypeError: if a column is neither a str nor an int.
        ValueError: if a column does not exist (the message lists the available columns),
            a row is blank or lacks a selected column, a value is empty, non-numeric or
            non-finite (the message names the line and the column), or the file holds
            fewer than two rows of values.
    """
    if isinstance(columns, str | int):
        raise TypeError(f"columns must be a sequence of names or indices, got {columns!r}")
    columns = list(columns)
    if not columns:
        raise ValueError("columns is empty; name at least one column")
    for column in columns:
        if isinstance(column, bool) or not isinstance(column, str | int):
            raise TypeError(f"column must be a str (header name) or an int index, got {column!r}")
    path = existing_file(path, "CSV file")
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} holds no rows")
    first = rows[0][1]
    has_header = any(parse_float(c.strip()) is None for c in first)
    names = [c.strip() for c in first] if has_header else None
    indices = [_column_index(c, names, len(first), path) for c in columns]
    labels = [names[i] if names else f"#{i}" for i in indices]
    values = []
    for line, row in rows[1:] if has_header else rows:
        out = []
        for index, label in zip(indices, labels):
            if index >= len(row):
                raise ValueError(
                    f"line {line} of {path} has {len(row)} fields, none for column {label!r}"
                )
            value = parse_float(row[index].strip())
            if value is None or not math.isfinite(value):
                raise ValueError(
                    f"non-numeric value {row[index]!r} in column {label!r} at line {line} of "
                    f"{path}; expected a finite number (fill missing values before loading)"
                )
            out.append(value)
        values.append(out)
    if len(values) < 2:
        raise ValueError(f"{path} holds {len(values)} rows of values; need >= 2")
    return np.asarray(values, dtype=np.float64), labels


def load_csv_series(path: str | os.PathLike, column: str | int) -> np.ndarray:
    """Reads one numeric column of a CSV file: :func:`load_csv_columns` with one column.

    The first row is taken as a header when any of its cells is not a number. Blank rows
    at the end of the file are ignored; a blank row anywhere else is an error naming its
    line.

    Args:
        path: the CSV file.
        column: a header name, or a 0-based column index (negative counts from the end),
            or such an index as a string when the header has no column of that name.

    Returns:
        ``float64 [n]``, the column's values in file order.

    Raises:
        FileNotFoundError: if there is no such file.
        TypeError: if ``column`` is neither a str nor an int.
        ValueError: if the column does not exist (the message lists the available
            columns), a row is blank, a value is empty, non-numeric or non-finite (the
            message names the line), or the file holds fewer than two values.
    """
    if isinstance(column, bool) or not isinstance(column, str | int):
        raise TypeError(f"column must be a str (header name) or an int index, got {column!r}")
    values, _ = load_csv_columns(path, [column])
    return values[:, 0]


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

    train: dict[str, np.ndarray]  # x: float32 [m, window, k] scaled; y: float32 [m, horizon]
    valid: dict[str, np.ndarray]  # the same, targets in the validation part
    test: dict[str, np.ndarray]  # the same, targets in the test tail
    scaler: Scaler  # the target column's; scaler.inverse gives the target's original units
    series: np.ndarray  # float64 [n, k], the original series, one column per input
    sizes: tuple[int, int, int]  # steps in the train, valid and test parts
    window: int
    horizon: int
    scalers: tuple[Scaler, ...] = ()  # one per column, fitted on series[:sizes[0]]
    target: int = 0  # index of the predicted column
    columns: int = 1  # k, the number of input columns

    @property
    def target_series(self) -> np.ndarray:
        """``float64 [n]``: the predicted column in original units."""
        return self.series[:, self.target]


def _test_size(test_size, n: int) -> int:
    if isinstance(test_size, bool) or not isinstance(test_size, numbers.Real):
        raise TypeError(
            "test_size must be an int >= 1 (points) or a float in (0, 1) (a fraction), got "
            f"{type(test_size).__name__} {test_size!r}"
        )
    if isinstance(test_size, numbers.Integral):
        if test_size < 1:
            raise ValueError(f"test_size in points must be >= 1, got {test_size}")
        return int(test_size)
    if not 0.0 < test_size < 1.0:
        raise ValueError(
            f"test_size as a fraction must lie in (0, 1), got {test_size} (give an int for "
            "a number of points)"
        )
    return round(n * float(test_size))


def prepare_series(
    series: np.ndarray,
    window: int,
    test_frac: float = 0.2,
    valid_frac: float = 0.1,
    *,
    horizon: int = 1,
    test_size: int | float | None = None,
    target: int = 0,
) -> SeriesData:
    """Splits a series in time, fits the scalers on the training part, and windows it.

    The series is cut into ``[train | valid | test]`` in time order: the test tail last,
    the validation block just before it. Each column is standardised with the mean and
    standard deviation of its training part only. A window's targets lie inside one part;
    its inputs may reach back into the part before.

    Args:
        series: ``[n]`` values, or ``[n, k]`` with one column per input, in time order.
        window: input steps per example.
        test_frac: fraction of steps in the test tail (when ``test_size`` is None).
        valid_frac: fraction of steps in the validation part, just before the test tail
            (0 gives an empty validation set).
        horizon: future steps to predict.
        test_size: the test tail, overriding ``test_frac``: an int ``>= 1`` is a number
            of points, a float in ``(0, 1)`` a fraction of ``n`` (rounded).
        target: index of the predicted column.

    Returns:
        A :class:`SeriesData` whose splits hold scaled ``float32`` windows
        ``x: [m, window, k]`` (every column) and targets ``y: [m, horizon]`` (the target
        column, scaled by its own scaler). A part of ``s`` steps gives ``s - horizon + 1``
        windows (train: ``s - window - horizon + 1``).

    Raises:
        ValueError: if the series is not ``[n]`` or ``[n, k]`` or holds NaN or infinite
            values, or a part is too short (the message gives the sizes and what is
            needed).
    """
    series = np.asarray(series)
    if series.ndim == 1:
        series = series[:, None]
    if series.ndim != 2 or not np.issubdtype(series.dtype, np.number) or not series.size:
        raise ValueError(
            f"series must be numeric [n] or [n, k] (k columns), got shape {series.shape}"
        )
    series = series.astype(np.float64)
    n, k = series.shape
    window = check_int("window", window, 1)
    horizon = check_int("horizon", horizon, 1)
    target = check_int("target", target, 0)
    if target >= k:
        raise ValueError(f"target column {target} out of range for {k} column(s)")
    test_frac = check_fraction("test_frac", test_frac)
    valid_frac = check_fraction("valid_frac", valid_frac)
    bad = np.argwhere(~np.isfinite(series))
    if len(bad):
        raise ValueError(
            f"series holds NaN or infinite values (first at step {bad[0][0]}, column {bad[0][1]})"
        )
    n_test = round(n * test_frac) if test_size is None else _test_size(test_size, n)
    n_valid = round(n * valid_frac)
    n_train = n - n_test - n_valid
    if n_train < window + horizon:
        tail = f"test_size={test_size!r}" if test_size is not None else f"test_frac={test_frac}"
        raise ValueError(
            f"the training part has {n_train} of {n} steps (test tail {n_test} from {tail}, "
            f"validation {n_valid}); need >= window + horizon = {window + horizon}, so the "
            f"test tail can be at most {n - n_valid - window - horizon} steps"
        )
    if n_test < horizon:
        raise ValueError(f"the test part has {n_test} steps; need >= horizon = {horizon}")
    if valid_frac > 0 and n_valid < horizon:
        raise ValueError(f"the validation part has {n_valid} steps; need >= horizon = {horizon}")
    scalers = tuple(Scaler.fit(series[:n_train, j]) for j in range(k))
    scaled = np.stack([sc.transform(series[:, j]) for j, sc in enumerate(scalers)], axis=1)
    a, b = n_train, n_train + n_valid
    splits = {
        "train": scaled[:a],
        "valid": scaled[a - window : b] if n_valid else scaled[:0],
        "test": scaled[b - window :],
    }
    out = {name: _windows_xy(part, window, horizon, target) for name, part in splits.items()}
    return SeriesData(
        out["train"],
        out["valid"],
        out["test"],
        scalers[target],
        series,
        (a, n_valid, n_test),
        window,
        horizon,
        scalers,
        target,
        k,
    )


def _windows_xy(part: np.ndarray, window: int, horizon: int, target: int) -> dict:
    """Windows of every column ``x: float32 [m, window, k]``, targets ``y: [m, horizon]``."""
    m = max(len(part) - window - horizon + 1, 0)
    idx = np.arange(m)[:, None]
    x = part[idx + np.arange(window)]  # [m, window, k]
    y = part[idx + window + np.arange(horizon), target]  # [m, horizon]
    return {"x": x.astype(np.float32), "y": y.astype(np.float32)}


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


def _original_windows(data: SeriesData, part: str) -> tuple[np.ndarray, np.ndarray]:
    """The windows of one split in original units: target-column ``x [m, window]``, ``y``."""
    a, n_valid, _ = data.sizes
    s = data.target_series
    chunk = {"train": s[:a], "test": s[a + n_valid - data.window :]}[part]
    return make_windows(chunk, data.window, data.horizon)


def max_ar_order(data: SeriesData) -> int:
    """The largest AR order :func:`series_baselines` can fit on ``data``'s training windows.

    AR(p) with an intercept needs more than ``p`` training windows and ``p <= window``;
    0 means not even AR(1) fits.
    """
    if not isinstance(data, SeriesData):
        raise TypeError(f"data must be a SeriesData, got {type(data).__name__}")
    n_windows = max(data.sizes[0] - data.window - data.horizon + 1, 0)
    return max(min(data.window, n_windows - 1), 0)


def seasonal_naive_forecast(x: np.ndarray, season: int, horizon: int = 1) -> np.ndarray:
    """Predicts each future step by the value one ``season`` earlier.

    Step ``h`` (1-based) after a window ending at time ``T`` is forecast by
    ``s[T + h - season * ceil(h / season)]``, the latest value in the same phase of the
    cycle, which lies inside the window when ``window >= season``.

    Args:
        x: windows ``[n, window]`` or ``[n, window, 1]``, ``window >= season``.
        season: the period in steps.
        horizon: future steps.

    Returns:
        ``float64 [n, horizon]``.
    """
    x = _windows_2d(x)
    season = check_int("season", season, 1)
    horizon = check_int("horizon", horizon, 1)
    window = x.shape[1]
    if window < season:
        raise ValueError(
            f"the seasonal naive forecast needs window >= season; got window {window}, "
            f"season {season}"
        )
    cols = [window - season + (h - 1) % season for h in range(1, horizon + 1)]
    return x[:, cols]


def series_baselines(
    data: SeriesData, p: int | None = None, season: int | None = None
) -> dict[str, dict[str, float]]:
    """Baseline test errors in the target's original units, on the model's test windows.

    Every baseline forecasts exactly the test targets the model is scored on, from the
    same input windows (the target column only): naive (the window's last value for every
    horizon step), seasonal naive (the value one ``season`` earlier, see
    :func:`seasonal_naive_forecast`) and a least-squares AR(p) fitted on the training
    windows alone and iterated over the horizon.

    Args:
        data: from :func:`prepare_series`.
        p: AR order (default: the window length); see :func:`max_ar_order`.
        season: the period for the seasonal naive forecast; None leaves it out.

    Returns:
        ``{"naive": {"mse", "mae"}, "seasonal_naive": {"mse", "mae", "season"},
        "ar": {"mse", "mae", "p"}}`` (no ``"seasonal_naive"`` when ``season`` is None).

    Raises:
        ValueError: if there are too few training windows for AR(p) (the message names
            ``p`` and the window count), or ``p`` or ``season`` exceeds the window.
    """
    if not isinstance(data, SeriesData):
        raise TypeError(f"data must be a SeriesData, got {type(data).__name__}")
    p = data.window if p is None else check_int("p", p, 1)
    train_x, train_y = _original_windows(data, "train")
    test_x, test_y = _original_windows(data, "test")
    if p > data.window:
        raise ValueError(f"AR order p = {p} exceeds the window of {data.window} steps")
    if len(train_x) <= p:
        raise ValueError(
            f"AR(p) with p = {p} needs more than {p} training windows, but the training part "
            f"gives {len(train_x)}; the largest order that fits is {max_ar_order(data)} "
            "(see max_ar_order)"
        )
    out = {}
    naive = naive_forecast(test_x, data.horizon)
    out["naive"] = {"mse": mse(naive, test_y), "mae": mae(naive, test_y)}
    if season is not None:
        seasonal = seasonal_naive_forecast(test_x, season, data.horizon)
        out["seasonal_naive"] = {
            "mse": mse(seasonal, test_y),
            "mae": mae(seasonal, test_y),
            "season": int(season),
        }
    ar_pred = ar_least_squares(train_x, train_y, p).predict(test_x, data.horizon)
    out["ar"] = {"mse": mse(ar_pred, test_y), "mae": mae(ar_pred, test_y), "p": p}
    return out
