"""seqjax: recurrent sequence models in JAX.

Pure cells (:mod:`seqjax.cells`), a sequence engine (:mod:`seqjax.scan`) and combinators
(:mod:`seqjax.combinators`) over parameter pytrees; exact weight converters in
:mod:`seqjax.interop`. ``import seqjax`` loads only jax and numpy.
"""

from seqjax import interop
from seqjax.cells import Cell, LSTMState, gru, lstm, min_gru, simple_rnn
from seqjax.combinators import bidirectional, dropout, stack
from seqjax.scan import Seq, recurrent, scan

__version__ = "0.1.0"

__all__ = [
    "Cell",
    "LSTMState",
    "Seq",
    "bidirectional",
    "dropout",
    "gru",
    "interop",
    "lstm",
    "min_gru",
    "recurrent",
    "scan",
    "simple_rnn",
    "stack",
]
