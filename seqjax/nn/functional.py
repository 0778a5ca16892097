r"""Pure helpers behind the :mod:`seqjax.nn` modules: pooling, embeddings, dense maps, bridges.

These functions import only jax; the modules in :mod:`seqjax.nn` hold parameters and call
them, so their math can be tested (and reused under :func:`jax.lax.scan`) without Flax.
"""

from __future__ import annotations

import itertools
import math
from typing import Any

import jax
import jax.numpy as jnp

from seqjax._util import default_init, dot, length_mask
from seqjax.typing import Array, ArrayLike, Carry, Params, PRNGKey

__all__ = [
    "bridge",
    "bridge_init",
    "dense",
    "dense_init",
    "embed",
    "embed_init",
    "last_valid",
    "masked_max",
    "masked_mean",
    "pool",
]


def _valid(lengths: ArrayLike | None, t: int, batch_shape: tuple) -> Array:
    """``bool[*b, t]`` validity of each step (all valid without lengths)."""
    if lengths is None:
        return jnp.ones((*batch_shape, t), jnp.bool_)
    lengths = jnp.asarray(lengths)
    if lengths.shape != batch_shape:
        raise ValueError(
            f"lengths must have the batch shape {batch_shape}, received shape {lengths.shape}"
        )
    return length_mask(lengths, t)


def last_valid(ys: ArrayLike, lengths: ArrayLike | None = None) -> Array:
    """The output at each sequence's last valid step.

    Args:
      ys: ``[*b, t, h]`` per-step outputs.
      lengths: ``int[*b]`` valid lengths (``None``: all ``t``). A length of zero gives zeros.

    Returns:
      ``[*b, h]``.
    """
    ys = jnp.asarray(ys)
    t = ys.shape[-2]
    if t == 0:  # no steps: every sequence is empty
        _valid(lengths, t, ys.shape[:-2])
        return jnp.zeros(ys.shape[:-2] + ys.shape[-1:], ys.dtype)
    if lengths is None:
        return ys[..., -1, :]
    lengths = jnp.asarray(lengths)
    _valid(lengths, t, ys.shape[:-2])
    idx = jnp.clip(lengths - 1, 0, max(t - 1, 0))[..., None, None]
    last = jnp.take_along_axis(ys, jnp.broadcast_to(idx, (*ys.shape[:-2], 1, ys.shape[-1])), -2)
    return jnp.where((lengths > 0)[..., None], last[..., 0, :], jnp.zeros_like(last[..., 0, :]))


def masked_mean(ys: ArrayLike, lengths: ArrayLike | None = None) -> Array:
    r"""Mean over the valid steps, :math:`\frac{1}{L}\sum_{t < L} y_t` (zeros when ``L = 0``).

    Args:
      ys: ``[*b, t, h]``.
      lengths: ``int[*b]`` (``None``: all ``t``).

    Returns:
      ``[*b, h]``.
    """
    ys = jnp.asarray(ys)
    valid = _valid(lengths, ys.shape[-2], ys.shape[:-2])[..., None]
    total = jnp.sum(jnp.where(valid, ys, 0), axis=-2)
    count = jnp.maximum(jnp.sum(valid, axis=-2), 1).astype(total.dtype)
    return total / count


def masked_max(ys: ArrayLike, lengths: ArrayLike | None = None) -> Array:
    """Maximum over the valid steps (zeros when a sequence is empty).

    Args:
      ys: ``[*b, t, h]``.
      lengths: ``int[*b]`` (``None``: all ``t``).

    Returns:
      ``[*b, h]``.
    """
    ys = jnp.asarray(ys)
    valid = _valid(lengths, ys.shape[-2], ys.shape[:-2])[..., None]
    out = jnp.max(jnp.where(valid, ys, -jnp.inf), axis=-2, initial=-jnp.inf)
    return jnp.where(jnp.any(valid, axis=-2), out, jnp.zeros_like(out))


_POOLS = {"last": last_valid, "mean": masked_mean, "max": masked_max}


def pool(kind: str, ys: ArrayLike, lengths: ArrayLike | None = None) -> Array:
    """``last_valid``, ``masked_mean`` or ``masked_max`` by name (``"last"``, ``"mean"``,
    ``"max"``); ``ys: [*b, t, h] -> [*b, h]``."""
    if kind not in _POOLS:
        raise ValueError(f"pooling must be one of {sorted(_POOLS)}, received {kind!r}")
    return _POOLS[kind](ys, lengths)


