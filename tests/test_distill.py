"""Knowledge distillation: the soft-target loss, a teacher loaded from its workdir, word-
and sequence-level runs, the cache of the teacher's outputs."""

from __future__ import annotations

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from test_train import small_config

from seqjax.train import train_and_evaluate
from seqjax.train.runs import load_run
from seqjax.train.tasks import DistillTask, make_task
from seqjax.train.tasks.distill import distillation_loss


def test_distillation_loss_is_zero_for_the_teachers_own_logits_and_scaled_by_t_squared():
    rng = np.random.default_rng(0)
    t = jnp.asarray(rng.normal(size=(3, 5, 7)), jnp.float32)
    s = jnp.asarray(rng.normal(size=(3, 5, 7)), jnp.float32)
    mask = jnp.asarray(rng.uniform(size=(3, 5)) > 0.3)
    assert float(distillation_loss(t, t, mask, 2.0)) == pytest.approx(0.0, abs=1e-6)
    kl = float(distillation_loss(s, t, mask, 1.0))
    p, q = jax.nn.softmax(t), jax.nn.softmax(s)
    per = np.sum(np.asarray(p) * np.log(np.asarray(p) / np.asarray(q)), -1)
    assert kl == pytest.approx(float(per[np.asarray(mask)].mean()), rel=1e-5)
    # T^2 scaling: at T = 3 the loss is 9 times the KL of the softened distributions.
    p3, q3 = np.asarray(jax.nn.softmax(t / 3)), np.asarray(jax.nn.softmax(s / 3))
    kl3 = np.sum(p3 * np.log(p3 / q3), -1)[np.asarray(mask)].mean()
    assert float(distillation_loss(s, t, mask, 3.0)) == pytest.approx(9 * kl3, rel=1e-5)
    with pytest.raises(ValueError, match="same shape"):
        distillation_loss(s, t[..., :3], mask, 1.0)


def test_distillation_gradient_moves_the_student_towards_the_teacher():
    rng = np.random.default_rng(1)
    t = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    s = jnp.asarray(rng.normal(size=(4, 6)), jnp.float32)
    temp = 2.0
    g = jax.grad(lambda s: distillation_loss(s, t, None, temp))(s)
    # d/ds T^2 KL(p_T || q_T) = T (q_T - p_T), averaged over the 4 positions.
    want = temp * (jax.nn.softmax(s / temp) - jax.nn.softmax(t / temp)) / 4
    np.testing.assert_allclose(g, want, rtol=1e-5, atol=1e-7)
    # the teacher gets no gradient, and a small step lowers the loss
    assert np.all(jax.grad(lambda t: distillation_loss(s, t, None, temp))(t) == 0)
    assert distillation_loss(s - 0.1 * g, t, None, temp) < distillation_loss(s, t, None, temp)


@pytest.fixture(scope="module")
def charlm_teacher(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("charlm_teacher")
    train_and_evaluate(small_config("charlm", **{"model.hidden_size": 16}), workdir)
    return workdir


def test_a_word_level_run_with_another_architecture_trains_and_reports(charlm_teacher, tmp_path):
    teacher = load_run(charlm_teacher)
    assert teacher.step == teacher.summary["val"]["step"] and len(teacher.digest) == 64
    config = small_config(
        "charlm",
        **{
            "model.cell": "min_gru",
            "distill.teacher": str(charlm_teacher),
            "distill.temperature": 2.0,
            "distill.alpha": 0.7,
        },
    )
    task = make_task(config)
    assert isinstance(task, DistillTask)
    # the loss is the mix of the hard and the soft terms, the teacher's logits inside it
    params = task.init(jax.random.PRNGKey(0))
    batch = task.train_batch(0, 4)
    loss, aux = jax.jit(task.loss)(params, batch, None)
    mix = 0.3 * float(aux["hard_loss"]) + 0.7 * float(aux["soft_loss"])
    assert float(loss) == pytest.approx(mix, rel=1e-5) and float(aux["soft_loss"]) > 0
    hard, _ = task.student.loss(params, batch, None)
    assert float(aux["hard_loss"]) == pytest.approx(float(hard), rel=1e-5)

    summary = train_and_evaluate(config, tmp_path)
    d = summary["distill"]
    assert d["teacher_params"] > d["student_params"] > 0
    assert d["teacher_model"]["cell"] == "lstm" and d["level"] == "word"
    assert d["teacher_metrics"] == teacher.summary["eval"]
    assert d["student_metrics"] == pytest.approx(summary["eval"])
    assert d["teacher_speed"]["chars_per_s"] > 0 and d["student_speed"]["chars_per_s"] > 0
    assert json.loads((tmp_path / "summary.json").read_text())["distill"]["alpha"] == 0.7


def test_bad_distill_configs_are_clear_errors(charlm_teacher, tmp_path):
    with pytest.raises(FileNotFoundError, match="not a finished run"):
        make_task(small_config("charlm", **{"distill.teacher": str(tmp_path)}))
    with pytest.raises(ValueError, match="distill.level"):
        make_task(
            small_config(
                "charlm", **{"distill.teacher": str(charlm_teacher), "distill.level": "token"}
            )
        )
    with pytest.raises(ValueError, match="same task"):
        make_task(small_config("dates", **{"distill.teacher": str(charlm_teacher)}))
    with pytest.raises(ValueError, match="another vocab"):
        make_task(
            small_config(
                "charlm", **{"distill.teacher": str(charlm_teacher), "data.max_chars": 3_000}
            )
        )


@pytest.mark.slow
def test_sequence_level_trains_on_cached_teacher_outputs_reused_on_resume(tmp_path):
    teacher_dir, student_dir = tmp_path / "teacher", tmp_path / "student"
    train_and_evaluate(small_config("dates", num_steps=2, eval_every=1), teacher_dir)
    overrides = {
        "num_steps": 2,
        "model.cell": "gru",
        "model.bidirectional": False,
        "distill.teacher": str(teacher_dir),
        "distill.level": "sequence",
        "distill.alpha": 0.0,
        "distill.beam_size": 2,
    }
    task = make_task(small_config("dates", **overrides))
    cache = task.sequence_cache
    assert not cache["reused"] and cache["path"].startswith(str(teacher_dir / "distill"))
    # the student's training targets are now the teacher's beam outputs
    with np.load(cache["path"]) as f:
        np.testing.assert_array_equal(task.student.train["tgt"], f["tgt"])
        assert f["tgt"].shape[0] == len(task.student.train["src"])
    # a resumed (or repeated) run builds its task again: the cached outputs are reused
    summary = train_and_evaluate(small_config("dates", **overrides), student_dir)
    assert summary["distill"]["sequence_cache"]["reused"]
    assert summary["distill"]["sequence_cache"]["path"] == cache["path"]
    assert summary["distill"]["student_speed"]["sequences_per_s"] > 0
    assert summary["distill"]["teacher_params"] > summary["distill"]["student_params"]
