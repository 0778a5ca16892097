"""The adding problem (Hochreiter and Schmidhuber 1997) at T=200.

Predicting the mean scores MSE 0.167; the LSTM should reach below 0.01. Run the Elman RNN
beside it with ``--config.model.cell=simple_rnn``.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "adding"
    config.num_steps = 3000
    config.batch_size = 64
    config.learning_rate = 3e-3
    config.eval_every = 500
    config.model.cell = "lstm"  # lstm, gru or simple_rnn
    config.model.hidden_size = 128  # recurrent units
    config.model.layers = 1  # stacked layers
    config.data.length = 200  # sequence length T
    config.data.n_test = 2000  # held-out sequences
    config.data.n_val = 1000  # validation sequences (fresh draws of another seed)
    return config
