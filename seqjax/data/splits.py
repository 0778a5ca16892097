"""Label encoding, seeded splits and feature scaling: the pieces of honest model selection.

:class:`Labels` maps label values (integers or strings) to class ids fitted on training
data, so a label seen only in test is an error, not a silent new class.
:func:`random_split` and :func:`stratified_split` carve held-out rows out of a dataset
reproducibly. :class:`FeatureScaler` standardises features with statistics of the
training rows' valid steps, padding excluded and kept at exactly zero.
"""

from __future__ import annotations

import numbers
from typing import NamedTuple

import numpy as np

from seqjax.data._checks import check_fraction, check_int

__all__ = ["FeatureScaler", "Labels", "random_split", "stratified_split"]


def _label_array(values, what: str) -> np.ndarray:
    values = np.asarray(values)
    if values.dtype.kind == "S":
        values = values.astype(str)
    if values.dtype.kind == "O":
        kinds = {type(v) for v in values.ravel().tolist()}
        if kinds <= {str}:
            values = values.astype(str)
        elif all(issubclass(k, numbers.Integral) for k in kinds):
            values = values.astype(np.int64)
        else:
            names = sorted(k.__name__ for k in kinds)
            raise TypeError(f"{what} must be all integers or all strings, got types {names}")
    if values.dtype.kind not in "biufU":
        raise TypeError(f"{what} must hold integers or strings, got dtype {values.dtype}")
    if values.dtype.kind == "f" and not np.isfinite(values).all():
        raise ValueError(f"{what} hold NaN or infinite values")
    return values


class Labels:
    """Maps label values (integers or strings) to class ids ``0..k-1`` and back.

    Example:
        >>> labels = Labels.fit(np.array(["cat", "dog", "cat"]))
        >>> labels.encode(["dog", "cat"]).tolist()
        [1, 0]
        >>> labels.decode([1]).tolist()
        ['dog']

    Attributes:
        classes: the sorted unique values seen in :meth:`fit`; class ``i`` is
            ``classes[i]``.
    """

    def __init__(self, classes: np.ndarray):
        """Wraps sorted unique ``classes``; use :meth:`fit` to build from data."""
        classes = _label_array(classes, "classes")
        if classes.ndim != 1 or len(classes) == 0:
            raise ValueError(f"classes must be a non-empty 1-D array, got shape {classes.shape}")
        if len(np.unique(classes)) != len(classes) or not (classes[:-1] < classes[1:]).all():
            raise ValueError("classes must be sorted and unique")
        self.classes = classes

    @classmethod
    def fit(cls, values) -> Labels:
        """The classes of ``values`` (any shape; flattened): their sorted unique values.

        Raises:
            ValueError: if ``values`` is empty or holds NaN.
            TypeError: if it holds something other than integers or strings.
        """
        values = _label_array(values, "labels")
        if values.size == 0:
            raise ValueError("cannot fit labels on an empty array")
        return cls(np.unique(values))

    def __len__(self) -> int:
        return len(self.classes)

    def __repr__(self) -> str:
        return f"Labels({self.classes.tolist()!r})"

    def __eq__(self, other) -> bool:
        return (
            isinstance(other, Labels)
            and other.classes.dtype.kind == self.classes.dtype.kind
            and np.array_equal(other.classes, self.classes)
        )

    def encode(self, values, *, what: str = "labels") -> np.ndarray:
        """Class ids of ``values``.

        Args:
            values: label values, any shape.
            what: how to call them in an error message (``"test labels"``, say).

        Returns:
            ``int32`` ids, the shape of ``values``.

        Raises:
            ValueError: if a value was not seen in :meth:`fit` (the message names the
                unseen values, ``what``, and the known classes), or values are strings
                where the classes are numbers or the other way round.
        """
        values = _label_array(values, what)
        numeric = self.classes.dtype.kind != "U"
        if (values.dtype.kind != "U") != numeric and values.size:
            have, want = ("strings", "numbers") if numeric else ("numbers", "strings")
            raise ValueError(f"{what} are {have} but the classes are {want}: {self._known()}")
        if values.size == 0:
            return np.zeros(values.shape, np.int32)
        pos = np.searchsorted(self.classes, values)
        found = self.classes[np.minimum(pos, len(self.classes) - 1)] == values
        if not found.all():
            unseen = np.unique(values[~found])
            shown = unseen[:10].tolist()
            more = f" and {len(unseen) - 10} more" if len(unseen) > 10 else ""
            raise ValueError(
                f"{what} hold {len(unseen)} value(s) never seen in training: {shown}{more}; "
                f"{self._known()}"
            )
        return pos.astype(np.int32)

    def decode(self, ids) -> np.ndarray:
        """Label values of class ids (any shape).

        Raises:
            ValueError: if an id is outside ``[0, len(self))``.
        """
        ids = np.asarray(ids)
        if ids.size and not np.issubdtype(ids.dtype, np.integer):
            raise TypeError(f"ids must be integers, got dtype {ids.dtype}")
        bad = (ids < 0) | (ids >= len(self))
        if bad.any():
            raise ValueError(
                f"class id {ids[bad].ravel()[0]} is outside [0, {len(self)}); {self._known()}"
            )
        return self.classes[ids.astype(np.intp)]

    def _known(self) -> str:
        shown = self.classes[:20].tolist()
        more = f" and {len(self) - 20} more" if len(self) > 20 else ""
        return f"known classes ({len(self)}): {shown}{more}"


