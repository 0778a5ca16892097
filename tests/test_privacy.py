"""DP-SGD: per-example gradients (fast path equals plain), clipping, noise scale, Poisson
sampling, the accountant's epsilon, and a private run's summary."""

from __future__ import annotations

import pathlib
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import seqjax
from seqjax.train import privacy
from seqjax.train.config import base_config

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))


def _model():
    """A small LSTM regressor: its loss goes through the fused LSTM kernel."""
    seq = seqjax.recurrent(seqjax.lstm(6))
    params = {"rnn": seq.init(jax.random.key(0), 3), "w": jnp.ones((6,)) * 0.3}

    def loss_fn(p, batch, key):
        carry, _ = seq.apply(p["rnn"], batch["x"], lengths=batch["lengths"])
        pred = carry.h @ p["w"]  # the state after each sequence's last valid step
        return jnp.mean((pred - batch["y"]) ** 2), {"abs_err": jnp.mean(jnp.abs(pred - batch["y"]))}

    n = 5
    batch = {
        "x": 3.0 * jax.random.normal(jax.random.key(1), (n, 7, 3)),
        "lengths": jnp.array([7, 3, 5, 7, 1]),
        "y": jnp.arange(n, dtype=jnp.float32) * 4.0,
    }
    return loss_fn, params, batch


def _alone(loss_fn, params, batch, i):
    one = jax.tree.map(lambda a: a[i : i + 1], batch)
    return jax.grad(lambda p: loss_fn(p, one, None)[0])(params)


def test_per_example_grads_equal_each_example_alone_on_fast_and_plain_paths():
    loss_fn, params, batch = _model()
    assert seqjax.kernels.kind(seqjax.lstm(6)) is not None  # the fast path applies
    _, _, fast = jax.jit(privacy.per_example_grads, static_argnums=0)(loss_fn, params, batch, None)
    with seqjax.kernels.disabled():
        _, _, plain = jax.jit(privacy.per_example_grads, static_argnums=0)(
            loss_fn, params, batch, None
        )
    for i in range(5):
        alone = _alone(loss_fn, params, batch, i)
        for f, p, a in zip(*(jax.tree.leaves(t) for t in (fast, plain, alone))):
            np.testing.assert_allclose(f[i], a, rtol=1e-4, atol=1e-6)
            np.testing.assert_allclose(p[i], a, rtol=1e-4, atol=1e-6)


def test_each_example_is_clipped_to_the_bound_and_padding_is_ignored():
    loss_fn, params, batch = _model()
    clip = 0.5
    norms = [optax.tree.norm(_alone(loss_fn, params, batch, i)) for i in range(5)]
    assert max(norms) > clip  # some examples are clipped, so the bound is tested
    step = privacy.private_value_and_grad(
        loss_fn, clip_norm=clip, noise_multiplier=0.0, expected_batch=1.0
    )
    for i in range(5):
        weight = jnp.zeros(5).at[i].set(1.0)  # row i sampled, the others padding
        (_, aux), g = step(params, {**batch, privacy.WEIGHT: weight}, jax.random.key(0))
        assert float(optax.tree.norm(g)) <= clip * (1 + 1e-5)
        factor = min(1.0, clip / float(norms[i]))
        want = jax.tree.map(lambda a, f=factor: a * f, _alone(loss_fn, params, batch, i))
        for x, y in zip(jax.tree.leaves(g), jax.tree.leaves(want)):
            np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-6)
        assert float(aux["sampled"]) == 1.0
        assert float(aux["clipped_fraction"]) == float(norms[i] > clip)


def test_noise_has_the_configured_scale():
    params = {"w": jnp.zeros((200, 100))}

    def zero_loss(p, batch, key):  # zero gradient: what remains is the noise
        return jnp.sum(p["w"]) * 0.0 + jnp.mean(batch["x"]) * 0.0, {}

    sigma, clip, expected = 1.3, 0.7, 16.0
    step = privacy.private_value_and_grad(
        zero_loss, clip_norm=clip, noise_multiplier=sigma, expected_batch=expected
    )
    batch = {"x": jnp.ones((4, 2)), privacy.WEIGHT: jnp.ones(4)}
    _, g = step(params, batch, jax.random.key(3))
    std = float(jnp.std(g["w"]))
    assert abs(std / (sigma * clip / expected) - 1) < 0.02
    assert abs(float(jnp.mean(g["w"]))) < 3 * std / np.sqrt(g["w"].size)


