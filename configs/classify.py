"""One label per sequence, from your file: ``--config.data.path=FILE`` (``.npz`` or CSV).

``.npz``: ``x`` (float ``[n, t, d]``, right-padded) or ``tokens`` (int ``[n, t]``),
optional ``lengths`` (int ``[n]``, default ``t``) and ``y`` (``[n]``, any label values).
CSV in long form: one row per step, a sequence-id column, a label column and numeric
feature columns. Features are standardised with statistics of the training part only.
Reports accuracy, macro F1 and loss, a confusion matrix, and a logistic regression on
pooled features of the same split.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "classify"
    config.num_steps = 2000
    config.batch_size = 32
    config.learning_rate = 3e-3
    config.eval_every = 200
    config.patience = 5  # evaluations without a better validation accuracy before stopping
    config.model.cell = "gru"  # lstm, gru, simple_rnn or min_gru
    config.model.hidden_size = 64  # recurrent units (per direction)
    config.model.layers = 1  # stacked layers
    config.model.bidirectional = True  # read each sequence both ways
    config.model.pooling = "mean"  # last, mean or max over the valid steps
    config.model.embed_size = 32  # token embeddings (for tokens inputs)
    config.model.dropout = 0.1  # on inputs, between layers and on outputs
    config.data.path = ""  # the .npz or .csv file (required)
    config.data.test_path = ""  # a test file in the same format; empty: hold out test_fraction
    config.data.test_fraction = 0.2  # held out for testing (seeded, stratified by label)
    config.data.val_fraction = 0.1  # of the rest, held out for validation (seeded, stratified)
    config.data.id_column = "id"  # CSV: the sequence-id column
    config.data.label_column = "label"  # CSV: the label column
    return config
