"""Tests of the user-data side of seqjax.data: files, labels, splits, series, baselines.

Every file is written by the test into ``tmp_path``; nothing is downloaded.
"""

from __future__ import annotations

import numpy as np
import pytest

from seqjax import data
from seqjax.data import FeatureScaler, Labels, load_pairs, load_sequences

# ------------------------------------------------------------------------------- npz


def _npz(tmp_path, name="d.npz", **arrays):
    path = tmp_path / name
    np.savez(path, **arrays)
    return path


def test_npz_features_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(4, 5, 3)).astype(np.float32)
    lengths = np.array([5, 2, 1, 3])
    x[1, 2:] = np.nan  # padding may hold anything; it is ignored and zeroed
    path = _npz(tmp_path, x=x, lengths=lengths, y=np.array([3, 1, 3, 7]))
    s = load_sequences(path)
    assert s.tokens is None and s.words is None and s.path == str(path)
    assert s.x.dtype == np.float32 and s.x.shape == (4, 5, 3)
    assert s.lengths.dtype == np.int32 and s.lengths.tolist() == [5, 2, 1, 3]
    assert s.y.tolist() == [3, 1, 3, 7] and not s.per_step
    for i, n in enumerate(lengths):
        np.testing.assert_array_equal(s.x[i, :n], x[i, :n])
        assert (s.x[i, n:] == 0).all()
    assert np.array_equal(s.valid_y(), s.y)


def test_npz_tokens_default_lengths_and_string_labels(tmp_path):
    tokens = np.array([[1, 2, 3], [4, 0, 0]])
    path = _npz(tmp_path, tokens=tokens, y=np.array(["spam", "ham"]))
    s = load_sequences(path)
    assert s.x is None and s.tokens.dtype == np.int32
    assert s.lengths.tolist() == [3, 3]
    assert s.y.tolist() == ["spam", "ham"]


def test_npz_per_step_labels_get_filler_past_lengths(tmp_path):
    tokens = np.array([[5, 6, 7], [8, 9, 9]])
    y = np.array([[1, 2, 1], [2, -100, -100]])
    path = _npz(tmp_path, tokens=tokens, lengths=np.array([3, 1]), y=y)
    s = load_sequences(path, per_step=True)
    assert s.per_step and s.y.tolist() == [[1, 2, 1], [2, 0, 0]]
    assert s.tokens.tolist() == [[5, 6, 7], [8, 0, 0]]
    assert sorted(s.valid_y().tolist()) == [1, 1, 2, 2]
    # Whole-number float labels read as integers.
    path = _npz(tmp_path, "f.npz", tokens=tokens, y=np.array([1.0, 0.0]))
    assert load_sequences(path).y.dtype == np.int64


