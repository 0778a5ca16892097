"""The experiments on a user's files: every format trains, splits are honest, bad input
fails before the first step with the file or field named, and nothing is written."""

from __future__ import annotations

import csv
import importlib
import json
import pathlib
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from seqjax.train import train_and_evaluate  # noqa: E402
from seqjax.train.tasks import make_task, task_class  # noqa: E402

FAST = {
    "num_steps": 4,
    "eval_every": 2,
    "log_every": 2,
    "batch_size": 8,
    "warmup_steps": 1,
    "progress_bar": False,
    "tensorboard": False,
    "model.hidden_size": 8,
}


def config(name, **overrides):
    c = importlib.import_module(f"configs.{name}").get_config()
    base = dict(FAST)
    if "embed_size" in c.model:
        base["model.embed_size"] = 8
    c.update_from_flattened_dict({**base, **overrides})
    return c


def write_npz(path, n=60, t=7, d=3, *, tokens=False, per_step=False, labels=("a", "b", "c")):
    rng = np.random.default_rng(0)
    lengths = rng.integers(2, t + 1, n)
    y = np.array(labels)[rng.integers(0, len(labels), n)]
    arrays = {"lengths": lengths}
    if tokens:
        arrays["tokens"] = rng.integers(1, 20, (n, t)) * (np.arange(t) < lengths[:, None])
    else:
        x = rng.normal(size=(n, t, d)).astype(np.float32) * 3 + 5
        x[:, :, 0] = np.arange(n)[:, None]  # each sequence's index, to check the splits
        arrays["x"] = x * (np.arange(t) < lengths[:, None])[..., None]
    if per_step:
        arrays["y"] = rng.integers(0, 3, (n, t))
    else:
        arrays["y"] = y
    np.savez(path, **arrays)
    return path


def summary_ok(summary, workdir):
    assert summary["step"] == 4 and set(summary["val"]) > {"step"} and summary["eval"]
    assert all(np.isfinite(v) for v in summary["eval"].values())
    assert json.loads((workdir / "summary.json").read_text())["eval"] == summary["eval"]
    what, metric, baseline = task_class(summary["task"]).readme_row(summary)
    assert what and metric and baseline


def test_classify_from_features(tmp_path):
    path = write_npz(tmp_path / "d.npz")
    summary = train_and_evaluate(config("classify", **{"data.path": str(path)}), tmp_path / "w")
    summary_ok(summary, tmp_path / "w")
    assert {"accuracy", "macro_f1", "loss"} <= set(summary["eval"])
    assert summary["classes"] == ["a", "b", "c"]
    assert "logistic_regression_accuracy" in summary["baselines"]
    assert (tmp_path / "w" / "plots" / "confusion_matrix.png").stat().st_size > 0


def test_classify_splits_are_disjoint_stratified_and_scaled_on_train(tmp_path):
    path = write_npz(tmp_path / "d.npz", n=100)
    c = config("classify", **{"data.path": str(path)})
    task = make_task(c)
    ids = {k: set(p.x[:, 0, 0].astype(int)) for k, p in task.parts.items()}
    assert not ids["train"] & ids["val"] and not ids["train"] & ids["test"]
    assert not ids["val"] & ids["test"] and len(set.union(*ids.values())) == 100
    assert len(ids["test"]) == 20 and len(ids["val"]) == 8
    for part in task.parts.values():  # every class on every side
        assert set(part.y) == {"a", "b", "c"}
    x, lengths = task.data["train"]["x"], task.data["train"]["lengths"]
    valid = np.arange(x.shape[1]) < lengths[:, None]
    np.testing.assert_allclose(x[valid].mean(0), 0, atol=1e-5)
    np.testing.assert_allclose(x[valid].std(0), 1, atol=1e-4)
    assert np.all(x[~valid] == 0)
    assert abs(task.data["test"]["x"][..., 1:][:, :1].mean()) < 1  # test scaled by train stats


