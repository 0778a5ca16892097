r"""A Transformer baseline (Vaswani et al. 2017) on Flax's attention, beside the recurrent models.

Pre-layer-norm blocks (Xiong et al. 2020; GPT-2), each

.. math::
    x \leftarrow x + \operatorname{MHA}(\operatorname{LN}(x)), \qquad
    x \leftarrow x + W_2\,\operatorname{GELU}(W_1 \operatorname{LN}(x) + b_1) + b_2

(with a cross-attention sublayer over the encoder memory between the two in a decoder),
a final layer norm, and sinusoidal or learned positions added to the scaled embeddings
:math:`\sqrt{d}\,E[x_t]`. Attention is :class:`flax.linen.MultiHeadDotProductAttention`
with masks from :func:`flax.linen.make_attention_mask` (padding) and
:func:`flax.linen.make_causal_mask`; nothing of attention is re-implemented here.

Decoding goes through the same functions as the recurrent models (:mod:`seqjax.decoding`):
the step function's carry is a :class:`KVCache`, Flax's autoregressive cache (keys and
values preallocated ``[*b, L, heads, head_dim]`` per layer) and the position, so a step
costs attention over the ``L`` cached positions where a recurrent step costs a fixed-size
carry update.

Models, all configured by one :class:`TransformerConfig`:

* :class:`TransformerEncoder` (features per position), and the heads over it:
  :class:`TransformerClassifier`, :class:`TransformerTagger`, :class:`TransformerForecaster`;
* :class:`TransformerLM`, decoder-only (causal), with :meth:`~TransformerLM.decode` and
  :meth:`~TransformerLM.generate`;
* :class:`TransformerSeq2Seq`, encoder-decoder, with the interface of
  :class:`seqjax.nn.Seq2Seq` (teacher-forced logits, :meth:`~TransformerSeq2Seq.decode`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
from flax import linen as nn
from flax import traverse_util

from seqjax import decoding
from seqjax.nn import functional as F
from seqjax.typing import Array, ArrayLike, PRNGKey

__all__ = [
    "KVCache",
    "TransformerClassifier",
    "TransformerConfig",
    "TransformerEncoder",
    "TransformerForecaster",
    "TransformerLM",
    "TransformerSeq2Seq",
    "TransformerTagger",
    "sinusoidal_positions",
]

POSITIONS = ("sinusoidal", "learned")


@dataclasses.dataclass(frozen=True)
class TransformerConfig:
    """The sizes of a Transformer (hashable: a field of the Flax modules).

    Attributes:
      model_size: ``d``, the width of every position's vector (divisible by ``num_heads``).
      num_layers: blocks in the encoder, and in the decoder.
      num_heads: attention heads.
      mlp_size: hidden units of each block's MLP; ``None``: ``4 * model_size``.
      max_length: ``L``, the most positions a sequence (or a decoding) may take.
      positions: ``"sinusoidal"`` (Vaswani et al. 2017, section 3.5) or ``"learned"``.
      dropout: rate on embeddings, attention weights and each sublayer's output.
    """

    model_size: int = 128
    num_layers: int = 2
    num_heads: int = 4
    mlp_size: int | None = None
    max_length: int = 512
    positions: str = "sinusoidal"
    dropout: float = 0.0

    def __post_init__(self):
        for name in ("model_size", "num_layers", "num_heads", "max_length"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be a positive int, received {value!r}")
        if self.model_size % self.num_heads:
            raise ValueError(
                f"model_size must be divisible by num_heads, received model_size = "
                f"{self.model_size} and num_heads = {self.num_heads}"
            )
        if self.mlp_size is not None and (
            isinstance(self.mlp_size, bool)
            or not isinstance(self.mlp_size, int)
            or self.mlp_size < 1
        ):
            raise ValueError(f"mlp_size must be a positive int or None, received {self.mlp_size!r}")
        if self.positions not in POSITIONS:
            raise ValueError(f"positions must be one of {POSITIONS}, received {self.positions!r}")
        if not 0.0 <= self.dropout < 1.0:
            raise ValueError(f"dropout must be in [0, 1), received {self.dropout!r}")

    @property
    def mlp(self) -> int:
        return self.mlp_size or 4 * self.model_size


def sinusoidal_positions(length: int, size: int) -> Array:
    r"""``[length, size]`` position encodings (Vaswani et al. 2017, section 3.5).

    .. math::
        P_{p, 2i} = \sin\!\left(p / 10000^{2i/d}\right), \qquad
        P_{p, 2i+1} = \cos\!\left(p / 10000^{2i/d}\right)
    """
    p = np.arange(length, dtype=np.float64)[:, None]
    rates = 1.0 / 10000.0 ** (np.arange(0, size, 2, dtype=np.float64) / size)
    table = np.zeros((length, size))
    table[:, 0::2] = np.sin(p * rates)
    table[:, 1::2] = np.cos(p * rates)[:, : size // 2]
    return jnp.asarray(table, jnp.float32)


class KVCache(NamedTuple):
    """The decoding carry of a Transformer decoder (leaves batch-first, as
    :mod:`seqjax.decoding` needs).

    ``layers`` is Flax's ``"cache"`` collection of the decoder without its scalar
    ``cache_index`` (``cached_key`` and ``cached_value``, ``[*b, L, heads, head_dim]`` for
    every block), and ``position`` the number of tokens cached so far. Decoding runs every
    sequence in lockstep, so the positions of a batch are equal.
    """

    layers: Any  # {"block_i": {"self_attention": {"cached_key", "cached_value"}}}
    position: Array  # int32 [*b]


def _check_length(t: int, config: TransformerConfig, what: str) -> None:
    if t > config.max_length:
        raise ValueError(
            f"{what} of {t} positions is longer than the Transformer's max_length = "
            f"{config.max_length} (raise max_length)"
        )


def _valid(lengths: ArrayLike | None, t: int, batch: tuple) -> Array:
    """``bool[*b, t]``: which positions are real (all without ``lengths``)."""
    if lengths is None:
        return jnp.ones((*batch, t), jnp.bool_)
    lengths = jnp.asarray(lengths)
    if lengths.shape != batch:
        raise ValueError(
            f"lengths must have the batch shape {batch}, received shape {lengths.shape}"
        )
    return jnp.arange(t) < lengths[..., None]


def _self_mask(valid: Array, causal: bool) -> Array:
    """``bool[*b, 1, t, t]``: keys at padded positions hidden (and future ones if causal)."""
    mask = nn.make_attention_mask(jnp.ones_like(valid), valid)
    if causal:
        mask = nn.combine_masks(mask, nn.make_causal_mask(valid))
    return mask


def _cross_mask(t: int, memory_valid: Array) -> Array:
    """``bool[*b, 1, t, s]``: queries see the valid memory positions."""
    queries = jnp.ones((*memory_valid.shape[:-1], t), jnp.bool_)
    return nn.make_attention_mask(queries, memory_valid)


class _Block(nn.Module):
    """One pre-layer-norm block: self-attention, cross-attention (``cross``), MLP."""

    config: TransformerConfig
    cross: bool = False
    decode: bool = False

    @nn.compact
    def __call__(self, x, mask, memory, memory_mask, deterministic, sow_weights=False):
        c = self.config
        attention = lambda name, decode: nn.MultiHeadDotProductAttention(  # noqa: E731
            num_heads=c.num_heads, dropout_rate=c.dropout, decode=decode, name=name
        )
        drop = nn.Dropout(c.dropout)
        h = nn.LayerNorm(name="norm_self")(x)
        h = attention("self_attention", self.decode)(h, mask=mask, deterministic=deterministic)
        x = x + drop(h, deterministic=deterministic)
        if self.cross:
            h = nn.LayerNorm(name="norm_cross")(x)
            h = attention("cross_attention", False)(
                h, memory, mask=memory_mask, deterministic=deterministic, sow_weights=sow_weights
            )
            x = x + drop(h, deterministic=deterministic)
        h = nn.LayerNorm(name="norm_mlp")(x)
        h = nn.Dense(c.mlp, name="mlp_in")(h)
        h = nn.Dense(c.model_size, name="mlp_out")(nn.gelu(h))
        return x + drop(h, deterministic=deterministic)


class _Trunk(nn.Module):
    """Embeddings (tokens) or a projection (features), positions, blocks, final norm, and
    an output layer when ``out_size`` is set. Masks and positions come from the caller."""

    config: TransformerConfig
    vocab_size: int | None = None
    cross: bool = False
    decode: bool = False
    out_size: int | None = None

    @nn.compact
    def __call__(
        self,
        xs,
        mask,
        positions,
        memory=None,
        memory_mask=None,
        deterministic=True,
        sow_weights=False,
    ):
        c = self.config
        d = c.model_size
        if self.vocab_size is not None:
            table = self.param("embedding", F.embed_init, self.vocab_size, d)
            h = F.embed(table, xs) * math.sqrt(d)
        else:
            h = nn.Dense(d, name="input")(jnp.asarray(xs, jnp.float32))
        if c.positions == "learned":
            init = nn.initializers.normal(0.02)
            table = self.param("positions", init, (c.max_length, d))
        else:
            table = sinusoidal_positions(c.max_length, d)
        h = h + jnp.take(table, positions, axis=0)
        h = nn.Dropout(c.dropout)(h, deterministic=deterministic)
        for i in range(c.num_layers):
            block = _Block(c, cross=self.cross, decode=self.decode, name=f"block_{i}")
            last = i == c.num_layers - 1
            h = block(h, mask, memory, memory_mask, deterministic, sow_weights and last)
        h = nn.LayerNorm(name="final_norm")(h)
        if self.out_size is not None:
            h = nn.Dense(self.out_size, name="output")(h)
        return h


def _positions(batch: tuple, t: int, offset: Array | int = 0) -> Array:
    return jnp.broadcast_to(jnp.arange(t) + jnp.asarray(offset)[..., None], (*batch, t))


# --------------------------------------------------------------------------- KV cache


def _strip_index(cache: Any) -> Any:
    flat = traverse_util.flatten_dict(cache)
    return traverse_util.unflatten_dict({k: v for k, v in flat.items() if k[-1] != "cache_index"})


def _with_index(layers: Any, index: Array) -> Any:
    flat = dict(traverse_util.flatten_dict(layers))
    for path in [p for p in flat if p[-1] == "cached_key"]:
        flat[path[:-1] + ("cache_index",)] = index
    return traverse_util.unflatten_dict(flat)


def _step_fn(
    trunk: _Trunk, params: Any, memory: Array | None = None, memory_valid: Array | None = None
) -> Callable:
    """``step_fn(cache, tokens: int[*b, ...]) -> (cache, logits, aux)`` for
    :mod:`seqjax.decoding`: one token through ``trunk`` (``decode=True``). With a memory
    ``[*b, s, m]``, extra trailing batch axes of the tokens (beams) broadcast against it,
    and ``aux`` is the last block's cross-attention weights, averaged over heads ``[*b, s]``.
    """

    def step_fn(cache: KVCache, tokens: Array):
        tokens = jnp.asarray(tokens)
        mem, mem_mask = None, None
        if memory is not None and memory_valid is not None:
            nb = memory.ndim - 2
            extra = tokens.ndim - nb
            axes = tuple(range(nb, nb + extra))
            mem, valid = (
                jnp.broadcast_to(jnp.expand_dims(x, axes), tokens.shape + x.shape[nb:])
                for x in (memory, memory_valid)
            )
            mem_mask = _cross_mask(1, valid)
        index = cache.position.reshape(-1)[0] if cache.position.size else jnp.int32(0)
        logits, state = trunk.apply(
            {"params": params, "cache": _with_index(cache.layers, index)},
            tokens[..., None],
            None,
            cache.position[..., None],
            mem,
            mem_mask,
            sow_weights=memory is not None,
            mutable=["cache", "intermediates"],
        )
        aux = None
        if memory is not None:
            block = f"block_{trunk.config.num_layers - 1}"
            (weights,) = state["intermediates"][block]["cross_attention"]["attention_weights"]
            aux = jnp.mean(weights, axis=-3)[..., 0, :]
        new = KVCache(_strip_index(state["cache"]), cache.position + 1)
        return new, logits[..., 0, :].astype(jnp.float32), aux

    return step_fn


def _empty_cache(
    trunk: _Trunk, params: Any, batch: tuple, memory: Array | None, memory_valid: Array | None
) -> KVCache:
    """Zeros of Flax's cache shapes for ``batch`` (abstract evaluation: no compute)."""
    length = trunk.config.max_length

    def build():
        tokens = jnp.zeros((*batch, length), jnp.int32)
        mask = None if memory_valid is None else _cross_mask(length, memory_valid)
        _, state = trunk.apply(
            {"params": params},
            tokens,
            None,
            _positions(batch, length),
            memory,
            mask,
            mutable=["cache"],
        )
        return _strip_index(state["cache"])

    layers = jax.tree.map(lambda s: jnp.zeros(s.shape, s.dtype), jax.eval_shape(build))
    return KVCache(layers, jnp.zeros(batch, jnp.int32))


