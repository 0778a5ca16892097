"""The NNX modules of :mod:`seqjax.nnx`.

Parameters are stored as the pure level's pytrees with ``nnx.Param`` leaves, in the layout
of the linen modules of :mod:`seqjax.nn` (``params()`` unwraps them, ``from_params`` wraps
them). :class:`Recurrent` and the feature heads call :mod:`seqjax`'s sequence functions and
:mod:`seqjax.nn.functional` directly; :class:`LanguageModel` and :class:`Seq2Seq` call the
linen module's ``apply``, itself a pure function of the parameter pytree, so that their
output layers, scheduled sampling and decoding are written once, in :mod:`seqjax.nn`.

Stochastic parts follow NNX's conventions: keys come from the ``"dropout"`` stream of the
``nnx.Rngs`` given at construction, and a ``deterministic`` attribute (set by
``model.eval()`` / ``model.train()``, overridable per call) turns dropout off.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
from flax import nnx

from seqjax.combinators import dropout as apply_dropout
from seqjax.combinators import output_size
from seqjax.nn import functional as F
from seqjax.nn import heads as linen_heads
from seqjax.nn import seq2seq as linen_seq2seq
from seqjax.scan import Seq
from seqjax.typing import Array, ArrayLike, Carry, Params, PRNGKey

__all__ = [
    "Forecaster",
    "LanguageModel",
    "Recurrent",
    "Seq2Seq",
    "SequenceClassifier",
    "Tagger",
]


def _is_variable(x: Any) -> bool:
    return isinstance(x, nnx.Variable)


def _wrap(tree: Params) -> Any:
    """A pure pytree with every array leaf an ``nnx.Param``, stored as module data."""
    return nnx.data(jax.tree.map(nnx.Param, tree))


def _unwrap(tree: Any) -> Params:
    """The arrays of a pytree of ``nnx.Variable`` leaves (the pure pytree back)."""
    return jax.tree.map(lambda v: v[...], tree, is_leaf=_is_variable)


def _dense_init(key: PRNGKey, in_size: int, out_size: int) -> Params:
    """A linen ``nn.Dense`` layout (``kernel``, ``bias``) from the pure initialiser."""
    p = F.dense_init(key, in_size, out_size)
    return {"kernel": p["w"], "bias": p["b"]}


def _dense(params: Params, x: ArrayLike) -> Array:
    return F.dense({"w": params["kernel"], "b": params["bias"]}, x)


def _init_key(rngs: nnx.Rngs | None, what: str) -> PRNGKey:
    if rngs is None:
        raise ValueError(f"{what} needs rngs (nnx.Rngs) to initialise, or params to load")
    return rngs.params()


class _Stochastic(nnx.Module):
    """Dropout bookkeeping shared by every module: a rate, a key stream and a mode."""

    def _stochastic(
        self, dropout: float, rngs: nnx.Rngs | None, deterministic: bool, always: bool = False
    ) -> None:
        """``always``: keep a key stream even at rate 0 (a ``seq`` may drop out inside)."""
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout rate must lie in [0, 1), received {dropout!r}")
        self.dropout = dropout
        self.deterministic = deterministic
        self.rngs = nnx.data(None)
        if rngs is not None and (dropout > 0 or always):
            try:
                self.rngs = rngs["dropout"].fork()
            except (KeyError, AttributeError):  # no dropout (nor default) stream
                if dropout > 0:
                    raise ValueError(
                        "dropout > 0 needs a dropout (or default) rng stream"
                    ) from None

    def _keys(self, n: int, deterministic: bool | None) -> tuple:
        """``n`` dropout keys, or ``None``s in deterministic mode (or with no stream and
        nothing to drop)."""
        det = self.deterministic if deterministic is None else deterministic
        if det:
            return (None,) * n
        if self.rngs is None:
            if self.dropout > 0:
                raise ValueError(
                    f"dropout={self.dropout} in training mode needs rngs (nnx.Rngs) at "
                    "construction; call model.eval() or pass deterministic=True to evaluate"
                )
            return (None,) * n
        return tuple(jax.random.split(self.rngs(), n))


class Recurrent(_Stochastic):
    """Any seqjax :class:`~seqjax.Seq` (a layer, a stack, a bidirectional pair) as a layer.

    ``rnn`` holds ``seq.init(key, d)``'s pytree as ``nnx.Param`` leaves and ``__call__`` is
    ``seq.apply``: the same ``lengths``, ``resets`` and carry semantics, zeros past each
    length, as :class:`seqjax.nn.Recurrent`.

    Args:
      seq: the :class:`~seqjax.Seq` to run (batch-first or time-major, as built).
      input_size: feature size ``d`` (to initialise; not needed with ``params``).
      rngs: ``nnx.Rngs``: ``params`` initialises, ``dropout`` feeds dropout.
      dropout: rate of the inverted dropout on the outputs (``seq``'s own dropout, e.g. a
        :func:`~seqjax.stack`'s, gets a key from the same stream).
      return_carry: ``__call__`` returns ``(carry, ys)`` instead of ``ys``.
      learn_initial_carry: learn the initial carry (zeros at initialisation, shared by the
        batch) instead of starting from zeros; a carry given to ``__call__`` overrides it.
      params: load this pure pytree instead of initialising.
      initial_carry: an unbatched initial carry to learn, starting from these values.
      deterministic: start in evaluation mode (no dropout).
    """

    def __init__(
        self,
        seq: Seq,
        input_size: int | None = None,
        *,
        rngs: nnx.Rngs | None = None,
        dropout: float = 0.0,
        return_carry: bool = False,
        learn_initial_carry: bool = False,
        params: Params | None = None,
        initial_carry: Carry | None = None,
        deterministic: bool = False,
    ):
        if params is None:
            if input_size is None:
                raise ValueError("Recurrent needs input_size to initialise, or params to load")
            params = seq.init(_init_key(rngs, "Recurrent"), input_size)
        if initial_carry is None and learn_initial_carry:
            initial_carry = seq.initial_carry(params, ())
        self.seq = seq
        self.return_carry = return_carry
        self.rnn = _wrap(params)
        self.initial_carry = nnx.data(None) if initial_carry is None else _wrap(initial_carry)
        self._stochastic(dropout, rngs, deterministic, always=True)

    @classmethod
    def from_params(
        cls, seq: Seq, params: Params, *, initial_carry: Carry | None = None, **kwargs
    ) -> Recurrent:
        """A layer holding ``params`` (from ``seq.init``, a linen module's ``"rnn"``, or
        :func:`seqjax.interop.from_torch`); ``kwargs`` as in the constructor."""
        return cls(seq, params=params, initial_carry=initial_carry, **kwargs)

    def params(self) -> Params:
        """The pure pytree ``seq.apply`` takes (the arrays, not copies of code)."""
        return _unwrap(self.rnn)

    def __call__(
        self,
        xs: ArrayLike,
        carry: Carry | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        deterministic: bool | None = None,
    ):
        """Runs the sequence.

        Args:
          xs: ``[*b, t, d]`` (``[t, *b, d]`` for a time-major ``seq``).
          carry: initial carry, leaves ``[*b, ...]``; ``None`` for the default (zeros, or
            the learned one).
          lengths: ``int[*b]`` valid lengths of right-padded sequences.
          resets: ``bool[*b, t]`` segment starts of packed sequences.
          deterministic: overrides the module's mode for this call.

        Returns:
          ``ys: [*b, t, p]``, or ``(carry, ys)`` with ``return_carry``.
        """
        xs = jnp.asarray(xs)
        params, seq = self.params(), self.seq
        if carry is None and self.initial_carry is not None:
            c0 = _unwrap(self.initial_carry)
            shapes = jax.eval_shape(lambda p, x: seq.apply(p, x)[0], params, xs)
            carry = jax.tree.map(lambda c, s: jnp.broadcast_to(c, s.shape), c0, shapes)
        k_seq, k_out = self._keys(2, deterministic)
        carry, ys = seq.apply(params, xs, carry, lengths=lengths, resets=resets, key=k_seq)
        ys = apply_dropout(k_out, ys, self.dropout)
        return (carry, ys) if self.return_carry else ys


class _Features(_Stochastic):
    """Token embedding (with ``vocab_size``) then a :class:`Recurrent`; the layout of the
    linen heads' ``"features"``: ``embedding: [v, e]``, ``recurrent: {rnn: ...}``."""

    def __init__(self, seq, input_size, vocab_size, embed_size, dropout, rngs, params, det):
        if params is None:
            key = _init_key(rngs, type(self).__name__)
            k_embed, k_rnn = jax.random.split(key)
            params, d = {}, input_size
            if vocab_size is not None:
                if embed_size is None:
                    raise ValueError("embed_size is needed with vocab_size")
                params["embedding"], d = F.embed_init(k_embed, vocab_size, embed_size), embed_size
            elif input_size is None:
                raise ValueError("input_size is needed without vocab_size")
            params["recurrent"] = {"rnn": seq.init(k_rnn, d)}
            self.out_size = output_size(seq, params["recurrent"]["rnn"], d)
        emb = params.get("embedding")
        self.embedding = nnx.data(None) if emb is None else _wrap(emb)
        self.recurrent = Recurrent.from_params(
            seq, params["recurrent"]["rnn"], dropout=dropout, rngs=rngs, deterministic=det
        )
        self._stochastic(dropout, rngs, det)

    def params(self) -> Params:
        p: dict[str, Any] = {"recurrent": {"rnn": self.recurrent.params()}}
        if self.embedding is not None:
            p["embedding"] = _unwrap(self.embedding)
        return p

    def __call__(self, xs, lengths, deterministic):
        if self.embedding is not None:
            xs = F.embed(_unwrap(self.embedding), xs)
        (k_in,) = self._keys(1, deterministic)
        xs = apply_dropout(k_in, jnp.asarray(xs), self.dropout)
        return self.recurrent(xs, lengths=lengths, deterministic=deterministic)


class _Head(nnx.Module):
    """``from_params``/``params`` for modules laid out as ``features`` (or ``recurrent``)
    and a dense ``head`` (``kernel``, ``bias``), as the linen heads are."""

    def _head(self, params: Params | None, rngs: nnx.Rngs | None, out: int, size) -> None:
        if params is None:
            params = _dense_init(_init_key(rngs, type(self).__name__), size(), out)
        self.head = _wrap(params)

    def _head_params(self) -> Params:
        return _unwrap(self.head)


class _FeatureHead(_Head):
    """Embedding (for tokens), recurrent features and a dense head of ``out`` units: what
    :class:`SequenceClassifier` and :class:`Tagger` share (they differ in pooling)."""

    def __init__(
        self,
        seq: Seq,
        out: int,
        *,
        input_size: int | None = None,
        vocab_size: int | None = None,
        embed_size: int | None = None,
        dropout: float = 0.0,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        deterministic: bool = False,
    ):
        p = params or {}
        self.features = _Features(
            seq, input_size, vocab_size, embed_size, dropout, rngs, p.get("features"),
            deterministic,
        )  # fmt: skip
        self._head(p.get("head"), rngs, out, lambda: self.features.out_size)

    @classmethod
    def from_params(cls, seq: Seq, out: int, params: Params, **kwargs):
        """A module holding ``params`` (e.g. the linen module's ``variables["params"]``)."""
        return cls(seq, out, params=params, **kwargs)

    def params(self) -> Params:
        """The linen layout: ``{"features": ..., "head": {"kernel", "bias"}}``."""
        return {"features": self.features.params(), "head": self._head_params()}

    def _logits(self, xs, lengths, deterministic, pool=None) -> Array:
        ys = self.features(xs, lengths, deterministic)
        return _dense(self._head_params(), ys if pool is None else pool(ys))


class SequenceClassifier(_FeatureHead):
    """One label per sequence: recurrent features, pooled over valid steps, then logits
    (:class:`seqjax.nn.SequenceClassifier` in NNX, with its parameter layout).

    Args:
      seq: the recurrent :class:`~seqjax.Seq`.
      num_classes: number of classes.
      input_size: feature size ``d`` (without ``vocab_size``).
      pooling: ``"last"``, ``"mean"`` or ``"max"`` (:func:`seqjax.nn.functional.pool`).
      vocab_size: embed integer tokens first (``None``: inputs are features).
      embed_size: embedding size (with ``vocab_size``).
      dropout: dropout rate on the inputs and on the recurrent outputs.
      rngs: ``nnx.Rngs`` (``params``, ``dropout``).
      params: load this pytree (linen's ``variables["params"]``) instead of initialising.
      deterministic: start in evaluation mode.
    """

    def __init__(
        self,
        seq: Seq,
        num_classes: int,
        *,
        pooling: str = "last",
        input_size: int | None = None,
        vocab_size: int | None = None,
        embed_size: int | None = None,
        dropout: float = 0.0,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        deterministic: bool = False,
    ):
        F.pool(pooling, jnp.zeros((1, 1)))  # validates the name
        self.pooling = pooling
        super().__init__(
            seq,
            num_classes,
            input_size=input_size,
            vocab_size=vocab_size,
            embed_size=embed_size,
            dropout=dropout,
            rngs=rngs,
            params=params,
            deterministic=deterministic,
        )

    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool | None = None
    ) -> Array:
        """``xs: [*b, t, d]`` (or ``int[*b, t]`` tokens), ``lengths: int[*b]`` ->
        logits ``[*b, num_classes]``."""
        pool = lambda ys: F.pool(self.pooling, ys, lengths)  # noqa: E731
        return self._logits(xs, lengths, deterministic, pool)


