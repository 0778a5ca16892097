"""Date normalisation: human-written dates in many formats to ISO 8601 ``YYYY-MM-DD``.

A seq2seq task in the spirit of the classic attention demos: ``"25th of June, 2009"``,
``"Thu Jun 25 09"``, ``"6/25/09"`` and the rest all map to ``"2009-06-25"``. Dates lie
between 1950-01-01 and 2049-12-31, so a two-digit year is never ambiguous (``50``-``99``
is 19xx, ``00``-``49`` is 20xx), and every format is laid out differently from the
others (a ``/`` format is day-first with a four-digit year or month-first with a
two-digit one, never both), so each string has exactly one reading.

The held-out split is made over calendar dates, not strings: no test date appears in the
training set in any format.
"""

from __future__ import annotations

import datetime
import functools
import string
from collections.abc import Callable

import numpy as np

from seqjax.data._checks import check_int
from seqjax.data.vocab import Vocab, encode_pairs

__all__ = [
    "DATE_CASES",
    "DATE_FORMATS",
    "FIRST_DATE",
    "LAST_DATE",
    "format_date",
    "make_dates",
]

FIRST_DATE = datetime.date(1950, 1, 1)
LAST_DATE = datetime.date(2049, 12, 31)

_MONTHS = (
    "January",
    "February",
    "March",
    "April",
    "May",
    "June",
    "July",
    "August",
    "September",
    "October",
    "November",
    "December",
)
_WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _ordinal(day: int) -> str:
    suffix = "th" if 11 <= day % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
    return f"{day}{suffix}"


def _parts(d: datetime.date) -> dict[str, str]:
    month, weekday = _MONTHS[d.month - 1], _WEEKDAYS[d.weekday()]
    return {
        "Y": f"{d.year:04d}",
        "y": f"{d.year % 100:02d}",
        "m": f"{d.month:02d}",
        "n": str(d.month),  # month, not zero-padded
        "d": f"{d.day:02d}",
        "e": str(d.day),  # day, not zero-padded
        "o": _ordinal(d.day),
        "B": month,
        "b": month[:3],
        "A": weekday,
        "a": weekday[:3],
    }


# name -> template over the fields of _parts (written {field}); the example is 2009-06-25.
_TEMPLATES: dict[str, str] = {
    "ordinal_of": "{o} of {B}, {Y}",  # 25th of June, 2009
    "weekday_short": "{a} {b} {d} {y}",  # Thu Jun 25 09
    "dmy_slash": "{d}/{m}/{Y}",  # 25/06/2009
    "month_day_year": "{B} {e}, {Y}",  # June 25, 2009
    "ymd_dot": "{Y}.{m}.{d}",  # 2009.06.25
    "day_mon_year": "{e} {b} {Y}",  # 25 Jun 2009
    "weekday_long": "{A}, {B} {e}, {Y}",  # Thursday, June 25, 2009
    "mdy_slash_short": "{n}/{e}/{y}",  # 6/25/09
    "dmy_dot_short": "{d}.{m}.{y}",  # 25.06.09
    "day_month_year": "{e} {B} {Y}",  # 25 June 2009
    "weekday_day_month_year": "{A} {e} {B} {Y}",  # Thursday 25 June 2009
    "day_mon_year_dash": "{d}-{b}-{Y}",  # 25-Jun-2009
    "iso": "{Y}-{m}-{d}",  # 2009-06-25
    "compact": "{Y}{m}{d}",  # 20090625
    "mon_day_year": "{b} {e} {Y}",  # Jun 25 2009
    "month_ordinal_year": "{B} {o}, {Y}",  # June 25th, 2009
    "rfc": "{a}, {d} {b} {Y}",  # Thu, 25 Jun 2009
    "mdy_dash": "{m}-{d}-{Y}",  # 06-25-2009
    "day_month_short_year": "{e} {B} {y}",  # 25 June 09
    "the_ordinal_of": "the {o} of {B} {Y}",  # the 25th of June 2009
}

DATE_FORMATS: tuple[str, ...] = tuple(_TEMPLATES)
"""Names of the source formats, in a fixed order."""

_CASES: dict[str, Callable[[str], str]] = {
    "original": lambda s: s,
    "lower": str.lower,
    "upper": str.upper,
    "title": string.capwords,
}
DATE_CASES: tuple[str, ...] = tuple(_CASES)
"""Letter-case variants applied to formats that contain letters."""

_SRC_CHARS = (
    set(string.digits + " ,./-")
    | set("".join(_MONTHS + _WEEKDAYS + ("st", "nd", "rd", "th", "of", "the")).lower())
    | set("".join(_MONTHS + _WEEKDAYS + ("st", "nd", "rd", "th", "of", "the")).upper())
)
_TGT_CHARS = string.digits + "-"


def _has_letters(fmt: str) -> bool:
    return any(f in _TEMPLATES[fmt] for f in ("{o}", "{B}", "{b}", "{A}", "{a}", "the"))