# --------------------------------------------------------------------------- encoder, heads


class TransformerEncoder(nn.Module):
    """Features at every position: ``xs: [*b, t, d]`` or ``int[*b, t]`` -> ``[*b, t, m]``.

    Keys at padded positions are masked, so the outputs at valid positions do not depend
    on the padding; the outputs past each length are zeros (as a :class:`~seqjax.Seq`'s).

    Attributes:
      config: the sizes (:class:`TransformerConfig`); ``m = config.model_size``.
      vocab_size: embed integer tokens (``None``: inputs are features, projected).
      causal: each position sees only itself and earlier ones.
    """

    config: TransformerConfig = TransformerConfig()
    vocab_size: int | None = None
    causal: bool = False

    @nn.compact
    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> Array:
        xs = jnp.asarray(xs)
        rank = 1 if self.vocab_size is not None else 2
        if xs.ndim < rank:
            raise ValueError(
                f"xs must be {'int[*b, t]' if rank == 1 else '[*b, t, d]'}, received {xs.shape}"
            )
        batch, t = xs.shape[: xs.ndim - rank], xs.shape[xs.ndim - rank]
        _check_length(t, self.config, "a sequence")
        valid = _valid(lengths, t, batch)
        trunk = _Trunk(self.config, self.vocab_size, name="trunk")
        ys = trunk(
            xs, _self_mask(valid, self.causal), _positions(batch, t), None, None, deterministic
        )
        return jnp.where(valid[..., None], ys, 0.0)