@pytest.mark.parametrize(
    "arrays, per_step, match",
    [
        ({"y": np.zeros(2)}, False, r"exactly one of .*'x'.*'tokens'.*found neither.*\['y'\]"),
        (
            {"x": np.zeros((2, 3, 1)), "tokens": np.zeros((2, 3), int), "y": np.zeros(2)},
            False,
            "found both",
        ),
        ({"x": np.zeros((2, 3, 1)), "labels": np.zeros(2)}, False, r"no array 'y'.*'labels'"),
        ({"x": np.zeros((2, 3)), "y": np.zeros(2)}, False, r"'x' must be .*\[n, t, d\].*\(2, 3\)"),
        ({"tokens": np.zeros((2, 3)), "y": np.zeros(2)}, False, "'tokens' must be integers"),
        ({"x": np.zeros((2, 3, 1)), "y": np.zeros(3)}, False, r"'y' must be \[n\].*\(3,\)"),
        (
            {"x": np.zeros((2, 3, 1)), "y": np.zeros((2, 3))},
            False,
            "pass per_step=True",
        ),
        ({"x": np.zeros((2, 3, 1)), "y": np.zeros(2)}, True, r"\[n, t\].*\[2, 3\]"),
        (
            {"x": np.zeros((2, 3, 1)), "y": np.zeros(2), "lengths": np.array([3, 4])},
            False,
            r"\[1, 3\]; index 1 holds 4",
        ),
        (
            {"x": np.zeros((2, 3, 1)), "y": np.zeros(2), "lengths": np.array([0, 3])},
            False,
            "index 0 holds 0",
        ),
        (
            {"x": np.zeros((2, 3, 1)), "y": np.zeros(2), "lengths": np.array([3])},
            False,
            r"'lengths' must be integers \[n\] = \[2\]",
        ),
        ({"x": np.zeros((0, 3, 1)), "y": np.zeros(0)}, False, "no sequences"),
        ({"x": np.zeros((2, 3, 1)), "y": np.array([0.5, 1.0])}, False, "found 0.5"),
        (
            {"tokens": np.array([[1, -2]]), "y": np.zeros(1)},
            False,
            "sequence 0, step 1 holds -2",
        ),
    ],
)
def test_npz_errors(tmp_path, arrays, per_step, match):
    path = _npz(tmp_path, **arrays)
    with pytest.raises(ValueError, match=match) as info:
        load_sequences(path, per_step=per_step)
    assert str(path) in str(info.value)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf, 1e40])
def test_npz_non_finite_features_name_sequence_and_step(tmp_path, bad):
    x = np.zeros((3, 4, 2), np.float64)
    x[2, 1, 1] = bad
    path = _npz(tmp_path, x=x, y=np.zeros(3, int))
    with pytest.raises(ValueError, match="sequence 2, step 1, feature 1"):
        load_sequences(path)
    # Past the length it is padding, ignored.
    path = _npz(tmp_path, "ok.npz", x=x, y=np.zeros(3, int), lengths=np.array([4, 4, 1]))
    assert load_sequences(path).x[2, 1, 1] == 0


def test_missing_file_unknown_suffix_and_broken_npz(tmp_path):
    with pytest.raises(FileNotFoundError, match="missing.npz"):
        load_sequences(tmp_path / "missing.npz")
    other = tmp_path / "d.parquet"
    other.write_text("x")
    with pytest.raises(ValueError, match=r"'\.parquet'.*\.npz, \.csv, \.conll, \.txt, \.tsv"):
        load_sequences(other)
    broken = tmp_path / "broken.npz"
    broken.write_text("not a zip")
    with pytest.raises(ValueError, match="broken.npz is not a readable .npz"):
        load_sequences(broken)
    empty = tmp_path / "empty.npz"
    empty.write_bytes(b"")
    with pytest.raises(ValueError, match="empty.npz is empty"):
        load_sequences(empty)
    single = tmp_path / "single.npz"
    with single.open("wb") as f:
        np.save(f, np.zeros(3))
    with pytest.raises(ValueError, match="single array"):
        load_sequences(single)
    conll = tmp_path / "d.conll"
    conll.write_text("a\tO\n")
    with pytest.raises(ValueError, match="per_step=True"):
        load_sequences(conll)


# ------------------------------------------------------------------------------- csv

LONG_CSV = """id,t,label,a,b
s1,0,cat,1.0,2.0
s1,1,cat,1.5,2.5
s2,0,dog,3.0,4.0
s1,2,cat,1.7,2.7
s3,0,cat,5,6
s3,1,cat,5.5,6.5
"""


