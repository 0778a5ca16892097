"""The adding problem at T=1000: minGRU with the chrono initialisation.

At T=1000 the default initialisation of a gated cell forgets within a few steps (a minGRU
at zero bias halves its state every step, and its training loss stayed at the mean's,
0.17, for 800 steps); the chrono initialisation (Tallec and Ollivier 2018) starts the
memory time scales spread up to T. Measured: test MSE 0.00215 after 3000 steps (predict
the mean: 0.169). Run the LSTM beside it with ``--config.model.cell=lstm``.
"""

from configs.adding import get_config as adding_config


def get_config():
    config = adding_config()
    config.data.length = 1000  # sequence length T
    config.model.cell = "min_gru"  # lstm, min_gru and min_lstm have a chrono initialisation
    config.model.chrono_t_max = 1000.0  # memory time scales up to T
    return config