class TransformerClassifier(nn.Module):
    """One label per sequence: encoder outputs pooled over valid positions, then logits.

    Attributes:
      num_classes: number of classes.
      config: the sizes.
      pooling: ``"mean"``, ``"max"`` or ``"last"`` (:func:`seqjax.nn.functional.pool`).
      vocab_size: embed integer tokens (``None``: features).
    """

    num_classes: int
    config: TransformerConfig = TransformerConfig()
    pooling: str = "mean"
    vocab_size: int | None = None

    @nn.compact
    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> Array:
        """``xs: [*b, t, d]`` (or ``int[*b, t]``) -> logits ``[*b, num_classes]``."""
        encoder = TransformerEncoder(self.config, self.vocab_size, name="encoder")
        ys = encoder(xs, lengths, deterministic=deterministic)
        return nn.Dense(self.num_classes, name="head")(F.pool(self.pooling, ys, lengths))


class TransformerTagger(nn.Module):
    """One label per position.

    Attributes:
      num_tags: number of tags.
      config: the sizes.
      vocab_size: embed integer tokens (``None``: features).
    """

    num_tags: int
    config: TransformerConfig = TransformerConfig()
    vocab_size: int | None = None

    @nn.compact
    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> Array:
        """``xs: [*b, t, d]`` (or ``int[*b, t]``) -> logits ``[*b, t, num_tags]``."""
        encoder = TransformerEncoder(self.config, self.vocab_size, name="encoder")
        return nn.Dense(self.num_tags, name="head")(
            encoder(xs, lengths, deterministic=deterministic)
        )


