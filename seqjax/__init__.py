"""seqjax: recurrent sequence models in JAX.

Pure cells (:mod:`seqjax.cells`), a sequence engine (:mod:`seqjax.scan`) and combinators
(:mod:`seqjax.combinators`) over parameter pytrees; exact weight converters in
:mod:`seqjax.interop`; attention scores and an attention decoder cell
(:mod:`seqjax.attention`); greedy, sampling and beam-search decoding
(:mod:`seqjax.decoding`); gate activations, attributions and gradient flow
(:mod:`seqjax.inspect`). ``import seqjax`` loads only jax and numpy; the Flax modules are
in :mod:`seqjax.nn`.
"""

from seqjax import attention, decoding, inspect, interop
from seqjax.attention import (
    Attention,
    AttentionOutput,
    AttentionState,
    Memory,
    attend,
    attention_decoder,
    attention_memory,
    bahdanau,
    bind_memory,
    length_mask,
    luong_concat,
    luong_dot,
    luong_general,
    masked_softmax,
)
from seqjax.cells import (
    CELLS,
    Cell,
    LSTMState,
    SLSTMState,
    cell_by_name,
    gru,
    lru,
    lstm,
    min_gru,
    min_lstm,
    rg_lru,
    simple_rnn,
    slstm,
)
from seqjax.combinators import bidirectional, dropout, stack
from seqjax.decoding import Decoded, beam_search, greedy, length_penalty, sample
from seqjax.scan import Seq, recurrent, scan

__version__ = "0.1.0"

__all__ = [
    "CELLS",
    "Attention",
    "AttentionOutput",
    "AttentionState",
    "Cell",
    "Decoded",
    "LSTMState",
    "Memory",
    "SLSTMState",
    "Seq",
    "attend",
    "attention",
    "attention_decoder",
    "attention_memory",
    "bahdanau",
    "beam_search",
    "bidirectional",
    "bind_memory",
    "cell_by_name",
    "decoding",
    "dropout",
    "greedy",
    "gru",
    "inspect",
    "interop",
    "length_mask",
    "length_penalty",
    "lru",
    "lstm",
    "luong_concat",
    "luong_dot",
    "luong_general",
    "masked_softmax",
    "min_gru",
    "min_lstm",
    "recurrent",
    "rg_lru",
    "sample",
    "scan",
    "simple_rnn",
    "slstm",
    "stack",
]