class Tagger(_FeatureHead):
    """One label per step (:class:`seqjax.nn.Tagger` in NNX, with its parameter layout).

    Args:
      seq: the recurrent :class:`~seqjax.Seq` (typically bidirectional).
      num_tags: number of tags.
      input_size: feature size ``d`` (without ``vocab_size``).
      vocab_size: embed integer tokens first.
      embed_size: embedding size (with ``vocab_size``).
      dropout: dropout rate on the inputs and on the recurrent outputs.
      rngs: ``nnx.Rngs`` (``params``, ``dropout``).
      params: load this pytree instead of initialising.
      deterministic: start in evaluation mode.
    """

    def __init__(
        self,
        seq: Seq,
        num_tags: int,
        *,
        input_size: int | None = None,
        vocab_size: int | None = None,
        embed_size: int | None = None,
        dropout: float = 0.0,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        deterministic: bool = False,
    ):
        super().__init__(
            seq,
            num_tags,
            input_size=input_size,
            vocab_size=vocab_size,
            embed_size=embed_size,
            dropout=dropout,
            rngs=rngs,
            params=params,
            deterministic=deterministic,
        )

    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool | None = None
    ) -> Array:
        """``xs: [*b, t, d]`` (or ``int[*b, t]``) -> logits ``[*b, t, num_tags]``."""
        return self._logits(xs, lengths, deterministic)


