"""seqjax.inspect: gates from the cells' own steps, attributions, gradient flow."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELLS, randomize

import seqjax
from seqjax import inspect

GATE_NAMES = {
    "rnn": {"h"},
    "lstm": {"i", "f", "g", "o", "c", "h"},
    "gru": {"r", "z", "n", "h"},
    "min_gru": {"z", "h_tilde", "h"},
    "min_lstm": {"f", "i_h", "h"},
    "lru": {"state_abs", "h"},
    "rg_lru": {"a", "b", "h"},
    "slstm": {"i", "f", "z", "o", "c", "n", "m", "h"},
}


def _family(name):
    families = ("min_gru", "min_lstm", "rg_lru", "lru", "slstm", "lstm", "gru", "rnn")
    return next(k for k in families if name.startswith(k))


def _setup(name, b=3, t=7, d=5, seed=0):
    cell = CELLS[name]()
    params = randomize(cell.init(jax.random.PRNGKey(seed), d), seed=seed)
    xs = jnp.asarray(np.random.default_rng(seed).normal(size=(b, t, d)), jnp.float32)
    return cell, params, xs


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _reference_gates(name, params, h_prev, c_prev, x):
    """The gates of one step from the standard equations (NumPy, float64)."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    b = p.get("b", 0.0)
    if name in ("lstm", "lstm_nobias"):
        z = x @ p["w_i"] + h_prev @ p["w_h"] + b
        i, f, g, o = np.split(z, 4, axis=-1)
        i, f, g, o = _sigmoid(i), _sigmoid(f), np.tanh(g), _sigmoid(o)
        c = f * c_prev + i * g
        return {"i": i, "f": f, "g": g, "o": o, "c": c, "h": o * np.tanh(c)}
    if name in ("gru", "gru_nobias"):
        n_h = h_prev.shape[-1]
        xi = x @ p["w_i"] + b
        w_r, w_z, w_n = np.split(p["w_h"], 3, axis=-1)
        r = _sigmoid(xi[..., :n_h] + h_prev @ w_r)
        zg = _sigmoid(xi[..., n_h : 2 * n_h] + h_prev @ w_z)
        n = np.tanh(xi[..., 2 * n_h :] + r * (h_prev @ w_n + p.get("b_hn", 0.0)))
        return {"r": r, "z": zg, "n": n, "h": (1 - zg) * n + zg * h_prev}
    if name == "min_gru":
        n_h = h_prev.shape[-1]
        pre = x @ p["w_i"] + b
        z = _sigmoid(pre[..., :n_h])
        return {"z": z, "h_tilde": pre[..., n_h:], "h": (1 - z) * h_prev + z * pre[..., n_h:]}
    raise KeyError(name)


def test_gates_are_the_seq_outputs_and_have_the_documented_names(cell_name):
    cell, params, xs = _setup(cell_name)
    out = inspect.gates(cell, params, xs)
    assert set(out) == GATE_NAMES[_family(cell_name)]
    for v in out.values():
        assert v.shape[:2] == (3, 7)
    _, ys = seqjax.scan(cell, params, xs)  # the fused fast path where one applies
    np.testing.assert_allclose(out["h"], ys, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["lstm", "lstm_nobias", "gru", "gru_nobias", "min_gru"])
def test_gates_equal_the_equations_step_by_step(name):
    cell, params, xs = _setup(name)
    out = {k: np.asarray(v, np.float64) for k, v in inspect.gates(cell, params, xs).items()}
    x = np.asarray(xs, np.float64)
    h = np.zeros((3, 6))
    c = np.zeros((3, 6))
    for t in range(xs.shape[1]):
        want = _reference_gates(name, params, h, c, x[:, t])
        for k, v in want.items():
            np.testing.assert_allclose(out[k][:, t], v, rtol=1e-5, atol=1e-5, err_msg=f"{k}@{t}")
        h = out["h"][:, t]
        if "c" in out:
            c = out["c"][:, t]


