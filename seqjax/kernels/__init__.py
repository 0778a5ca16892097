"""Fast paths behind the sequence engine's contract.

:func:`sequential_scan` runs the standard cells (:func:`~seqjax.lstm`, :func:`~seqjax.gru`
with ``reset_after=True``, :func:`~seqjax.simple_rnn`) in float32 through the fused
recurrences of :mod:`seqjax.kernels.fused`, whose backward passes do only the recurrent
matmul and the gate arithmetic per step and compute the weight gradients afterwards as one
matmul over all steps, with lengths (padded batches) and resets (packed segments) as
masks, and inside remat chunks. It gives the same numbers as the plain ``lax.scan`` of
``cell.step`` up to float rounding, and returns ``None`` (so the engine takes the plain
path) for any cell or option it does not cover (other cells, non-float32 parameters,
per-step remat). :func:`disabled` turns the fast paths off at trace time (for
benchmarks and equivalence tests).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp

from seqjax.kernels import fused
from seqjax.typing import Array, Carry, Params

__all__ = ["disabled", "enabled", "fused", "kind", "sequential_scan"]

_state = {"enabled": True}


def enabled() -> bool:
    """Whether the fast paths are on (read at trace time)."""
    return _state["enabled"]


@contextlib.contextmanager
def disabled(flag: bool = True) -> Iterator[None]:
    """Within this context (while tracing), the engine uses the plain path if ``flag``."""
    prev = _state["enabled"]
    _state["enabled"] = prev and not flag
    try:
        yield
    finally:
        _state["enabled"] = prev


_SPECS = {
    "lstm": fused.LSTM,
    "gru": fused.GRU,
    "rnn_tanh": fused.RNN_TANH,
    "rnn_relu": fused.RNN_RELU,
}


def kind(cell: Any) -> fused.Spec | None:
    """The fused recurrence that computes ``cell`` (named by its ``fused`` field), or
    ``None``. The constructors of :mod:`seqjax.cells` set the field for an LSTM without
    projection or layer norm, a GRU with ``reset_after=True`` and a tanh or relu Elman RNN,
    each with float32 matmuls; the parameters must also be float32 (checked at trace time).
    """
    return _SPECS.get(getattr(cell, "fused", None))


BLOCK = 16  # steps per block of the fused backward passes (see seqjax.kernels.fused)


def sequential_scan(
    cell: Any,
    params: Params,
    xs: Array,
    carry0: Carry,
    *,
    reverse: bool,
    unroll: int | bool,
    valid: Array | None = None,
    resets: Array | None = None,
    restart: Carry | None = None,
) -> tuple[Carry, Array] | None:
    """The engine's sequential scan over ``xs: [t, *b, d]`` by a fused recurrence.

    Same contract as the plain path without ``remat``: returns ``(carry, ys: [t, *b, h])``,
    or ``None`` when no fast path applies. ``valid: [t, *b]`` (a step is within its
    sequence's length: ``steps < lengths``, a prefix of each sequence, with ``xs`` zero
    elsewhere) and ``resets: [t, *b]`` (the carry restarts from ``restart``, by default
    ``carry0``, before the step) are booleans or ``None``; ``restart`` applies only with
    ``resets``.
    """
    if not enabled():
        return None
    spec = kind(cell)
    if spec is None or xs.size == 0:  # no steps or an empty batch: the plain path's shapes
        return None
    leaves, treedef = jax.tree.flatten(carry0)
    arrays = [params["w_i"], params["w_h"], xs, *leaves]
    if any(jnp.asarray(a).dtype != jnp.float32 for a in arrays):
        return None
    if xs.shape[-1] != params["w_i"].shape[0]:
        return None  # the plain path raises the informative error
    t, batch_shape = xs.shape[0], xs.shape[1:-1]
    weights = (params["w_i"], params["w_h"], params.get("b"), params.get("b_hn"))
    flat = tuple(c.reshape(-1, c.shape[-1]) for c in leaves)
    valid, resets = (
        None if m is None else jnp.broadcast_to(m, (t, *batch_shape)).reshape(t, -1)
        for m in (valid, resets)
    )
    restart = None if resets is None else carry0 if restart is None else restart
    if restart is not None:
        restart = tuple(c.reshape(-1, c.shape[-1]) for c in jax.tree.leaves(restart))
        restart = restart if len(restart) > 1 else restart[0]
    carry, hs = fused.fused_scan(
        spec,
        reverse,
        unroll,
        BLOCK,
        weights,
        xs.reshape(t, -1, xs.shape[-1]),
        flat if len(flat) > 1 else flat[0],
        (valid, resets, restart),
    )
    carry = jax.tree.unflatten(
        treedef, [c.reshape(*batch_shape, -1) for c in jax.tree.leaves(carry)]
    )
    return carry, hs.reshape(t, *batch_shape, -1)
