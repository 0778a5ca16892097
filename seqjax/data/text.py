"""Character-level language modelling: corpora, splits, batches and an n-gram baseline.

The default corpus is the Python standard library's own source, present wherever Python
is, so the experiment needs no download. Any UTF-8 text file works through
:func:`load_text`. Held-out characters never seen in training map to ``CharVocab.UNK``;
:class:`NGramModel` scores them as the same single "unseen character" class, so the model
and the baseline are measured over the same outcomes.
"""

from __future__ import annotations

import math
import os
import pathlib
import sysconfig
from collections.abc import Iterator

import numpy as np

from seqjax.data._checks import check_fraction, check_int
from seqjax.data.vocab import CharVocab

__all__ = [
    "NGramModel",
    "default_corpus",
    "default_corpus_files",
    "fit_best_ngram",
    "lm_batches",
    "lm_eval_batches",
    "load_text",
    "split_text",
]


def default_corpus_files() -> list[pathlib.Path]:
    """The files of :func:`default_corpus`: the stdlib's top-level ``*.py``, sorted by name.

    Returns:
        Paths of the top-level modules in ``sysconfig.get_paths()["stdlib"]`` (packages,
        ``site-packages`` and tests excluded), sorted by file name.

    Raises:
        FileNotFoundError: if this Python ships no standard-library source files.
    """
    stdlib = pathlib.Path(sysconfig.get_paths()["stdlib"])
    files = sorted((p for p in stdlib.glob("*.py") if p.is_file()), key=lambda p: p.name)
    if not files:
        raise FileNotFoundError(
            f"no standard-library source (*.py) found in {stdlib}; pass a text file instead"
        )
    return files


def default_corpus(max_chars: int = 2_000_000) -> str:
    """Text that exists on every machine with Python: the standard library's source.

    The top-level modules of the standard library (:func:`default_corpus_files`), in
    sorted file-name order, each followed by a newline, read as UTF-8 with universal
    newlines, cut at ``max_chars`` characters. The same Python version gives the same
    text on every machine; other versions give similar, not identical, text.

    Args:
        max_chars: the most characters to return (at least 1).

    Returns:
        The corpus, ``min(max_chars, total)`` characters long (about 2M by default; the
        3.11 stdlib's top-level modules hold about 4.7M).
    """
    max_chars = check_int("max_chars", max_chars, 1)
    parts, size = [], 0
    for path in default_corpus_files():
        text = path.read_text(encoding="utf-8", errors="replace") + "\n"
        parts.append(text)
        size += len(text)
        if size >= max_chars:
            break
    return "".join(parts)[:max_chars]


def load_text(path: str | os.PathLike) -> str:
    """Reads a UTF-8 text file (universal newlines).

    Args:
        path: the file.

    Returns:
        Its text.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: if the file is empty or not valid UTF-8.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no text file at {path}")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text: {e}") from None
    if not text:
        raise ValueError(f"{path} is empty")
    return text


def split_text(
    text: str, valid_frac: float = 0.05, test_frac: float = 0.05
) -> tuple[str, str, str]:
    """Splits a text into contiguous train, validation and test parts, in that order.

    Args:
        text: the corpus.
        valid_frac: fraction of characters for validation (rounded to whole characters).
        test_frac: fraction of characters for the test part, taken from the end.

    Returns:
        ``(train, valid, test)`` with ``train + valid + test == text``.

    Raises:
        ValueError: if the fractions leave no training text, or a nonzero fraction
            rounds to no characters.
    """
    if not isinstance(text, str):
        raise TypeError(f"text must be a str, got {type(text).__name__}")
    valid_frac = check_fraction("valid_frac", valid_frac)
    test_frac = check_fraction("test_frac", test_frac)
    if valid_frac + test_frac >= 1.0:
        raise ValueError(
            f"valid_frac + test_frac must be < 1, got {valid_frac} + {test_frac} "
            f"= {valid_frac + test_frac}"
        )
    n = len(text)
    n_valid, n_test = round(n * valid_frac), round(n * test_frac)
    for name, frac, size in (("valid", valid_frac, n_valid), ("test", test_frac, n_test)):
        if frac > 0 and size == 0:
            raise ValueError(f"{name}_frac={frac} of {n} characters rounds to none")
    n_train = n - n_valid - n_test
    if n_train < 1:
        raise ValueError(f"no training text left from {n} characters")
    return text[:n_train], text[n_train : n_train + n_valid], text[n_train + n_valid :]


def _check_ids(ids, seq_len: int) -> np.ndarray:
    ids = np.asarray(ids)
    if ids.ndim != 1 or not np.issubdtype(ids.dtype, np.integer):
        raise ValueError(f"ids must be a 1-D integer array, got shape {ids.shape} {ids.dtype}")
    if len(ids) < seq_len + 1:
        raise ValueError(
            f"ids must hold at least seq_len + 1 = {seq_len + 1} tokens, got {len(ids)}"
        )
    return ids.astype(np.int32, copy=False)


def lm_batches(
    ids: np.ndarray,
    batch_size: int,
    seq_len: int,
    rng: np.random.Generator | int,
    *,
    start: int = 0,
    num_batches: int | None = None,
) -> Iterator[dict[str, np.ndarray]]:
    """Random training windows for a language model, without end.

    Each row is a window at a uniformly drawn offset; ``y`` is ``x`` shifted left by one.

    Args:
        ids: ``int [n]`` token ids of the training text.
        batch_size: windows per batch.
        seq_len: tokens per window.
        rng: a ``np.random.Generator`` (consumed as batches are drawn), or an int seed:
            then batch ``i`` depends only on ``(seed, i)``.
        start: index of the first batch to yield; batches before it are skipped, so a
            resumed run sees exactly the batches an uninterrupted one would.
        num_batches: stop after this many batches (default: never).

    Yields:
        ``{"x": int32 [batch_size, seq_len], "y": int32 [batch_size, seq_len]}``.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    seq_len = check_int("seq_len", seq_len, 1)
    start = check_int("start", start, 0)
    if num_batches is not None:
        num_batches = check_int("num_batches", num_batches, 0)
    ids = _check_ids(ids, seq_len)
    n_starts = len(ids) - seq_len
    offsets = np.arange(seq_len + 1)
    if isinstance(rng, np.random.Generator):
        gen, seed = rng, None
    else:
        gen, seed = None, check_int("rng", rng, 0)  # an int seed, or a TypeError naming rng
    if gen is not None:
        for _ in range(start):
            gen.integers(n_starts, size=batch_size)
    i = start
    while num_batches is None or i < start + num_batches:
        draw = gen if gen is not None else np.random.default_rng([seed, i])
        windows = ids[draw.integers(n_starts, size=batch_size)[:, None] + offsets]
        yield {"x": windows[:, :-1], "y": windows[:, 1:]}
        i += 1


