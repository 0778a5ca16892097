"""String transduction from your file: ``--config.data.path=FILE.tsv`` of
``source<TAB>target`` lines, character-level by default (``--config.data.tokens=words``
for whitespace tokens). Reports exact match, character error rate and, for words, BLEU
(sacrebleu), beside a nearest-training-source baseline on the same split; decoded examples
and attention maps as the dates experiment does.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "seq2seq"
    config.num_steps = 3000
    config.batch_size = 64
    config.learning_rate = 3e-3
    config.eval_every = 500
    config.patience = 0  # evaluations without improvement before stopping; 0: never
    config.model.cell = "lstm"  # encoder and decoder cell: lstm, gru, simple_rnn or min_gru
    config.model.embed_size = 32  # token embeddings
    config.model.hidden_size = 128  # units of every cell
    config.model.encoder_layers = 1  # stacked encoder layers
    config.model.bidirectional = True  # bidirectional encoder
    config.model.attention = "bahdanau"  # bahdanau, dot, general, concat, or None
    config.model.dropout = 0.0  # dropout between layers
    config.data.path = ""  # the TSV file of source<TAB>target lines (required)
    config.data.test_path = ""  # a test TSV; empty: hold out test_fraction of the pairs
    config.data.test_fraction = 0.1  # pairs held out for testing (seeded)
    config.data.val_fraction = 0.05  # of the rest, held out for validation (seeded)
    config.data.tokens = "chars"  # chars or words (whitespace-separated)
    config.data.bleu = False  # also BLEU for character-level targets (always for words)
    config.data.n_examples = 8  # decoded examples printed at the end
    return config
