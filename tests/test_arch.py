"""``config.model.arch = "transformer"`` in every experiment that takes ``config.model.cell``."""

from __future__ import annotations

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

SMALL = {
    "num_steps": 2,
    "eval_every": 2,
    "log_every": 1,
    "batch_size": 8,
    "warmup_steps": 1,
    "progress_bar": False,
    "tensorboard": False,
    "model.arch": "transformer",
    "model.transformer.model_size": 8,
    "model.transformer.layers": 1,
    "model.transformer.heads": 2,
}
SHRINK = {
    "dates": {"data.n_train": 200, "data.n_test": 40, "data.n_examples": 2},
    "adding": {"data.length": 12, "data.n_test": 30, "data.n_val": 20},
    "copy": {"data.delay": 6, "data.copy_length": 3, "data.n_test": 20, "data.n_val": 20},
    "charlm": {
        "data.max_chars": 20_000,
        "data.seq_len": 16,
        "data.eval_chars": 500,
        "data.max_ngram_order": 2,
        "data.sample_chars": 20,
    },
    "forecast": {"data.window": 8, "data.ar_order": 4, "data.season": 4},
}


def small_config(name, **overrides):
    config = importlib.import_module(f"configs.{name}").get_config()
    config.update_from_flattened_dict({**SMALL, **SHRINK.get(name, {}), **overrides})
    return config


@pytest.mark.parametrize("name", sorted(SHRINK))
def test_every_generated_experiment_trains_a_transformer(name, tmp_path):
    summary = train_and_evaluate(small_config(name), tmp_path)
    assert summary["step"] == 2
    assert all(np.isfinite(v) for v in summary["eval"].values())
    assert json.loads((tmp_path / "summary.json").read_text())["eval"] == summary["eval"]
    what = task_class(name).readme_row(summary)[0]
    assert "transformer 8 x 1, 2 heads" in what


def test_each_task_builds_the_model_of_its_kind():
    from seqjax.nn import (
        LanguageModel,
        Seq2Seq,
        SequenceClassifier,
        Tagger,
        TransformerClassifier,
        TransformerForecaster,
        TransformerLM,
        TransformerSeq2Seq,
    )

    kinds = {
        "adding": (SequenceClassifier, TransformerClassifier),
        "copy": (Tagger, TransformerLM),
        "charlm": (LanguageModel, TransformerLM),
        "dates": (Seq2Seq, TransformerSeq2Seq),
    }
    for name, (rnn, transformer) in kinds.items():
        assert isinstance(make_task(small_config(name, **{"model.arch": "rnn"})).model, rnn)
        task = make_task(small_config(name))
        assert isinstance(task.model, transformer)
    # max_length defaults to the task's longest sequence; the config may set it
    assert make_task(small_config("copy")).model.config.max_length == 6 + 2 * 3
    assert make_task(small_config("adding")).model.config.max_length == 12
    task = make_task(small_config("forecast", **{"model.transformer.max_length": 64}))
    assert isinstance(task.model, TransformerForecaster) and task.model.config.max_length == 64
    charlm = make_task(small_config("charlm"))
    assert charlm.window == 16 and charlm.eval_len == 8  # half a window carried as context


def test_files_experiments_train_a_transformer(tmp_path):
    rng = np.random.default_rng(0)
    n, t = 40, 6
    lengths = rng.integers(2, t + 1, n)
    tokens = rng.integers(1, 20, (n, t)) * (np.arange(t) < lengths[:, None])
    np.savez(tmp_path / "c.npz", tokens=tokens, lengths=lengths, y=rng.integers(0, 2, n))
    np.savez(tmp_path / "t.npz", tokens=tokens, lengths=lengths, y=rng.integers(0, 3, (n, t)))
    pairs = "\n".join(f"{a} {b}\t{b} {a}" for a, b in zip(range(60), range(60, 120)))
    (tmp_path / "p.tsv").write_text(pairs + "\n")
    for name, path in (("classify", "c.npz"), ("tag", "t.npz"), ("seq2seq", "p.tsv")):
        config = small_config(name, **{"data.path": str(tmp_path / path)})
        summary = train_and_evaluate(config, tmp_path / name)
        assert summary["step"] == 2 and all(np.isfinite(v) for v in summary["eval"].values())
        assert "transformer" in task_class(name).readme_row(summary)[0]


def test_bad_arch_and_transformer_fields_are_named():
    with pytest.raises(ValueError, match="config.model.arch must be one of"):
        make_task(small_config("adding", **{"model.arch": "mamba"}))
    with pytest.raises(ValueError, match="config.model.transformer: model_size must be divisible"):
        make_task(small_config("adding", **{"model.transformer.model_size": 9}))
    with pytest.raises(ValueError, match="config.model.transformer: positions must be one of"):
        make_task(small_config("adding", **{"model.transformer.positions": "alibi"}))


def test_help_documents_the_fields():
    from seqjax import cli

    text = cli.describe(str(ROOT / "configs" / "dates.py"))
    assert "model.arch = 'rnn'" in text and "or transformer" in text
    for field in ("layers", "heads", "model_size", "mlp_size", "dropout", "positions"):
        line = next(x for x in text.splitlines() if f"model.transformer.{field} =" in x)
        assert "#" in line, line