def test_long_csv_round_trip(tmp_path):
    path = tmp_path / "d.csv"
    path.write_text(LONG_CSV + "\n\n")  # trailing blank lines are ignored
    s = load_sequences(path)
    assert s.lengths.tolist() == [3, 1, 2]  # order of first appearance
    assert s.y.tolist() == ["cat", "dog", "cat"]
    assert s.x.shape == (3, 3, 3) and s.x.dtype == np.float32  # features t, a, b
    np.testing.assert_allclose(s.x[0], [[0, 1.0, 2.0], [1, 1.5, 2.5], [2, 1.7, 2.7]])
    assert (s.x[1, 1:] == 0).all() and (s.x[2, 2:] == 0).all()
    # Per step, integer labels become ints.
    path.write_text("seq,y,f\n7,0,1\n7,1,2\n8,1,3\n")
    s = load_sequences(path, per_step=True, id_column="seq", label_column="y")
    assert s.y.dtype == np.int64 and s.y.tolist() == [[0, 1], [1, 0]]
    assert s.lengths.tolist() == [2, 1]


@pytest.mark.parametrize(
    "text, match",
    [
        ("", "is empty"),
        ("id,label,a\n", "no rows"),
        ("name,label,a\nx,1,2\n", r"no column 'id' \(id_column\).*\['name', 'label', 'a'\]"),
        ("id,class,a\nx,1,2\n", r"no column 'label' \(label_column\)"),
        ("id,label\nx,1\n", "no feature columns"),
        ("id,label,a,b\nx,1,2,3\nx,1,2\n", r"line 3 .* has 3 fields; expected 4"),
        ("id,label,a\nx,1,2\nx,1,abc\n", r"line 3 .* column 'a' holds 'abc'"),
        ("id,label,a\nx,1,2\nx,1,\n", r"line 3 .* column 'a' holds ''"),
        ("id,label,a\nx,1,nan\n", r"line 2 .* column 'a' holds 'nan'"),
        ("id,label,a\nx,1,inf\n", r"line 2 .* column 'a' holds 'inf'"),
        ("id,label,a\nx,1,1e40\n", "line 2"),
        ("id,label,a\nx,1,2\n\nx,1,3\n", r"line 3 .* is blank"),
        ("id,label,a\nx,1,2\n,1,3\n", r"line 3 .* column 'id' is empty"),
        ("id,label,a\nx,1,2\ny,0,1\nx,2,3\n", r"line 4 .* sequence 'x' has label '2'.*line 2"),
    ],
)
def test_long_csv_errors(tmp_path, text, match):
    path = tmp_path / "d.csv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match) as info:
        load_sequences(path)
    assert str(path) in str(info.value)


# ----------------------------------------------------------------------------- conll


def test_conll_round_trip(tmp_path):
    sentences = [
        (["Jordan", "met", "May"], ["B-PER", "O", "B-PER"]),
        (["in", "Paris"], ["O", "B-LOC"]),
    ]
    path = data.write_conll(tmp_path / "d.conll", sentences)
    s = load_sequences(path, per_step=True)
    assert s.x is None and s.tokens is None
    assert s.words == [w for w, _ in sentences]
    assert s.lengths.tolist() == [3, 2]
    assert s.y.tolist() == [["B-PER", "O", "B-PER"], ["O", "B-LOC", ""]]
    # Several blank lines are one separator; DOCSTART lines separate too; .txt/.tsv work.
    other = tmp_path / "d.txt"
    other.write_text("-DOCSTART-\tO\n\na\tX\n\n\n \nb\tY\nc\tZ\n")
    s = load_sequences(other, per_step=True)
    assert s.words == [["a"], ["b", "c"]] and s.y.tolist() == [["X", ""], ["Y", "Z"]]


@pytest.mark.parametrize(
    "text, match",
    [
        ("a\tO\nb O\n", r"line 2 .*exactly one TAB.*found 0"),
        ("a\tO\tX\n", r"line 1 .* found 2 TABs"),
        ("a\t\n", r"line 1 .* empty tag"),
        ("\n\n", "no sentences"),
    ],
)
def test_conll_errors(tmp_path, text, match):
    path = tmp_path / "d.tsv"
    path.write_text(text)
    with pytest.raises(ValueError, match=match):
        load_sequences(path, per_step=True)


