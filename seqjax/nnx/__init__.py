"""Flax NNX modules: thin shells over seqjax's pure sequences, heads and decoding.

``import seqjax`` does not import Flax; ``import seqjax.nnx`` does. Each module holds the
parameter pytree of the pure level (or of the matching :mod:`seqjax.nn` linen module) as
``nnx.Param`` leaves and calls the pure functions; nothing is re-derived here.

* :class:`Recurrent`: any :class:`~seqjax.Seq` as a layer (lengths, resets, dropout from an
  ``nnx.Rngs`` stream, a learnable initial carry). ``Recurrent.from_params(seq, params)``
  loads a pure pytree (from ``seq.init`` or :func:`seqjax.interop.from_torch`) and
  :meth:`Recurrent.params` gives it back.
* Heads: :class:`SequenceClassifier`, :class:`Tagger`, :class:`LanguageModel` (with
  :meth:`LanguageModel.generate`), :class:`Forecaster`; and :class:`Seq2Seq` (teacher
  forcing and decoding: greedy, sampling, beam search).

Every module's :meth:`params` is the same pytree as the linen module's
``variables["params"]``, and ``from_params`` takes that pytree, so a model moves between
linen and NNX (and to checkpoints) without conversion code; :func:`from_linen` gives the
NNX twin of a linen module and its params.
"""

from seqjax.nnx.from_linen import from_linen
from seqjax.nnx.modules import (
    Forecaster,
    LanguageModel,
    Recurrent,
    Seq2Seq,
    SequenceClassifier,
    Tagger,
)

__all__ = [
    "Forecaster",
    "LanguageModel",
    "Recurrent",
    "Seq2Seq",
    "SequenceClassifier",
    "Tagger",
    "from_linen",
]