def test_poisson_sampler_is_a_pure_function_of_the_step_with_rate_q():
    sampler = privacy.PoissonSampler(2000, 0.02, privacy.physical_batch(40.0), seed=1)
    a, wa = sampler.indices(7)
    b, wb = sampler.indices(7)
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(wa, wb)
    assert len(a) == sampler.rows == privacy.physical_batch(40.0)
    counts = [int(sampler.indices(s)[1].sum()) for s in range(300)]
    assert abs(np.mean(counts) / 40.0 - 1) < 0.05 and np.std(counts) > 3  # Poisson, not fixed
    assert len(set(a[wa > 0])) == int(wa.sum())  # without replacement within a step


@pytest.mark.parametrize("accountant", ["rdp", "pld"])
def test_epsilon_is_the_accountants_and_target_epsilon_is_met(accountant):
    import dp_accounting

    q, steps, delta, sigma = 0.02, 500, 1e-5, 1.1
    acc = (
        dp_accounting.rdp.RdpAccountant()
        if accountant == "rdp"
        else dp_accounting.pld.PLDAccountant()
    )
    event = dp_accounting.PoissonSampledDpEvent(q, dp_accounting.GaussianDpEvent(sigma))
    acc.compose(event, steps)
    assert privacy.epsilon(sigma, q, steps, delta, accountant) == pytest.approx(
        acc.get_epsilon(delta), rel=1e-9
    )
    if accountant == "pld":  # calibrating through PLD takes minutes; RDP's shows the search
        return
    noise = privacy.noise_for_epsilon(2.0, q, steps, delta, accountant)
    assert privacy.epsilon(noise, q, steps, delta, accountant) <= 2.0 + 1e-3
    assert privacy.epsilon(noise * 0.95, q, steps, delta, accountant) > 2.0


def test_bad_privacy_config_is_a_clear_error():
    c = base_config().privacy
    c.accountant = "moments"
    with pytest.raises(ValueError, match=r"privacy.accountant must be one of \('rdp', 'pld'\)"):
        privacy.check_privacy_config(c)
    c = base_config().privacy
    c.clip_norm = 0.0
    with pytest.raises(ValueError, match="privacy.clip_norm must be > 0"):
        privacy.check_privacy_config(c)


def test_private_run_reports_the_privacy_spent_and_resumes_exactly(tmp_path):
    from test_tasks import config, write_npz

    from seqjax.train import train_and_evaluate
    from seqjax.train.writers import read_metrics

    path = write_npz(tmp_path / "d.npz", n=120)
    overrides = {
        "data.path": str(path),
        "privacy.enabled": True,
        "privacy.target_epsilon": 8.0,
        "model.dropout": 0.0,
        "log_every": 1,
    }
    c = config("classify", **overrides)
    summary = train_and_evaluate(c, tmp_path / "w")
    p = summary["privacy"]
    n = round(c.batch_size / p["sampling_rate"])
    assert p["steps"] == 4 and p["delta"] == 1e-5 and p["clip_norm"] == 1.0
    assert p["epsilon"] == pytest.approx(
        privacy.epsilon(p["noise_multiplier"], p["sampling_rate"], 4, 1e-5, "rdp"), rel=1e-9
    )
    assert p["epsilon"] <= 8.0 + 1e-3 and p["noise_multiplier"] > 0
    assert p["accountant"].startswith("dp-accounting") and p["truncated_steps"] == 0
    assert n < 120  # sampled from the training part only
    train = [r for r in read_metrics(tmp_path / "w") if r["split"] == "train"]
    assert all(0 <= r["clipped_fraction"] <= 1 for r in train)
    assert len({r["sampled"] for r in train}) > 1  # Poisson: the batch size varies
    # a run that lost its last checkpoint resumes from step 2 and takes the same steps
    import shutil

    shutil.rmtree(tmp_path / "w" / "checkpoints" / "4")
    (tmp_path / "w" / "summary.json").unlink()
    resumed = train_and_evaluate(c, tmp_path / "w")
    again = [r["loss"] for r in read_metrics(tmp_path / "w") if r["split"] == "train"]
    assert again == [r["loss"] for r in train]
    assert resumed["privacy"]["epsilon"] == p["epsilon"]


def test_privacy_needs_a_finite_training_set(tmp_path):
    from test_train import small_config

    from seqjax.train import train_and_evaluate

    with pytest.raises(ValueError, match="privacy needs a task with a finite training set"):
        train_and_evaluate(small_config("adding", **{"privacy.enabled": True}), tmp_path)