def test_classify_from_tokens_and_from_csv(tmp_path):
    path = write_npz(tmp_path / "t.npz", tokens=True)
    s = train_and_evaluate(config("classify", **{"data.path": str(path)}), tmp_path / "t")
    summary_ok(s, tmp_path / "t")
    assert "bag_of_tokens_lr_accuracy" in s["baselines"]
    rows = [["seq", "f1", "f2", "kind"]]
    rng = np.random.default_rng(1)
    for i in range(40):
        for _ in range(rng.integers(2, 6)):
            rows.append([f"s{i}", *rng.normal(size=2).round(3), "up" if i % 2 else "down"])
    with (tmp_path / "long.csv").open("w", newline="") as f:
        csv.writer(f).writerows(rows)
    overrides = {
        "data.path": str(tmp_path / "long.csv"),
        "data.id_column": "seq",
        "data.label_column": "kind",
    }
    s = train_and_evaluate(config("classify", **overrides), tmp_path / "c")
    summary_ok(s, tmp_path / "c")
    assert s["classes"] == ["down", "up"]


@pytest.mark.parametrize(
    "case, match",
    [
        ("missing", "no sequence file at .*nothing.npz"),
        ("test_only_label", "test labels"),
        ("single_class", "single class"),
        ("too_few", "fewer than batch_size"),
    ],
)
def test_classify_bad_input_fails_before_training_and_writes_nothing(tmp_path, case, match):
    overrides = {"data.path": str(tmp_path / "d.npz")}
    if case == "missing":
        overrides["data.path"] = str(tmp_path / "nothing.npz")
    elif case == "test_only_label":
        write_npz(tmp_path / "d.npz", labels=("a", "b"))
        write_npz(tmp_path / "test.npz", n=10, labels=("a", "z"))
        overrides["data.test_path"] = str(tmp_path / "test.npz")
    elif case == "single_class":
        write_npz(tmp_path / "d.npz", labels=("a",))
    else:
        write_npz(tmp_path / "d.npz", n=10)
    with pytest.raises((ValueError, FileNotFoundError), match=match):
        train_and_evaluate(config("classify", **overrides), tmp_path / "w")
    assert not (tmp_path / "w").exists()


def write_conll(path, n=40):
    rng = np.random.default_rng(2)
    names, places = ["Ada", "Alan", "Grace"], ["Paris", "Oslo", "Lima"]
    lines = []
    for _ in range(n):
        if rng.random() < 0.5:
            words = ["I", "met", str(rng.choice(names)), "Hopper", "today"]
            tags = ["O", "O", "B-PER", "I-PER", "O"]
        else:
            words = ["we", "flew", "to", str(rng.choice(places))]
            tags = ["O", "O", "O", "B-LOC"]
        lines += [f"{w}\t{t}" for w, t in zip(words, tags)] + [""]
    path.write_text("\n".join(lines) + "\n")
    return path


def test_tag_from_conll_with_entity_f1_and_from_npz(tmp_path):
    path = write_conll(tmp_path / "train.conll")
    s = train_and_evaluate(config("tag", **{"data.path": str(path)}), tmp_path / "c")
    summary_ok(s, tmp_path / "c")
    assert {"token_accuracy", "entity_f1", "entity_precision", "entity_recall"} <= set(s["eval"])
    assert "most_frequent_tag_entity_f1" in s["baselines"]
    assert s["tags"] == ["B-LOC", "B-PER", "I-PER", "O"]
    path = write_npz(tmp_path / "tags.npz", tokens=True, per_step=True)
    s = train_and_evaluate(config("tag", **{"data.path": str(path)}), tmp_path / "n")
    summary_ok(s, tmp_path / "n")
    assert "entity_f1" not in s["eval"] and "most_frequent_tag_token_accuracy" in s["baselines"]


def write_pairs(path, n=120, words=False):
    rng = np.random.default_rng(3)
    lines = []
    for _ in range(n):
        a = " ".join(rng.choice(["one", "two", "three"], rng.integers(1, 4)))
        src = a if words else a.replace(" ", "")
        lines.append(f"{src}\t{src[::-1] if not words else ' '.join(a.split()[::-1])}")
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.mark.parametrize("tokens", ["chars", "words"])
def test_seq2seq_from_tsv(tmp_path, tokens):
    path = write_pairs(tmp_path / "p.tsv", words=tokens == "words")
    overrides = {"data.path": str(path), "data.tokens": tokens, "data.n_examples": 2}
    s = train_and_evaluate(config("seq2seq", **overrides), tmp_path / "w")
    summary_ok(s, tmp_path / "w")
    assert {"exact_match", "cer", "loss", "token_accuracy"} <= set(s["eval"])
    assert ("bleu" in s["eval"]) == (tokens == "words")
    assert 0 <= s["baselines"]["nearest_exact_match"] <= 1
    assert (tmp_path / "w" / "plots" / "attention_0.png").exists()


