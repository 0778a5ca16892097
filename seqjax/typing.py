"""Array aliases and the shape-letter legend used in every docstring.

Shape letters:

* ``*b``: any number of leading batch axes (none for a single sequence),
* ``t``: time (steps of a sequence),
* ``d``: input features,
* ``h``: hidden units of a cell,
* ``p``: projected hidden units (an LSTM with ``proj_size``; otherwise ``p = h``),
* ``k``: fused gate pre-activations (``4h`` for an LSTM, ``3h`` for a GRU, ``h`` for an Elman RNN),
* ``v``: vocabulary size.

``xs`` is a whole sequence ``[*b, t, d]`` (``[t, *b, d]`` when time-major), ``x`` one step
``[*b, d]``; ``ys`` and ``y`` likewise for outputs; ``carry`` is the recurrent state pytree.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

Array = jax.Array
ArrayLike = jax.typing.ArrayLike
DTypeLike = jax.typing.DTypeLike
PRNGKey = jax.Array
Shape = tuple[int, ...]
Params = Any  # a pytree of arrays; hyperparameters never live in it
Carry = Any  # a pytree of arrays whose leaves are [*b, ...]
Initializer = Callable[[PRNGKey, Shape, Any], Array]  # jax.nn.initializers signature

__all__ = [
    "Array",
    "ArrayLike",
    "Carry",
    "DTypeLike",
    "Initializer",
    "PRNGKey",
    "Params",
    "Shape",
]