def test_pairs_round_trip_and_errors(tmp_path):
    pairs = [("40512", "forty thousand five hundred twelve"), ("a b", " spaced ")]
    path = data.write_tsv(tmp_path / "p.tsv", pairs)
    assert load_pairs(path) == ([p[0] for p in pairs], [p[1] for p in pairs])
    for text, match in [
        ("a\tb\nc\n", r"line 2 .*exactly one TAB"),
        ("a\tb\n\nc\td\n", r"line 2 .* is blank"),
        ("a\t\n", r"line 1 .* empty target"),
        ("\n", "no pairs"),
    ]:
        path.write_text(text)
        with pytest.raises(ValueError, match=match):
            load_pairs(path)
    with pytest.raises(FileNotFoundError):
        load_pairs(tmp_path / "none.tsv")
    with pytest.raises(ValueError, match="TAB or newline"):
        data.write_tsv(tmp_path / "bad.tsv", [("a\tb", "c")])


# ---------------------------------------------------------------------------- labels


def test_word_vocab():
    v = data.WordVocab.from_texts(["in Paris", "met Paris rare"])
    assert len(v) == 4 + 4 and v.chars == ("Paris", "in", "met", "rare")
    assert v.encode("met Oslo") == [6, v.UNK] == v.encode_tokens(["met", "Oslo"])
    ids, lengths = v.encode_batch(["in Paris", "met"], add_eos=True)
    assert ids.tolist() == [[5, 4, 2], [6, 2, 0]] and lengths.tolist() == [3, 2]
    assert v.decode(ids[0]) == "in Paris" and v.decode([3]) == "<unk>"
    assert v.decode_batch(ids) == ["in Paris", "met"]
    with pytest.raises(ValueError, match="max_len=1"):
        v.encode_batch(["in Paris"], max_len=1)
    with pytest.raises(TypeError, match="without spaces"):
        data.WordVocab(["two words"])


def test_labels_round_trip_and_unseen_values():
    labels = Labels.fit(np.array(["dog", "cat", "dog", "emu"]))
    assert len(labels) == 3 and labels.classes.tolist() == ["cat", "dog", "emu"]
    ids = labels.encode(["emu", "cat"])
    assert ids.dtype == np.int32 and ids.tolist() == [2, 0]
    assert labels.decode(ids).tolist() == ["emu", "cat"]
    with pytest.raises(ValueError, match=r"test labels .* \['yak'\].*known classes.*'cat'"):
        labels.encode(["yak", "cat"], what="test labels")
    with pytest.raises(ValueError, match="test labels are numbers but the classes are strings"):
        labels.encode(np.array([1]), what="test labels")
    numbers = Labels.fit(np.array([[10, -3], [10, 7]]))  # any shape, flattened
    assert numbers.classes.tolist() == [-3, 7, 10]
    assert numbers.encode(np.array([[7, 10]])).tolist() == [[1, 2]]
    with pytest.raises(ValueError, match="outside"):
        numbers.decode([3])


def test_random_split_is_disjoint_covering_and_seeded():
    kept, held = data.random_split(101, 0.2, seed=3)
    assert len(held) == round(101 * 0.2)
    assert np.intersect1d(kept, held).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(101))
    assert (np.diff(kept) > 0).all() and (np.diff(held) > 0).all()
    again = data.random_split(101, 0.2, seed=3)
    np.testing.assert_array_equal(again[1], held)
    assert not np.array_equal(data.random_split(101, 0.2, seed=4)[1], held)
    kept, held = data.random_split(10, 0.0, seed=0)
    assert held.size == 0 and kept.tolist() == list(range(10))
    with pytest.raises(ValueError, match="in \\[0, 1\\)"):
        data.random_split(10, 1.0, seed=0)


