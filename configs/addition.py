"""Addition as seq2seq ("123+45" -> "168"), the task of Flax's seq2seq example.

Flax's example reports 100% accuracy around step 5000 with a 512-unit LSTM; this config
uses a smaller bidirectional encoder with attention.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "addition"
    config.num_steps = 3000
    config.batch_size = 64
    config.learning_rate = 3e-3
    config.eval_every = 500
    config.model.cell = "lstm"  # lstm, gru or simple_rnn
    config.model.embed_size = 32  # character embeddings
    config.model.hidden_size = 128  # units of every cell
    config.model.encoder_layers = 1  # stacked encoder layers
    config.model.bidirectional = True  # bidirectional encoder
    config.model.attention = "bahdanau"  # bahdanau, dot, general, concat, or None
    config.model.dropout = 0.0  # dropout between layers
    config.data.n_train = 50000  # training problems
    config.data.val_fraction = 0.05  # of the training pairs, held out for validation (seeded)
    config.data.n_test = 2000  # held-out problems, never seen in training
    config.data.max_digits = 3  # operands up to 999
    config.data.n_examples = 8  # decoded examples printed at the end
    return config
