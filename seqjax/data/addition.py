"""Addition as a seq2seq task: ``"123+45"`` to ``"168"``.

The task of Flax's ``seq2seq`` example (two numbers of up to three digits, character by
character), here with a held-out set of problems: no ``(a, b)`` pair of the test set
occurs in the training set.
"""

from __future__ import annotations

import numpy as np

from seqjax.data._checks import check_int
from seqjax.data.vocab import Vocab, encode_pairs

__all__ = ["make_addition"]

_MAX_DIGITS = 9  # keeps 10 ** (2 * max_digits) pair codes inside int64


def _examples(a: np.ndarray, b: np.ndarray, src_vocab, tgt_vocab, max_digits: int) -> dict:
    src_text = [f"{x}+{y}" for x, y in zip(a.tolist(), b.tolist())]
    tgt_text = [str(x + y) for x, y in zip(a.tolist(), b.tolist())]
    widths = (2 * max_digits + 1, max_digits + 2)
    return encode_pairs(src_text, tgt_text, src_vocab, tgt_vocab, widths)


def make_addition(
    n_train: int, n_test: int, max_digits: int = 3, seed: int = 0
) -> tuple[dict, dict, Vocab, Vocab]:
    """Generates addition problems with held-out ``(a, b)`` pairs.

    ``a`` and ``b`` are uniform on ``[0, 10**max_digits)``, so most have ``max_digits``
    digits, as in Flax's example. The test problems are ``n_test`` distinct pairs; the
    training problems are drawn uniformly, with replacement, from all the other pairs.
    ``(a, b)`` and ``(b, a)`` are different problems.

    Args:
        n_train: number of training examples.
        n_test: number of test examples (distinct pairs, fewer than ``10**(2*max_digits)``).
        max_digits: the most digits of each operand (1 to 9).
        seed: seed of the draw.

    Returns:
        ``(train, test, src_vocab, tgt_vocab)`` shaped as by
        :func:`seqjax.data.make_dates`: ``"src": int32 [n, 2*max_digits+1]``,
        ``"tgt": int32 [n, max_digits+2]`` (the sum's digits then ``EOS``), their
        lengths, and the texts. ``src_vocab`` is digits and ``+``; ``tgt_vocab`` digits.

    Raises:
        TypeError, ValueError: for non-integer or out-of-range arguments.
    """
    n_train = check_int("n_train", n_train, 0)
    n_test = check_int("n_test", n_test, 0)
    max_digits = check_int("max_digits", max_digits, 1)
    seed = check_int("seed", seed, 0)
    if max_digits > _MAX_DIGITS:
        raise ValueError(f"max_digits must be <= {_MAX_DIGITS}, got {max_digits}")
    base = 10**max_digits
    total = base * base
    if n_test >= total:
        raise ValueError(
            f"n_test must be below the {total} distinct pairs of {max_digits}-digit numbers "
            f"so that training pairs remain, got {n_test}"
        )
    rng = np.random.default_rng(seed)
    test_codes = rng.choice(total, size=n_test, replace=False).astype(np.int64)
    test_sorted = np.sort(test_codes)
    train_codes = rng.integers(total, size=n_train, dtype=np.int64)
    while True:
        clash = np.flatnonzero(np.isin(train_codes, test_sorted, assume_unique=False))
        if clash.size == 0:
            break
        train_codes[clash] = rng.integers(total, size=clash.size, dtype=np.int64)
    src_vocab, tgt_vocab = Vocab("0123456789+"), Vocab("0123456789")
    train = _examples(train_codes // base, train_codes % base, src_vocab, tgt_vocab, max_digits)
    test = _examples(test_codes // base, test_codes % base, src_vocab, tgt_vocab, max_digits)
    return train, test, src_vocab, tgt_vocab
