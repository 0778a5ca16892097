"""The copy-memory task (Arjovsky, Shah and Bengio 2016, "Unitary evolution RNNs").

The input is ``copy_length`` symbols drawn from ``1..n_symbols``, then ``delay - 1``
blanks (0), a delimiter (``n_symbols + 1``), then ``copy_length`` more blanks; the
target is blank everywhere except the last ``copy_length`` steps, which must repeat the
first symbols. Total length ``delay + 2 * copy_length`` (T + 20 in the paper, T = delay).

A memoryless model outputs blanks until the delimiter and then guesses uniformly among
the symbols: ``copy_length * ln(n_symbols) / (delay + 2 * copy_length)`` nats per step
(:func:`memoryless_baseline`); learning the task means going clearly below it.
"""

from __future__ import annotations

import math

import numpy as np

from seqjax.data._checks import check_int

__all__ = ["COPY_BLANK", "COPY_VOCAB", "copy_delimiter", "make_copy", "memoryless_baseline"]

COPY_BLANK = 0
COPY_VOCAB = 10
"""Vocabulary size with the default 8 symbols: blank 0, symbols 1..8, delimiter 9."""


def copy_delimiter(n_symbols: int = 8) -> int:
    """The delimiter id, ``n_symbols + 1`` (the vocabulary size is ``n_symbols + 2``)."""
    return check_int("n_symbols", n_symbols, 1) + 1


def make_copy(
    n: int, delay: int = 100, n_symbols: int = 8, copy_length: int = 10, seed: int = 0
) -> dict[str, np.ndarray]:
    """Generates ``n`` copy-memory sequences.

    Args:
        n: number of sequences.
        delay: T, the number of steps from the end of the symbols to the end of the
            delimiter (``delay - 1`` blanks, then the delimiter); at least 1.
        n_symbols: symbols are ``1..n_symbols``; the delimiter is ``n_symbols + 1``.
        copy_length: how many symbols to remember.
        seed: seed of the draw.

    Returns:
        ``{"x": int32 [n, L], "y": int32 [n, L]}`` with ``L = delay + 2 * copy_length``;
        ``y[:, -copy_length:] == x[:, :copy_length]`` and ``y`` is 0 elsewhere.

    Raises:
        TypeError, ValueError: for non-integer or out-of-range arguments.
    """
    n = check_int("n", n, 0)
    delay = check_int("delay", delay, 1)
    n_symbols = check_int("n_symbols", n_symbols, 1)
    copy_length = check_int("copy_length", copy_length, 1)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    total = delay + 2 * copy_length
    symbols = rng.integers(1, n_symbols + 1, size=(n, copy_length), dtype=np.int32)
    x = np.full((n, total), COPY_BLANK, np.int32)
    y = np.full((n, total), COPY_BLANK, np.int32)
    x[:, :copy_length] = symbols
    x[:, copy_length + delay - 1] = n_symbols + 1
    y[:, -copy_length:] = symbols
    return {"x": x, "y": y}


def memoryless_baseline(delay: int, n_symbols: int = 8, copy_length: int = 10) -> float:
    """Cross-entropy, in nats per step, of the best model that remembers nothing.

    Args:
        delay: T, as in :func:`make_copy`.
        n_symbols: number of symbols.
        copy_length: number of symbols to copy.

    Returns:
        ``copy_length * ln(n_symbols) / (delay + 2 * copy_length)``: ``10 ln 8 / 120 ~ 0.173``
        at the default T = 100.
    """
    delay = check_int("delay", delay, 1)
    n_symbols = check_int("n_symbols", n_symbols, 1)
    copy_length = check_int("copy_length", copy_length, 1)
    return copy_length * math.log(n_symbols) / (delay + 2 * copy_length)
