"""Character language model on a text file (``--config.data.path``).

Without a path, the corpus is the Python standard library's own source files, chosen
deterministically, so it exists on every machine with seqjax installed. Reports bits per
character on held-out text beside a count-based n-gram model on the same split.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "charlm"
    config.num_steps = 3000
    config.batch_size = 32
    config.learning_rate = 3e-3
    config.eval_every = 500
    config.model.cell = "lstm"  # lstm, gru or simple_rnn
    config.model.hidden_size = 256  # recurrent units per layer
    config.model.layers = 1  # stacked layers
    config.model.embed_size = 64  # character embeddings
    config.model.tie_embeddings = False  # share the embedding with the output layer
    config.model.dropout = 0.0  # dropout on embeddings, between layers and on outputs
    config.data.path = ""  # a UTF-8 text file; empty: the default corpus
    config.data.max_chars = 1_000_000  # characters of the default corpus
    config.data.val_fraction = 0.05  # the text's next part validates (contiguous)
    config.data.test_fraction = 0.05  # the text's last part tests (contiguous)
    config.data.seq_len = 128  # training window (truncated backpropagation)
    config.data.eval_chars = 50_000  # characters of each held-out part evaluated
    config.data.max_ngram_order = 6  # the n-gram baseline's order is chosen on validation
    config.data.sample_chars = 300  # characters sampled at the end
    return config