class Forecaster(_Head):
    """Regression on sequences (:class:`seqjax.nn.Forecaster` in NNX, with its layout).

    Args:
      seq: the recurrent :class:`~seqjax.Seq`.
      input_size: feature size ``d``.
      features: number of predicted features ``f``.
      horizon: ``None``: one prediction per step (``[*b, t, f]``); an int ``H``: the next
        ``H`` values after each sequence's last valid step (``[*b, H, f]``).
      dropout: dropout rate on the recurrent outputs.
      rngs: ``nnx.Rngs`` (``params``, ``dropout``).
      params: load this pytree instead of initialising.
      deterministic: start in evaluation mode.
    """

    def __init__(
        self,
        seq: Seq,
        features: int,
        *,
        input_size: int | None = None,
        horizon: int | None = None,
        dropout: float = 0.0,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        deterministic: bool = False,
    ):
        self.num_features, self.horizon = features, horizon
        p = params or {}
        rnn = p.get("recurrent", {}).get("rnn")
        if rnn is None:
            if input_size is None:
                raise ValueError("Forecaster needs input_size to initialise, or params to load")
            rnn = seq.init(_init_key(rngs, "Forecaster"), input_size)
        self.recurrent = Recurrent.from_params(
            seq, rnn, dropout=dropout, rngs=rngs, deterministic=deterministic
        )
        out = features * (horizon or 1)
        self._head(p.get("head"), rngs, out, lambda: output_size(seq, rnn, input_size or 0))

    @classmethod
    def from_params(cls, seq: Seq, features: int, params: Params, **kwargs):
        """A forecaster holding ``params`` (e.g. a linen forecaster's ``variables["params"]``)."""
        return cls(seq, features, params=params, **kwargs)

    def params(self) -> Params:
        """The linen layout: ``{"recurrent": {"rnn": ...}, "head": {"kernel", "bias"}}``."""
        return {"recurrent": {"rnn": self.recurrent.params()}, "head": self._head_params()}

    def __call__(
        self, xs: ArrayLike, lengths: ArrayLike | None = None, *, deterministic: bool | None = None
    ) -> Array:
        """``xs: [*b, t, d]`` -> ``[*b, t, f]`` or ``[*b, H, f]``."""
        ys = self.recurrent(xs, lengths=lengths, deterministic=deterministic)
        if self.horizon is None:
            return _dense(self._head_params(), ys)
        out = _dense(self._head_params(), F.last_valid(ys, lengths))
        return out.reshape(*out.shape[:-1], self.horizon, self.num_features)


