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
"""

from seqjax.cells import CELLS
from seqjax.nn import functional
from seqjax.nn.heads import Forecaster, LanguageModel, SequenceClassifier, Tagger
from seqjax.nn.layers import Attention, Recurrent, make_attention
from seqjax.nn.seq2seq import Decoder, Encoder, Seq2Seq

__all__ = [
    "CELLS",
    "Attention",
    "Decoder",
    "Encoder",
    "Forecaster",
    "LanguageModel",
    "Recurrent",
    "Seq2Seq",
    "SequenceClassifier",
    "Tagger",
    "functional",
    "make_attention",
]
