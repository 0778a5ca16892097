"""Tests of seqjax.data: every task checked against an independent reading of its data."""

from __future__ import annotations

import datetime
import itertools
import math
import pathlib
import re

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from seqjax import data
from seqjax.data import (
    ADDING_MEAN_BASELINE_MSE,
    COPY_VOCAB,
    DATE_CASES,
    DATE_FORMATS,
    CharVocab,
    NGramModel,
    Vocab,
)

# ---------------------------------------------------------------------------- package


def test_package_is_pure_numpy():
    src = pathlib.Path(data.__file__).parent
    for path in src.glob("*.py"):
        text = path.read_text()
        assert not re.search(r"^\s*(import|from)\s+(jax|flax)\b", text, re.M), path.name


def test_all_is_complete():
    for name in data.__all__:
        assert hasattr(data, name), name


# ------------------------------------------------------------------------------ vocab


def test_vocab_layout():
    v = Vocab("cab")
    assert (v.PAD, v.BOS, v.EOS) == (0, 1, 2)
    assert len(v) == 6
    assert v.encode("abc") == [3, 4, 5]
    assert Vocab(["b", "a", "b", "c"]) == v


@given(st.text(alphabet="0123456789-/ ,abcXYZ", max_size=40))
@settings(max_examples=50, deadline=None)
def test_vocab_round_trip(text):
    v = Vocab("0123456789-/ ,abcXYZ")
    assert v.decode(v.encode(text)) == text
    np.testing.assert_array_equal(v.encode_array(text), v.encode(text))


def test_vocab_decode_stops_at_eos_and_skips_pad_bos():
    v = Vocab("ab")
    assert v.decode([v.BOS, 3, v.PAD, 4, v.EOS, 3, 3]) == "ab"
    assert v.decode(np.array([3, 4, 0, 0])) == "ab"
    assert v.decode([]) == ""
    with pytest.raises(ValueError, match="outside"):
        v.decode([3, 99])


def test_vocab_unknown_character_is_named():
    v = Vocab("ab")
    with pytest.raises(ValueError, match="'z'"):
        v.encode("abz")
    with pytest.raises(ValueError, match="'z'"):
        v.encode_array("abz")
    with pytest.raises(TypeError, match="one-character"):
        Vocab(["ab"])
    with pytest.raises(TypeError, match="str"):
        v.encode(3)


def test_encode_batch():
    v = Vocab("abc")
    ids, lengths = v.encode_batch(["ab", "", "cab"], add_eos=True)
    assert ids.dtype == np.int32 and lengths.dtype == np.int32
    np.testing.assert_array_equal(lengths, [3, 1, 4])
    np.testing.assert_array_equal(ids, [[3, 4, 2, 0], [2, 0, 0, 0], [5, 3, 4, 2]])
    assert v.decode_batch(ids) == ["ab", "", "cab"]
    ids, lengths = v.encode_batch(["ab"], max_len=5)
    assert ids.shape == (1, 5) and lengths.tolist() == [2]
    with pytest.raises(ValueError, match="max_len"):
        v.encode_batch(["abc"], add_eos=True, max_len=3)
    with pytest.raises(TypeError, match="single str"):
        v.encode_batch("abc")


def test_char_vocab_maps_unseen_to_unk():
    v = CharVocab.from_text("hello")
    assert v.UNK == 3 and v.encode("eh") == [4, 5]
    ids = v.encode("hex")
    assert ids[2] == v.UNK
    np.testing.assert_array_equal(v.encode_array("hex"), ids)
    assert v.decode(ids) == "he\ufffd"


# ------------------------------------------------------------------------------ dates

# An independent reading of each format through the standard library's strptime.
_STRPTIME = {
    "ordinal_of": "%d of %B, %Y",
    "weekday_short": "%a %b %d %y",
    "dmy_slash": "%d/%m/%Y",
    "month_day_year": "%B %d, %Y",
    "ymd_dot": "%Y.%m.%d",
    "day_mon_year": "%d %b %Y",
    "weekday_long": "%A, %B %d, %Y",
    "mdy_slash_short": "%m/%d/%y",
    "dmy_dot_short": "%d.%m.%y",
    "day_month_year": "%d %B %Y",
    "weekday_day_month_year": "%A %d %B %Y",
    "day_mon_year_dash": "%d-%b-%Y",
    "iso": "%Y-%m-%d",
    "compact": "%Y%m%d",
    "mon_day_year": "%b %d %Y",
    "month_ordinal_year": "%B %d, %Y",
    "rfc": "%a, %d %b %Y",
    "mdy_dash": "%m-%d-%Y",
    "day_month_short_year": "%d %B %y",
    "the_ordinal_of": "the %d of %B %Y",
}

