"""Human-written dates to ISO dates: bidirectional LSTM encoder, attention decoder.

Evaluated by exact match on calendar dates never seen in training.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "dates"
    config.num_steps = 1000
    config.batch_size = 64
    config.learning_rate = 3e-3
    config.eval_every = 250
    config.model.cell = "lstm"  # encoder and decoder cell: lstm, gru or simple_rnn
    config.model.embed_size = 32  # character embeddings
    config.model.hidden_size = 128  # decoder units; each encoder direction has half
    config.model.encoder_layers = 1  # stacked encoder layers
    config.model.bidirectional = True  # bidirectional encoder
    config.model.attention = "bahdanau"  # bahdanau, dot, general, concat, or None
    config.model.dropout = 0.0  # dropout between layers
    config.data.n_train = 20000  # training pairs (over distinct training dates)
    config.data.val_fraction = 0.05  # of the training pairs, held out for validation (seeded)
    config.data.n_test = 2000  # test pairs, all on dates never seen in training
    config.data.n_examples = 8  # decoded examples printed at the end
    return config
