"""Task heads over any seqjax :class:`~seqjax.Seq`: classifier, tagger, language model,
forecaster. Inputs are batch-first (``[*b, t, ...]``)."""

from __future__ import annotations

import jax.numpy as jnp
from flax import linen as nn

from seqjax import decoding
from seqjax.combinators import dropout as apply_dropout
from seqjax.combinators import output_size
from seqjax.nn import functional as F
from seqjax.nn.layers import Recurrent, _checked_param, _rng
from seqjax.scan import Seq
from seqjax.typing import Array, ArrayLike, Carry, PRNGKey

__all__ = ["Forecaster", "LanguageModel", "SequenceClassifier", "Tagger"]


class _Features(nn.Module):
    """Token embedding (when ``vocab_size`` is set) then the recurrent layer."""

    seq: Seq
    vocab_size: int | None
    embed_size: int | None
    dropout: float

    @nn.compact
    def __call__(self, xs, lengths, deterministic):
        if self.vocab_size is not None:
            if self.embed_size is None:
                raise ValueError("embed_size is needed with vocab_size")
            table = self.param("embedding", F.embed_init, self.vocab_size, self.embed_size)
            xs = F.embed(table, xs)
        (k_in,) = _rng(self, deterministic, 1)
        xs = apply_dropout(k_in, jnp.asarray(xs), self.dropout)
        return Recurrent(self.seq, dropout=self.dropout, name="recurrent")(
            xs, lengths=lengths, deterministic=deterministic
        )


class SequenceClassifier(nn.Module):
    """One label per sequence: recurrent features, pooled over valid steps, then logits.

    Attributes:
      seq: the recurrent :class:`~seqjax.Seq`.
      num_classes: number of classes.
      pooling: ``"last"`` (output at the last valid step), ``"mean"`` or ``"max"`` over
        valid steps (:mod:`seqjax.nn.functional`). For a bidirectional ``seq``, ``"last"``
        holds the forward direction's final state but the backward direction's *first* step;
        prefer ``"mean"`` or ``"max"`` there.
      vocab_size: embed integer tokens first (``None``: inputs are features).
      embed_size: embedding size (with ``vocab_size``).
      dropout: dropout rate on the inputs and on the recurrent outputs.
    """

    seq: Seq
    num_classes: int
    pooling: str = "last"
    vocab_size: int | None = None
    embed_size: int | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> Array:
        """``xs: [*b, t, d]`` (or ``int[*b, t]`` tokens), ``lengths: int[*b]`` ->
        logits ``[*b, num_classes]``."""
        ys = _Features(self.seq, self.vocab_size, self.embed_size, self.dropout, name="features")(
            xs, lengths, deterministic
        )
        return nn.Dense(self.num_classes, name="head")(F.pool(self.pooling, ys, lengths))


class Tagger(nn.Module):
    """One label per step (part-of-speech tagging, named entities, frame labels).

    Attributes:
      seq: the recurrent :class:`~seqjax.Seq` (typically bidirectional).
      num_tags: number of tags.
      vocab_size: embed integer tokens first (``None``: inputs are features).
      embed_size: embedding size (with ``vocab_size``).
      dropout: dropout rate on the inputs and on the recurrent outputs.
    """

    seq: Seq
    num_tags: int
    vocab_size: int | None = None
    embed_size: int | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> Array:
        """``xs: [*b, t, d]`` (or ``int[*b, t]``) -> logits ``[*b, t, num_tags]`` (mask the
        steps past ``lengths`` in the loss)."""
        ys = _Features(self.seq, self.vocab_size, self.embed_size, self.dropout, name="features")(
            xs, lengths, deterministic
        )
        return nn.Dense(self.num_tags, name="head")(ys)


