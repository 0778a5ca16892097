"""Deterministic datasets for the generic experiments, written in the formats users bring.

Each generator is seeded and makes the same data on every machine; each writer produces
the file format that :func:`seqjax.data.load_sequences`, :func:`seqjax.data.load_pairs`
or :func:`seqjax.data.load_csv_columns` reads, so a proof run trains through the same
path as a user's own file. Nothing is downloaded: the digits ship with scikit-learn.

- :func:`write_digits_npz`: 8x8 handwritten digits as 8-step sequences (classification).
- :func:`make_entity_sentences`, :func:`write_conll`: BIO-tagged entities with ambiguous
  words that only context resolves (tagging).
- :func:`make_number_words`, :func:`write_tsv`: numbers to English words (transduction).
- :func:`make_multivariate_series`, :func:`write_csv`: a load driven by a lagged
  temperature (multi-column forecasting).
"""

from __future__ import annotations

import datetime
import math
import os
import pathlib

import numpy as np

from seqjax.data._checks import check_int
from seqjax.data.dates import FIRST_DATE, LAST_DATE, format_date

__all__ = [
    "make_entity_sentences",
    "make_multivariate_series",
    "make_number_words",
    "number_to_words",
    "write_conll",
    "write_csv",
    "write_digits_npz",
    "write_tsv",
]


# ------------------------------------------------------------------------------ digits


def write_digits_npz(path: str | os.PathLike) -> pathlib.Path:
    """Writes scikit-learn's bundled digits as a sequence-classification ``.npz``.

    The 1797 8x8 images of ``sklearn.datasets.load_digits`` (shipped inside the package,
    no download; pixel values 0..16) become sequences of 8 steps, one image row per step,
    8 features per step: ``x: float32 [1797, 8, 8]``, ``y: int64 [1797]`` (digits 0-9).
    No ``lengths``: every sequence has all 8 steps.

    Args:
        path: the ``.npz`` file to write (parent folders are created).

    Returns:
        The path written.
    """
    from sklearn.datasets import load_digits

    digits = load_digits()
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("wb") as f:  # an open file keeps numpy from appending ".npz"
        np.savez(f, x=digits.images.astype(np.float32), y=digits.target.astype(np.int64))
    return path


# ---------------------------------------------------------------------------- entities

_FIRST = ("Alice", "Maria", "John", "David", "Sarah", "Ahmed", "Olga", "Peter", "Nina", "Kenji")
# First names that are also places, months, ordinary words or surnames elsewhere.
_FIRST_AMBIGUOUS = (
    "Jordan", "Paris", "May", "June", "April", "Florence", "Georgia", "Austin", "Sydney",
    "Virginia", "Will", "Mark", "Chelsea",
)  # fmt: skip
_LAST = ("Smith", "Garcia", "Chen", "Kowalski", "Okafor", "Novak", "Brown", "Rossi")
_LAST_AMBIGUOUS = ("Jordan", "Washington", "Lincoln", "Taylor", "Morgan", "May", "Austin")
_PLACES = ("Berlin", "Lagos", "Lima", "Oslo", "Cairo", "Madrid", "Hanoi", "Quito")
_PLACES_AMBIGUOUS = (
    "Jordan", "Paris", "Florence", "Georgia", "Austin", "Sydney", "Virginia", "Washington",
    "Lincoln", "Chelsea",
)  # fmt: skip
_ORGS = (
    ("Acme", "Corporation"),
    ("United", "Nations"),
    ("Red", "Cross"),
    ("Siemens",),
    ("Washington", "Post"),
    ("Chelsea", "Football", "Club"),
    ("Jordan", "Airlines"),
    ("Lincoln", "Motors"),
    ("Paris", "Opera"),
    ("Georgia", "Power"),
)
_DATE_FORMATS = (
    "day_month_year",  # 25 June 2009
    "day_mon_year",  # 25 Jun 2009
    "mon_day_year",  # Jun 25 2009
    "the_ordinal_of",  # the 25th of June 2009
    "weekday_day_month_year",  # Thursday 25 June 2009
    "iso",  # 2009-06-25
)
_MONTHS = (
    "January", "February", "March", "April", "May", "June", "July", "August", "September",
    "October", "November", "December",
)  # fmt: skip

