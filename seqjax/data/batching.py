"""Minibatches from a dict of arrays: one epoch at a time, or an endless resumable stream."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from seqjax.data._checks import check_int

__all__ = ["batches", "infinite_batches", "num_examples"]


def num_examples(data: dict) -> int:
    """The common leading size of the array values of ``data``.

    Args:
        data: a dict whose ``np.ndarray`` values share their first dimension; values that
            are not arrays (lists of texts, say) are ignored.

    Returns:
        That first dimension.

    Raises:
        TypeError: if ``data`` is not a dict.
        ValueError: if it holds no arrays, or their leading sizes differ.
    """
    if not isinstance(data, dict):
        raise TypeError(f"data must be a dict of arrays, got {type(data).__name__}")
    sizes = {k: v.shape[0] for k, v in data.items() if isinstance(v, np.ndarray) and v.ndim}
    if not sizes:
        raise ValueError(f"data holds no arrays with a leading axis; keys: {sorted(data)}")
    if len(set(sizes.values())) > 1:
        raise ValueError(f"arrays in data differ in leading size: {sizes}")
    return next(iter(sizes.values()))


def _arrays(data: dict) -> dict[str, np.ndarray]:
    return {k: v for k, v in data.items() if isinstance(v, np.ndarray) and v.ndim}


def batches(
    data: dict,
    batch_size: int,
    *,
    rng: np.random.Generator | None = None,
    drop_remainder: bool = True,
    pad_remainder: bool = False,
) -> Iterator[dict[str, np.ndarray]]:
    """One pass over ``data`` in minibatches.

    Args:
        data: a dict of arrays sharing their leading size ``n``; non-array values are
            left out of the batches.
        batch_size: examples per batch.
        rng: shuffles the order when given; ``None`` keeps the stored order.
        drop_remainder: leave out the last ``n % batch_size`` examples, so every batch
            has the same shape.
        pad_remainder: instead of dropping or shrinking the last batch, pad it to
            ``batch_size`` with zeros; every batch then also holds ``"mask": float32
            [batch_size]``, 1 for real examples and 0 for padding (for exact evaluation
            over every example with a single compiled shape). Overrides ``drop_remainder``.

    Yields:
        Dicts with the same keys as the array values of ``data`` (plus ``"mask"``), each
        ``[batch_size, ...]`` (the last ``[n % batch_size, ...]`` when neither dropping
        nor padding).

    Raises:
        ValueError: if ``drop_remainder`` would give no batch at all (``n < batch_size``).
    """
    n = num_examples(data)
    batch_size = check_int("batch_size", batch_size, 1)
    if rng is not None and not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator or None, got {rng!r}")
    arrays = _arrays(data)
    if drop_remainder and not pad_remainder and n < batch_size:
        raise ValueError(
            f"batch_size {batch_size} exceeds the {n} examples; with drop_remainder=True "
            "no batch would be produced"
        )
    order = rng.permutation(n) if rng is not None else np.arange(n)
    stop = n - n % batch_size if drop_remainder and not pad_remainder else n
    for lo in range(0, stop, batch_size):
        idx = order[lo : lo + batch_size]
        batch = {k: v[idx] for k, v in arrays.items()}
        if pad_remainder:
            real = len(idx)
            if real < batch_size:
                batch = {
                    k: np.concatenate([v, np.zeros((batch_size - real, *v.shape[1:]), v.dtype)])
                    for k, v in batch.items()
                }
            batch["mask"] = (np.arange(batch_size) < real).astype(np.float32)
        yield batch


def infinite_batches(
    data: dict, batch_size: int, seed: int, *, start: int = 0
) -> Iterator[dict[str, np.ndarray]]:
    """Shuffled full batches without end, a new order every epoch.

    Epoch ``e`` is shuffled by ``np.random.default_rng([seed, e])``, so batch ``i``
    depends only on ``(seed, i)`` and a resumed run (``start`` = the step reached) sees
    exactly the batches an uninterrupted run would.

    Args:
        data: a dict of arrays sharing their leading size (at least ``batch_size``).
        batch_size: examples per batch.
        seed: the shuffling seed.
        start: index of the first batch to yield.

    Yields:
        Dicts of ``[batch_size, ...]`` arrays (the array values of ``data``).
    """
    n = num_examples(data)
    batch_size = check_int("batch_size", batch_size, 1)
    seed = check_int("seed", seed, 0)
    start = check_int("start", start, 0)
    if n < batch_size:
        raise ValueError(f"batch_size {batch_size} exceeds the {n} examples")
    arrays = _arrays(data)
    per_epoch = n // batch_size
    epoch, i = divmod(start, per_epoch)
    while True:
        order = np.random.default_rng([seed, epoch]).permutation(n)
        for j in range(i, per_epoch):
            idx = order[j * batch_size : (j + 1) * batch_size]
            yield {k: v[idx] for k, v in arrays.items()}
        epoch, i = epoch + 1, 0