needs_english_locale = pytest.mark.skipif(
    datetime.date(2009, 6, 25).strftime("%A %B") != "Thursday June",
    reason="strptime reads month and day names in the C/English locale only",
)


def _read(text: str, pattern: str) -> datetime.date | None:
    """The date ``text`` denotes under ``pattern``, or None if it does not fit."""
    plain = re.sub(r"(\d+)(st|nd|rd|th)\b", r"\1", text, flags=re.I)
    try:
        d = datetime.datetime.strptime(plain, pattern).date()
    except ValueError:
        return None
    if "%y" in pattern and d.year > 2049:  # strptime pivots at 69; the task pivots at 50
        d = d.replace(year=d.year - 100)
    for code in ("%a", "%A"):
        if code in pattern and d.strftime(code).lower() not in text.lower():
            return None  # a weekday that does not match the date
    if re.search(r"\d+(st|nd|rd|th)\b", text, re.I):
        day = int(re.search(r"(\d+)(st|nd|rd|th)\b", text, re.I).group(1))
        suffix = re.search(r"\d+(st|nd|rd|th)\b", text, re.I).group(1).lower()
        expected = "th" if day in (11, 12, 13) else {1: "st", 2: "nd", 3: "rd"}.get(day % 10, "th")
        if suffix != expected:
            return None
    return d


def test_there_are_many_formats():
    assert len(DATE_FORMATS) >= 12 and set(DATE_FORMATS) == set(_STRPTIME)
    assert {"original", "lower", "upper", "title"} <= set(DATE_CASES)


def test_format_date_examples():
    d = datetime.date(2009, 6, 25)
    assert data.format_date(d, "ordinal_of") == "25th of June, 2009"
    assert data.format_date(d, "weekday_short") == "Thu Jun 25 09"
    assert data.format_date(d, "dmy_slash") == "25/06/2009"
    assert data.format_date(d, "weekday_long", "lower") == "thursday, june 25, 2009"
    assert data.format_date(d, "day_mon_year", "upper") == "25 JUN 2009"
    assert data.format_date(d, "mdy_slash_short") == "6/25/09"
    with pytest.raises(ValueError, match="unknown format"):
        data.format_date(d, "nope")
    with pytest.raises(ValueError, match="1950"):
        data.format_date(datetime.date(1949, 12, 31), "iso")


@needs_english_locale
def test_every_format_and_case_reads_back_to_the_date():
    rng = np.random.default_rng(1)
    lo, hi = data.FIRST_DATE.toordinal(), data.LAST_DATE.toordinal()
    edges = [(1950, 1, 1), (2049, 12, 31), (1968, 7, 4), (1969, 1, 2), (2000, 2, 29)]
    edges += [(2011, 11, d) for d in (1, 2, 3, 11, 12, 13, 21, 22, 23, 30)]
    days = [datetime.date(*e) for e in edges]
    days += [datetime.date.fromordinal(int(o)) for o in rng.integers(lo, hi + 1, 60)]
    for fmt, case, d in itertools.product(DATE_FORMATS, DATE_CASES, days):
        text = data.format_date(d, fmt, case)
        assert _read(text, _STRPTIME[fmt]) == d, (fmt, case, text)


@needs_english_locale
def test_dates_dataset_targets_are_the_one_reading_of_each_source():
    train, _, src_vocab, tgt_vocab = data.make_dates(1500, 10, seed=3)
    seen = set()
    for src, tgt in zip(train["src_text"], train["tgt_text"]):
        readings = {f: _read(src, p) for f, p in _STRPTIME.items()}
        dates = {d for d in readings.values() if d is not None}
        assert dates == {datetime.date.fromisoformat(tgt)}, (src, tgt, readings)
        seen.update(f for f, d in readings.items() if d is not None)
    assert seen == set(DATE_FORMATS)  # every format occurs