# Slots: {PER} person, {LOC} place, {ORG} organisation, {DATE} full date, {MONTH} a month
# (optionally with its year); every other word is tagged O.
_TEMPLATES = (
    "{PER} met {PER} in {LOC} on {DATE} .",
    "{PER} said the office in {LOC} will open in {MONTH} .",
    "{ORG} hired {PER} on {DATE} .",
    "the report from {ORG} reached {LOC} on {DATE} .",
    "{PER} flew from {LOC} to {LOC} with {PER} .",
    "May we visit {LOC} in {MONTH} ?",
    "{PER} may travel to {LOC} next week .",
    "on {DATE} , {PER} joined {ORG} in {LOC} .",
    "Will {PER} work for {ORG} ?",
    "{PER} told reporters that {ORG} is based in {LOC} .",
    "Mark the date : {DATE} .",
    "in {MONTH} the {ORG} office in {LOC} closed .",
)


def _pick(rng: np.random.Generator, items):
    return items[int(rng.integers(len(items)))]


def _person(rng) -> list[str]:
    first = _pick(rng, _FIRST_AMBIGUOUS if rng.random() < 0.5 else _FIRST)
    if rng.random() < 0.4:
        return [first]
    return [first, _pick(rng, _LAST_AMBIGUOUS if rng.random() < 0.5 else _LAST)]


def _date(rng) -> list[str]:
    day = FIRST_DATE.toordinal() + int(rng.integers(LAST_DATE.toordinal() - FIRST_DATE.toordinal()))
    return format_date(datetime.date.fromordinal(day), _pick(rng, _DATE_FORMATS)).split()


def _month(rng) -> list[str]:
    month = [_pick(rng, _MONTHS)]
    return month + [str(1950 + int(rng.integers(100)))] if rng.random() < 0.5 else month


def _slot(rng, kind: str) -> list[str]:
    if kind == "PER":
        return _person(rng)
    if kind == "LOC":
        return [_pick(rng, _PLACES_AMBIGUOUS if rng.random() < 0.5 else _PLACES)]
    if kind == "ORG":
        return list(_pick(rng, _ORGS))
    return _date(rng) if kind == "DATE" else _month(rng)


def make_entity_sentences(n: int, seed: int = 0) -> list[tuple[list[str], list[str]]]:
    """Synthetic sentences with BIO-tagged PER, LOC, ORG and DATE entities.

    Each sentence fills one of 12 templates (``"{PER} met {PER} in {LOC} on {DATE} ."``,
    ``"Will {PER} work for {ORG} ?"``, ...). People are a first name, often with a
    surname; places and organisations come from fixed lists; dates are
    :func:`seqjax.data.format_date` strings in six space-separated formats (``"25 June
    2009"``, ``"the 25th of June 2009"``, ``"2009-06-25"``, ...) split on whitespace;
    ``{MONTH}`` is a month, half the time with a year. Entity words are tagged ``B-TYPE``
    then ``I-TYPE``, all others ``O``.

    The ambiguity is deliberate, so that context matters: half the first names and places
    are words that also play other roles ("Jordan" is a first name, a surname, a country
    and part of "Jordan Airlines"; "May" a name, a surname, a month and, starting a
    question, a verb; "Will" and "Mark" open sentences as ordinary words), and "the", "of"
    and numbers are inside dates in some sentences and outside in others. The context
    words around each slot ("met", "in", "on", "from", "joined", ...) always resolve it,
    so a model that reads both sides can tag every token, while tagging each word with
    its most frequent tag (:func:`seqjax.data.most_frequent_tag`) cannot.

    Args:
        n: number of sentences.
        seed: the seed; the same ``(n, seed)`` gives the same sentences.

    Returns:
        ``n`` pairs ``(tokens, tags)`` of equal length.
    """
    n = check_int("n", n, 1)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    out = []
    for _ in range(n):
        words, tags = [], []
        for piece in _pick(rng, _TEMPLATES).split():
            if piece.startswith("{"):
                kind = piece[1:-1]
                span = _slot(rng, kind)
                label = "DATE" if kind == "MONTH" else kind
                words += span
                tags += [f"B-{label}"] + [f"I-{label}"] * (len(span) - 1)
            else:
                words.append(piece)
                tags.append("O")
        out.append((words, tags))
    return out