class TransformerForecaster(nn.Module):
    """Regression on series, as :class:`seqjax.nn.Forecaster`.

    Attributes:
      features: predicted features ``f``.
      config: the sizes.
      horizon: ``None``: a prediction at every position from a causal encoder
        (``[*b, t, f]``); an int ``H``: the next ``H`` values after the last valid position,
        from its output (``[*b, H, f]``).
    """

    features: int
    config: TransformerConfig = TransformerConfig()
    horizon: int | None = None

    @nn.compact
    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> Array:
        """``xs: [*b, t, d]`` -> ``[*b, t, f]`` or ``[*b, H, f]``."""
        causal = self.horizon is None
        encoder = TransformerEncoder(self.config, None, causal=causal, name="encoder")
        ys = encoder(xs, lengths, deterministic=deterministic)
        if self.horizon is None:
            return nn.Dense(self.features, name="head")(ys)
        out = nn.Dense(self.horizon * self.features, name="head")(F.last_valid(ys, lengths))
        return out.reshape(*out.shape[:-1], self.horizon, self.features)


# --------------------------------------------------------------------------- decoders


def _prefill(step_fn: Callable, cache: KVCache, tokens: Array) -> KVCache:
    """Feeds ``tokens: int[*b, t]`` through the step function, one position at a time."""
    if tokens.shape[-1] == 0:
        return cache

    def body(cache, tok):
        return step_fn(cache, tok)[0], None

    cache, _ = jax.lax.scan(body, cache, jnp.moveaxis(tokens, -1, 0))
    return cache