def _check_split(fraction, seed) -> tuple[float, int]:
    return check_fraction("fraction", fraction), check_int("seed", seed, 0)


def random_split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded random split of ``range(n)`` into kept and held-out indices.

    Args:
        n: number of examples.
        fraction: the held-out share, in ``[0, 1)``; ``round(n * fraction)`` examples
            (Python's ``round``) are held out.
        seed: the seed of the shuffle; the same ``(n, fraction, seed)`` gives the same
            split.

    Returns:
        ``(kept, held)``: sorted ``int64`` index arrays, disjoint, together
        ``range(n)``; ``held`` is empty for ``fraction == 0``.

    Raises:
        ValueError: if nothing would be kept.
    """
    n = check_int("n", n, 1)
    fraction, seed = _check_split(fraction, seed)
    n_held = round(n * fraction)
    if n_held >= n:
        raise ValueError(f"holding out fraction {fraction} of {n} examples leaves none to keep")
    order = np.random.default_rng(seed).permutation(n)
    return np.sort(order[n_held:]), np.sort(order[:n_held])


def stratified_split(y, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """A seeded split of ``range(len(y))`` that keeps the class proportions on both sides.

    Each class's share of the held-out rows is ``fraction`` of its members, rounded so the
    total is ``round(n * fraction)`` (largest remainders first); then, when ``fraction >
    0``, every class with at least two members keeps at least one member on each side (a
    class with one member stays on the kept side), which can move the total by a few
    rows. Members are chosen by a shuffle seeded with ``seed``.

    Args:
        y: ``[n]`` label values (integers or strings; class ids work too).
        fraction: the held-out share, in ``[0, 1)``.
        seed: the shuffle's seed.

    Returns:
        ``(kept, held)``: sorted ``int64`` index arrays, disjoint, together ``range(n)``.
    """
    y = _label_array(y, "y")
    if y.ndim != 1 or len(y) == 0:
        raise ValueError(f"y must be non-empty labels [n], got shape {y.shape}")
    fraction, seed = _check_split(fraction, seed)
    classes, inverse, counts = np.unique(y, return_inverse=True, return_counts=True)
    quota = counts * fraction
    take = np.floor(quota).astype(np.int64)
    extra = round(len(y) * fraction) - int(take.sum())
    if extra > 0:
        # Largest remainder first; ties go to the earlier (sorted) class, deterministically.
        order = np.argsort(-(quota - take), kind="stable")
        take[order[:extra]] += 1
    if fraction > 0:
        take = np.where(counts >= 2, np.clip(take, 1, counts - 1), 0)
    rng = np.random.default_rng(seed)
    held = []
    for c in range(len(classes)):
        members = np.flatnonzero(inverse == c)
        held.append(rng.permutation(members)[: take[c]])
    held = np.sort(np.concatenate(held))
    kept = np.setdiff1d(np.arange(len(y)), held)
    if len(kept) == 0:
        raise ValueError(f"holding out fraction {fraction} of {len(y)} examples leaves none")
    return kept, held


class FeatureScaler(NamedTuple):
    """Per-feature standardisation ``(x - mean) / std`` from valid steps only."""

    mean: np.ndarray  # float32 [d]
    std: np.ndarray  # float32 [d]; 1 where a feature is constant over the fitted steps

    @classmethod
    def fit(cls, x, lengths) -> FeatureScaler:
        """Mean and standard deviation of each feature over the valid steps of ``x``.

        Args:
            x: ``[n, t, d]`` right-padded features (the training rows only).
            lengths: ``int [n]`` valid steps per row; steps past them are ignored.

        Returns:
            The scaler (statistics computed in float64, stored as float32).
        """
        x, valid = _masked(x, lengths)
        steps = x[valid]  # [valid steps, d]
        if len(steps) == 0:
            raise ValueError("cannot fit a FeatureScaler on zero valid steps")
        mean = steps.mean(axis=0)
        std = steps.std(axis=0)
        constant = steps.max(axis=0) == steps.min(axis=0)
        std = np.where(constant | (std == 0), 1.0, std)
        return cls(mean.astype(np.float32), std.astype(np.float32))

    def transform(self, x, lengths) -> np.ndarray:
        """Standardised ``x``: ``float32 [n, t, d]``, exactly 0 past each length."""
        x, valid = _masked(x, lengths)
        if x.shape[-1] != len(self.mean):
            raise ValueError(
                f"x has {x.shape[-1]} features but the scaler was fitted on {len(self.mean)}"
            )
        scaled = (x - self.mean.astype(np.float64)) / self.std.astype(np.float64)
        return np.where(valid[..., None], scaled, 0.0).astype(np.float32)


def _masked(x, lengths) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    lengths = np.asarray(lengths)
    if x.ndim != 3:
        raise ValueError(f"x must be [n, t, d], got shape {x.shape}")
    if lengths.shape != x.shape[:1] or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"lengths must be integers [n] = [{len(x)}], got {lengths.dtype} {lengths.shape}"
        )
    return x, np.arange(x.shape[1]) < lengths[:, None]
