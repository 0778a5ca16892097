"""Flax linen layers over seqjax's pure functions: a recurrent layer and an attention layer."""

from __future__ import annotations

import jax
import jax.numpy as jnp
from flax import linen as nn

from seqjax._util import check_params
from seqjax.attention import Attention as AttentionFn
from seqjax.attention import (
    attend,
    attention_memory,
    bahdanau,
    luong_concat,
    luong_dot,
    luong_general,
)
from seqjax.combinators import dropout as apply_dropout
from seqjax.scan import Seq
from seqjax.typing import Array, ArrayLike, Carry

__all__ = ["Attention", "Recurrent", "make_attention"]


def _checked_param(
    module: nn.Module, name: str, init, input_size: int, inputs: tuple | None = None
):
    """``module.param(name, init, input_size)``, checking given params against ``init`` first.

    Flax's own check names neither the leaf nor the module's inputs; this one raises
    ``ValueError`` naming the param's path, each leaf and the expected and received shapes
    (or the inputs' feature size, with ``inputs=(name, shape)``).
    """
    if module.has_variable("params", name):
        try:
            check_params(init, module.get_variable("params", name), input_size, inputs=inputs)
        except ValueError as e:
            scope = module.scope
            path = ("" if scope is None else scope.path_text.rstrip("/")) + "/" + name
            raise ValueError(f"{e} (params at {path})") from None
    return module.param(name, init, input_size)


def _rng(module: nn.Module, deterministic: bool, n: int) -> tuple:
    """``n`` keys from the ``dropout`` stream, or ``None``s when deterministic."""
    if deterministic:
        return (None,) * n
    return tuple(jax.random.split(module.make_rng("dropout"), n))


class Recurrent(nn.Module):
    """Any seqjax :class:`~seqjax.Seq` (a layer, a stack, a bidirectional pair) as a layer.

    The params live under ``"rnn"`` exactly as ``seq.init(key, d)`` makes them, and
    ``__call__`` is ``seq.apply``: the same ``lengths``, ``resets`` and initial carry
    semantics, outputs zero past each length.

    Attributes:
      seq: the :class:`~seqjax.Seq` to run (batch-first or time-major, as built).
      dropout: rate of the (inverted) dropout on the outputs.
      return_carry: return ``(carry, ys)`` instead of ``ys``.
      learn_initial_carry: learn the initial carry (param ``"initial_carry"``, one per
        layer, shared by the batch, zeros at initialisation) instead of starting from
        zeros; a carry given to ``__call__`` overrides it, and ``resets`` restart from it.
    """

    seq: Seq
    dropout: float = 0.0
    return_carry: bool = False
    learn_initial_carry: bool = False

    @nn.compact
    def __call__(
        self,
        xs: ArrayLike,
        carry: Carry | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        deterministic: bool = True,
    ):
        """Runs the sequence.

        Args:
          xs: ``[*b, t, d]`` (``[t, *b, d]`` for a time-major ``seq``).
          carry: initial carry, leaves ``[*b, ...]``; ``None`` for the default.
          lengths: ``int[*b]`` valid lengths of right-padded sequences.
          resets: ``bool[*b, t]`` segment starts of packed sequences.
          deterministic: no dropout; otherwise keys come from the ``"dropout"`` rng stream
            (also given to ``seq`` for its own dropout, e.g. a :func:`~seqjax.stack`'s).

        Returns:
          ``ys: [*b, t, p]``, or ``(carry, ys)`` with ``return_carry``.
        """
        xs = jnp.asarray(xs)
        params = _checked_param(self, "rnn", self.seq.init, xs.shape[-1], ("xs", xs.shape))
        if carry is None and self.learn_initial_carry:
            c0 = self.param("initial_carry", lambda key: self.seq.initial_carry(params, ()))
            shapes = jax.eval_shape(lambda p, x: self.seq.apply(p, x)[0], params, xs)
            carry = jax.tree.map(lambda c, s: jnp.broadcast_to(c, s.shape), c0, shapes)
        k_seq, k_out = _rng(self, deterministic, 2)
        carry, ys = self.seq.apply(params, xs, carry, lengths=lengths, resets=resets, key=k_seq)
        ys = apply_dropout(k_out, ys, self.dropout)
        return (carry, ys) if self.return_carry else ys


def make_attention(kind: str, units: int | None = None) -> AttentionFn:
    """A pure :class:`~seqjax.Attention` by name.

    Args:
      kind: ``"bahdanau"``, ``"concat"`` (Luong), ``"dot"``, ``"scaled_dot"`` or
        ``"general"`` (Luong).
      units: hidden size of the additive scores (``"bahdanau"``, ``"concat"``).
    """
    if kind in ("bahdanau", "concat"):
        if units is None:
            raise ValueError(f"{kind} attention needs units")
        return bahdanau(units) if kind == "bahdanau" else luong_concat(units)
    if kind in ("dot", "scaled_dot"):
        return luong_dot(scaled=kind == "scaled_dot")
    if kind == "general":
        return luong_general()
    raise ValueError(
        "attention must be one of 'bahdanau', 'concat', 'dot', 'scaled_dot', 'general', "
        f"received {kind!r}"
    )


class Attention(nn.Module):
    """Attention of queries over a memory, as a layer (params under ``"attention"``).

    Attributes:
      kind: the score, see :func:`make_attention`.
      units: hidden size of additive scores (default: the query size).
    """

    kind: str = "general"
    units: int | None = None

    @nn.compact
    def __call__(
        self,
        query: ArrayLike,
        values: ArrayLike,
        *,
        lengths: ArrayLike | None = None,
        mask: ArrayLike | None = None,
    ) -> tuple[Array, Array]:
        """Contexts and weights.

        Args:
          query: ``[*b, q]`` or ``[*b, n, q]`` for ``n`` queries per memory.
          values: ``[*b, s, m]`` memory.
          lengths: ``int[*b]`` valid memory lengths, or ``mask: bool[*b, s]``.
          mask: ``bool[*b, s]``.

        Returns:
          ``(context: [*b, (n,) m], weights: [*b, (n,) s])``; weights are zero at masked
          positions and sum to one over the valid ones.
        """
        query, values = jnp.asarray(query), jnp.asarray(values)
        att = make_attention(self.kind, self.units or query.shape[-1])
        params = self.param("attention", att.init, query.shape[-1], values.shape[-1])
        memory = attention_memory(att, params, values, lengths=lengths, mask=mask)
        return attend(att, params, query, memory)
