"""The copy-memory task (Arjovsky et al. 2016) at T=100.

The memoryless baseline is 10 ln 8 / (T + 20) nats per step (0.173 at T=100).
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "copy"
    config.num_steps = 4000
    config.batch_size = 64
    config.learning_rate = 3e-3
    config.eval_every = 500
    config.model.cell = "lstm"  # lstm, gru or simple_rnn
    config.model.hidden_size = 128  # recurrent units
    config.model.embed_size = 16  # symbol embeddings
    config.model.layers = 1  # stacked layers
    config.model.chrono_t_max = 120.0  # chrono init (Tallec and Ollivier 2018) for T + 20 steps
    config.data.delay = 100  # T: blanks between the symbols and the delimiter
    config.data.copy_length = 10  # symbols to remember
    config.data.n_test = 1000  # held-out sequences
    config.data.n_val = 500  # validation sequences (fresh draws of another seed)
    return config