def format_date(date: datetime.date, fmt: str, case: str = "original") -> str:
    """Writes ``date`` in one of the source formats.

    Args:
        date: a date between :data:`FIRST_DATE` and :data:`LAST_DATE`.
        fmt: one of :data:`DATE_FORMATS`.
        case: one of :data:`DATE_CASES` (``"title"`` capitalises every word).

    Returns:
        The formatted string, e.g. ``format_date(date(2009, 6, 25), "ordinal_of")`` is
        ``"25th of June, 2009"``.

    Raises:
        TypeError: if ``date`` is not a ``datetime.date``.
        ValueError: for an unknown format or case, or a date out of range.
    """
    if not isinstance(date, datetime.date) or isinstance(date, datetime.datetime):
        raise TypeError(f"date must be a datetime.date, got {type(date).__name__}")
    if not FIRST_DATE <= date <= LAST_DATE:
        raise ValueError(f"date must lie in [{FIRST_DATE}, {LAST_DATE}], got {date}")
    if fmt not in _TEMPLATES:
        raise ValueError(f"unknown format {fmt!r}; expected one of {DATE_FORMATS}")
    if case not in _CASES:
        raise ValueError(f"unknown case {case!r}; expected one of {DATE_CASES}")
    return _CASES[case](_TEMPLATES[fmt].format(**_parts(date)))


def _examples(
    ordinals: np.ndarray, rng: np.random.Generator, src_vocab: Vocab, tgt_vocab: Vocab, width
) -> dict:
    fmts = rng.integers(len(DATE_FORMATS), size=len(ordinals))
    cases = rng.integers(len(DATE_CASES), size=len(ordinals))
    src_text, tgt_text = [], []
    for o, f, c in zip(ordinals.tolist(), fmts.tolist(), cases.tolist()):
        d = datetime.date.fromordinal(o)
        fmt = DATE_FORMATS[f]
        case = DATE_CASES[c] if _has_letters(fmt) else "original"
        src_text.append(format_date(d, fmt, case))
        tgt_text.append(d.isoformat())
    return encode_pairs(src_text, tgt_text, src_vocab, tgt_vocab, width)


@functools.lru_cache(maxsize=1)
def _max_src_len() -> int:
    # One whole year meets every weekday, month and day of month; case never changes length.
    start = datetime.date(2018, 1, 1).toordinal()
    days = [datetime.date.fromordinal(start + i) for i in range(365)]
    return max(len(format_date(d, f)) for d in days for f in DATE_FORMATS)


def make_dates(n_train: int, n_test: int, seed: int = 0) -> tuple[dict, dict, Vocab, Vocab]:
    """Generates the date-normalisation task with a held-out set of calendar dates.

    The dates of [1950-01-01, 2049-12-31] are shuffled; the test examples use the first
    ``min(n_test, N // 2)`` of them (all distinct while ``n_test <= N // 2``, N = 36524),
    the training examples cycle through the rest. Each example draws a format from
    :data:`DATE_FORMATS` and, if the format has letters, a case from :data:`DATE_CASES`.

    Args:
        n_train: number of training examples.
        n_test: number of test examples.
        seed: seed of the split and of the formats drawn.

    Returns:
        ``(train, test, src_vocab, tgt_vocab)``. ``train`` and ``test`` are dicts with
        ``"src": int32 [n, S]`` (``PAD``-padded), ``"src_lengths": int32 [n]``,
        ``"tgt": int32 [n, 11]`` (the ten ISO characters then ``EOS``),
        ``"tgt_lengths": int32 [n]`` (11: the ``EOS`` counts), ``"src_text"`` and
        ``"tgt_text"`` (lists of str). ``S`` is the longest possible source (the same in
        both splits and for every seed). ``src_vocab`` covers every character any format
        can produce; ``tgt_vocab`` is digits and ``-``.

    Raises:
        TypeError, ValueError: for non-integer or negative sizes.
    """
    n_train = check_int("n_train", n_train, 0)
    n_test = check_int("n_test", n_test, 0)
    seed = check_int("seed", seed, 0)
    rng = np.random.default_rng(seed)
    first, last = FIRST_DATE.toordinal(), LAST_DATE.toordinal()
    all_dates = rng.permutation(np.arange(first, last + 1))
    n_held = min(n_test, len(all_dates) // 2)
    held, pool = all_dates[:n_held], all_dates[n_held:]
    test_dates = held[np.arange(n_test) % max(n_held, 1)] if n_test else held[:0]
    train_dates = pool[np.arange(n_train) % len(pool)]
    src_vocab, tgt_vocab = Vocab(_SRC_CHARS), Vocab(_TGT_CHARS)
    width = (_max_src_len(), len("YYYY-MM-DD") + 1)
    train = _examples(train_dates, rng, src_vocab, tgt_vocab, width)
    test = _examples(test_dates, rng, src_vocab, tgt_vocab, width)
    return train, test, src_vocab, tgt_vocab