class _LinenBacked(_Stochastic):
    """Holds a linen module's ``params`` as ``nnx.Param`` leaves and runs its ``apply``."""

    def _backed(self, module, params, init_args, rngs, dropout, deterministic) -> None:
        if params is None:
            key = _init_key(rngs, type(self).__name__)
            params = module.init(key, *init_args)["params"]
        self.module = module
        self.weights = _wrap(params)
        self._stochastic(dropout, rngs, deterministic, always=True)

    def params(self) -> Params:
        """The linen module's ``variables["params"]``."""
        return _unwrap(self.weights)

    def _apply(self, *args, method=None, deterministic: bool | None = None, **kwargs):
        (key,) = self._keys(1, deterministic)
        rngs = None if key is None else {"dropout": key}
        if deterministic is not None or method is None:
            kwargs["deterministic"] = key is None
        return self.module.apply(
            {"params": self.params()}, *args, method=method, rngs=rngs, **kwargs
        )


class LanguageModel(_LinenBacked):
    r"""Token-level language model (:class:`seqjax.nn.LanguageModel` in NNX): embedding,
    recurrent stack, logits (optionally tied to the embedding), and sampling.

    Args:
      vocab_size: vocabulary size ``v``.
      embed_size: embedding size ``e``.
      seq: the recurrent :class:`~seqjax.Seq`.
      tie_embeddings: share the embedding table with the output layer.
      dropout: dropout rate on the embeddings and on the recurrent outputs.
      return_carry: ``__call__`` returns ``(carry, logits)``.
      rngs: ``nnx.Rngs`` (``params``, ``dropout``).
      params: load this pytree (linen's ``variables["params"]``) instead of initialising.
      deterministic: start in evaluation mode.
    """

    def __init__(
        self,
        vocab_size: int,
        embed_size: int,
        seq: Seq,
        *,
        tie_embeddings: bool = False,
        dropout: float = 0.0,
        return_carry: bool = False,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        deterministic: bool = False,
    ):
        module = linen_heads.LanguageModel(
            vocab_size, embed_size, seq, tie_embeddings, dropout, return_carry
        )
        example = (jnp.zeros((1, 1), jnp.int32),)
        self._backed(module, params, example, rngs, dropout, deterministic)

    @classmethod
    def from_params(cls, vocab_size: int, embed_size: int, seq: Seq, params: Params, **kwargs):
        """A language model holding ``params``."""
        return cls(vocab_size, embed_size, seq, params=params, **kwargs)

    def __call__(
        self,
        tokens: ArrayLike,
        carry: Carry | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        deterministic: bool | None = None,
    ):
        """``tokens: int[*b, t]`` -> next-token logits ``[*b, t, v]`` (or ``(carry,
        logits)``); see :meth:`seqjax.nn.LanguageModel.__call__`."""
        return self._apply(
            tokens, carry, lengths=lengths, resets=resets, deterministic=deterministic
        )

    def generate(self, prompt: ArrayLike, key: PRNGKey, *, max_length: int, **kwargs):
        """Samples ``max_length`` new tokens after ``prompt: int[*b, t]``; ``kwargs`` and the
        returned :class:`~seqjax.decoding.Decoded` as in
        :meth:`seqjax.nn.LanguageModel.generate`."""
        return self.module.apply(
            {"params": self.params()},
            prompt,
            key,
            max_length=max_length,
            method="generate",
            **kwargs,
        )