def test_dates_shapes_and_encoding():
    train, test, src_vocab, tgt_vocab = data.make_dates(300, 200, seed=0)
    for split, n in ((train, 300), (test, 200)):
        assert split["src"].dtype == np.int32 and split["tgt"].dtype == np.int32
        assert split["src"].shape[0] == n and split["tgt"].shape == (n, 11)
        np.testing.assert_array_equal(split["tgt_lengths"], 11)
        assert (split["tgt"][:, 10] == Vocab.EOS).all()
        assert src_vocab.decode_batch(split["src"]) == split["src_text"]
        assert tgt_vocab.decode_batch(split["tgt"]) == split["tgt_text"]
        np.testing.assert_array_equal(split["src_lengths"], [len(s) for s in split["src_text"]])
        for row, length in zip(split["src"], split["src_lengths"]):
            assert (row[length:] == Vocab.PAD).all() and (row[:length] >= 3).all()
        for t in split["tgt_text"]:
            assert data.FIRST_DATE <= datetime.date.fromisoformat(t) <= data.LAST_DATE
    assert train["src"].shape[1] == test["src"].shape[1]


def test_dates_test_dates_are_unseen_in_training():
    train, test, _, _ = data.make_dates(20000, 1000, seed=0)
    assert not set(train["tgt_text"]) & set(test["tgt_text"])
    assert len(set(test["tgt_text"])) == 1000  # distinct held-out dates
    a, b = data.make_dates(50, 50, seed=0), data.make_dates(50, 50, seed=0)
    assert a[0]["src_text"] == b[0]["src_text"] and a[1]["src_text"] == b[1]["src_text"]
    assert data.make_dates(50, 50, seed=1)[0]["src_text"] != a[0]["src_text"]


def test_dates_errors():
    with pytest.raises(ValueError, match="n_train"):
        data.make_dates(-1, 10)
    with pytest.raises(TypeError, match="n_test"):
        data.make_dates(10, 2.5)


# --------------------------------------------------------------------------- addition


def test_addition_is_correct_and_held_out():
    train, test, src_vocab, tgt_vocab = data.make_addition(5000, 2000, seed=0)
    for split in (train, test):
        for src, tgt in zip(split["src_text"], split["tgt_text"]):
            assert re.fullmatch(r"\d{1,3}\+\d{1,3}", src)
            a, b = map(int, src.split("+"))
            assert a + b == int(tgt)
        assert split["src"].shape[1] == 7 and split["tgt"].shape[1] == 5
        assert src_vocab.decode_batch(split["src"]) == split["src_text"]
        assert tgt_vocab.decode_batch(split["tgt"]) == split["tgt_text"]
        np.testing.assert_array_equal(split["tgt_lengths"], [len(t) + 1 for t in split["tgt_text"]])
    assert len(set(test["src_text"])) == 2000
    assert not set(train["src_text"]) & set(test["src_text"])


def test_addition_options_and_errors():
    train, test, _, _ = data.make_addition(200, 50, max_digits=1, seed=2)
    assert max(len(s) for s in train["src_text"]) <= 3
    assert not set(train["src_text"]) & set(test["src_text"])
    with pytest.raises(ValueError, match="n_test"):
        data.make_addition(10, 100, max_digits=1)
    with pytest.raises(ValueError, match="max_digits"):
        data.make_addition(10, 10, max_digits=0)


# ----------------------------------------------------------------------------- adding


def test_adding_targets_are_the_marked_sum():
    d = data.make_adding(500, length=30, seed=0)
    x, y = d["x"], d["y"]
    assert x.shape == (500, 30, 2) and x.dtype == np.float32 and y.shape == (500,)
    marks = x[..., 1]
    assert set(np.unique(marks)) == {0.0, 1.0}
    np.testing.assert_array_equal(marks[:, :15].sum(1), 1)
    np.testing.assert_array_equal(marks[:, 15:].sum(1), 1)
    np.testing.assert_allclose(y, (x[..., 0] * marks).sum(1), rtol=1e-6)
    assert ((x[..., 0] >= 0) & (x[..., 0] < 1)).all()


def test_adding_mean_baseline():
    y = data.make_adding(40000, length=4, seed=1)["y"]
    assert ADDING_MEAN_BASELINE_MSE == pytest.approx(1 / 6)
    assert data.mean_baseline_mse(y) == pytest.approx(ADDING_MEAN_BASELINE_MSE, abs=0.005)
    assert data.mean_baseline_mse(y, float(y.mean())) <= data.mean_baseline_mse(y)
    with pytest.raises(ValueError, match="length"):
        data.make_adding(3, length=1)


# ------------------------------------------------------------------------------- copy


