r"""Attention over an encoder memory: scores, masks, contexts, and an attention decoder cell.

An :class:`Attention` is a ``NamedTuple`` of pure functions built by a lowercase constructor
that closes over hyperparameters, as a :class:`~seqjax.Cell` is:

.. code-block:: python

    att = seqjax.bahdanau(64)  # or luong_dot(), luong_general(), luong_concat(64)
    params = att.init(key, query_size, memory_size)
    memory = seqjax.attention_memory(att, params, values, lengths=src_lengths)  # once per source
    context, weights = seqjax.attend(att, params, query, memory)               # once per step

Like a cell's ``project``, ``keys`` is the *time-parallel* part: the projection of every
memory position, computed once per source sequence; ``score`` compares one query with all
keys. Scores of padded positions are masked before the softmax, so their weights are exactly
zero and the weights of every row sum to one (a row with no valid position gets all-zero
weights and a zero context instead of NaNs).

**Broadcasting.** The batch shape of a :class:`Memory` must be a prefix of the query's batch
shape; extra trailing query axes broadcast. A memory of batch ``[b]`` thus serves queries of
batch ``[b, k]`` (``k`` beams in beam search) without being copied.

:func:`attention_decoder` turns any cell into a Luong et al. (2015) attention decoder with
input feeding; the result is itself a :class:`~seqjax.Cell`, so :func:`seqjax.recurrent` runs
it over the target steps (teacher forcing) and :mod:`seqjax.decoding` runs it step by step.

References:
  Bahdanau, Cho and Bengio (2015), *Neural machine translation by jointly learning to align
  and translate*, ICLR. Luong, Pham and Manning (2015), *Effective approaches to
  attention-based neural machine translation*, EMNLP.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax._util import cell_output_size, default_init, dot
from seqjax._util import length_mask as _length_mask
from seqjax.cells import Cell
from seqjax.typing import Array, ArrayLike, Carry, Initializer, Params, PRNGKey, Shape

__all__ = [
    "Attention",
    "AttentionOutput",
    "AttentionState",
    "Memory",
    "attend",
    "attention_decoder",
    "attention_memory",
    "bahdanau",
    "bind_memory",
    "length_mask",
    "luong_concat",
    "luong_dot",
    "luong_general",
    "masked_softmax",
]


class Attention(NamedTuple):
    """An attention score function as pure functions.

    Attributes:
      init: ``init(key, query_size, memory_size) -> params``.
      keys: ``keys(params, values: [*b, s, m]) -> keys: [*b, s, k]``, the time-parallel
        projection of every memory position, computed once per source sequence.
      score: ``score(params, query: [*b, q], keys: [*b, s, k]) -> scores: [*b, s]``
        (``query`` and ``keys`` batch shapes broadcast).
    """

    init: Callable[[PRNGKey, int, int], Params]
    keys: Callable[[Params, Array], Array]
    score: Callable[[Params, Array, Array], Array]


class Memory(NamedTuple):
    """What a decoder attends over, prepared once per source sequence."""

    values: Array  # [*b, s, m] encoder outputs (the contexts are their weighted sums)
    keys: Array  # [*b, s, k] attention.keys(params, values)
    mask: Array | None  # bool [*b, s], True at valid (unpadded) positions; None: all valid


class AttentionState(NamedTuple):
    """Carry of :func:`attention_decoder`."""

    cell: Carry  # the inner cell's carry
    feed: Array  # [*b, a] previous attentional vector \tilde h_{t-1} (zeros at the start)


class AttentionOutput(NamedTuple):
    """Per-step output of :func:`attention_decoder`."""

    outputs: Array  # [*b, a] attentional vector \tilde h_t (feed it to the output layer)
    weights: Array  # [*b, s] attention weights a_t over the memory positions


# --------------------------------------------------------------------------- helpers


def _check_size(name: str, value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive int, received {value!r}")
    return value


def length_mask(lengths: ArrayLike, size: int) -> Array:
    """Validity mask of right-padded sequences.

    Args:
      lengths: ``int[*b]`` number of valid positions of each sequence.
      size: the padded length ``s``.

    Returns:
      ``bool[*b, s]``, True at positions ``< lengths``.
    """
    lengths = jnp.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be an integer array, received dtype {lengths.dtype}")
    return _length_mask(lengths, size)


def masked_softmax(scores: ArrayLike, mask: ArrayLike | None = None) -> Array:
    r"""Softmax over the last axis that gives exactly zero weight to masked positions.

    .. math::
        a_s = \frac{[m_s] \exp(e_s)}{\sum_{s'} [m_{s'}] \exp(e_{s'})}

    Computed in at least float32. A row whose positions are all masked gets all-zero weights
    (not NaNs), so empty sequences give a zero context.

    Args:
      scores: ``[*b, s]`` unnormalised scores :math:`e`.
      mask: ``bool[*b, s]`` (broadcastable), True at valid positions; ``None``: all valid.

    Returns:
      ``[*b, s]`` weights.
    """
    scores = jnp.asarray(scores)
    scores = scores.astype(jnp.promote_types(scores.dtype, jnp.float32))
    if mask is None:
        return jax.nn.softmax(scores, axis=-1)
    mask = jnp.asarray(mask, jnp.bool_)
    scores = jnp.where(mask, scores, jnp.finfo(scores.dtype).min)
    weights = jax.nn.softmax(scores, axis=-1)
    return jnp.where(mask, weights, jnp.zeros_like(weights))


def _align(memory: Memory, query: Array) -> Memory:
    """``memory`` with singleton axes for the query's extra trailing batch axes."""
    mb = memory.keys.shape[:-2]
    qb = query.shape[:-1]
    if tuple(qb[: len(mb)]) != tuple(mb):
        raise ValueError(
            "the memory's batch shape must be a prefix of the query's batch shape: "
            f"memory batch {tuple(mb)}, query batch {tuple(qb)}"
        )
    extra = len(qb) - len(mb)
    if extra == 0:
        return memory

    def expand(x: Array | None) -> Array | None:
        if x is None:
            return None
        return x.reshape(x.shape[: len(mb)] + (1,) * extra + x.shape[len(mb) :])

    values, keys = expand(memory.values), expand(memory.keys)
    assert values is not None and keys is not None  # a Memory always holds both
    return Memory(values, keys, expand(memory.mask))


# --------------------------------------------------------------------------- scores


def _additive(units: int, use_bias: bool, kernel_init: Initializer | None) -> Attention:
    _check_size("units", units)
    kernel_init = kernel_init or default_init()

    def init(key: PRNGKey, query_size: int, memory_size: int) -> Params:
        k_q, k_k, k_v = jax.random.split(key, 3)
        params = {
            "w_q": kernel_init(k_q, (_check_size("query_size", query_size), units), jnp.float32),
            "w_k": kernel_init(k_k, (_check_size("memory_size", memory_size), units), jnp.float32),
            "v": kernel_init(k_v, (units, 1), jnp.float32)[:, 0],
        }
        if use_bias:
            params["b"] = jnp.zeros((units,), jnp.float32)
        return params

    def keys(params: Params, values: Array) -> Array:
        k = dot(values, params["w_k"])
        return k + params["b"].astype(k.dtype) if "b" in params else k

    def score(params: Params, query: Array, keys: Array) -> Array:
        q = dot(query, params["w_q"])[..., None, :]  # [*b, 1, a]
        return dot(jnp.tanh(keys + q), params["v"][:, None])[..., 0]

    return Attention(init, keys, score)


def bahdanau(
    units: int, *, use_bias: bool = True, kernel_init: Initializer | None = None
) -> Attention:
    r"""Additive attention (Bahdanau et al. 2015).

    .. math::
        e_{s} = v^\top \tanh(W_q q + W_k \bar h_s + b)

    Params: ``w_q: [q, units]``, ``w_k: [m, units]``, ``v: [units]``, ``b: [units]``
    (absent with ``use_bias=False``). Keys: :math:`W_k \bar h_s + b`, ``[*b, s, units]``.

    Args:
      units: size of the hidden layer of the score.
      use_bias: whether the score has the bias ``b``.
      kernel_init: initialiser of ``w_q``, ``w_k`` and ``v`` (default LeCun uniform).
    """
    return _additive(units, use_bias, kernel_init)


def luong_concat(units: int, *, kernel_init: Initializer | None = None) -> Attention:
    r"""Luong et al. (2015) *concat* score.

    .. math::
        e_{s} = v_a^\top \tanh(W_a [h_t; \bar h_s]) = v_a^\top \tanh(W_q h_t + W_k \bar h_s)

    The same form as :func:`bahdanau` without a bias; :math:`W_a = [W_q, W_k]` is stored in
    its two blocks, ``w_q: [q, units]`` and ``w_k: [m, units]``, with ``v: [units]``.
    """
    return _additive(units, False, kernel_init)


def luong_dot(*, scaled: bool = False) -> Attention:
    r"""Luong et al. (2015) *dot* score; parameter-free.

    .. math::
        e_{s} = h_t^\top \bar h_s \quad (\text{divided by } \sqrt{m} \text{ when scaled,
        as in Vaswani et al. 2017})

    Needs ``query_size == memory_size``. Params: ``{}``. Keys: the values themselves.
    """

    def init(key: PRNGKey, query_size: int, memory_size: int) -> Params:
        del key
        if query_size != memory_size:
            raise ValueError(
                "luong_dot needs the query and memory sizes to match, received "
                f"query_size={query_size}, memory_size={memory_size}; use luong_general"
            )
        return {}

    def keys(params: Params, values: Array) -> Array:
        return values

    def score(params: Params, query: Array, keys: Array) -> Array:
        e = jnp.matmul(keys, query[..., :, None].astype(keys.dtype))[..., 0]
        return e / jnp.asarray(math.sqrt(keys.shape[-1]), e.dtype) if scaled else e

    return Attention(init, keys, score)


def luong_general(*, kernel_init: Initializer | None = None) -> Attention:
    r"""Luong et al. (2015) *general* (bilinear) score.

    .. math::
        e_{s} = h_t^\top W_a \bar h_s

    Params: ``w: [m, q]`` (:math:`W_a^\top`). Keys: :math:`W_a \bar h_s`, ``[*b, s, q]``, so
    each step costs one dot product per position.
    """
    kernel_init = kernel_init or default_init()

    def init(key: PRNGKey, query_size: int, memory_size: int) -> Params:
        shape = (_check_size("memory_size", memory_size), _check_size("query_size", query_size))
        return {"w": kernel_init(key, shape, jnp.float32)}

    def keys(params: Params, values: Array) -> Array:
        return dot(values, params["w"])

    def score(params: Params, query: Array, keys: Array) -> Array:
        return jnp.matmul(keys, query[..., :, None].astype(keys.dtype))[..., 0]

    return Attention(init, keys, score)


# --------------------------------------------------------------------------- attend


def attention_memory(
    attention: Attention,
    params: Params,
    values: ArrayLike,
    *,
    lengths: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Memory:
    """Prepares a memory once per source sequence (its keys are time-parallel).

    Args:
      attention: the :class:`Attention`.
      params: its params.
      values: ``[*b, s, m]`` encoder outputs.
      lengths: ``int[*b]`` valid lengths of right-padded sources; or give ``mask``.
      mask: ``bool[*b, s]``, True at valid positions.

    Returns:
      A :class:`Memory`.
    """
    values = jnp.asarray(values)
    if values.ndim < 2:
        raise ValueError(f"values must have shape [*b, s, m], received shape {values.shape}")
    if lengths is not None and mask is not None:
        raise ValueError("give lengths or mask, not both")
    if lengths is not None:
        lengths = jnp.asarray(lengths)
        if lengths.shape != values.shape[:-2]:
            raise ValueError(
                f"lengths must have the batch shape of values, {values.shape[:-2]}, "
                f"received shape {lengths.shape}"
            )
        mask = length_mask(lengths, values.shape[-2])
    elif mask is not None:
        mask = jnp.asarray(mask, jnp.bool_)
        if mask.shape != values.shape[:-1]:
            raise ValueError(
                f"mask must have shape {values.shape[:-1]} (values without the feature axis), "
                f"received shape {mask.shape}"
            )
    return Memory(values, attention.keys(params, values), mask)


def attend(
    attention: Attention, params: Params, query: ArrayLike, memory: Memory
) -> tuple[Array, Array]:
    r"""Attention weights and context for one query.

    .. math::
        a_s = \operatorname{softmax}_s(e_s) \text{ over valid } s, \qquad
        c = \sum_s a_s \bar h_s

    Args:
      attention: the :class:`Attention`.
      params: its params.
      query: ``[*b, q]`` (the memory's batch shape must be a prefix of ``*b``).
      memory: a :class:`Memory` from :func:`attention_memory`.

    Returns:
      ``(context: [*b, m], weights: [*b, s])``.
    """
    query = jnp.asarray(query)
    memory = _align(memory, query)
    weights = masked_softmax(attention.score(params, query, memory.keys), memory.mask)
    values = memory.values
    context = jnp.matmul(weights[..., None, :].astype(values.dtype), values)[..., 0, :]
    return context, weights


# --------------------------------------------------------------------------- decoder cell


def bind_memory(
    attention: Attention,
    params: Params,
    values: ArrayLike,
    *,
    lengths: ArrayLike | None = None,
    mask: ArrayLike | None = None,
) -> Params:
    """Attention-decoder params with an encoder memory attached (under ``"memory"``).

    Args:
      attention: the :class:`Attention` the decoder was built with.
      params: params of an :func:`attention_decoder` (from its ``init``).
      values: ``[*b, s, m]`` encoder outputs.
      lengths: ``int[*b]`` valid source lengths, or give ``mask: bool[*b, s]``.
      mask: ``bool[*b, s]``, True at valid positions.

    Returns:
      ``{**params, "memory": Memory}``: pass these to the decoder cell's functions. Bind
      inside the function you differentiate (the memory's mask is boolean), so gradients
      flow to ``params`` and to the encoder through ``values``.
    """
    memory = attention_memory(attention, params["attention"], values, lengths=lengths, mask=mask)
    return {**params, "memory": memory}


def attention_decoder(
    cell: Cell,
    attention: Attention,
    *,
    memory_size: int,
    attention_size: int | None = None,
    input_feeding: bool = True,
    return_weights: bool = True,
    kernel_init: Initializer | None = None,
) -> Cell:
    r"""A cell with Luong et al. (2015) global attention and input feeding; itself a Cell.

    At each step, with target input :math:`x_t` and memory :math:`\bar h_{1..s}`:

    .. math::
        \begin{aligned}
        (c^{\text{cell}}_t, h_t) &= \text{cell}(c^{\text{cell}}_{t-1},
                                    [x_t; \tilde h_{t-1}]) \\
        a_{t} &= \operatorname{softmax}_s(\operatorname{score}(h_t, \bar h_s))
                 \text{ over valid } s \\
        c_t &= \textstyle\sum_s a_{ts} \bar h_s \\
        \tilde h_t &= \tanh(W_c [c_t; h_t]), \qquad y_t = (\tilde h_t, a_t)
        \end{aligned}

    Input feeding (Luong et al. 2015, section 3.3) concatenates the previous attentional
    vector :math:`\tilde h_{t-1}` to the input, so the cell knows its past alignments; with
    ``input_feeding=False`` the cell sees :math:`x_t` alone. The output layer (vocabulary
    logits) is left to the caller, applied to :math:`\tilde h_t`.

    **Where the memory lives.** The encoder memory is data, not a learned parameter, but it
    is constant over the target steps, so it enters through the *params*:
    :func:`bind_memory` returns ``{**params, "memory": Memory(values, keys, mask)}``, with
    the keys projected once. Keeping it out of the carry keeps the carry small (beam search
    reorders carries at every step) and lets ``initial_carry`` and the sequence engine's
    checks work unchanged. The memory's batch shape must be a prefix of the carry's: a
    memory of batch ``[b]`` serves carries of batch ``[b, k]`` (beams) without copies.

    ``project`` is the identity (the cell's input includes :math:`\tilde h_{t-1}`, known only
    step by step), so the inner cell's input projection runs inside ``step``.

    Params: ``{"cell": ..., "attention": ..., "w_c": [m + p, a]}`` (``p`` the inner cell's
    output size, ``a`` the attention size), plus ``"memory"`` once bound. Carry:
    :class:`AttentionState`. Output: :class:`AttentionOutput` ``(outputs: [*b, a],
    weights: [*b, s])``, or ``outputs`` alone with ``return_weights=False``.

    Args:
      cell: the inner recurrent :class:`~seqjax.Cell`.
      attention: the score, e.g. :func:`luong_general` or :func:`bahdanau`; its query is the
        inner cell's output :math:`h_t`.
      memory_size: feature size ``m`` of the encoder outputs.
      attention_size: size ``a`` of :math:`\tilde h_t` (default: the inner cell's output
        size).
      input_feeding: feed :math:`\tilde h_{t-1}` to the cell's input.
      return_weights: output the attention weights with :math:`\tilde h_t`.
      kernel_init: initialiser of ``w_c`` (default LeCun uniform).
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"attention_decoder expects a seqjax Cell, received {type(cell).__name__}")
    if not isinstance(attention, Attention):
        raise TypeError(f"expected a seqjax Attention, received {type(attention).__name__}")
    _check_size("memory_size", memory_size)
    query_size = cell_output_size(cell)
    size = query_size if attention_size is None else _check_size("attention_size", attention_size)
    kernel_init = kernel_init or default_init()

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_cell, k_att, k_c = jax.random.split(key, 3)
        return {
            "cell": cell.init(k_cell, d + size if input_feeding else d),
            "attention": attention.init(k_att, query_size, memory_size),
            "w_c": kernel_init(k_c, (memory_size + query_size, size), jnp.float32),
        }

    def initial_carry(params: Params, batch_shape: Shape) -> AttentionState:
        dtype = jnp.promote_types(params["w_c"].dtype, jnp.float32)
        feed = jnp.zeros((*tuple(batch_shape), size), dtype)
        return AttentionState(cell.initial_carry(params["cell"], batch_shape), feed)

    def project(params: Params, xs: Array) -> Array:
        return jnp.asarray(xs)

    def step(params: Params, carry: AttentionState, x: Array) -> tuple[AttentionState, Any]:
        if "memory" not in params:
            raise ValueError(
                "the attention decoder has no memory: attach the encoder outputs with "
                "seqjax.bind_memory(attention, params, values, lengths=...) first"
            )
        inp = jnp.concatenate([x, carry.feed.astype(x.dtype)], axis=-1) if input_feeding else x
        cell_carry, h = cell.apply(params["cell"], carry.cell, inp)
        context, weights = attend(attention, params["attention"], h, params["memory"])
        context = jnp.broadcast_to(context, h.shape[:-1] + context.shape[-1:])
        combined = jnp.concatenate([context.astype(h.dtype), h], axis=-1)
        feed = jnp.tanh(dot(combined, params["w_c"])).astype(carry.feed.dtype)
        out = AttentionOutput(feed, weights) if return_weights else feed
        return AttentionState(cell_carry, feed), out

    return Cell(init, initial_carry, project, step)
