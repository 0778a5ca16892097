"""Argument checks shared by the data modules: clear errors naming what was expected."""

from __future__ import annotations

import numbers

import numpy as np

__all__: list[str] = []


def check_int(name: str, value, minimum: int | None = None) -> int:
    """Returns ``value`` as an int, or raises naming ``name``, the bound and the value."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{name} must be an int, got {type(value).__name__} {value!r}")
    value = int(value)
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_fraction(name: str, value) -> float:
    """Returns ``value`` as a float in [0, 1), or raises."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise TypeError(f"{name} must be a float in [0, 1), got {type(value).__name__} {value!r}")
    value = float(value)
    if not 0.0 <= value < 1.0:
        raise ValueError(f"{name} must be in [0, 1), got {value}")
    return value


def as_rng(rng, name: str = "rng") -> np.random.Generator:
    """A ``np.random.Generator`` from a Generator or an int seed."""
    if isinstance(rng, np.random.Generator):
        return rng
    if isinstance(rng, numbers.Integral) and not isinstance(rng, bool):
        return np.random.default_rng(int(rng))
    raise TypeError(f"{name} must be a numpy.random.Generator or an int seed, got {rng!r}")
