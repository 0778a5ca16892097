"""The adding problem (Hochreiter and Schmidhuber 1997, experiment 4).

Each input step carries two channels: a value drawn uniformly from ``[0, 1)`` and a marker.
Exactly two steps are marked, one in each half of the sequence; the target is the sum of
the two marked values. The marked values are independent ``U(0, 1)``, so the target has
mean 1 and variance ``2 / 12 = 1/6``: a model that always predicts 1 scores an MSE of
:data:`ADDING_MEAN_BASELINE_MSE` ``= 1/6 ~ 0.167``, and solving the task means going well
below it (0.01 is the usual bar).
"""

from __future__ import annotations

import numpy as np

from seqjax.data._checks import check_int

__all__ = ["ADDING_MEAN_BASELINE_MSE", "make_adding", "mean_baseline_mse"]

ADDING_MEAN_BASELINE_MSE = 1.0 / 6.0
"""Expected MSE of predicting the target's mean (1) for every sequence: Var(U1 + U2) = 1/6."""


def make_adding(n: int, length: int = 200, seed: int = 0) -> dict[str, np.ndarray]:
    """Generates ``n`` adding-problem sequences of ``length`` steps.

    Args:
        n: number of sequences.
        length: steps per sequence (T; at least 2).
        seed: seed of the draw.

    Returns:
        ``{"x": float32 [n, length, 2], "y": float32 [n]}``: channel 0 of ``x`` holds the
        values, channel 1 is 1.0 at the two marked steps (one in ``[0, length // 2)``, one
        in ``[length // 2, length)``) and 0.0 elsewhere; ``y`` is the sum of the two marked
        values (computed in float32 from the float32 values).

    Raises:
        TypeError, ValueError: for non-integer ``n``, ``length`` or ``seed``, negative
            ``n``, or ``length < 2``.
    """
    n = check_int("n", n, 0)
    length = check_int("length", length, 2)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    half = length // 2
    values = rng.uniform(0.0, 1.0, size=(n, length)).astype(np.float32)
    first = rng.integers(0, half, size=n)
    second = rng.integers(half, length, size=n)
    marks = np.zeros((n, length), np.float32)
    rows = np.arange(n)
    marks[rows, first] = 1.0
    marks[rows, second] = 1.0
    y = values[rows, first] + values[rows, second]
    return {"x": np.stack([values, marks], axis=-1), "y": y.astype(np.float32)}


def mean_baseline_mse(y: np.ndarray, mean: float = 1.0) -> float:
    """MSE of predicting the constant ``mean`` for every target.

    Args:
        y: targets ``[n]`` (or any shape).
        mean: the constant prediction; the default is the task's expected target, 1.

    Returns:
        ``mean((y - mean) ** 2)``, about :data:`ADDING_MEAN_BASELINE_MSE` on a large sample.
    """
    y = np.asarray(y, dtype=np.float64)
    if y.size == 0:
        raise ValueError("y must hold at least one target, got an empty array")
    return float(np.mean((y - float(mean)) ** 2))
