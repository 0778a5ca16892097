"""Datasets for the experiments: generated tasks, text and series, vocabularies, batching.

Pure NumPy: nothing here imports jax or flax, so data code runs and tests anywhere. Data
is generated, read from files the user gives, or read from files that ship with Python
(the default text corpus); nothing is downloaded.

Tasks:
    - :func:`make_dates`: human-written dates in 20 formats to ISO, held-out dates.
    - :func:`make_addition`: ``"123+45"`` to ``"168"``, held-out pairs.
    - :func:`make_adding`: the adding problem (Hochreiter and Schmidhuber 1997).
    - :func:`make_copy`: the copy-memory task (Arjovsky et al. 2016).
    - :func:`default_corpus`, :func:`split_text`, :func:`lm_batches`, :class:`NGramModel`:
      character language modelling.
    - :func:`load_csv_series`, :func:`default_series`, :func:`prepare_series`,
      :func:`series_baselines`: forecasting.
"""

from seqjax.data.adding import ADDING_MEAN_BASELINE_MSE, make_adding, mean_baseline_mse
from seqjax.data.addition import make_addition
from seqjax.data.batching import batches, infinite_batches, num_examples
from seqjax.data.copy import (
    COPY_BLANK,
    COPY_VOCAB,
    copy_delimiter,
    make_copy,
    memoryless_baseline,
)
from seqjax.data.dates import (
    DATE_CASES,
    DATE_FORMATS,
    FIRST_DATE,
    LAST_DATE,
    format_date,
    make_dates,
)
from seqjax.data.series import (
    ARModel,
    Scaler,
    SeriesData,
    ar_least_squares,
    default_series,
    load_csv_series,
    mae,
    make_windows,
    mse,
    naive_forecast,
    prepare_series,
    series_baselines,
)
from seqjax.data.text import (
    NGramModel,
    default_corpus,
    default_corpus_files,
    fit_best_ngram,
    lm_batches,
    lm_eval_batches,
    load_text,
    split_text,
)
from seqjax.data.vocab import CharVocab, Vocab

__all__ = [
    "ADDING_MEAN_BASELINE_MSE",
    "ARModel",
    "COPY_BLANK",
    "COPY_VOCAB",
    "CharVocab",
    "DATE_CASES",
    "DATE_FORMATS",
    "FIRST_DATE",
    "LAST_DATE",
    "NGramModel",
    "Scaler",
    "SeriesData",
    "Vocab",
    "ar_least_squares",
    "batches",
    "copy_delimiter",
    "default_corpus",
    "default_corpus_files",
    "default_series",
    "fit_best_ngram",
    "format_date",
    "infinite_batches",
    "lm_batches",
    "lm_eval_batches",
    "load_csv_series",
    "load_text",
    "mae",
    "make_adding",
    "make_addition",
    "make_copy",
    "make_dates",
    "make_windows",
    "mean_baseline_mse",
    "memoryless_baseline",
    "mse",
    "naive_forecast",
    "num_examples",
    "prepare_series",
    "series_baselines",
    "split_text",
]