def embed(table: Array, tokens: ArrayLike) -> Array:
    """Rows of ``table: [v, e]`` for ``tokens: int[...]`` -> ``[..., e]``."""
    tokens = jnp.asarray(tokens)
    if not jnp.issubdtype(tokens.dtype, jnp.integer):
        raise TypeError(f"tokens must be integers, received dtype {tokens.dtype}")
    return jnp.take(table, tokens, axis=0)


def dense_init(key: PRNGKey, in_size: int, out_size: int, dtype: Any = jnp.float32) -> Params:
    """``{"w": [in, out], "b": [out]}``, LeCun-uniform kernel and zero bias."""
    return {
        "w": default_init()(key, (in_size, out_size), dtype),
        "b": jnp.zeros((out_size,), dtype),
    }


def dense(params: Params, x: ArrayLike) -> Array:
    """``x @ w + b``; ``x: [..., in] -> [..., out]``, accumulated in at least float32."""
    y = dot(x, params["w"])
    return y + params["b"].astype(y.dtype)


def _sizes(template: Carry) -> list[int]:
    sizes = []
    for leaf in jax.tree.leaves(template):
        if len(leaf.shape) != 1:
            raise ValueError(
                "a bridge needs carries whose leaves are vectors per example ([*b, n]); "
                f"received a leaf of unbatched shape {leaf.shape}"
            )
        sizes.append(_width(leaf))
    return sizes


def _complex(leaf: Any) -> bool:
    return jnp.issubdtype(leaf.dtype, jnp.complexfloating)


def _width(leaf: Any) -> int:
    """Features of a carry leaf ``[*b, n]``; a complex one (the LRU's state) counts its
    real and imaginary parts."""
    return leaf.shape[-1] * (2 if _complex(leaf) else 1)


def bridge_init(key: PRNGKey, source: Carry, target: Carry) -> Params:
    """Params of :func:`bridge` between two unbatched carry templates (arrays or shapes)."""
    return dense_init(key, sum(_sizes(source)), sum(_sizes(target)))


def bridge(params: Params, carry: Carry, target: Carry) -> Carry:
    r"""Maps an encoder's final carry to a decoder's initial carry.

    .. math::
        s_0 = \tanh(W [\text{leaves of } c^{\text{enc}}] + b)

    split into the leaves of the decoder's carry (Bahdanau et al. 2015, appendix A.2.2,
    initialise the decoder with :math:`\tanh(W_s \overleftarrow{h}_1)`; here all leaves of
    every encoder layer and direction feed it, so any encoder and decoder cells can meet).

    Args:
      params: from :func:`bridge_init`.
      carry: the encoder's carry, leaves ``[*b, n_i]``.
      target: the decoder's carry structure, leaves ``[n_j]`` or ``[*b, n_j]`` (only the
        structure and the last axes are used).

    Returns:
      A carry with ``target``'s structure and leaves ``[*b, n_j]``.
    """
    leaves = []
    for x in jax.tree.leaves(carry):
        x = jnp.asarray(x)
        leaves += [jnp.real(x), jnp.imag(x)] if _complex(x) else [x]
    z = jnp.tanh(dense(params, jnp.concatenate(leaves, axis=-1)))
    flat, treedef = jax.tree.flatten(target)
    splits = list(itertools.accumulate(_width(x) for x in flat))[:-1]
    parts = jnp.split(z, splits, axis=-1)

    def cast(p, x):
        if _complex(x):  # real and imaginary halves
            n = p.shape[-1] // 2
            return jax.lax.complex(p[..., :n], p[..., n:]).astype(x.dtype)
        return p.astype(x.dtype)

    return jax.tree.unflatten(treedef, [cast(p, x) for p, x in zip(parts, flat, strict=True)])


def embed_init(key: PRNGKey, vocab_size: int, embed_size: int, dtype: Any = jnp.float32) -> Array:
    """``[v, e]`` table drawn from :math:`\\mathcal{N}(0, 1/e)` (tied logits start small)."""
    return jax.random.normal(key, (vocab_size, embed_size), dtype) / math.sqrt(embed_size)