def _check_field(text, what: str, where: str) -> str:
    if not isinstance(text, str) or not text:
        raise ValueError(f"{what} of {where} must be a non-empty string, got {text!r}")
    if any(c in text for c in "\t\n\r"):
        raise ValueError(f"{what} of {where} holds a TAB or newline: {text!r}")
    return text


def write_conll(path: str | os.PathLike, sentences) -> pathlib.Path:
    """Writes ``(tokens, tags)`` sentences as ``token<TAB>tag`` lines, a blank line after each.

    Args:
        path: the file to write (``.conll`` to read it back with
            ``load_sequences(path, per_step=True)``).
        sentences: pairs of equal-length lists of non-empty strings without TAB or
            newline (tokens are also stripped of spaces by the reader).

    Returns:
        The path written.
    """
    lines = []
    for i, (words, tags) in enumerate(sentences):
        if len(words) != len(tags) or not words:
            raise ValueError(
                f"sentence {i} has {len(words)} tokens and {len(tags)} tags; need the same "
                "number, at least one"
            )
        for w, tag in zip(words, tags):
            lines.append(
                f"{_check_field(w, 'a token', f'sentence {i}')}\t"
                f"{_check_field(tag, 'a tag', f'sentence {i}')}"
            )
        lines.append("")
    return _write_lines(path, lines)


def _write_lines(path, lines: list[str]) -> pathlib.Path:
    path = pathlib.Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
    return path


# ------------------------------------------------------------------------ number words

_ONES = (
    "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    "eleven", "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen",
    "eighteen", "nineteen",
)  # fmt: skip
_TENS = ("", "", "twenty", "thirty", "forty", "fifty", "sixty", "seventy", "eighty", "ninety")


