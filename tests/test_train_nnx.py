"""The trainer trains seqjax.nnx models (``config.model.api = "nnx"``): the same losses as
linen from the same key, the same checkpoints, exact resume with dropout."""

from __future__ import annotations

import pathlib
import sys

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_train import _final_params, small_config  # noqa: E402

from seqjax.train import train_and_evaluate  # noqa: E402
from seqjax.train.writers import read_metrics  # noqa: E402


def _losses(workdir) -> list[float]:
    return [r["loss"] for r in read_metrics(workdir) if r["split"] == "train"]


# Seq2Seq (with decoding), LanguageModel (with a carried state in evaluation) and
# SequenceClassifier; tests/test_nnx.py shows every NNX module equal to its linen twin.
@pytest.mark.parametrize("name", ["dates", "charlm", "adding"])
def test_nnx_trains_as_linen_does(name, tmp_path):
    runs = {}
    for api in ("linen", "nnx"):
        config = small_config(name, **{"model.api": api, "num_steps": 3, "eval_every": 3})
        runs[api] = train_and_evaluate(config, tmp_path / api)
    linen, nnx = runs["linen"], runs["nnx"]
    assert nnx["config"]["model"]["api"] == "nnx"
    np.testing.assert_allclose(_losses(tmp_path / "nnx"), _losses(tmp_path / "linen"), rtol=2e-5)
    for key, value in linen["eval"].items():
        np.testing.assert_allclose(nnx["eval"][key], value, rtol=1e-4, atol=1e-6, err_msg=key)
    (_, a), (_, b) = _final_params(tmp_path / "linen"), _final_params(tmp_path / "nnx")
    assert jax.tree.structure(a) == jax.tree.structure(b)  # one checkpoint layout
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)


def test_nnx_resume_with_dropout_is_bitwise_exact(tmp_path):
    config = small_config(
        "charlm", **{"model.api": "nnx", "model.dropout": 0.3, "num_steps": 4, "eval_every": 2}
    )
    straight = train_and_evaluate(config, tmp_path / "straight")
    config.num_steps = 2
    train_and_evaluate(config, tmp_path / "resumed")
    config.num_steps = 4
    resumed = train_and_evaluate(config, tmp_path / "resumed")
    assert resumed["step"] == straight["step"] == 4
    assert _losses(tmp_path / "resumed") == _losses(tmp_path / "straight")
    (_, a), (_, b) = _final_params(tmp_path / "straight"), _final_params(tmp_path / "resumed")
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(x, y)


def test_nnx_model_drops_out_with_the_steps_key():
    from seqjax.train.tasks import make_task

    config = small_config("charlm", **{"model.api": "nnx", "model.dropout": 0.3})
    task = make_task(config)
    params = task.init(jax.random.PRNGKey(0))
    batch = task.train_batch(0, 4)
    evaluated = task.loss(params, batch, None)[0]
    k1, k2 = jax.random.PRNGKey(1), jax.random.PRNGKey(2)
    once, again, other = (float(task.loss(params, batch, k)[0]) for k in (k1, k1, k2))
    assert once == again and once != other and once != float(evaluated)


def test_unknown_api_is_a_clear_error(tmp_path):
    with pytest.raises(ValueError, match=r"config.model.api must be one of \('linen', 'nnx'\)"):
        train_and_evaluate(small_config("adding", **{"model.api": "haiku"}), tmp_path)


def test_nnx_api_names_models_without_a_twin(tmp_path):
    config = small_config("adding", **{"model.api": "nnx", "model.arch": "transformer"})
    with pytest.raises(ValueError, match="no NNX twin of TransformerClassifier"):
        train_and_evaluate(config, tmp_path)