class TransformerLM(nn.Module):
    r"""Decoder-only (causal) Transformer language model:
    :math:`p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(W_o \operatorname{LN}(h_t) + b_o)`.

    The same module serves per-position labels of a causal reader (the copy task: logits
    at every position over ``vocab_size`` symbols).

    Params: ``decoder`` (embedding ``[v, d]``, positions when learned, ``block_i``,
    ``final_norm``, ``output: [d, v]``).

    Attributes:
      vocab_size: vocabulary size ``v``.
      config: the sizes.
      return_carry: ``__call__`` returns ``(carry, logits)``, ``carry`` the context for the
        next chunk of a long text (see :meth:`__call__`).
    """

    vocab_size: int
    config: TransformerConfig = TransformerConfig()
    return_carry: bool = False

    def setup(self):
        self.decoder = _Trunk(self.config, self.vocab_size, out_size=self.vocab_size)

    def _trunk(self, decode: bool) -> _Trunk:
        """The decoder as an unbound module (applied to its params by the pure step)."""
        return self.decoder.clone(parent=None, decode=decode)

    def __call__(
        self,
        tokens: ArrayLike,
        carry: Array | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        deterministic: bool = True,
    ):
        """Next-token logits at every position.

        Args:
          tokens: ``int[*b, t]``.
          carry: ``int[*b, c]`` earlier tokens the positions attend to (the context of a
            chunked text), or ``None``; ``c + t`` must fit ``max_length``.
          lengths: ``int[*b]`` valid lengths (the causal mask already keeps right padding
            out of every valid position).
          resets: not supported (a :class:`ValueError`): a Transformer has no carry to
            restart; split packed documents instead.
          deterministic: no dropout; otherwise keys from the ``"dropout"`` rng stream.

        Returns:
          ``logits: [*b, t, v]``, or ``(carry, logits)`` with ``return_carry``: the carry is
          the last ``max_length - t`` tokens of the context and ``tokens``.
        """
        if resets is not None:
            raise ValueError("TransformerLM does not take resets: it has no recurrent carry")
        tokens = jnp.asarray(tokens)
        if tokens.ndim < 1:
            raise ValueError(f"tokens must be int[*b, t], received shape {tokens.shape}")
        batch, t = tokens.shape[:-1], tokens.shape[-1]
        context = jnp.zeros((*batch, 0), tokens.dtype) if carry is None else jnp.asarray(carry)
        if context.shape[:-1] != batch:
            raise ValueError(
                f"carry must be int[*b, c] with b = {batch}, received shape {context.shape}"
            )
        c = context.shape[-1]
        _check_length(c + t, self.config, "the context and tokens" if c else "a sequence")
        window = jnp.concatenate([context, tokens], axis=-1)
        valid = jnp.concatenate(
            [jnp.ones((*batch, c), jnp.bool_), _valid(lengths, t, batch)], axis=-1
        )
        logits = self.decoder(
            window, _self_mask(valid, True), _positions(batch, c + t), None, None, deterministic
        )[..., c:, :]
        if not self.return_carry:
            return logits
        keep = self.config.max_length - t
        return window[..., max(c + t - keep, 0) :], logits

    def initial_cache(self, batch_shape: tuple) -> KVCache:
        """An empty :class:`KVCache` for ``batch_shape`` (``max_length`` positions)."""
        params = self.variables["params"]["decoder"]
        return _empty_cache(self._trunk(True), params, tuple(batch_shape), None, None)

    def step_fn(self) -> Callable:
        """``step_fn(cache, tokens: int[*b]) -> (cache, logits: [*b, v], None)``, pure, for
        :mod:`seqjax.decoding`."""
        return _step_fn(self._trunk(True), self.variables["params"]["decoder"])

    def decode(
        self,
        prompt: ArrayLike,
        *,
        max_length: int,
        strategy: str = "greedy",
        beam_size: int = 4,
        alpha: float = 0.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        key: PRNGKey | None = None,
        eos_id: int | None = None,
        pad_id: int = 0,
    ) -> decoding.Decoded:
        """Continues ``prompt: int[*b, t]`` (``t >= 1``, the same length for all) by
        ``max_length`` tokens: the prompt but its last token fills the cache, then
        :func:`seqjax.decoding.decode` runs from the last token. ``t - 1 + max_length``
        must fit the model's ``max_length``."""
        prompt = jnp.asarray(prompt)
        if prompt.ndim < 1 or prompt.shape[-1] < 1:
            raise ValueError(f"prompt must be int[*b, t] with t >= 1, received {prompt.shape}")
        _check_length(prompt.shape[-1] - 1 + max_length, self.config, "a prompt and its decoding")
        step_fn = self.step_fn()
        cache = _prefill(step_fn, self.initial_cache(prompt.shape[:-1]), prompt[..., :-1])
        return decoding.decode(
            step_fn,
            cache,
            prompt[..., -1],
            strategy=strategy,
            max_length=max_length,
            beam_size=beam_size,
            alpha=alpha,
            temperature=temperature,
            top_k=top_k,
            key=key,
            eos_id=eos_id,
            pad_id=pad_id,
        )

    def generate(
        self,
        prompt: ArrayLike,
        key: PRNGKey,
        *,
        max_length: int,
        temperature: float = 1.0,
        top_k: int | None = None,
        eos_id: int | None = None,
        pad_id: int = 0,
    ) -> decoding.Decoded:
        """Samples continuations of ``prompt``, as :meth:`seqjax.nn.LanguageModel.generate`."""
        return self.decode(
            prompt,
            max_length=max_length,
            strategy="sample",
            temperature=temperature,
            top_k=top_k,
            key=key,
            eos_id=eos_id,
            pad_id=pad_id,
        )