def _below_thousand(n: int) -> list[str]:
    words = []
    if n >= 100:
        words += [_ONES[n // 100], "hundred"]
        n %= 100
    if n >= 20:
        words.append(_TENS[n // 10])
        n %= 10
    if n:
        words.append(_ONES[n])
    return words


def number_to_words(n: int) -> str:
    """An integer in ``[0, 999999]`` in English words, without "and" or hyphens.

    Example:
        >>> number_to_words(40512)
        'forty thousand five hundred twelve'
    """
    n = check_int("n", n, 0)
    if n > 999_999:
        raise ValueError(f"n must be <= 999999, got {n}")
    if n == 0:
        return "zero"
    thousands, rest = divmod(n, 1000)
    words = _below_thousand(thousands) + ["thousand"] if thousands else []
    return " ".join(words + _below_thousand(rest))


def make_number_words(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Distinct integers in ``[0, 999999]``: digits as source, English words as target.

    ``("40512", "forty thousand five hundred twelve")``. The number of digits is drawn
    uniformly from 1 to 6, then the number uniformly among those with that many digits
    (so short numbers are not drowned out by the 90% of the range that has six digits);
    repeats are redrawn, so no pair occurs twice.

    Args:
        n: number of pairs, at most 100000.
        seed: the seed; the same ``(n, seed)`` gives the same pairs.

    Returns:
        ``n`` pairs ``(digits, words)``.
    """
    n = check_int("n", n, 1)
    seed = check_int("seed", seed, 0)
    if n > 100_000:
        raise ValueError(f"n must be <= 100000 (distinct numbers), got {n}")
    rng = np.random.default_rng(seed)
    seen: set[int] = set()
    out = []
    while len(out) < n:
        digits = int(rng.integers(1, 7))
        low = 0 if digits == 1 else 10 ** (digits - 1)
        value = int(rng.integers(low, 10**digits))
        if value not in seen:
            seen.add(value)
            out.append((str(value), number_to_words(value)))
    return out


def write_tsv(path: str | os.PathLike, pairs) -> pathlib.Path:
    """Writes ``(source, target)`` pairs as ``source<TAB>target`` lines (see ``load_pairs``).

    Args:
        path: the file to write.
        pairs: non-empty strings without TAB or newline.

    Returns:
        The path written.
    """
    lines = []
    for i, (src, tgt) in enumerate(pairs):
        lines.append(
            f"{_check_field(src, 'the source', f'pair {i}')}\t"
            f"{_check_field(tgt, 'the target', f'pair {i}')}"
        )
    return _write_lines(path, lines)


# ------------------------------------------------------------------------------ series


def make_multivariate_series(n: int = 6000, seed: int = 0) -> dict[str, np.ndarray]:
    """An hourly temperature and an electric load that depends on it nonlinearly.

    .. math::
        \\text{temperature}_t = 15 + 6 \\sin(2\\pi (t - 9) / 24) + w_t,
        \\quad w_t = 0.97\\, w_{t-1} + \\mathcal{N}(0, 0.6^2)

        \\text{load}_t = 0.5\\, \\text{load}_{t-1} + 0.5\\, \\big(20
        + 0.12 (\\text{temperature}_{t-3} - 17)^2
        + 4 \\tanh(\\text{temperature}_{t-1} - \\text{temperature}_{t-4})\\big)
        + \\mathcal{N}(0, 0.4^2)

    The temperature has a daily cycle (period 24) and slow weather swings; the load
    follows it through a U shape (heating below 17 degrees, cooling above) three hours
    later, and reacts to how fast it changes, with persistence of its own. A model that
    reads the lagged temperature can beat any forecaster of the load from the load alone
    (naive, seasonal naive with ``season=24``, linear AR).

    Args:
        n: number of hourly steps (at least 10).
        seed: the noise's seed.

    Returns:
        ``{"temperature": float64 [n], "load": float64 [n]}`` (in that order).
    """
    n = check_int("n", n, 10)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    burn = 48  # the recursions start from zero; drop the transient
    total = n + burn
    t = np.arange(total, dtype=np.float64)
    w = np.zeros(total)
    shocks = rng.normal(0.0, 0.6, size=total)
    for i in range(1, total):
        w[i] = 0.97 * w[i - 1] + shocks[i]
    temp = 15.0 + 6.0 * np.sin(2 * np.pi * (t - 9) / 24) + w
    noise = rng.normal(0.0, 0.4, size=total)
    load = np.zeros(total)
    load[:4] = 20.0
    for i in range(4, total):
        drive = 20.0 + 0.12 * (temp[i - 3] - 17.0) ** 2 + 4.0 * math.tanh(temp[i - 1] - temp[i - 4])
        load[i] = 0.5 * load[i - 1] + 0.5 * drive + noise[i]
    return {"temperature": temp[burn:], "load": load[burn:]}


def write_csv(path: str | os.PathLike, columns: dict[str, np.ndarray]) -> pathlib.Path:
    """Writes equal-length 1-D columns as a CSV with a header row.

    Values are written with Python's shortest round-trip ``repr``, so reading the file
    back (:func:`seqjax.data.load_csv_columns`) gives the same float64 numbers.

    Args:
        path: the file to write.
        columns: name -> ``[n]`` numbers, in column order; names must not contain commas,
            quotes or newlines.

    Returns:
        The path written.
    """
    if not columns:
        raise ValueError("columns is empty")
    arrays = {}
    for name, values in columns.items():
        if not isinstance(name, str) or not name or any(c in name for c in ',"\n\r'):
            raise ValueError(f'column name {name!r} must be non-empty, without , " or newline')
        values = np.asarray(values, dtype=np.float64)
        if values.ndim != 1:
            raise ValueError(f"column {name!r} must be 1-D, got shape {values.shape}")
        arrays[name] = values
    sizes = {name: len(v) for name, v in arrays.items()}
    if len(set(sizes.values())) != 1:
        raise ValueError(f"columns differ in length: {sizes}")
    lines = [",".join(arrays)]
    lines += [",".join(repr(float(v)) for v in row) for row in zip(*arrays.values())]
    return _write_lines(path, lines)
