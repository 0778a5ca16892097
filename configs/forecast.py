"""One-step forecasting of a univariate series from a CSV file.

``--config.data.path=FILE.csv --config.data.column=NAME``; without a path, a default
synthetic series. Scaling is fitted on the training part only; the held-out tail is
reported in MSE and MAE beside a naive and a least-squares AR(p) baseline.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "forecast"
    config.num_steps = 2000
    config.batch_size = 64
    config.learning_rate = 3e-3
    config.eval_every = 500
    config.model.cell = "lstm"  # lstm, gru or simple_rnn
    config.model.hidden_size = 64  # recurrent units
    config.model.layers = 1  # stacked layers
    config.data.path = ""  # a CSV file; empty: the default series
    config.data.column = "value"  # the CSV column (name or index)
    config.data.window = 48  # past values the model sees
    config.data.ar_order = 48  # p of the AR(p) baseline
    return config