def test_copy_targets_repeat_the_first_symbols_at_the_end():
    d = data.make_copy(64, delay=20, seed=0)
    x, y = d["x"], d["y"]
    assert x.shape == y.shape == (64, 40) and x.dtype == np.int32
    np.testing.assert_array_equal(y[:, -10:], x[:, :10])
    assert (y[:, :-10] == 0).all()
    assert ((x[:, :10] >= 1) & (x[:, :10] <= 8)).all()
    assert (x[:, 29] == 9).all()  # delimiter after delay - 1 blanks
    assert (x[:, 10:29] == 0).all() and (x[:, 30:] == 0).all()
    assert x.max() < COPY_VOCAB == data.copy_delimiter() + 1


def test_copy_memoryless_baseline():
    assert data.memoryless_baseline(100) == pytest.approx(10 * math.log(8) / 120)
    # The cross-entropy of "blank until the end, then uniform over the symbols".
    y = data.make_copy(16, delay=30, n_symbols=5, copy_length=4, seed=1)["y"]
    probs = np.zeros((*y.shape, 7))
    probs[:, :-4, 0] = 1.0
    probs[:, -4:, 1:6] = 1 / 5
    nats = -np.log(np.take_along_axis(probs, y[..., None], -1)).mean()
    assert nats == pytest.approx(data.memoryless_baseline(30, 5, 4))


# ------------------------------------------------------------------------------- text


@pytest.fixture(scope="module")
def corpus():
    return data.default_corpus(400_000)


def test_default_corpus_is_deterministic_and_non_trivial():
    text = data.default_corpus()
    assert len(text) > 100_000 and text == data.default_corpus()
    assert text.startswith(data.default_corpus(1000))
    assert "def " in text and "import " in text
    files = data.default_corpus_files()
    assert files == sorted(files, key=lambda p: p.name)
    assert text.startswith(files[0].read_text(encoding="utf-8")[:1000])


def test_load_and_split_text(tmp_path):
    path = tmp_path / "t.txt"
    path.write_text("abcdefghij" * 10, encoding="utf-8")
    text = data.load_text(path)
    train, valid, test = data.split_text(text, 0.1, 0.2)
    assert (len(train), len(valid), len(test)) == (70, 10, 20)
    assert train + valid + test == text
    with pytest.raises(FileNotFoundError):
        data.load_text(tmp_path / "missing.txt")
    (tmp_path / "empty.txt").write_text("")
    with pytest.raises(ValueError, match="empty"):
        data.load_text(tmp_path / "empty.txt")
    with pytest.raises(ValueError, match="valid_frac"):
        data.split_text(text, 0.6, 0.5)


def test_ngram_improves_with_order_on_real_text(corpus):
    train, valid, _ = data.split_text(corpus)
    bits = [NGramModel(order).fit(train).bits_per_char(valid) for order in (1, 2, 3)]
    assert bits[0] > bits[1] > bits[2] > 1.0
    assert bits[0] < math.log2(len(set(train)) + 1)  # better than uniform


def test_ngram_is_normalised_and_finite_on_unseen_chars():
    model = NGramModel(3).fit("abracadabra " * 20)
    assert np.isfinite(model.bits_per_char("abra\u2603cadabra zzz"))
    # P(. | "ab") over every training character plus the unseen class sums to one.
    outcomes = [*model.vocab.chars, "\u2603"]
    total = sum(np.exp(model.log_probs("xab" + c)[-1]) for c in outcomes)
    assert total == pytest.approx(1.0)
    total = sum(np.exp(model.log_probs("q" + c)[-1]) for c in outcomes)  # unseen context
    assert total == pytest.approx(1.0)
    with pytest.raises(ValueError, match="not fitted"):
        NGramModel(2).bits_per_char("abc")
    with pytest.raises(ValueError, match="order"):
        NGramModel(0)


def test_fit_best_ngram(corpus):
    train, valid, _ = data.split_text(corpus[:100_000])
    model, bits = data.fit_best_ngram(train, valid, max_order=4)
    assert sorted(bits) == [1, 2, 3, 4] and bits[model.order] == min(bits.values())


