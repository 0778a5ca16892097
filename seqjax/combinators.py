"""Combinators of :class:`~seqjax.scan.Seq`: stacks, bidirectional layers, dropout.

They compose Seqs the way Optax's ``chain`` composes transformations: params and carries are
tuples with one entry per part, and each layer runs over the whole sequence before the next,
so each layer's input projection stays one matmul.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp

from seqjax._util import check_params
from seqjax._util import seq_output_size as output_size
from seqjax.scan import Seq, reversed_layer
from seqjax.typing import Array, ArrayLike, PRNGKey, Shape

__all__ = ["bidirectional", "dropout", "stack"]


def dropout(key: PRNGKey | None, x: Array, rate: float) -> Array:
    """Inverted dropout: zeros each element with probability ``rate``, scales the rest.

    Identity when ``key`` is ``None`` or ``rate == 0`` (deterministic evaluation).
    """
    if not 0.0 <= rate < 1.0:
        raise ValueError(f"dropout rate must lie in [0, 1), received {rate!r}")
    if key is None or rate == 0.0:
        return x
    keep = jax.random.bernoulli(key, 1.0 - rate, x.shape)
    return jnp.where(keep, x / jnp.asarray(1.0 - rate, x.dtype), jnp.zeros_like(x))


_apply_dropout = dropout  # stack's `dropout` argument shadows the function


def _split(key: PRNGKey | None, n: int) -> Sequence[PRNGKey | None]:
    return (None,) * n if key is None else tuple(jax.random.split(key, n))


def _check_parts(name: str, value: Sequence, n: int, what: str) -> None:
    if not isinstance(value, (tuple, list)) or len(value) != n:
        got = type(value).__name__
        if isinstance(value, (tuple, list)):
            got += f" of length {len(value)}"
        raise ValueError(f"{name} expects {what} as a tuple of {n} entries, received {got}")


def stack(*layers: Seq, dropout: float = 0.0) -> Seq:
    """Layers one on top of the other, with dropout between them (not after the last).

    Params and carries are tuples with one entry per layer. ``lengths`` and ``resets`` are
    passed to every layer; ``key`` feeds the dropout and each layer's own stochastic parts.
    All layers must share the time layout (``time_major``).

    Args:
      *layers: the :class:`Seq` layers, bottom first.
      dropout: rate of the dropout on each layer's outputs except the last's, as
        ``torch.nn.LSTM``'s ``dropout``; active only when ``apply`` gets a ``key``.
    """
    if not layers:
        raise ValueError("stack needs at least one layer")
    for layer in layers:
        if not isinstance(layer, Seq):
            raise TypeError(f"stack expects seqjax Seq layers, received {type(layer).__name__}")
    if not 0.0 <= dropout < 1.0:
        raise ValueError(f"dropout must lie in [0, 1), received {dropout!r}")
    n = len(layers)

    def init(key: PRNGKey, input_size: int) -> tuple:
        params, size = [], input_size
        for layer, k in zip(layers, jax.random.split(key, n)):
            p = layer.init(k, size)
            params.append(p)
            size = output_size(layer, p, size)
        return tuple(params)

    def initial_carry(params: tuple, batch_shape: Shape) -> tuple:
        _check_parts("stack", params, n, "params")
        return tuple(layer.initial_carry(p, batch_shape) for layer, p in zip(layers, params))

    def apply(
        params: tuple,
        xs: ArrayLike,
        carry: tuple | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[tuple, Array]:
        _check_parts("stack", params, n, "params")
        xs = jnp.asarray(xs)
        if xs.ndim:
            check_params(init, params, xs.shape[-1], inputs=("xs", xs.shape))
        if carry is None:
            carry = (None,) * n
        _check_parts("stack", carry, n, "carry")
        keys = _split(key, 2 * n)
        carries = []
        for i, (layer, p, c) in enumerate(zip(layers, params, carry)):
            c, xs = layer.apply(p, xs, c, lengths=lengths, resets=resets, key=keys[2 * i])
            carries.append(c)
            if i < n - 1:
                xs = _apply_dropout(keys[2 * i + 1], xs, dropout)
        return tuple(carries), xs

    return Seq(init, initial_carry, apply)


_MERGES: dict[str, Callable[[Array, Array], Array]] = {
    "concat": lambda a, b: jnp.concatenate([a, b], axis=-1),
    "sum": jnp.add,
    "mean": lambda a, b: (a + b) / 2,
}


def bidirectional(forward: Seq, backward: Seq | None = None, *, merge: str = "concat") -> Seq:
    """A forward and a backward layer over the same inputs, outputs merged per step.

    With ``lengths`` the backward layer reverses each sequence within its own length, so
    padded batches give the same result as each sequence alone. Params and carries are
    ``(forward, backward)`` tuples.

    Args:
      forward: a :class:`Seq`; when ``backward`` is ``None`` it must be a layer made by
        :func:`~seqjax.recurrent`, and the backward layer is the same layer run the other
        way (with its own parameters).
      backward: the backward :class:`Seq`, or ``None``.
      merge: ``"concat"`` (features ``[fwd, bwd]``, as PyTorch), ``"sum"`` or ``"mean"``.
    """
    if merge not in _MERGES:
        raise ValueError(f"merge must be one of {sorted(_MERGES)}, received {merge!r}")
    if backward is None:
        backward = reversed_layer(forward)
        if backward is None:
            raise TypeError(
                "bidirectional(forward) derives the backward layer only from a "
                "seqjax.recurrent layer; pass backward= explicitly for other Seqs"
            )
    parts = (forward, backward)
    combine = _MERGES[merge]

    def init(key: PRNGKey, input_size: int) -> tuple:
        k_f, k_b = jax.random.split(key)
        return forward.init(k_f, input_size), backward.init(k_b, input_size)

    def initial_carry(params: tuple, batch_shape: Shape) -> tuple:
        _check_parts("bidirectional", params, 2, "params")
        return tuple(s.initial_carry(p, batch_shape) for s, p in zip(parts, params))

    def apply(
        params: tuple,
        xs: ArrayLike,
        carry: tuple | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[tuple, Array]:
        _check_parts("bidirectional", params, 2, "params")
        xs = jnp.asarray(xs)
        if xs.ndim:
            check_params(init, params, xs.shape[-1], inputs=("xs", xs.shape))
        if carry is None:
            carry = (None, None)
        _check_parts("bidirectional", carry, 2, "carry")
        k_f, k_b = _split(key, 2)
        c_f, ys_f = forward.apply(params[0], xs, carry[0], lengths=lengths, resets=resets, key=k_f)
        c_b, ys_b = backward.apply(params[1], xs, carry[1], lengths=lengths, resets=resets, key=k_b)
        return (c_f, c_b), combine(ys_f, ys_b)

    return Seq(init, initial_carry, apply)
