"""One label per step, from your file: ``--config.data.path=FILE`` (``.npz`` or CoNLL).

``.npz``: ``x`` (float ``[n, t, d]``) or ``tokens`` (int ``[n, t]``), optional ``lengths``
and ``y`` (``[n, t]``). CoNLL-style text: ``token<TAB>tag`` lines, a blank line between
sentences. Reports token accuracy and, for BIO tags, entity-level F1 (seqeval), beside a
most-frequent-tag baseline on the same split.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "tag"
    config.num_steps = 2000
    config.batch_size = 32
    config.learning_rate = 3e-3
    config.eval_every = 200
    config.patience = 5  # evaluations without improvement before stopping
    config.model.cell = "lstm"  # lstm, gru, simple_rnn or min_gru
    config.model.hidden_size = 64  # recurrent units (per direction)
    config.model.layers = 1  # stacked layers
    config.model.bidirectional = True  # each tag sees the whole sentence
    config.model.embed_size = 64  # token embeddings (tokens and words)
    config.model.dropout = 0.1  # on inputs, between layers and on outputs
    config.data.path = ""  # the .npz, .conll or .txt file (required)
    config.data.test_path = ""  # a test file in the same format; empty: hold out test_fraction
    config.data.test_fraction = 0.2  # sequences held out for testing (seeded)
    config.data.val_fraction = 0.1  # of the rest, held out for validation (seeded)
    config.data.id_column = "id"  # CSV: the sequence-id column
    config.data.label_column = "label"  # CSV: the per-step label column
    config.data.n_examples = 5  # tagged test sentences printed at the end
    return config