def test_lm_batches_are_shifted_windows_and_resumable():
    ids = np.arange(100, dtype=np.int32)
    first = list(itertools.islice(data.lm_batches(ids, 4, 10, 7), 5))
    for b in first:
        assert b["x"].shape == (4, 10) and b["x"].dtype == np.int32
        np.testing.assert_array_equal(b["y"], b["x"] + 1)
        np.testing.assert_array_equal(np.diff(b["x"], axis=1), 1)
    resumed = list(data.lm_batches(ids, 4, 10, 7, start=3, num_batches=2))
    for a, b in zip(first[3:], resumed, strict=True):
        np.testing.assert_array_equal(a["x"], b["x"])
    gen_all = list(data.lm_batches(ids, 4, 10, np.random.default_rng(0), num_batches=4))
    gen_tail = list(data.lm_batches(ids, 4, 10, np.random.default_rng(0), start=2, num_batches=2))
    np.testing.assert_array_equal(gen_all[2]["x"], gen_tail[0]["x"])
    with pytest.raises(ValueError, match="seq_len"):
        next(data.lm_batches(ids[:5], 2, 10, 0))


def test_lm_eval_batches_cover_every_target_once():
    ids = np.arange(1, 104, dtype=np.int32)  # 102 targets
    got = list(data.lm_eval_batches(ids, 4, 8))
    assert all(b["x"].shape == (4, 8) for b in got)
    mask = np.concatenate([b["mask"] for b in got], axis=1)
    x = np.concatenate([b["x"] for b in got], axis=1)
    y = np.concatenate([b["y"] for b in got], axis=1)
    assert mask.sum() == 102
    targets = np.sort(y[mask > 0])
    np.testing.assert_array_equal(targets, ids[1:])
    np.testing.assert_array_equal(y[mask > 0], x[mask > 0] + 1)
    np.testing.assert_array_equal(np.diff(x[0][mask[0] > 0]), 1)  # rows are contiguous text


# ----------------------------------------------------------------------------- series


def test_scaler_is_fitted_on_the_training_part_only():
    s = data.default_series(1000)
    d = data.prepare_series(s, 24, test_frac=0.2, valid_frac=0.1)
    assert d.sizes == (700, 100, 200)
    assert d.scaler.mean == pytest.approx(s[:700].mean())
    assert d.scaler.std == pytest.approx(s[:700].std())
    assert d.scaler.mean != pytest.approx(s.mean(), abs=1e-3)  # the trend moves the mean
    first_inputs = d.train["x"][0, :, 0]
    np.testing.assert_allclose(d.scaler.inverse(first_inputs), s[:24], rtol=1e-5)
    # The test targets are exactly the tail of the series, in order.
    np.testing.assert_allclose(d.scaler.inverse(d.test["y"][:, 0]), s[800:], rtol=1e-5)
    np.testing.assert_allclose(d.scaler.inverse(d.valid["y"][:, 0]), s[700:800], rtol=1e-5)
    assert d.train["x"].shape == (676, 24, 1) and d.train["x"].dtype == np.float32
    assert d.test["x"].shape == (200, 24, 1) and d.test["y"].shape == (200, 1)


def test_make_windows():
    x, y = data.make_windows(np.arange(10.0), 3, horizon=2)
    assert x.shape == (6, 3) and y.shape == (6, 2)
    np.testing.assert_array_equal(x[2], [2, 3, 4])
    np.testing.assert_array_equal(y[2], [5, 6])


def test_ar_beats_naive_on_the_default_series():
    s = data.default_series()
    assert np.array_equal(s, data.default_series())
    result = data.series_baselines(data.prepare_series(s, 48), p=24)
    assert result["ar"]["mse"] < 0.8 * result["naive"]["mse"]
    assert result["ar"]["mae"] < result["naive"]["mae"]


def test_ar_least_squares_recovers_an_ar_process():
    rng = np.random.default_rng(0)
    s = np.zeros(5000)
    for t in range(2, 5000):
        s[t] = 1.0 + 0.5 * s[t - 1] - 0.3 * s[t - 2] + rng.normal(0, 0.1)
    x, y = data.make_windows(s, 5)
    model = data.ar_least_squares(x, y, 2)
    np.testing.assert_allclose(model.coef, [-0.3, 0.5], atol=0.03)
    assert model.intercept == pytest.approx(1.0, abs=0.05)
    np.testing.assert_allclose(data.naive_forecast(x, 2), np.repeat(x[:, -1:], 2, 1))