def test_gates_match_the_cells_step_and_its_carry():
    cell, params, xs = _setup("lstm_ln")
    out = inspect.gates(cell, params, xs)
    carry = cell.initial_carry(params, (3,))
    for t in range(xs.shape[1]):
        carry, y = cell.apply(params, carry, xs[:, t])
        np.testing.assert_allclose(out["c"][:, t], carry.c, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(out["h"][:, t], y, rtol=1e-5, atol=1e-6)


def test_gates_are_zero_past_lengths_and_follow_a_reversed_layer():
    cell, params, xs = _setup("gru")
    lengths = jnp.array([7, 3, 0])
    out = inspect.gates(cell, params, xs, lengths=lengths)
    assert np.all(np.asarray(out["z"])[1, 3:] == 0) and np.all(np.asarray(out["z"])[2] == 0)
    alone = inspect.gates(cell, params, xs[1:2, :3])
    np.testing.assert_allclose(out["n"][1, :3], alone["n"][0], rtol=1e-5, atol=1e-6)
    back = seqjax.recurrent(cell, reverse=True)
    rev = inspect.gates(back, params, xs)
    _, ys = back.apply(params, xs)
    np.testing.assert_allclose(rev["h"], ys, rtol=1e-5, atol=1e-6)


def test_gates_of_a_cell_without_them_is_a_clear_error():
    cell, params, xs = _setup("lstm")
    with pytest.raises(ValueError, match="gates=None"):
        inspect.gates(cell._replace(gates=None), params, xs)
    with pytest.raises(TypeError, match="seqjax.recurrent"):
        inspect.gates(seqjax.stack(seqjax.recurrent(cell)), (params,), xs)


def _lstm_fn(seed=0, d=3):
    cell = seqjax.lstm(8)
    params = randomize(cell.init(jax.random.PRNGKey(seed), d), seed=seed)
    w = jnp.asarray(np.random.default_rng(seed + 1).normal(size=(8,)), jnp.float32)

    @jax.jit
    def fn(xs):
        _, ys = seqjax.scan(cell, params, xs)
        return jnp.tanh(ys[..., -1, :]) @ w

    return fn


def test_saliency_equals_finite_differences():
    fn = _lstm_fn()
    xs = np.random.default_rng(3).normal(size=(2, 5, 3)).astype(np.float64)
    got = np.asarray(inspect.saliency(fn, jnp.asarray(xs, jnp.float32)))
    eps = 1e-3
    want = np.zeros((2, 5))
    for t in range(5):
        for d in range(3):
            step = np.zeros_like(xs)
            step[:, t, d] = eps
            up = np.asarray(fn(jnp.asarray(xs + step, jnp.float32)), np.float64)
            down = np.asarray(fn(jnp.asarray(xs - step, jnp.float32)), np.float64)
            want[:, t] += xs[:, t, d] * (up - down) / (2 * eps)
    np.testing.assert_allclose(got, want, rtol=2e-2, atol=2e-3)
    masked = inspect.saliency(fn, jnp.asarray(xs, jnp.float32), lengths=jnp.array([5, 2]))
    assert np.all(np.asarray(masked)[1, 2:] == 0)
    np.testing.assert_allclose(masked[0], got[0], rtol=1e-6)


def test_integrated_gradients_completeness_within_one_percent():
    fn = _lstm_fn(seed=1)
    xs = jnp.asarray(np.random.default_rng(4).normal(size=(4, 6, 3)), jnp.float32)
    baseline = jnp.asarray(np.random.default_rng(5).normal(size=(6, 3)) * 0.1, jnp.float32)
    for base in (None, baseline):
        attr = inspect.integrated_gradients(fn, xs, baseline=base, steps=64)
        assert attr.shape == (4, 6)
        ref = jnp.zeros_like(xs) if base is None else jnp.broadcast_to(base, xs.shape)
        delta = np.asarray(fn(xs) - fn(ref))
        np.testing.assert_allclose(np.asarray(attr).sum(-1), delta, rtol=1e-2, atol=1e-4)


def test_integrated_gradients_is_exact_for_a_linear_function_and_checks_inputs():
    w = jnp.arange(12.0).reshape(4, 3) / 10

    def fn(xs):
        return jnp.sum(xs * w, axis=(-2, -1))

    xs = jnp.ones((2, 4, 3))
    attr = inspect.integrated_gradients(fn, xs, steps=1)
    np.testing.assert_allclose(attr, jnp.broadcast_to(w.sum(-1), (2, 4)), rtol=1e-6)
    with pytest.raises(ValueError, match="steps"):
        inspect.integrated_gradients(fn, xs, steps=0)
    with pytest.raises(TypeError, match="floating"):
        inspect.saliency(fn, jnp.ones((2, 4, 3), jnp.int32))


def test_gradient_flow_equals_autodiff_at_the_last_step_and_masks_lengths():
    cell, params, xs = _setup("lstm")
    w = jnp.linspace(-1.0, 1.0, 6)

    def loss_fn(ys):
        return jnp.tanh(ys[..., -1, :]) @ w

    norms = inspect.gradient_flow(cell, params, xs, loss_fn=loss_fn)
    assert norms.shape == (3, 7)
    carry0 = cell.initial_carry(params, (3,))
    g0 = jax.grad(lambda c: jnp.sum(loss_fn(seqjax.scan(cell, params, xs, c)[1])))(carry0)
    want = jnp.sqrt(sum(jnp.sum(g**2, -1) for g in jax.tree.leaves(g0)))
    np.testing.assert_allclose(norms[:, 0], want, rtol=1e-5)
    masked = inspect.gradient_flow(
        seqjax.recurrent(cell),
        params,
        xs,
        loss_fn=lambda ys: jnp.sum(jnp.tanh(ys) @ w, axis=-1),
        lengths=jnp.array([7, 4, 7]),
    )
    assert np.all(np.asarray(masked)[1, 4:] == 0)
    assert np.all(np.asarray(masked)[1, :4] > 0)
    with pytest.raises(ValueError, match="left-to-right"):
        inspect.gradient_flow(seqjax.recurrent(cell, reverse=True), params, xs, loss_fn=loss_fn)


def test_gradient_flow_of_an_untrained_elman_rnn_vanishes_over_time():
    cell = seqjax.simple_rnn(32)
    params = cell.init(jax.random.PRNGKey(0), 2)
    xs = jnp.asarray(np.random.default_rng(0).uniform(size=(8, 60, 2)), jnp.float32)
    norms = np.asarray(inspect.gradient_flow(cell, params, xs, loss_fn=lambda ys: ys[..., -1, 0]))
    assert np.all(np.isfinite(norms)) and np.all(norms > 0)
    mean = norms.mean(0)
    assert mean[0] < 1e-2 * mean[-1]  # two orders of magnitude over 60 steps
    assert np.all(np.diff(np.log(mean[:-1])) > 0)  # and monotonically towards the loss


def _train_adding_lstm(length=16, steps=400, hidden=16):
    import optax

    from seqjax.data import make_adding

    cell = seqjax.lstm(hidden)
    k_cell, k_out = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "rnn": cell.init(k_cell, 2),
        "w": jax.random.normal(k_out, (hidden,)) / np.sqrt(hidden),
        "b": jnp.zeros(()),
    }

    def predict(params, xs):
        _, ys = seqjax.scan(cell, params["rnn"], xs)
        return ys[..., -1, :] @ params["w"] + params["b"]

    tx = optax.adam(1e-2)

    @jax.jit
    def update(params, opt, x, y):
        loss, g = jax.value_and_grad(lambda p: jnp.mean((predict(p, x) - y) ** 2))(params)
        updates, opt = tx.update(g, opt, params)
        return optax.apply_updates(params, updates), opt, loss

    opt = tx.init(params)
    for step in range(steps):
        batch = make_adding(64, length, seed=step + 1)
        params, opt, _ = update(params, opt, batch["x"], batch["y"])
    return cell, params, predict


@pytest.mark.slow
def test_a_trained_adding_lstm_attributes_its_answer_to_the_two_marked_steps():
    from seqjax.data import make_adding

    cell, params, predict = _train_adding_lstm(steps=800)
    test = make_adding(64, 16, seed=10**6)
    mse = float(jnp.mean((predict(params, test["x"]) - test["y"]) ** 2))
    assert mse < 0.01, mse  # trained: predicting the mean gives 0.167
    # The uninformative input: every value at its mean 0.5, the markers kept (the output
    # there is the mean answer, 1), so attributions say what each value adds to it.
    baseline = test["x"] * np.array([0.0, 1.0], np.float32) + np.array([0.5, 0.0], np.float32)
    fn = jax.jit(lambda x: predict(params, x))
    attr = inspect.integrated_gradients(fn, test["x"], baseline=baseline)
    np.testing.assert_allclose(attr.sum(-1), fn(test["x"]) - fn(baseline), rtol=1e-2, atol=1e-3)
    marked = test["x"][..., 1] == 1
    share = float((np.abs(attr) * marked).sum() / np.abs(attr).sum())
    assert share >= 0.9, share
