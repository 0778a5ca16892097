"""Flax (linen) modules: thin shells over seqjax's pure cells, sequences, attention and decoding.

``import seqjax`` does not import Flax; ``import seqjax.nn`` does. Each module holds its
parameters (``self.param("rnn", seq.init, d)``) and calls the pure functions; the math
lives in :mod:`seqjax` and :mod:`seqjax.nn.functional`.

* :class:`Recurrent`: any :class:`~seqjax.Seq` as a layer (lengths, resets, dropout,
  returned or learned carries); :class:`Attention`: attention over a memory.
* Heads: :class:`SequenceClassifier`, :class:`Tagger`, :class:`LanguageModel`,
  :class:`Forecaster`.
* :class:`Seq2Seq` (:class:`Encoder`, :class:`Decoder`): teacher-forced logits, scheduled
  sampling, and :meth:`Seq2Seq.decode` (greedy, sampling, beam search).
* The Transformer baseline (:mod:`seqjax.nn.transformer`, on Flax's attention):
  :class:`TransformerLM`, :class:`TransformerSeq2Seq`, :class:`TransformerEncoder` and its
  heads, decoded by the same functions with a :class:`KVCache` as the carry.
"""

from seqjax.cells import CELLS
from seqjax.nn import functional
from seqjax.nn.heads import Forecaster, LanguageModel, SequenceClassifier, Tagger
from seqjax.nn.layers import Attention, Recurrent, make_attention
from seqjax.nn.seq2seq import Decoder, Encoder, Seq2Seq
from seqjax.nn.transformer import (
    KVCache,
    TransformerClassifier,
    TransformerConfig,
    TransformerEncoder,
    TransformerForecaster,
    TransformerLM,
    TransformerSeq2Seq,
    TransformerTagger,
)

__all__ = [
    "CELLS",
    "Attention",
    "Decoder",
    "Encoder",
    "Forecaster",
    "KVCache",
    "LanguageModel",
    "Recurrent",
    "Seq2Seq",
    "SequenceClassifier",
    "Tagger",
    "TransformerClassifier",
    "TransformerConfig",
    "TransformerEncoder",
    "TransformerForecaster",
    "TransformerLM",
    "TransformerSeq2Seq",
    "TransformerTagger",
    "functional",
    "make_attention",
]