def test_load_csv_series(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("date,value,other\n2020-01-01,1.5,x\n2020-01-02,2.5,y\n2020-01-03,-3,z\n\n")
    np.testing.assert_array_equal(data.load_csv_series(path, "value"), [1.5, 2.5, -3.0])
    np.testing.assert_array_equal(data.load_csv_series(path, 1), [1.5, 2.5, -3.0])
    np.testing.assert_array_equal(data.load_csv_series(path, "1"), [1.5, 2.5, -3.0])
    with pytest.raises(ValueError, match=r"'date', 'value', 'other'"):
        data.load_csv_series(path, "price")
    with pytest.raises(ValueError, match="line 2"):
        data.load_csv_series(path, "other")
    with pytest.raises(ValueError, match="out of range"):
        data.load_csv_series(path, 5)
    bare = tmp_path / "bare.csv"
    bare.write_text("1\n2\n4\n")
    np.testing.assert_array_equal(data.load_csv_series(bare, 0), [1, 2, 4])
    np.testing.assert_array_equal(data.load_csv_series(bare, "0"), [1, 2, 4])
    with pytest.raises(ValueError, match="no header"):
        data.load_csv_series(bare, "value")
    # A blank row inside the data is an error naming its line (trailing ones are ignored).
    gap = tmp_path / "gap.csv"
    gap.write_text("date,value\n2020-01-01,1.5\n\n2020-01-03,-3\n")
    with pytest.raises(ValueError, match="line 3 .* is blank"):
        data.load_csv_series(gap, "value")
    holes = tmp_path / "holes.csv"
    holes.write_text("v\n1\n \n2\nnan\n")
    with pytest.raises(ValueError, match="line 3"):
        data.load_csv_series(holes, "v")
    holes.write_text("v\n1\n2\nnan\n")
    with pytest.raises(ValueError, match="line 4"):
        data.load_csv_series(holes, "v")
    with pytest.raises(FileNotFoundError):
        data.load_csv_series(tmp_path / "missing.csv", 0)
    with pytest.raises(TypeError, match="column"):
        data.load_csv_series(path, 1.0)


def test_prepare_series_errors():
    with pytest.raises(ValueError, match="training part"):
        data.prepare_series(np.arange(20.0), 30)
    with pytest.raises(ValueError, match=r"\[n, k\]"):
        data.prepare_series(np.zeros((5, 2, 2)), 2)


# --------------------------------------------------------------------------- batching


def test_batches_cover_one_epoch():
    d = {"a": np.arange(10), "b": np.arange(10) * 2.0, "text": [str(i) for i in range(10)]}
    got = list(data.batches(d, 3, rng=np.random.default_rng(0)))
    assert len(got) == 3 and all(set(b) == {"a", "b"} for b in got)
    a = np.concatenate([b["a"] for b in got])
    assert len(set(a.tolist())) == 9 and not np.array_equal(a, np.arange(9))
    for b in got:
        np.testing.assert_array_equal(b["b"], b["a"] * 2.0)
    ordered = list(data.batches(d, 4, rng=None, drop_remainder=False))
    assert [len(b["a"]) for b in ordered] == [4, 4, 2]
    np.testing.assert_array_equal(np.concatenate([b["a"] for b in ordered]), np.arange(10))


def test_batches_pad_remainder_masks_padding():
    d = {"a": np.arange(1, 11)}
    got = list(data.batches(d, 4, rng=None, pad_remainder=True))
    assert [b["a"].shape for b in got] == [(4,)] * 3
    np.testing.assert_array_equal(got[-1]["mask"], [1, 1, 0, 0])
    assert sum(b["mask"].sum() for b in got) == 10


def test_batches_errors():
    with pytest.raises(ValueError, match="leading size"):
        list(data.batches({"a": np.zeros(3), "b": np.zeros(4)}, 2))
    with pytest.raises(ValueError, match="no batch"):
        list(data.batches({"a": np.zeros(3)}, 4))
    with pytest.raises(TypeError, match="dict"):
        list(data.batches([np.zeros(3)], 2))


def test_infinite_batches_resume_exactly():
    d = {"a": np.arange(10)}
    stream = list(itertools.islice(data.infinite_batches(d, 3, seed=5), 8))
    epoch = np.concatenate([b["a"] for b in stream[:3]])
    assert len(set(epoch.tolist())) == 9
    resumed = list(itertools.islice(data.infinite_batches(d, 3, seed=5, start=5), 3))
    for a, b in zip(stream[5:], resumed, strict=True):
        np.testing.assert_array_equal(a["a"], b["a"])
