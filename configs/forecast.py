"""Forecasting a series from a CSV file: one or more input columns, any horizon.

``--config.data.path=FILE.csv --config.data.column=NAME`` (the target); add inputs with
``--config.data.columns='["a", "b"]'``. Without a path, a default synthetic series. The
series is split in time (train, the validation block, the held-out tail); scaling is
fitted on the training part only; the tail is reported in MSE and MAE (original and scaled
units) beside naive, seasonal naive and least-squares AR(p) forecasts of the same points.
"""

from seqjax.train.config import base_config


def get_config():
    config = base_config()
    config.task = "forecast"
    config.num_steps = 2000
    config.batch_size = 64
    config.learning_rate = 3e-3
    config.eval_every = 500
    config.model.cell = "lstm"  # lstm, gru, simple_rnn or min_gru
    config.model.hidden_size = 64  # recurrent units
    config.model.layers = 1  # stacked layers
    config.data.path = ""  # a CSV file; empty: the default series
    config.data.column = "value"  # the target column (header name, or index as "0")
    config.data.columns = []  # more input columns besides the target (names or indices)
    config.data.window = 48  # past steps the model sees
    config.data.horizon = 1  # steps ahead predicted after each window
    config.data.test_size = 0.0  # held-out tail: points (int >= 1) or a fraction; 0: test_fraction
    config.data.test_fraction = 0.2  # the held-out tail's fraction when test_size is 0
    config.data.val_fraction = 0.1  # the validation block just before the tail
    config.data.season = 24  # period of the seasonal naive baseline (steps); 0: none
    config.data.ar_order = 48  # p of the AR(p) baseline
    return config