def test_stratified_split_keeps_proportions():
    y = np.array(["a"] * 60 + ["b"] * 30 + ["c"] * 8 + ["d"] * 2 + ["e"])
    kept, held = data.stratified_split(y, 0.25, seed=0)
    assert np.intersect1d(kept, held).size == 0
    np.testing.assert_array_equal(np.sort(np.concatenate([kept, held])), np.arange(len(y)))
    counts = {c: int((y[held] == c).sum()) for c in "abcde"}
    assert counts == {"a": 15, "b": 8, "c": 2, "d": 1, "e": 0}  # 7.5 -> 8 by largest remainder
    assert set(y[kept]) == set("abcde")
    again = data.stratified_split(y, 0.25, seed=0)
    np.testing.assert_array_equal(again[1], held)
    assert not np.array_equal(data.stratified_split(y, 0.25, seed=1)[1], held)
    # A tiny fraction still puts one of each class with >= 2 members on the held side.
    _, held = data.stratified_split(y, 0.01, seed=0)
    assert sorted(set(y[held])) == ["a", "b", "c", "d"]
    assert data.stratified_split(y, 0.0, seed=0)[1].size == 0


def test_feature_scaler_excludes_padding():
    x = np.zeros((2, 3, 2), np.float32)
    x[0] = [[1, 5], [3, 5], [1000, 1000]]  # the last step is padding
    x[1] = [[5, 5], [-7, -7], [-7, -7]]
    lengths = np.array([2, 1])
    scaler = FeatureScaler.fit(x, lengths)
    np.testing.assert_allclose(scaler.mean, [3, 5])
    np.testing.assert_allclose(scaler.std, [np.std([1, 3, 5]), 1.0])  # constant -> 1
    out = scaler.transform(x, lengths)
    assert out.dtype == np.float32
    assert (out[0, 2] == 0).all() and (out[1, 1:] == 0).all()
    np.testing.assert_allclose(out[0, :2, 1], 0)
    np.testing.assert_allclose(out[0, 0, 0], (1 - 3) / np.std([1, 3, 5]), rtol=1e-6)
    with pytest.raises(ValueError, match="fitted on 2"):
        scaler.transform(np.zeros((1, 2, 3)), np.array([1]))


# ---------------------------------------------------------------------------- series


def test_load_csv_columns(tmp_path):
    path = tmp_path / "s.csv"
    path.write_text("time,temperature,load\nt0,1.5,10\nt1,2.5,11\nt2,-1,12\n")
    values, names = data.load_csv_columns(path, ["load", 1])
    assert names == ["load", "temperature"] and values.dtype == np.float64
    np.testing.assert_array_equal(values, [[10, 1.5], [11, 2.5], [12, -1]])
    values, names = data.load_csv_columns(path, ["2"])  # an index given as a string
    assert names == ["load"] and values[:, 0].tolist() == [10, 11, 12]
    with pytest.raises(ValueError, match=r"'wind' not found .*'time', 'temperature', 'load'"):
        data.load_csv_columns(path, ["temperature", "wind"])
    path.write_text("time,temperature,load\nt0,1.5,10\n,,\nt2,-1,12\n")
    with pytest.raises(ValueError, match="line 3 .* is blank"):
        data.load_csv_columns(path, ["load"])
    path.write_text("time,temperature,load\nt0,1.5,10\nt1,x,11\n")
    with pytest.raises(ValueError, match="'x' in column 'temperature' at line 3"):
        data.load_csv_columns(path, ["load", "temperature"])


def _two_columns(n=400):
    t = np.arange(n, dtype=np.float64)
    # The target column rises strictly, so a value identifies its time step.
    return np.stack([np.sin(t / 5) + 0.01 * t, 100 + np.sin(t / 7) + 0.5 * t], axis=1)