class LanguageModel(nn.Module):
    r"""Character- or token-level language model: embedding, recurrent stack, logits.

    .. math::
        p(x_{t+1} \mid x_{\le t}) = \operatorname{softmax}(W_o h_t + b_o)

    With ``tie_embeddings`` the output matrix is the embedding table, :math:`W_o = E^\top`
    (Press and Wolf 2017; Inan et al. 2017), after a linear projection of :math:`h_t` to the
    embedding size when the sizes differ.

    Params: ``embedding: [v, e]``, ``rnn`` (``seq.init``), and ``output: {w: [p, v], b: [v]}``
    or, tied, ``output_bias: [v]`` (and ``projection: {w: [p, e], b: [e]}`` when ``p != e``).

    Attributes:
      vocab_size: vocabulary size ``v``.
      embed_size: embedding size ``e``.
      seq: the recurrent :class:`~seqjax.Seq`, e.g. ``stack(recurrent(lstm(512)), ...)``.
      tie_embeddings: share the embedding table with the output layer.
      dropout: dropout rate on the embeddings and on the recurrent outputs.
      return_carry: ``__call__`` returns ``(carry, logits)`` instead of ``logits``.
    """

    vocab_size: int
    embed_size: int
    seq: Seq
    tie_embeddings: bool = False
    dropout: float = 0.0
    return_carry: bool = False

    def setup(self):
        v, e = self.vocab_size, self.embed_size
        self.embedding = self.param("embedding", F.embed_init, v, e)
        self.rnn = _checked_param(self, "rnn", self.seq.init, e)
        p = output_size(self.seq, self.rnn, e)
        if self.tie_embeddings:
            self.output_bias = self.param("output_bias", nn.initializers.zeros, (v,))
            if p != e:
                self.projection = self.param("projection", F.dense_init, p, e)
        else:
            self.output = self.param("output", F.dense_init, p, v)

    def __call__(
        self,
        tokens: ArrayLike,
        carry: Carry | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        deterministic: bool = True,
    ):
        """Next-token logits at every step.

        Args:
          tokens: ``int[*b, t]`` inputs (targets are ``tokens`` shifted left by one).
          carry: the carry to continue from (e.g. from the previous chunk of a long text).
          lengths: ``int[*b]`` valid lengths.
          resets: ``bool[*b, t]`` document starts in packed batches.
          deterministic: no dropout; otherwise keys from the ``"dropout"`` rng stream.

        Returns:
          ``logits: [*b, t, v]``, or ``(carry, logits)`` with ``return_carry``.
        """
        k_in, k_seq, k_out = _rng(self, deterministic, 3)
        xs = apply_dropout(k_in, F.embed(self.embedding, tokens), self.dropout)
        carry, ys = self.seq.apply(self.rnn, xs, carry, lengths=lengths, resets=resets, key=k_seq)
        logits = self._pure_logits()(apply_dropout(k_out, ys, self.dropout))
        return (carry, logits) if self.return_carry else logits

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
        """Samples continuations of ``prompt: int[*b, t]`` (``t >= 1``, same length for all).

        The prompt but its last token runs in one pass; then :func:`seqjax.decoding.sample`
        continues from the last token. Returns a :class:`~seqjax.decoding.Decoded` with the
        ``max_length`` new tokens.
        """
        prompt = jnp.asarray(prompt)
        if prompt.ndim < 1 or prompt.shape[-1] < 1:
            raise ValueError(f"prompt must be int[*b, t] with t >= 1, received {prompt.shape}")
        batch = prompt.shape[:-1]
        carry = self.seq.initial_carry(self.rnn, batch)
        if prompt.shape[-1] > 1:
            xs = F.embed(self.embedding, prompt[..., :-1])
            carry, _ = self.seq.apply(self.rnn, xs, carry)
        table, params, seq, to_logits = self.embedding, self.rnn, self.seq, self._pure_logits()

        def step_fn(carry, tokens):
            carry, ys = seq.apply(params, F.embed(table, tokens)[..., None, :], carry)
            return carry, to_logits(ys[..., 0, :]), None

        return decoding.sample(
            step_fn,
            carry,
            prompt[..., -1],
            key,
            max_length=max_length,
            eos_id=eos_id,
            pad_id=pad_id,
            temperature=temperature,
            top_k=top_k,
        )

    def _pure_logits(self):
        """The output layer as a pure function of arrays (safe inside ``lax.scan``)."""
        if not self.tie_embeddings:
            out = self.output
            return lambda ys: F.dense(out, ys)
        tied = {"w": self.embedding.T, "b": self.output_bias}
        proj = getattr(self, "projection", None)
        if proj is None:
            return lambda ys: F.dense(tied, ys)
        return lambda ys: F.dense(tied, F.dense(proj, ys))


class Forecaster(nn.Module):
    """Regression on sequences: a prediction at every step, or the next values.

    Attributes:
      seq: the recurrent :class:`~seqjax.Seq`.
      features: number of predicted features ``f``.
      horizon: ``None``: one prediction per step (``[*b, t, f]``, e.g. :math:`x_{t+1}` from
        :math:`x_{\\le t}`); an int ``H``: the next ``H`` values after each sequence's last
        valid step, predicted at once from its final output (``[*b, H, f]``).
      dropout: dropout rate on the recurrent outputs.
    """

    seq: Seq
    features: int
    horizon: int | None = None
    dropout: float = 0.0

    @nn.compact
    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool = True
    ) -> Array:
        """``xs: [*b, t, d]`` -> ``[*b, t, f]`` or ``[*b, H, f]``."""
        ys = Recurrent(self.seq, dropout=self.dropout, name="recurrent")(
            xs, lengths=lengths, deterministic=deterministic
        )
        if self.horizon is None:
            return nn.Dense(self.features, name="head")(ys)
        last = F.last_valid(ys, lengths)
        out = nn.Dense(self.horizon * self.features, name="head")(last)
        return out.reshape(*out.shape[:-1], self.horizon, self.features)