def test_seq2seq_bad_line_names_it(tmp_path):
    (tmp_path / "p.tsv").write_text("ab\tba\nno tab here\n")
    with pytest.raises(ValueError, match="line 2"):
        train_and_evaluate(
            config("seq2seq", **{"data.path": str(tmp_path / "p.tsv")}), tmp_path / "w"
        )
    assert not (tmp_path / "w").exists()


def write_series(path, n=400):
    t = np.arange(n)
    temp = 10 + 5 * np.sin(2 * np.pi * t / 24)
    load = 50 + 2 * np.roll(temp, 2) + np.random.default_rng(4).normal(size=n)
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["hour", "temperature", "load"])
        w.writerows(zip(t, temp.round(4), load.round(4)))
    return path


def test_forecast_several_columns_horizon_and_test_size(tmp_path):
    overrides = {
        "data.path": str(write_series(tmp_path / "s.csv")),
        "data.column": "load",
        "data.columns": ["temperature"],
        "data.horizon": 3,
        "data.window": 30,
        "data.test_size": 60.0,
        "data.season": 24,
        "data.ar_order": 4,
    }
    c = config("forecast", **overrides)
    task = make_task(c)
    assert task.data.train["x"].shape[1:] == (30, 2) and task.data.test["y"].shape[1] == 3
    assert len(task.data.test["y"]) == 60 - 3 + 1
    s = train_and_evaluate(c, tmp_path / "w")
    summary_ok(s, tmp_path / "w")
    assert {"mse", "mae", "mse_scaled", "mae_scaled"} <= set(s["eval"])
    assert {"naive_mse", "seasonal_naive_mse", "ar_mse"} <= set(s["baselines"])


def test_forecast_test_tail_longer_than_the_series_fails_first(tmp_path):
    overrides = {
        "data.path": str(write_series(tmp_path / "s.csv", n=100)),
        "data.column": "load",
        "data.test_size": 500.0,
    }
    with pytest.raises(ValueError, match="test"):
        train_and_evaluate(config("forecast", **overrides), tmp_path / "w")
    assert not (tmp_path / "w").exists()


def test_charlm_trains_on_a_short_text_and_refuses_a_too_short_one(tmp_path):
    text = tmp_path / "short.txt"
    text.write_text("the quick brown fox jumps over the lazy dog. " * 20)  # 900 characters
    overrides = {"data.path": str(text), "data.max_ngram_order": 2, "data.sample_chars": 10}
    s = train_and_evaluate(config("charlm", **overrides, **{"data.seq_len": 16}), tmp_path / "w")
    assert np.isfinite(s["eval"]["bits_per_char"]) and np.isfinite(s["val"]["bits_per_char"])
    with pytest.raises(ValueError, match="seq_len = 1000 needs at least 1001"):
        train_and_evaluate(config("charlm", **overrides, **{"data.seq_len": 1000}), tmp_path / "x")
    assert not (tmp_path / "x").exists()


def test_forecast_on_a_series_too_short_for_its_ar_order_fails_before_training(tmp_path):
    overrides = {
        "data.path": str(write_series(tmp_path / "s.csv", n=120)),
        "data.column": "load",
        "data.window": 48,
        "data.ar_order": 48,
    }
    with pytest.raises(ValueError, match="p = 48|AR|windows"):
        train_and_evaluate(config("forecast", **overrides), tmp_path / "w")
    assert not (tmp_path / "w").exists()


@pytest.mark.parametrize("field", ["batch_size", "num_steps", "eval_every", "keep_checkpoints"])
def test_non_positive_trainer_fields_are_named(tmp_path, field):
    with pytest.raises(ValueError, match=f"{field} must be a positive int, received 0"):
        train_and_evaluate(config("adding", **{field: 0}), tmp_path / "w")


def test_copy_length_reaches_the_data_and_the_baseline(tmp_path):
    overrides = {"data.delay": 10, "data.copy_length": 3, "data.n_test": 20, "data.n_val": 20}
    task = make_task(config("copy", **overrides))
    assert task.splits["test"]["x"].shape == (20, 10 + 2 * 3)
    assert task.train_batch(0, 4)["y"].shape == (4, 16)
    from seqjax.data import memoryless_baseline

    nats = task.report(None, tmp_path)["baselines"]["memoryless_nats"]
    assert nats == memoryless_baseline(10, copy_length=3) != memoryless_baseline(10)