def test_multi_column_series_splits_in_time_and_scales_on_train():
    series = _two_columns()
    d = data.prepare_series(series, 10, valid_frac=0.1, horizon=2, test_size=50, target=1)
    assert d.sizes == (310, 40, 50) and d.columns == 2 and d.target == 1
    assert d.series.shape == (400, 2)
    assert d.train["x"].shape == (310 - 10 - 2 + 1, 10, 2) and d.train["y"].shape[1] == 2
    assert d.valid["y"].shape[0] == 40 - 1 and d.test["y"].shape[0] == 50 - 1
    for j in range(2):
        assert d.scalers[j].mean == pytest.approx(series[:310, j].mean())
        assert d.scalers[j].std == pytest.approx(series[:310, j].std())
    assert d.scaler == d.scalers[1]

    # Targets, back in original units, are the target column in time order, split by part.
    def times(split):
        y = d.scaler.inverse(split["y"][:, 0])
        return np.abs(series[None, :, 1] - y[:, None]).argmin(axis=1)

    tr, va, te = times(d.train), times(d.valid), times(d.test)
    assert tr.max() < 310 <= va.min() and va.max() < 350 <= te.min()
    np.testing.assert_array_equal(te, np.arange(350, 399))
    # Inputs are every column, each scaled with its own training statistics.
    np.testing.assert_allclose(
        d.scalers[0].inverse(d.test["x"][0, :, 0]), series[340:350, 0], atol=1e-5
    )
    np.testing.assert_allclose(
        d.scalers[1].inverse(d.test["x"][0, :, 1]), series[340:350, 1], atol=1e-4
    )


def test_test_size_in_points_and_as_fraction():
    series = _two_columns(200)
    assert data.prepare_series(series, 5, test_size=30).sizes == (150, 20, 30)
    assert data.prepare_series(series, 5, test_size=0.25).sizes == (130, 20, 50)
    assert data.prepare_series(series[:, 0], 5, test_size=7, valid_frac=0.0).sizes == (193, 0, 7)
    with pytest.raises(
        ValueError, match=r"training part has 4 of 200 .*test tail 176.*at most 159"
    ):
        data.prepare_series(series, 20, test_size=176)
    with pytest.raises(ValueError, match=r"fraction must lie in \(0, 1\)"):
        data.prepare_series(series, 5, test_size=1.5)
    with pytest.raises(ValueError, match=">= 1"):
        data.prepare_series(series, 5, test_size=0)
    with pytest.raises(ValueError, match="target column 2 out of range"):
        data.prepare_series(series, 5, target=2)
    bad = series.copy()
    bad[17, 1] = np.nan
    with pytest.raises(ValueError, match="step 17, column 1"):
        data.prepare_series(bad, 5)


def test_series_baselines_on_the_model_test_windows():
    series = _two_columns(300)
    d = data.prepare_series(series, 12, horizon=3, test_size=40, target=1)
    out = data.series_baselines(d, p=4, season=6)
    assert set(out) == {"naive", "seasonal_naive", "ar"} and out["ar"]["p"] == 4
    # By hand: test targets are the tail; the naive forecast is each window's last value.
    start = 300 - 40
    truth = np.stack([series[start + i : start + i + 3, 1] for i in range(40 - 3 + 1)])
    naive = np.repeat(series[start - 1 : start + 40 - 3, 1][:, None], 3, axis=1)
    np.testing.assert_allclose(d.scaler.inverse(d.test["y"]), truth, rtol=1e-5)
    assert out["naive"]["mse"] == pytest.approx(np.mean((naive - truth) ** 2))
    assert out["naive"]["mae"] == pytest.approx(np.mean(np.abs(naive - truth)))
    # Seasonal naive: step h after time T is the value at T + h - 6.
    seasonal = np.stack([series[start + i - 6 : start + i - 3, 1] for i in range(38)])
    assert out["seasonal_naive"]["mse"] == pytest.approx(np.mean((seasonal - truth) ** 2))
    assert "seasonal_naive" not in data.series_baselines(d, p=4)
    with pytest.raises(ValueError, match="window >= season"):
        data.series_baselines(d, season=13)