def lm_eval_batches(
    ids: np.ndarray, batch_size: int, seq_len: int
) -> Iterator[dict[str, np.ndarray]]:
    """Every next-token prediction of a text exactly once, in fixed-shape batches.

    The ``len(ids) - 1`` targets are cut into ``batch_size`` contiguous streams; batch
    ``j`` holds window ``j`` of every stream, so row ``r`` of consecutive batches is
    consecutive text and a model may carry its state across batches (stateful
    evaluation). Padding is marked by ``mask == 0``.

    Args:
        ids: ``int [n]`` token ids (for example the validation text).
        batch_size: streams (rows per batch).
        seq_len: tokens per window.

    Yields:
        ``{"x": int32 [batch_size, seq_len], "y": int32 [batch_size, seq_len],
        "mask": float32 [batch_size, seq_len]}``; the masks sum to ``len(ids) - 1``.
    """
    batch_size = check_int("batch_size", batch_size, 1)
    seq_len = check_int("seq_len", seq_len, 1)
    ids = _check_ids(ids, 1)
    n_targets = len(ids) - 1
    stream_len = -(-n_targets // batch_size)
    n_chunks = -(-stream_len // seq_len)
    steps = np.arange(n_chunks * seq_len)
    t = np.arange(batch_size)[:, None] * stream_len + steps  # [batch, padded stream]
    valid = (steps < stream_len) & (t < n_targets)
    t = np.where(valid, t, 0)
    x = np.where(valid, ids[t], 0).astype(np.int32)
    y = np.where(valid, ids[t + 1], 0).astype(np.int32)
    mask = valid.astype(np.float32)
    for j in range(n_chunks):
        cols = slice(j * seq_len, (j + 1) * seq_len)
        yield {"x": x[:, cols], "y": y[:, cols], "mask": mask[:, cols]}


class NGramModel:
    """A count-based character n-gram model with interpolated Witten-Bell smoothing.

    For a context ``h`` of ``k`` characters, seen ``N(h)`` times and followed by ``T(h)``
    distinct characters (Witten and Bell 1991; interpolated as in Chen and Goodman 1998):

    .. math::
        P(c \\mid h) = \\frac{C(h, c) + T(h)\\, P(c \\mid h')}{N(h) + T(h)},

    where ``h'`` drops the oldest character of ``h``; contexts never seen in training
    fall back to ``P(c | h')``. The recursion ends in a uniform distribution over the
    training characters plus one "unseen character" class, so every character, seen or
    not, has nonzero probability. ``order`` counts the predicted character: order 1 is a
    smoothed unigram, order 3 conditions on two characters.

    Example:
        >>> model = NGramModel(3).fit(train_text)
        >>> model.bits_per_char(test_text)
    """

    def __init__(self, order: int):
        """Makes an unfitted model of order ``order`` (n, at least 1)."""
        self.order = check_int("order", order, 1)
        self.vocab: CharVocab | None = None
        self._tables: list[tuple[np.ndarray, ...]] = []

    def __repr__(self) -> str:
        fitted = "unfitted" if self.vocab is None else f"{len(self.vocab.chars)} chars"
        return f"NGramModel(order={self.order}, {fitted})"

    def _outcomes(self, text: str) -> np.ndarray:
        # Outcome 0 is "unseen character", 1..V the training characters.
        return self.vocab.encode_array(text).astype(np.int64) - CharVocab.UNK

    def _codes(self, outcomes: np.ndarray) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        # (context code, joint code) per context length k = 0..order-1, for every position.
        n_out = len(self.vocab.chars) + 1
        base = n_out + 1  # the extra symbol marks "before the start of the text"
        padded = np.concatenate([np.full(self.order - 1, n_out, np.int64), outcomes])
        n, ctx = len(outcomes), np.zeros(len(outcomes), np.int64)
        for k in range(self.order):
            if k:
                ctx = ctx + padded[self.order - 1 - k : self.order - 1 - k + n] * base ** (k - 1)
            yield ctx, ctx * base + outcomes

    def fit(self, text: str) -> NGramModel:
        """Counts the n-grams of ``text``; its characters become the vocabulary.

        Args:
            text: the training text (non-empty).

        Returns:
            ``self``.

        Raises:
            ValueError: if ``text`` is empty, or ``order`` is too large for exact integer
                codes with this many distinct characters.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        if not text:
            raise ValueError("cannot fit an n-gram model on empty text")
        self.vocab = CharVocab.from_text(text)
        base = len(self.vocab.chars) + 2
        if self.order * math.log2(base) >= 62:
            raise ValueError(
                f"order {self.order} with {base - 2} distinct characters overflows 64-bit "
                f"n-gram codes; use order <= {int(62 / math.log2(base))}"
            )
        self._tables = []
        for _, joint in self._codes(self._outcomes(text)):
            joint_keys, joint_counts = np.unique(joint, return_counts=True)
            ctx_keys, first, types = np.unique(
                joint_keys // base, return_index=True, return_counts=True
            )
            ctx_counts = np.add.reduceat(joint_counts, first)
            self._tables.append((joint_keys, joint_counts, ctx_keys, ctx_counts, types))
        return self

    def log_probs(self, text: str) -> np.ndarray:
        """Natural-log probability of each character of ``text`` given the ones before it.

        Args:
            text: text to score; characters unseen in training count as one class.

        Returns:
            ``float64 [len(text)]``, all finite.
        """
        if self.vocab is None:
            raise ValueError("NGramModel is not fitted; call fit(text) first")
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        outcomes = self._outcomes(text)
        p = np.full(len(outcomes), 1.0 / (len(self.vocab.chars) + 1))
        for (ctx, joint), table in zip(self._codes(outcomes), self._tables):
            joint_keys, joint_counts, ctx_keys, ctx_counts, types = table
            c = _lookup(joint_keys, joint_counts, joint)
            n = _lookup(ctx_keys, ctx_counts, ctx)
            t = _lookup(ctx_keys, types, ctx)
            p = np.where(n > 0, (c + t * p) / np.maximum(n + t, 1), p)
        return np.log(p)

    def bits_per_char(self, text: str) -> float:
        """Mean of ``-log2 P(char | previous chars)`` over ``text`` (non-empty)."""
        if not text:
            raise ValueError("cannot score empty text")
        return float(-self.log_probs(text).mean() / math.log(2))


def _lookup(keys: np.ndarray, values: np.ndarray, queries: np.ndarray) -> np.ndarray:
    pos = np.minimum(np.searchsorted(keys, queries), len(keys) - 1)
    return np.where(keys[pos] == queries, values[pos], 0).astype(np.float64)


def fit_best_ngram(
    train: str, valid: str, max_order: int = 7
) -> tuple[NGramModel, dict[int, float]]:
    """Fits :class:`NGramModel` of orders ``1..max_order`` and keeps the best on ``valid``.

    Args:
        train: training text.
        valid: validation text that chooses the order (score the test text afterwards).
        max_order: the largest order tried.

    Returns:
        ``(model, valid_bits)``: the model of lowest validation bits per character, and
        the validation bits per character of every order tried.
    """
    max_order = check_int("max_order", max_order, 1)
    valid_bits, best = {}, None
    for order in range(1, max_order + 1):
        model = NGramModel(order).fit(train)
        valid_bits[order] = model.bits_per_char(valid)
        if best is None or valid_bits[order] < valid_bits[best.order]:
            best = model
    return best, valid_bits
