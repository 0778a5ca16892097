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
    - :func:`load_csv_series`, :func:`load_csv_columns`, :func:`default_series`,
      :func:`prepare_series`, :func:`series_baselines`: forecasting, one or more columns.

Your own data:
    - :func:`load_sequences` (``.npz``, long-form CSV, CoNLL text) and :func:`load_pairs`
      (``source<TAB>target``): labelled sequences from files, with clear errors.
    - :class:`Labels`, :func:`random_split`, :func:`stratified_split`,
      :class:`FeatureScaler`: classes, seeded splits, leakage-free scaling.
    - :mod:`seqjax.data.baselines`: logistic regression, most frequent tag, nearest
      neighbour, character error rate.
    - :mod:`seqjax.data.generated`: deterministic datasets written in those file formats.
"""

from seqjax.data.adding import ADDING_MEAN_BASELINE_MSE, make_adding, mean_baseline_mse
from seqjax.data.addition import make_addition
from seqjax.data.baselines import (
    bag_of_tokens_logistic_regression,
    character_error_rate,
    most_frequent_tag,
    nearest_neighbour_targets,
    pooled_features,
    pooled_logistic_regression,
)
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
from seqjax.data.files import SEQUENCE_SUFFIXES, Sequences, load_pairs, load_sequences
from seqjax.data.generated import (
    make_entity_sentences,
    make_multivariate_series,
    make_number_words,
    number_to_words,
    write_conll,
    write_csv,
    write_digits_npz,
    write_tsv,
)
from seqjax.data.series import (
    ARModel,
    Scaler,
    SeriesData,
    ar_least_squares,
    default_series,
    load_csv_columns,
    load_csv_series,
    mae,
    make_windows,
    max_ar_order,
    mse,
    naive_forecast,
    prepare_series,
    seasonal_naive_forecast,
    series_baselines,
)
from seqjax.data.splits import FeatureScaler, Labels, random_split, stratified_split
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
from seqjax.data.vocab import CharVocab, TokenVocab, Vocab

__all__ = [
    "ADDING_MEAN_BASELINE_MSE",
    "ar_least_squares",
    "ARModel",
    "bag_of_tokens_logistic_regression",
    "batches",
    "character_error_rate",
    "CharVocab",
    "COPY_BLANK",
    "copy_delimiter",
    "COPY_VOCAB",
    "DATE_CASES",
    "DATE_FORMATS",
    "default_corpus",
    "default_corpus_files",
    "default_series",
    "FeatureScaler",
    "FIRST_DATE",
    "fit_best_ngram",
    "format_date",
    "infinite_batches",
    "Labels",
    "LAST_DATE",
    "lm_batches",
    "lm_eval_batches",
    "load_csv_columns",
    "load_csv_series",
    "load_pairs",
    "load_sequences",
    "load_text",
    "mae",
    "make_adding",
    "make_addition",
    "make_copy",
    "make_dates",
    "make_entity_sentences",
    "make_multivariate_series",
    "make_number_words",
    "make_windows",
    "max_ar_order",
    "mean_baseline_mse",
    "memoryless_baseline",
    "most_frequent_tag",
    "mse",
    "naive_forecast",
    "nearest_neighbour_targets",
    "NGramModel",
    "num_examples",
    "number_to_words",
    "pooled_features",
    "pooled_logistic_regression",
    "prepare_series",
    "random_split",
    "Scaler",
    "seasonal_naive_forecast",
    "SEQUENCE_SUFFIXES",
    "Sequences",
    "series_baselines",
    "SeriesData",
    "TokenVocab",
    "split_text",
    "stratified_split",
    "Vocab",
    "write_conll",
    "write_csv",
    "write_digits_npz",
    "write_tsv",
]