def test_ar_order_too_large_for_the_training_windows():
    d = data.prepare_series(np.sin(np.arange(40.0)), 20, test_size=5, valid_frac=0.1)
    assert d.sizes == (31, 4, 5) and len(d.train["x"]) == 11
    assert data.max_ar_order(d) == 10
    with pytest.raises(ValueError, match=r"p = 20 needs more than 20 training windows.* 11; .* 10"):
        data.series_baselines(d)
    assert data.series_baselines(d, p=10)["ar"]["p"] == 10


# ------------------------------------------------------------------------- baselines


def test_pooled_features_use_valid_steps_only():
    x = np.array([[[1.0], [3.0], [99.0]], [[-2.0], [-99.0], [-99.0]]])
    f = data.pooled_features(x, np.array([2, 1]))
    np.testing.assert_allclose(f, [[2.0, 3.0, 3.0], [-2.0, -2.0, -2.0]])


def test_logistic_regression_baselines_learn_separable_data():
    rng = np.random.default_rng(0)
    y = rng.integers(3, size=150)
    x = rng.normal(size=(150, 6, 2)) + y[:, None, None] * 2.0
    lengths = rng.integers(1, 7, size=150)
    pred = data.pooled_logistic_regression(x[:100], lengths[:100], y[:100], x[100:], lengths[100:])
    assert pred.shape == (50,) and (pred == y[100:]).mean() > 0.9
    tokens = rng.integers(0, 4, size=(150, 6)) + 4 * y[:, None]  # class c uses tokens 4c..4c+3
    pred = data.bag_of_tokens_logistic_regression(
        tokens[:100], lengths[:100], y[:100], tokens[100:], lengths[100:], 12
    )
    assert (pred == y[100:]).mean() > 0.9
    with pytest.raises(ValueError, match=r"outside \[0, 5\)"):
        data.bag_of_tokens_logistic_regression(tokens, lengths, y, tokens, lengths, 5)
    one = data.pooled_logistic_regression(x, lengths, np.zeros(150, int), x[:3], lengths[:3])
    assert one.tolist() == [0, 0, 0]


def test_most_frequent_tag():
    train = [["Jordan", "met", "May"], ["in", "Jordan"], ["in", "Jordan"]]
    tags = [["B-PER", "O", "B-PER"], ["O", "B-LOC"], ["O", "B-LOC"]]
    pred = data.most_frequent_tag(train, tags, [["in", "Jordan", "May", "Oslo"]])
    assert pred == [["O", "B-LOC", "B-PER", "O"]]  # unseen "Oslo" gets the overall most frequent


def test_nearest_neighbour_targets_and_cer():
    pred = data.nearest_neighbour_targets(["abc", "xyz", "abd"], ["1", "2", "3"], ["abx", "xyy"])
    assert pred == ["1", "2"]  # "abx" is 1 edit from "abc" and "abd": the first wins
    assert data.character_error_rate(["abc", "x"], ["abd", "xy"]) == pytest.approx(2 / 5)
    assert data.character_error_rate(["same"], ["same"]) == 0.0
    with pytest.raises(ValueError, match="2 predictions but 1 references"):
        data.character_error_rate(["a", "b"], ["a"])


# ------------------------------------------------------------------------- generated


def test_digits_npz_loads_as_sequences(tmp_path):
    path = data.write_digits_npz(tmp_path / "digits.npz")
    s = load_sequences(path)
    assert s.x.shape == (1797, 8, 8) and s.x.dtype == np.float32
    assert s.lengths.tolist() == [8] * 1797 and sorted(set(s.y.tolist())) == list(range(10))
    assert 0 <= s.x.min() and s.x.max() == 16


