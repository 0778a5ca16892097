"""Baselines for the generic experiments, each on exactly the split the model sees.

A trained model is only as convincing as the simple method it beats: logistic regression
on pooled features or token counts for classification, the most frequent tag of each
token for tagging, nearest-neighbour retrieval by edit distance for string transduction.
scikit-learn and RapidFuzz are imported inside the functions that use them (both come
with the ``train`` extra), so ``import seqjax.data`` needs neither.
"""

from __future__ import annotations

import warnings
from collections import Counter

import numpy as np

from seqjax.data._checks import check_int

__all__ = [
    "bag_of_tokens_logistic_regression",
    "character_error_rate",
    "most_frequent_tag",
    "nearest_neighbour_targets",
    "pooled_features",
    "pooled_logistic_regression",
]


def _lengths(lengths, n: int, t: int, name: str) -> np.ndarray:
    lengths = np.asarray(lengths)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(f"{name} must be integers [{n}], got {lengths.dtype} {lengths.shape}")
    if n and (lengths.min() < 1 or lengths.max() > t):
        raise ValueError(f"{name} must lie in [1, {t}], got [{lengths.min()}, {lengths.max()}]")
    return lengths


def pooled_features(x, lengths) -> np.ndarray:
    """``[mean, max, last valid step]`` of each sequence over its valid steps.

    Args:
        x: ``[n, t, d]`` right-padded features.
        lengths: ``int [n]`` valid steps, each in ``[1, t]``.

    Returns:
        ``float64 [n, 3 d]``.
    """
    x = np.asarray(x, dtype=np.float64)
    if x.ndim != 3:
        raise ValueError(f"x must be [n, t, d], got shape {x.shape}")
    n, t, _ = x.shape
    lengths = _lengths(lengths, n, t, "lengths")
    valid = (np.arange(t) < lengths[:, None])[..., None]  # [n, t, 1]
    mean = np.where(valid, x, 0.0).sum(1) / lengths[:, None]
    top = np.where(valid, x, -np.inf).max(1)
    last = x[np.arange(n), lengths - 1]
    return np.concatenate([mean, top, last], axis=1)


def _logistic_regression(f_train, y_train, f_test, seed: int, *, scale: bool) -> np.ndarray:
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler

    y_train = np.asarray(y_train)
    if y_train.ndim != 1 or len(y_train) != f_train.shape[0]:
        raise ValueError(
            f"y_train must be [{f_train.shape[0]}] class ids, got shape {y_train.shape}"
        )
    classes = np.unique(y_train)
    if len(classes) == 1:  # sklearn refuses one class; its best guess is that class
        return np.full(f_test.shape[0], classes[0], dtype=y_train.dtype)
    if scale:
        scaler = StandardScaler().fit(f_train)
        f_train, f_test = scaler.transform(f_train), scaler.transform(f_test)
    model = LogisticRegression(max_iter=2000, random_state=seed)
    with warnings.catch_warnings():
        # A baseline is reported as fitted; under filterwarnings=error a slow-converging
        # fit on a user's data must not stop the run it is compared with.
        warnings.simplefilter("ignore", ConvergenceWarning)
        model.fit(f_train, y_train)
    return model.predict(f_test)


def pooled_logistic_regression(
    x_train, len_train, y_train, x_test, len_test, *, seed: int = 0
) -> np.ndarray:
    """Logistic regression on standardised pooled features (:func:`pooled_features`).

    Args:
        x_train: ``[n, t, d]`` training features; ``len_train: int [n]`` their lengths.
        y_train: ``int [n]`` class ids.
        x_test: ``[m, t', d]`` test features; ``len_test: int [m]`` their lengths.
        seed: the solver's random state.

    Returns:
        ``[m]`` predicted class ids (the dtype of ``y_train``).
    """
    f_train, f_test = pooled_features(x_train, len_train), pooled_features(x_test, len_test)
    if f_train.shape[1] != f_test.shape[1]:
        raise ValueError(
            f"train has {f_train.shape[1] // 3} features per step, test {f_test.shape[1] // 3}"
        )
    return _logistic_regression(f_train, y_train, f_test, seed, scale=True)


def _counts(tokens, lengths, vocab_size: int, name: str):
    from scipy.sparse import csr_matrix

    tokens = np.asarray(tokens)
    if tokens.ndim != 2 or not np.issubdtype(tokens.dtype, np.integer):
        raise ValueError(f"{name} must be integers [n, t], got {tokens.dtype} {tokens.shape}")
    n, t = tokens.shape
    lengths = _lengths(lengths, n, t, f"lengths of {name}")
    valid = np.arange(t) < lengths[:, None]
    rows = np.broadcast_to(np.arange(n)[:, None], (n, t))[valid]
    cols = tokens[valid]
    if len(cols) and (cols.min() < 0 or cols.max() >= vocab_size):
        raise ValueError(
            f"{name} hold ids in [{cols.min()}, {cols.max()}], outside [0, {vocab_size})"
        )
    data = np.ones(len(cols), np.float64)
    return csr_matrix((data, (rows, cols)), shape=(n, vocab_size))