class TransformerSeq2Seq(nn.Module):
    """Encoder-decoder Transformer with the interface of :class:`seqjax.nn.Seq2Seq`.

    Params: ``encoder`` and ``decoder`` (each an embedding, positions when learned,
    ``block_i``, ``final_norm``; the decoder's blocks with cross-attention and its
    ``output: [d, v]``).

    Attributes:
      src_vocab: source vocabulary size.
      tgt_vocab: target vocabulary size.
      config: the sizes (shared by the encoder and the decoder).
      pad_id: padding token (written after the end in decoded outputs).
      bos_id: start token of decoding.
      eos_id: end token of decoding.
    """

    src_vocab: int
    tgt_vocab: int
    config: TransformerConfig = TransformerConfig()
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2

    def setup(self):
        c, v = self.config, self.tgt_vocab
        self.encoder = _Trunk(c, self.src_vocab)
        self.decoder = _Trunk(c, v, cross=True, out_size=v)

    def _decoder(self, decode: bool) -> _Trunk:
        """The decoder as an unbound module (applied to its params by the pure step)."""
        return self.decoder.clone(parent=None, decode=decode)

    def encode(
        self, src: ArrayLike, src_lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> tuple[Array, Array]:
        """``src: int[*b, s]`` -> ``(memory: [*b, s, d], valid: bool[*b, s])``."""
        src = jnp.asarray(src)
        if src.ndim < 1:
            raise ValueError(f"src must be int[*b, s], received shape {src.shape}")
        batch, s = src.shape[:-1], src.shape[-1]
        _check_length(s, self.config, "a source")
        valid = _valid(src_lengths, s, batch)
        memory = self.encoder(
            src, _self_mask(valid, False), _positions(batch, s), None, None, deterministic
        )
        return memory, valid

    def __call__(
        self,
        src: ArrayLike,
        src_lengths: ArrayLike | None,
        tgt_in: ArrayLike,
        tgt_lengths: ArrayLike | None = None,
        *,
        deterministic: bool = True,
    ) -> tuple[Array, None]:
        """Teacher-forced logits ``([*b, t, v], None)`` (``tgt_in`` as for
        :class:`seqjax.nn.Seq2Seq`; no attention weights are returned in training)."""
        memory, src_valid = self.encode(src, src_lengths, deterministic=deterministic)
        tgt_in = jnp.asarray(tgt_in)
        batch, t = tgt_in.shape[:-1], tgt_in.shape[-1]
        _check_length(t, self.config, "a target")
        valid = _valid(tgt_lengths, t, batch)
        logits = self.decoder(
            tgt_in,
            _self_mask(valid, True),
            _positions(batch, t),
            memory,
            _cross_mask(t, src_valid),
            deterministic,
        )
        return logits, None

    def decode(
        self,
        src: ArrayLike,
        src_lengths: ArrayLike | None = None,
        *,
        max_length: int,
        strategy: str = "greedy",
        beam_size: int = 4,
        alpha: float = 0.0,
        temperature: float = 1.0,
        top_k: int | None = None,
        key: PRNGKey | None = None,
    ) -> decoding.Decoded:
        """Decodes from ``bos_id`` until ``eos_id`` or ``max_length`` tokens, as
        :meth:`seqjax.nn.Seq2Seq.decode`; ``aux`` holds the last block's cross-attention
        weights averaged over heads, ``[*b, T, s]`` (``[*b, k, T, s]`` for beams)."""
        _check_length(max_length, self.config, "a decoding")
        memory, valid = self.encode(src, src_lengths)
        batch = memory.shape[:-2]
        trunk, params = self._decoder(True), self.variables["params"]["decoder"]
        cache = _empty_cache(trunk, params, batch, memory, valid)
        return decoding.decode(
            _step_fn(trunk, params, memory, valid),
            cache,
            jnp.full(batch, self.bos_id, jnp.int32),
            strategy=strategy,
            max_length=max_length,
            beam_size=beam_size,
            alpha=alpha,
            temperature=temperature,
            top_k=top_k,
            key=key,
            eos_id=self.eos_id,
            pad_id=self.pad_id,
        )