class Seq2Seq(_LinenBacked):
    """Encoder-decoder with attention and decoding (:class:`seqjax.nn.Seq2Seq` in NNX).

    Args:
      src_vocab: source vocabulary size.
      tgt_vocab: target vocabulary size.
      rngs: ``nnx.Rngs`` (``params``, ``dropout`` for dropout and scheduled sampling).
      params: load this pytree (linen's ``variables["params"]``) instead of initialising.
      deterministic: start in evaluation mode.
      **fields: the fields of :class:`seqjax.nn.Seq2Seq` (``embed_size``, ``hidden_size``,
        ``cell``, ``attention``, ``bridge``, ``dropout``, ``encoder_seq``, ...).
    """

    def __init__(
        self,
        src_vocab: int,
        tgt_vocab: int,
        *,
        rngs: nnx.Rngs | None = None,
        params: Params | None = None,
        deterministic: bool = False,
        **fields: Any,
    ):
        module = linen_seq2seq.Seq2Seq(src_vocab, tgt_vocab, **fields)
        tokens = jnp.zeros((1, 1), jnp.int32)
        self._backed(module, params, (tokens, None, tokens), rngs, module.dropout, deterministic)

    @classmethod
    def from_params(cls, src_vocab: int, tgt_vocab: int, params: Params, **kwargs):
        """A model holding ``params``; ``kwargs``: the constructor's."""
        return cls(src_vocab, tgt_vocab, params=params, **kwargs)

    def __call__(
        self,
        src: ArrayLike,
        src_lengths: ArrayLike | None,
        tgt_in: ArrayLike,
        tgt_lengths: ArrayLike | None = None,
        *,
        deterministic: bool | None = None,
        sampling_rate: float | Array = 0.0,
    ) -> tuple[Array, Array | None]:
        """Teacher-forced ``(logits: [*b, t, v], weights: [*b, t, s] or None)``; see
        :meth:`seqjax.nn.Seq2Seq.__call__`."""
        det = self.deterministic if deterministic is None else deterministic
        scheduled = not isinstance(sampling_rate, (int, float)) or sampling_rate != 0
        if not det and scheduled and self.rngs is None:
            raise ValueError("scheduled sampling in training mode needs rngs at construction")
        return self._apply(
            src, src_lengths, tgt_in, tgt_lengths, deterministic=det, sampling_rate=sampling_rate
        )

    def encode(self, src: ArrayLike, src_lengths: ArrayLike | None = None):
        """``src: int[*b, s]`` -> ``(encoder carry, memory: [*b, s, m])`` (deterministic)."""
        return self.module.apply({"params": self.params()}, src, src_lengths, method="encode")

    def decode(self, src: ArrayLike, src_lengths: ArrayLike | None = None, **kwargs):
        """Greedy, sampled or beam-search decoding (jit-able); ``kwargs`` (``max_length``,
        ``strategy``, ``beam_size``, ``alpha``, ``temperature``, ``top_k``, ``key``) and the
        returned :class:`~seqjax.decoding.Decoded` as in :meth:`seqjax.nn.Seq2Seq.decode`."""
        return self.module.apply(
            {"params": self.params()}, src, src_lengths, method="decode", **kwargs
        )