def bag_of_tokens_logistic_regression(
    tok_train, len_train, y_train, tok_test, len_test, vocab_size: int, *, seed: int = 0
) -> np.ndarray:
    """Logistic regression on token counts over each sequence's valid steps.

    Args:
        tok_train: ``int [n, t]`` token ids in ``[0, vocab_size)``; ``len_train: [n]``.
        y_train: ``int [n]`` class ids.
        tok_test: ``int [m, t']``; ``len_test: [m]``.
        vocab_size: the number of distinct token ids (the count vector's width).
        seed: the solver's random state.

    Returns:
        ``[m]`` predicted class ids.
    """
    vocab_size = check_int("vocab_size", vocab_size, 1)
    f_train = _counts(tok_train, len_train, vocab_size, "tok_train")
    f_test = _counts(tok_test, len_test, vocab_size, "tok_test")
    return _logistic_regression(f_train, y_train, f_test, seed, scale=False)


def most_frequent_tag(
    train_tokens: list[list], train_tags: list[list], test_tokens: list[list]
) -> list[list]:
    """Tags each test token with its most frequent training tag.

    Ties go to the tag that is more frequent overall, then to the smaller tag. Tokens
    never seen in training get the most frequent tag overall. Tokens are compared as
    they are (case-sensitive).

    Args:
        train_tokens: the training sentences, each a list of tokens.
        train_tags: their tags, the same shape.
        test_tokens: the sentences to tag.

    Returns:
        One list of tags per test sentence.
    """
    if len(train_tokens) != len(train_tags):
        raise ValueError(
            f"{len(train_tokens)} training sentences but {len(train_tags)} tag sequences"
        )
    per_token: dict = {}
    overall: Counter = Counter()
    for i, (words, tags) in enumerate(zip(train_tokens, train_tags)):
        if len(words) != len(tags):
            raise ValueError(f"training sentence {i} has {len(words)} tokens, {len(tags)} tags")
        for w, tag in zip(words, tags):
            per_token.setdefault(w, Counter())[tag] += 1
            overall[tag] += 1
    if not overall:
        raise ValueError("no training tokens")

    def best(counts: Counter):
        return min(counts, key=lambda tag: (-counts[tag], -overall[tag], str(tag)))

    default = best(overall)
    lookup = {w: best(c) for w, c in per_token.items()}
    return [[lookup.get(w, default) for w in words] for words in test_tokens]


def _check_strings(name: str, texts) -> list[str]:
    if isinstance(texts, str):
        raise TypeError(f"{name} must be a list of strings, got a single str")
    texts = list(texts)
    for t in texts:
        if not isinstance(t, str):
            raise TypeError(f"{name} must hold strings, got {type(t).__name__}")
    return texts


def nearest_neighbour_targets(
    train_src: list[str], train_tgt: list[str], test_src: list[str]
) -> list[str]:
    """For each test source, the target of the training source nearest in edit distance.

    Levenshtein distance (RapidFuzz); among equally near training sources the first one
    wins, as with ``rapidfuzz.process.extractOne``.

    Args:
        train_src: training sources.
        train_tgt: their targets.
        test_src: the sources to answer.

    Returns:
        One predicted target per test source.
    """
    from rapidfuzz.distance import Levenshtein
    from rapidfuzz.process import cdist

    train_src, train_tgt = (
        _check_strings("train_src", train_src),
        _check_strings("train_tgt", train_tgt),
    )
    test_src = _check_strings("test_src", test_src)
    if len(train_src) != len(train_tgt):
        raise ValueError(f"{len(train_src)} training sources but {len(train_tgt)} targets")
    if not train_src:
        raise ValueError("no training pairs")
    out = []
    chunk = max(1, 2_000_000 // len(train_src))  # keeps the distance matrix to ~8 MB
    for lo in range(0, len(test_src), chunk):
        dist = cdist(test_src[lo : lo + chunk], train_src, scorer=Levenshtein.distance)
        out.extend(train_tgt[j] for j in np.argmin(dist, axis=1).tolist())
    return out


def character_error_rate(predictions: list[str], references: list[str]) -> float:
    """Total Levenshtein distance over total reference length (RapidFuzz).

    Args:
        predictions: predicted strings.
        references: the true strings, one per prediction.

    Returns:
        ``sum(distance(p, r)) / sum(len(r))``: 0 for perfect predictions; it can
        exceed 1 when predictions are much longer than the references.
    """
    from rapidfuzz.distance import Levenshtein

    predictions = _check_strings("predictions", predictions)
    references = _check_strings("references", references)
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions but {len(references)} references")
    total = sum(len(r) for r in references)
    if total == 0:
        raise ValueError("the references hold no characters")
    return sum(Levenshtein.distance(p, r) for p, r in zip(predictions, references)) / total