def test_entity_sentences_are_deterministic_ambiguous_and_round_trip(tmp_path):
    sentences = data.make_entity_sentences(1500, seed=0)
    assert sentences == data.make_entity_sentences(1500, seed=0)
    assert sentences != data.make_entity_sentences(1500, seed=1)
    for words, tags in sentences:
        assert len(words) == len(tags)
        for prev, tag in zip(["O"] + tags, tags):
            assert tag == "O" or tag.startswith("B-") or prev[2:] == tag[2:]  # valid BIO
    kinds = {t[2:] for _, tags in sentences for t in tags if t != "O"}
    assert kinds == {"PER", "LOC", "ORG", "DATE"}
    roles = {}
    for words, tags in sentences:
        for w, t in zip(words, tags):
            roles.setdefault(w, set()).add(t)
    assert {"B-PER", "I-PER", "B-LOC", "B-ORG"} <= roles["Jordan"]
    assert {"B-PER", "B-DATE", "O"} <= roles["May"]
    path = data.write_conll(tmp_path / "ner.conll", sentences)
    s = load_sequences(path, per_step=True)
    assert s.words == [w for w, _ in sentences]
    assert [list(row[:n]) for row, n in zip(s.y, s.lengths)] == [t for _, t in sentences]
    train, test = sentences[:1200], sentences[1200:]
    pred = data.most_frequent_tag(
        [w for w, _ in train], [t for _, t in train], [w for w, _ in test]
    )
    hits = [p == t for (_, tags), ps in zip(test, pred) for p, t in zip(ps, tags)]
    assert 0.6 < np.mean(hits) < 0.97


def test_number_words(tmp_path):
    assert data.number_to_words(40512) == "forty thousand five hundred twelve"
    assert data.number_to_words(0) == "zero"
    assert data.number_to_words(999999) == (
        "nine hundred ninety nine thousand nine hundred ninety nine"
    )
    assert data.number_to_words(1000) == "one thousand"
    assert data.number_to_words(110) == "one hundred ten"
    pairs = data.make_number_words(2000, seed=0)
    assert pairs == data.make_number_words(2000, seed=0)
    assert len({p[0] for p in pairs}) == 2000
    assert {len(p[0]) for p in pairs} == {1, 2, 3, 4, 5, 6}
    assert all(data.number_to_words(int(a)) == b for a, b in pairs)
    path = data.write_tsv(tmp_path / "numbers.tsv", pairs)
    src, tgt = load_pairs(path)
    assert list(zip(src, tgt)) == pairs
    pred = data.nearest_neighbour_targets(src[:1600], tgt[:1600], src[1600:])
    assert data.character_error_rate(pred, tgt[1600:]) > 0.1


def test_multivariate_series_round_trips_and_needs_the_exogenous_column(tmp_path):
    cols = data.make_multivariate_series(3000, seed=0)
    assert list(cols) == ["temperature", "load"]
    again = data.make_multivariate_series(3000, seed=0)
    assert all(np.array_equal(cols[k], again[k]) for k in cols)
    path = data.write_csv(tmp_path / "load.csv", cols)
    values, names = data.load_csv_columns(path, ["temperature", "load"])
    assert names == ["temperature", "load"]
    np.testing.assert_array_equal(values, np.stack([cols["temperature"], cols["load"]], 1))
    d = data.prepare_series(values, 24, test_size=500, target=1)
    base = data.series_baselines(d, p=24, season=24)

    # A least-squares fit on lagged temperature and load beats the load-only baselines,
    # so the exogenous column carries information the baselines cannot use.
    def design(x):
        return np.concatenate([x[:, -6:].reshape(len(x), -1), np.ones((len(x), 1))], 1)

    coef, *_ = np.linalg.lstsq(design(d.train["x"]), d.train["y"][:, 0], rcond=None)
    pred = d.scaler.inverse(design(d.test["x"]) @ coef)
    exo_mse = np.mean((pred - d.scaler.inverse(d.test["y"][:, 0])) ** 2)
    assert exo_mse < 0.95 * base["ar"]["mse"] < base["naive"]["mse"]
