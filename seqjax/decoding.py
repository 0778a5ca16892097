r"""Autoregressive decoding over carry pytrees: greedy, sampling, beam search.

Every function here is pure and jit-able: it runs a fixed number of steps
(``max_length``, a static int) in one :func:`jax.lax.scan`, and handles the end of each
sequence with masks. The model enters as a *step function*

.. code-block:: python

    carry, logits, aux = step_fn(carry, tokens)   # tokens: int[*b] -> logits: [*b, v]

which feeds the previous tokens and returns the next-token logits; ``carry`` is any pytree
whose leaves have the batch axes first (``[*b, ...]``), and ``aux`` is any pytree of
per-step extras to record (attention weights ``[*b, s]`` for an attention decoder, or
``None``). A step function that closes over bound params (for instance an attention decoder
whose memory has batch ``[b]``) also serves the beam search, whose carries have batch
``[b, k]``.

After a sequence emits ``eos_id`` its tokens are ``pad_id``, its aux zeros, and its score no
longer changes. The end-of-sequence token counts in ``lengths``; a sequence that never emits
it has length ``max_length``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax.typing import Array, ArrayLike, Carry, PRNGKey

__all__ = ["STRATEGIES", "Decoded", "beam_search", "decode", "greedy", "length_penalty", "sample"]

StepFn = Callable[[Carry, Array], tuple[Carry, Array, Any]]


class Decoded(NamedTuple):
    """Result of a decoding; beam search adds a beam axis ``k`` after the batch axes."""

    tokens: Array  # int32 [*b, T] ([*b, k, T]); pad_id after the end of each sequence
    lengths: Array  # int32 [*b] ([*b, k]): tokens up to and including eos_id, else T
    log_probs: Array  # float32 [*b] ([*b, k]): sum of the model's log-probs of the tokens
    scores: Array  # float32 [*b] ([*b, k]): the ranking score (log_probs / length penalty)
    aux: Any  # the step's aux outputs stacked over time: leaves [*b, T, ...] ([*b, k, T, ...])


# --------------------------------------------------------------------------- helpers


def _check_max_length(max_length: Any) -> int:
    if isinstance(max_length, bool) or not isinstance(max_length, int) or max_length < 1:
        raise ValueError(f"max_length must be a positive int, received {max_length!r}")
    return max_length


def _check_start(start: ArrayLike) -> Array:
    start = jnp.asarray(start)
    if not jnp.issubdtype(start.dtype, jnp.integer):
        raise TypeError(f"start tokens must be integers, received dtype {start.dtype}")
    return start.astype(jnp.int32)


def _logits(logits: Array, batch_shape: tuple) -> Array:
    if logits.ndim != len(batch_shape) + 1 or logits.shape[:-1] != batch_shape:
        raise ValueError(
            f"step_fn must return logits of shape [*b, v] with b = {batch_shape}, "
            f"received shape {logits.shape}"
        )
    return logits.astype(jnp.promote_types(logits.dtype, jnp.float32))


def _mask_done(done: Array, tree: Any) -> Any:
    """Zeros every leaf ``[*b, ...]`` of ``tree`` where ``done: [*b]``."""

    def leaf(x):
        d = done.reshape(done.shape + (1,) * (x.ndim - done.ndim))
        return jnp.where(d, jnp.zeros_like(x), x)

    return jax.tree.map(leaf, tree)


def _time_to_axis(tree: Any, axis: int) -> Any:
    """Moves the leading (time) axis of every leaf to ``axis``."""
    return jax.tree.map(lambda x: jnp.moveaxis(x, 0, axis), tree)


def length_penalty(lengths: ArrayLike, alpha: float) -> Array:
    r"""GNMT length penalty (Wu et al. 2016, eq. 14).

    .. math::
        \mathrm{lp}(Y) = \left(\frac{5 + |Y|}{6}\right)^{\alpha}

    Beam search ranks hypotheses by :math:`\log P(Y) / \mathrm{lp}(Y)`; ``alpha = 0`` ranks
    by the log-probability alone, larger ``alpha`` favours longer outputs.

    Args:
      lengths: ``int[...]`` hypothesis lengths :math:`|Y|`.
      alpha: the exponent :math:`\alpha \ge 0`.

    Returns:
      ``float32[...]`` penalties.
    """
    lengths = jnp.asarray(lengths, jnp.float32)
    return ((5.0 + lengths) / 6.0) ** jnp.float32(alpha)


# --------------------------------------------------------------------------- greedy, sample


def _decode_loop(
    step_fn: StepFn,
    carry: Carry,
    start: Array,
    pick: Callable[[PRNGKey | None, Array], Array],
    keys: Array | None,
    max_length: int,
    eos_id: int | None,
    pad_id: int,
) -> Decoded:
    batch = start.shape

    def body(state, key_t):
        carry, tokens, done, lengths, log_probs = state
        carry, logits, aux = step_fn(carry, tokens)
        logits = _logits(logits, batch)
        new = pick(key_t, logits).astype(jnp.int32)
        logp = jnp.take_along_axis(jax.nn.log_softmax(logits), new[..., None], axis=-1)[..., 0]
        log_probs = log_probs + jnp.where(done, 0.0, logp)
        out = jnp.where(done, pad_id, new)
        lengths = lengths + (~done).astype(jnp.int32)
        aux = _mask_done(done, aux)
        if eos_id is not None:
            done = done | (new == eos_id)
        return (carry, out, done, lengths, log_probs), (out, aux)

    state = (
        carry,
        start,
        jnp.zeros(batch, jnp.bool_),
        jnp.zeros(batch, jnp.int32),
        jnp.zeros(batch, jnp.float32),
    )
    (_, _, _, lengths, log_probs), (tokens, aux) = jax.lax.scan(
        body, state, keys, length=max_length
    )
    nb = len(batch)
    return Decoded(_time_to_axis(tokens, nb), lengths, log_probs, log_probs, _time_to_axis(aux, nb))


def greedy(
    step_fn: StepFn,
    carry: Carry,
    start: ArrayLike,
    *,
    max_length: int,
    eos_id: int | None = None,
    pad_id: int = 0,
) -> Decoded:
    r"""Greedy decoding: :math:`y_t = \arg\max_v p(v \mid y_{<t})` at every step.

    Args:
      step_fn: ``step_fn(carry, tokens: int[*b]) -> (carry, logits: [*b, v], aux)``.
      carry: the initial carry, leaves ``[*b, ...]``.
      start: ``int[*b]`` first input tokens (beginning-of-sequence).
      max_length: number of steps ``T`` (static).
      eos_id: end-of-sequence token, or ``None`` to always run ``T`` steps.
      pad_id: token written after the end of a sequence.

    Returns:
      A :class:`Decoded` with ``tokens: [*b, T]``; ``scores`` equal ``log_probs``.
    """
    max_length = _check_max_length(max_length)

    def pick(key, logits):
        return jnp.argmax(logits, axis=-1)

    return _decode_loop(step_fn, carry, _check_start(start), pick, None, max_length, eos_id, pad_id)


def sample(
    step_fn: StepFn,
    carry: Carry,
    start: ArrayLike,
    key: PRNGKey,
    *,
    max_length: int,
    eos_id: int | None = None,
    pad_id: int = 0,
    temperature: float = 1.0,
    top_k: int | None = None,
) -> Decoded:
    r"""Ancestral sampling, with a temperature and optional top-k truncation (Fan et al. 2018).

    .. math::
        y_t \sim \operatorname{softmax}(z_t / \tau) \text{ restricted to the } k
        \text{ largest logits } z_t

    Args:
      step_fn: ``step_fn(carry, tokens: int[*b]) -> (carry, logits: [*b, v], aux)``.
      carry: the initial carry, leaves ``[*b, ...]``.
      start: ``int[*b]`` first input tokens.
      key: PRNG key.
      max_length: number of steps ``T`` (static).
      eos_id: end-of-sequence token, or ``None``.
      pad_id: token written after the end of a sequence.
      temperature: :math:`\tau > 0`; small values approach greedy decoding.
      top_k: sample among the ``top_k`` most likely tokens only (``None``: all).

    Returns:
      A :class:`Decoded` with ``tokens: [*b, T]``; ``log_probs`` are under the model's own
      distribution (temperature 1, no truncation).
    """
    max_length = _check_max_length(max_length)
    if not temperature > 0:
        raise ValueError(f"temperature must be positive, received {temperature!r}")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int) or top_k < 1):
        raise ValueError(f"top_k must be a positive int or None, received {top_k!r}")

    def pick(key_t, logits):
        z = logits / jnp.asarray(temperature, logits.dtype)
        if top_k is not None and top_k < z.shape[-1]:
            kth = jax.lax.top_k(z, top_k)[0][..., -1:]
            z = jnp.where(z < kth, -jnp.inf, z)
        return jax.random.categorical(key_t, z, axis=-1)

    keys = jax.random.split(key, max_length)
    return _decode_loop(step_fn, carry, _check_start(start), pick, keys, max_length, eos_id, pad_id)


# --------------------------------------------------------------------------- beam search


def beam_search(
    step_fn: StepFn,
    carry: Carry,
    start: ArrayLike,
    *,
    beam_size: int,
    max_length: int,
    eos_id: int | None = None,
    pad_id: int = 0,
    alpha: float = 0.0,
) -> Decoded:
    r"""Beam search with a length penalty, over carry pytrees, all beams batched.

    Keeps the ``k = beam_size`` best hypotheses, finished or not, ranked by
    :math:`\log P(Y) / \mathrm{lp}(Y)` (:func:`length_penalty`). At each step every live
    hypothesis is extended by every token, a finished one only by a free ``pad`` (its score
    is frozen), and the ``k`` best of the ``k v`` candidates survive; their carries, tokens
    and aux are gathered from their parents. With ``alpha = 0``, log-probabilities only
    decrease, so a finished hypothesis ranked first is the exact best of the search; with
    ``beam_size = 1`` the search is greedy decoding.

    The carry is tiled to ``[*b, k, ...]`` and ``step_fn`` is called with ``tokens:
    int[*b, k]``, so it must accept one more batch axis than ``start`` has.

    Args:
      step_fn: ``step_fn(carry, tokens: int[*b, k]) -> (carry, logits: [*b, k, v], aux)``.
      carry: the initial carry, leaves ``[*b, ...]`` (tiled over the beams here).
      start: ``int[*b]`` first input tokens.
      beam_size: number of beams ``k``.
      max_length: number of steps ``T`` (static).
      eos_id: end-of-sequence token, or ``None``.
      pad_id: token written after the end of a hypothesis.
      alpha: length-penalty exponent (Wu et al. 2016); 0 ranks by log-probability.

    Returns:
      A :class:`Decoded` with ``tokens: [*b, k, T]`` and ``scores: [*b, k]``, best first.
    """
    max_length = _check_max_length(max_length)
    if isinstance(beam_size, bool) or not isinstance(beam_size, int) or beam_size < 1:
        raise ValueError(f"beam_size must be a positive int, received {beam_size!r}")
    if alpha < 0:
        raise ValueError(f"alpha must be non-negative, received {alpha!r}")
    start = _check_start(start)
    batch, k, nb = start.shape, beam_size, start.ndim
    beams = (*batch, k)

    def tile(x):
        x = jnp.asarray(x)
        return jnp.broadcast_to(jnp.expand_dims(x, nb), x.shape[:nb] + (k,) + x.shape[nb:])

    carry = jax.tree.map(tile, carry)
    tokens = jnp.broadcast_to(start[..., None], beams)
    _, logits_shape, aux_shape = jax.eval_shape(step_fn, carry, tokens)
    _logits(jnp.zeros(logits_shape.shape, logits_shape.dtype), beams)
    v = logits_shape.shape[-1]
    history = jax.tree.map(
        lambda s: jnp.zeros((*beams, max_length, *s.shape[nb + 1 :]), s.dtype), aux_shape
    )
    # Only the first beam is live at the start, so the first step expands it alone.
    log_probs = jnp.broadcast_to(jnp.where(jnp.arange(k) == 0, 0.0, -jnp.inf), beams)
    frozen = jnp.full((v,), -jnp.inf).at[0 if eos_id is None else eos_id].set(0.0)

    def gather(x, parent):
        idx = parent.reshape(parent.shape + (1,) * (x.ndim - parent.ndim))
        return jnp.take_along_axis(x, jnp.broadcast_to(idx, parent.shape + x.shape[nb + 1 :]), nb)

    def body(state, t):
        carry, tokens, log_probs, done, lengths, seqs, history = state
        carry, logits, aux = step_fn(carry, tokens)
        logp = jax.nn.log_softmax(_logits(logits, beams))
        logp = jnp.where(done[..., None], frozen, logp)
        cand = (log_probs[..., None] + logp).reshape(*batch, k * v)
        new_len = lengths + (~done).astype(jnp.int32)
        rank = cand / jnp.repeat(length_penalty(new_len, alpha), v, axis=-1)
        _, flat = jax.lax.top_k(rank, k)
        parent, token = flat // v, (flat % v).astype(jnp.int32)
        log_probs = jnp.take_along_axis(cand, flat, axis=-1)
        carry = jax.tree.map(lambda x: gather(x, parent), carry)
        was_done = gather(done, parent)
        lengths = gather(new_len, parent)
        out = jnp.where(was_done, pad_id, token)
        seqs = gather(seqs, parent).at[..., t].set(out)
        aux = _mask_done(was_done, jax.tree.map(lambda x: gather(x, parent), aux))
        history = jax.tree.map(
            lambda h, a: jax.lax.dynamic_update_index_in_dim(gather(h, parent), a, t, nb + 1),
            history,
            aux,
        )
        done = was_done | (token == eos_id) if eos_id is not None else was_done
        return (carry, out, log_probs, done, lengths, seqs, history), None

    state = (
        carry,
        tokens,
        log_probs,
        jnp.zeros(beams, jnp.bool_),
        jnp.zeros(beams, jnp.int32),
        jnp.full((*beams, max_length), pad_id, jnp.int32),
        history,
    )
    state, _ = jax.lax.scan(body, state, jnp.arange(max_length))
    _, _, log_probs, _, lengths, seqs, history = state
    scores = log_probs / length_penalty(lengths, alpha)
    order = jnp.argsort(-scores, axis=-1, stable=True)  # top_k already sorts; keep it explicit
    pick = lambda x: gather(x, order)  # noqa: E731
    return Decoded(
        pick(seqs), pick(lengths), pick(log_probs), pick(scores), jax.tree.map(pick, history)
    )


# --------------------------------------------------------------------------- by name

STRATEGIES = ("greedy", "sample", "beam")


def decode(
    step_fn: StepFn,
    carry: Carry,
    start: ArrayLike,
    *,
    strategy: str,
    max_length: int,
    beam_size: int = 4,
    alpha: float = 0.0,
    temperature: float = 1.0,
    top_k: int | None = None,
    key: PRNGKey | None = None,
    eos_id: int | None = None,
    pad_id: int = 0,
) -> Decoded:
    """:func:`greedy`, :func:`sample` or :func:`beam_search` by name: what a model's
    ``decode`` method offers, recurrent or Transformer alike.

    Args:
      step_fn: ``step_fn(carry, tokens) -> (carry, logits, aux)``.
      carry: the initial carry, leaves ``[*b, ...]``.
      start: ``int[*b]`` first input tokens.
      strategy: ``"greedy"``, ``"sample"`` or ``"beam"``.
      max_length: number of steps ``T`` (static).
      beam_size: beams of ``"beam"``.
      alpha: length-penalty exponent of ``"beam"``.
      temperature: temperature of ``"sample"``.
      top_k: top-k truncation of ``"sample"``.
      key: PRNG key of ``"sample"`` (required there).
      eos_id: end-of-sequence token, or ``None``.
      pad_id: token written after the end of a sequence.

    Returns:
      The chosen function's :class:`Decoded`.
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"strategy must be 'greedy', 'sample' or 'beam', received {strategy!r}")
    common: dict[str, Any] = dict(max_length=max_length, eos_id=eos_id, pad_id=pad_id)
    if strategy == "greedy":
        return greedy(step_fn, carry, start, **common)
    if strategy == "sample":
        if key is None:
            raise ValueError("strategy='sample' needs a key")
        return sample(step_fn, carry, start, key, temperature=temperature, top_k=top_k, **common)
    return beam_search(step_fn, carry, start, beam_size=beam_size, alpha=alpha, **common)
