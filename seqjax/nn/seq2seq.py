r"""Sequence to sequence: an encoder, a decoder with or without attention, and decoding.

.. code-block:: python

    model = seqjax.nn.Seq2Seq(src_vocab=40, tgt_vocab=40, attention="general")
    variables = model.init(key, src, src_lengths, tgt_in, tgt_lengths)
    # teacher forcing: logits [*b, t, v] and attention weights [*b, t, s]
    logits, weights = model.apply(variables, src, src_lengths, tgt_in, tgt_lengths)
    out = model.apply(variables, src, src_lengths, max_length=20, method="decode")  # greedy
    out = model.apply(variables, src, src_lengths, max_length=20, strategy="beam",
                      beam_size=5, alpha=0.6, method="decode")

Target convention: ``tgt_in`` is ``[bos, y_1, ..., y_{n-1}]`` and the loss compares the
logits with ``[y_1, ..., y_n]`` (``y_n = eos``); decoding starts from ``bos_id`` and stops at
``eos_id``.

The decoder's step is a pure function of its parameter arrays (the modules hold no math),
so the same function runs under :func:`jax.lax.scan` for scheduled sampling and inside
:mod:`seqjax.decoding`, and teacher-forced logits equal step-by-step decoding.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
from flax import linen as nn

from seqjax import decoding
from seqjax._util import cell_output_size, length_mask
from seqjax.attention import Attention as AttentionFn
from seqjax.attention import AttentionOutput, attention_decoder, bind_memory
from seqjax.cells import Cell, cell_by_name
from seqjax.combinators import bidirectional, stack
from seqjax.combinators import dropout as apply_dropout
from seqjax.nn import functional as F
from seqjax.nn.layers import Recurrent, _checked_param, _rng, make_attention
from seqjax.scan import Seq, recurrent
from seqjax.typing import Array, ArrayLike, Carry, Params, PRNGKey

__all__ = ["Decoder", "Encoder", "Seq2Seq"]


class Encoder(nn.Module):
    """Token embedding and a recurrent :class:`~seqjax.Seq` (stacked, bidirectional, ...).

    Attributes:
      vocab_size: source vocabulary size.
      embed_size: embedding size.
      seq: the recurrent layers, batch-first.
      dropout: dropout rate on the embeddings and on the outputs (the memory).
    """

    vocab_size: int
    embed_size: int
    seq: Seq
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self, src: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> tuple[Carry, Array]:
        """``src: int[*b, s]``, ``lengths: int[*b]`` -> ``(final carry, memory: [*b, s, m])``;
        the memory is zero past each length."""
        table = self.param("embedding", F.embed_init, self.vocab_size, self.embed_size)
        (k_in,) = _rng(self, deterministic, 1)
        xs = apply_dropout(k_in, F.embed(table, src), self.dropout)
        layer = Recurrent(self.seq, dropout=self.dropout, return_carry=True, name="recurrent")
        return layer(xs, lengths=lengths, deterministic=deterministic)


class Decoder(nn.Module):
    r"""Target embedding, a recurrent cell (with Luong attention when ``attention`` is set)
    and the output layer.

    Without attention the cell runs on the embedded inputs alone and the encoder reaches it
    only through its initial carry; with attention the cell is
    :func:`seqjax.attention_decoder` and logits come from the attentional vector
    :math:`\tilde h_t`.

    Params: ``embedding: [v, e]``, ``rnn`` (the cell's params), ``output: {w: [a, v],
    b: [v]}``.

    Attributes:
      vocab_size: target vocabulary size ``v``.
      embed_size: embedding size ``e``.
      cell: the inner recurrent :class:`~seqjax.Cell`.
      attention: a pure :class:`~seqjax.Attention`, or ``None``.
      memory_size: feature size of the encoder memory (needed with attention).
      attention_size: size of :math:`\tilde h_t` (default: the cell's output size).
      input_feeding: Luong input feeding (with attention).
      dropout: dropout rate on the embeddings and before the output layer.
    """

    vocab_size: int
    embed_size: int
    cell: Cell
    attention: AttentionFn | None = None
    memory_size: int | None = None
    attention_size: int | None = None
    input_feeding: bool = True
    dropout: float = 0.0

    def _cell(self) -> Cell:
        if self.attention is None:
            return self.cell
        if self.memory_size is None:
            raise ValueError("a Decoder with attention needs memory_size")
        return attention_decoder(
            self.cell,
            self.attention,
            memory_size=self.memory_size,
            attention_size=self.attention_size,
            input_feeding=self.input_feeding,
        )

    def setup(self):
        out = cell_output_size(self.cell)
        if self.attention is not None and self.attention_size is not None:
            out = self.attention_size
        self.embedding = self.param("embedding", F.embed_init, self.vocab_size, self.embed_size)
        self.rnn = _checked_param(self, "rnn", self._cell().init, self.embed_size)
        self.output = self.param("output", F.dense_init, out, self.vocab_size)

    def cell_template(self) -> Carry:
        """Shapes of one example's inner-cell carry (what a bridge must produce)."""
        cell = self.cell
        return jax.eval_shape(lambda k: cell.initial_carry(cell.init(k, 1), ()), jax.random.key(0))

    def initial_carry(self, batch_shape: tuple, cell_carry: Carry | None = None) -> Carry:
        """The decoder's carry for ``batch_shape``, starting the inner cell from
        ``cell_carry`` (leaves ``[*b, ...]``; ``None``: zeros)."""
        carry = self._cell().initial_carry(self.rnn, batch_shape)
        if cell_carry is None:
            return carry
        return carry._replace(cell=cell_carry) if self.attention is not None else cell_carry

    def _params(self, memory: Array | None, memory_lengths: ArrayLike | None) -> Params:
        if self.attention is None:
            return self.rnn
        if memory is None:
            raise ValueError("a Decoder with attention needs the encoder memory")
        return bind_memory(self.attention, self.rnn, memory, lengths=memory_lengths)

    def _pure_step(self, params: Params) -> Callable:
        """``step(carry, x: [*b, e], k_out) -> (carry, logits, weights)``, pure in arrays;
        ``k_out`` (the output dropout's) is a key, one key per example (``[*b]``) or
        ``None``."""
        cell, out, rate, attn = self._cell(), self.output, self.dropout, self.attention

        def step(carry, x, k_out=None):
            carry, y = cell.apply(params, carry, x)
            y, weights = (y.outputs, y.weights) if attn is not None else (y, None)
            if k_out is not None and jnp.ndim(k_out):
                flat = jax.vmap(lambda k, v: apply_dropout(k, v, rate))
                y = flat(k_out.reshape(-1), y.reshape(-1, y.shape[-1])).reshape(y.shape)
            else:
                y = apply_dropout(k_out, y, rate)
            return carry, F.dense(out, y), weights

        return step

    def step_fn(self, memory: Array | None = None, memory_lengths: ArrayLike | None = None):
        """A pure step function for :mod:`seqjax.decoding`.

        Args:
          memory: ``[*b, s, m]`` encoder outputs (with attention).
          memory_lengths: ``int[*b]`` valid source lengths.

        Returns:
          ``step_fn(carry, tokens: int[*b, ...]) -> (carry, logits: [*b, ..., v],
          weights: [*b, ..., s] or None)``; extra trailing batch axes (beams) broadcast
          against the memory.
        """
        step, table = self._pure_step(self._params(memory, memory_lengths)), self.embedding

        def step_fn(carry, tokens):
            return step(carry, F.embed(table, tokens))

        return step_fn

    def __call__(
        self,
        carry: Carry,
        tokens: ArrayLike,
        memory: Array | None = None,
        memory_lengths: ArrayLike | None = None,
        *,
        lengths: ArrayLike | None = None,
        deterministic: bool = True,
        sampling_rate: float | Array = 0.0,
    ) -> tuple[Carry, Array, Array | None]:
        """Runs the decoder over target inputs (teacher forcing).

        Args:
          carry: the initial carry (:meth:`initial_carry`).
          tokens: ``int[*b, t]`` target inputs, starting with the start token.
          memory: ``[*b, s, m]`` encoder outputs (with attention).
          memory_lengths: ``int[*b]`` valid source lengths.
          lengths: ``int[*b]`` valid target lengths; logits past them are the output bias
            and weights zeros (mask them in the loss).
          deterministic: no dropout and no scheduled sampling.
          sampling_rate: scheduled sampling (Bengio et al. 2015): when not deterministic,
            each input after the first is, with this probability, a token sampled from the
            model's previous prediction instead of the given one. May be a traced scalar
            (a schedule); a nonzero Python value or a traced one runs step by step.

        Returns:
          ``(carry, logits: [*b, t, v], weights: [*b, t, s] or None)``.
        """
        tokens = jnp.asarray(tokens)
        params = self._params(memory, memory_lengths)
        k_in, k_out, k_ss = _rng(self, deterministic, 3)
        scheduled = not deterministic and not (
            isinstance(sampling_rate, (int, float)) and sampling_rate == 0
        )
        if scheduled:
            return self._scheduled(params, carry, tokens, lengths, k_ss, sampling_rate)
        xs = apply_dropout(k_in, F.embed(self.embedding, tokens), self.dropout)
        carry, ys = recurrent(self._cell()).apply(params, xs, carry, lengths=lengths)
        ys, weights = (ys.outputs, ys.weights) if isinstance(ys, AttentionOutput) else (ys, None)
        return carry, F.dense(self.output, apply_dropout(k_out, ys, self.dropout)), weights

    def _scheduled(self, params, carry, tokens, lengths, key, rate):
        """Scheduled sampling through the sequence engine: :func:`_feedback` makes a cell
        that feeds the decoder its own samples; the same outputs as teacher forcing at rate
        0 (logits past ``lengths`` are the output bias, weights zeros)."""
        if not jnp.issubdtype(key.dtype, jax.dtypes.prng_key):  # a raw uint32 key
            key = jax.random.wrap_key_data(key)
        impl = jax.random.key_impl(key)
        inner = self._cell()
        cell = _feedback(
            self._pure_step(params),
            lambda batch_shape: inner.initial_carry(params, batch_shape),
            self.embedding,
            rate=rate,
            dropout=self.dropout,
            impl=impl,
        )
        t, batch = tokens.shape[-1], tokens.shape[:-1]
        keys = jax.random.split(key, (*batch, t))  # one key per example and step
        steps = jnp.broadcast_to(jnp.arange(t, dtype=jnp.uint32), tokens.shape)
        xs = jnp.concatenate(
            [tokens[..., None].astype(jnp.uint32), steps[..., None], jax.random.key_data(keys)],
            axis=-1,
        )
        prev0 = jnp.zeros((*batch, self.vocab_size), jnp.float32)
        (carry, _), (logits, weights) = recurrent(cell).apply(
            {}, xs, (carry, prev0), lengths=lengths
        )
        if lengths is not None:
            valid = length_mask(lengths, t)[..., None]
            logits = jnp.where(valid, logits, self.output["b"].astype(logits.dtype))
        return carry, logits, weights


def _feedback(
    step: Callable,
    decoder_carry: Callable,
    table: Array,
    *,
    rate: float | Array,
    dropout: float,
    impl: Any,
) -> Cell:
    r"""A cell transformer for scheduled sampling (Bengio et al. 2015): a :class:`Cell`
    that wraps a decoder step and feeds it, with probability ``rate``, a token sampled
    from its own previous logits instead of the given one (never at the first step).

    ``step(carry, x: [*b, e], k_out) -> (carry, logits, weights)`` is the decoder's pure
    step (parameters bound), ``decoder_carry(batch_shape)`` its initial carry, ``table:
    [v, e]`` the target embedding. The cell's input at
    each step is ``uint32[*b, 2 + w]``: the given token, the step's index and the ``w``
    words of that example's PRNG key for the step (its coin, sample and dropout draws);
    its carry is
    ``(decoder carry, previous logits [*b, v])``; its output ``(logits, weights)``. Its
    parameters are bound in ``step``, so its own are ``{}``; ``impl`` is the keys' PRNG
    implementation.
    """
    rate = jnp.asarray(rate, jnp.float32)

    def init(key: PRNGKey, input_size: int) -> Params:
        del key, input_size
        return {}

    def initial_carry(params: Params, batch_shape: tuple) -> Carry:
        del params
        logits = jnp.zeros((*batch_shape, table.shape[0]), jnp.float32)
        return decoder_carry(batch_shape), logits

    def draws(key, prev, gold, first):
        """One example's token and dropout keys: ``prev: [v]`` logits, ``gold`` token."""
        k_coin, k_sample, k_in, k_out = jax.random.split(key, 4)
        sampled = jax.random.categorical(k_sample, jax.lax.stop_gradient(prev))
        use = ~first & jax.random.bernoulli(k_coin, rate)
        return jnp.where(use, sampled.astype(gold.dtype), gold), k_in, k_out

    def step_fn(params: Params, carry: Carry, u: Array) -> tuple[Carry, Any]:
        inner, prev = carry
        batch = u.shape[:-1]
        flat = u.reshape(-1, u.shape[-1])
        keys = jax.random.wrap_key_data(flat[:, 2:], impl=impl)
        gold, first = flat[:, 0].astype(jnp.int32), flat[:, 1] == 0
        tok, k_in, k_out = jax.vmap(draws)(keys, prev.reshape(-1, prev.shape[-1]), gold, first)
        emb = jax.vmap(lambda k, x: apply_dropout(k, x, dropout))(k_in, F.embed(table, tok))
        emb = emb.reshape(*batch, emb.shape[-1])
        inner, logits, weights = step(inner, emb, k_out.reshape(batch))
        return (inner, logits), (logits, weights)

    return Cell(init, initial_carry, lambda params, xs: xs, step_fn)


class Seq2Seq(nn.Module):
    """Encoder-decoder with optional Luong attention, a learned bridge, and decoding.

    Built from simple fields (so a config can describe it), or from pure parts through
    ``encoder_seq`` and ``decoder_cell``.

    Params: ``encoder`` (:class:`Encoder`), ``decoder`` (:class:`Decoder`), ``bridge``
    (with ``bridge="dense"``: :func:`seqjax.nn.functional.bridge`).

    Attributes:
      src_vocab: source vocabulary size.
      tgt_vocab: target vocabulary size.
      embed_size: embedding size (source and target).
      hidden_size: hidden size of every recurrent cell (per direction in the encoder).
      cell: a name of :data:`seqjax.CELLS` (``"lstm"``, ``"gru"``, ``"simple_rnn"``,
        ``"min_gru"``, ``"min_lstm"``, ``"lru"``, ``"rg_lru"``, ``"slstm"``).
      encoder_layers: number of stacked encoder layers.
      bidirectional: bidirectional encoder layers (memory size ``2 * hidden_size``).
      attention: ``"general"``, ``"dot"``, ``"scaled_dot"``, ``"concat"``, ``"bahdanau"``
        (see :func:`seqjax.nn.make_attention`), or ``None`` for no attention. ``"dot"``
        needs the decoder's hidden size to equal the memory size.
      attention_units: hidden size of additive scores (default ``hidden_size``).
      input_feeding: Luong input feeding.
      bridge: ``"dense"`` (the decoder starts from :math:`\\tanh(W [c^{enc}] + b)`) or
        ``"zeros"`` (zeros; the encoder then reaches the decoder only through attention).
      dropout: dropout rate (embeddings, between encoder layers, memory, decoder outputs).
      pad_id: padding token (written after the end in decoded outputs).
      bos_id: start token of decoding.
      eos_id: end token of decoding.
      encoder_seq: overrides the encoder built from the fields above.
      decoder_cell: overrides the decoder's inner cell.
    """

    src_vocab: int
    tgt_vocab: int
    embed_size: int = 64
    hidden_size: int = 128
    cell: str = "lstm"
    encoder_layers: int = 1
    bidirectional: bool = True
    attention: str | None = "general"
    attention_units: int | None = None
    input_feeding: bool = True
    bridge: str = "dense"
    dropout: float = 0.0
    pad_id: int = 0
    bos_id: int = 1
    eos_id: int = 2
    encoder_seq: Seq | None = None
    decoder_cell: Cell | None = None

    def _encoder_seq(self) -> Seq:
        if self.encoder_seq is not None:
            return self.encoder_seq
        layers = []
        for _ in range(self.encoder_layers):
            layer = recurrent(cell_by_name(self.cell, self.hidden_size))
            layers.append(bidirectional(layer) if self.bidirectional else layer)
        return stack(*layers, dropout=self.dropout)

    def _encoder_shapes(self, enc: Seq) -> tuple[Carry, Any]:
        """Shapes of one example's encoder carry and of its outputs ``[1, m]``."""
        e = self.embed_size

        def run(key):
            params = enc.init(key, e)
            return enc.initial_carry(params, ()), enc.apply(params, jnp.zeros((1, e)))[1]

        return jax.eval_shape(run, jax.random.key(0))

    def setup(self):
        if self.bridge not in ("dense", "zeros"):
            raise ValueError(f"bridge must be 'dense' or 'zeros', received {self.bridge!r}")
        enc = self._encoder_seq()
        e = self.embed_size
        enc_carry, ys = self._encoder_shapes(enc)
        self.encoder = Encoder(self.src_vocab, e, enc, self.dropout)
        dec_cell = self.decoder_cell or cell_by_name(self.cell, self.hidden_size)
        att = None
        if self.attention is not None:
            att = make_attention(self.attention, self.attention_units or self.hidden_size)
        self.decoder = Decoder(
            self.tgt_vocab,
            e,
            dec_cell,
            att,
            memory_size=ys.shape[-1],
            input_feeding=self.input_feeding,
            dropout=self.dropout,
        )
        if self.bridge == "dense":
            template = self.decoder.cell_template()
            self.bridge_params = self.param("bridge", F.bridge_init, enc_carry, template)

    def encode(
        self, src: ArrayLike, src_lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> tuple[Carry, Array]:
        """``src: int[*b, s]`` -> ``(encoder carry, memory: [*b, s, m])``."""
        return self.encoder(src, src_lengths, deterministic=deterministic)

    def initial_carry(self, enc_carry: Carry, batch_shape: tuple) -> Carry:
        """The decoder's initial carry from the encoder's final carry (through the bridge)."""
        cell_carry = None
        if self.bridge == "dense":
            cell_carry = F.bridge(self.bridge_params, enc_carry, self.decoder.cell_template())
        return self.decoder.initial_carry(batch_shape, cell_carry)

    def __call__(
        self,
        src: ArrayLike,
        src_lengths: ArrayLike | None,
        tgt_in: ArrayLike,
        tgt_lengths: ArrayLike | None = None,
        *,
        deterministic: bool = True,
        sampling_rate: float | Array = 0.0,
    ) -> tuple[Array, Array | None]:
        """Teacher-forced logits.

        Args:
          src: ``int[*b, s]`` source tokens (right-padded).
          src_lengths: ``int[*b]`` valid source lengths (``None``: all ``s``).
          tgt_in: ``int[*b, t]`` decoder inputs ``[bos, y_1, ..., y_{n-1}]`` (right-padded).
          tgt_lengths: ``int[*b]`` valid target lengths (``None``: all ``t``).
          deterministic: no dropout, no scheduled sampling; otherwise rngs ``"dropout"``.
          sampling_rate: scheduled-sampling probability (see :meth:`Decoder.__call__`).

        Returns:
          ``(logits: [*b, t, v], weights: [*b, t, s] or None)``: next-token logits and the
          attention weights (zero at padded source positions).
        """
        src = jnp.asarray(src)
        enc_carry, memory = self.encode(src, src_lengths, deterministic=deterministic)
        carry = self.initial_carry(enc_carry, src.shape[:-1])
        _, logits, weights = self.decoder(
            carry,
            tgt_in,
            memory,
            src_lengths,
            lengths=tgt_lengths,
            deterministic=deterministic,
            sampling_rate=sampling_rate,
        )
        return logits, weights

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
        """Decodes from ``bos_id`` until ``eos_id`` or ``max_length`` tokens (jit-able).

        Args:
          src: ``int[*b, s]`` source tokens.
          src_lengths: ``int[*b]`` valid source lengths.
          max_length: number of decoding steps ``T`` (static).
          strategy: ``"greedy"``, ``"sample"`` or ``"beam"``.
          beam_size: beams of ``"beam"``.
          alpha: length-penalty exponent of ``"beam"`` (Wu et al. 2016).
          temperature: temperature of ``"sample"``.
          top_k: top-k truncation of ``"sample"``.
          key: PRNG key of ``"sample"``.

        Returns:
          A :class:`~seqjax.decoding.Decoded`: ``tokens: int[*b, T]`` (``[*b, k, T]`` for
          beams, best first), ``lengths``, ``log_probs``, ``scores`` and ``aux`` = attention
          weights ``[*b, T, s]`` (``[*b, k, T, s]``; ``None`` without attention).
        """
        src = jnp.asarray(src)
        batch = src.shape[:-1]
        enc_carry, memory = self.encode(src, src_lengths)
        carry = self.initial_carry(enc_carry, batch)
        return decoding.decode(
            self.decoder.step_fn(memory, src_lengths),
            carry,
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
