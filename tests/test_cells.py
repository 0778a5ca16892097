"""Cells: equations against NumPy references, shapes, batching, dtypes, gradients, errors."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELLS, OUT_SIZE, randomize, reference_step
from jax.test_util import check_grads

import seqjax

D = 5


def _setup(name, batch_shape, seed=0, **kw):
    cell = CELLS[name](**kw)
    params = randomize(cell.init(jax.random.key(seed), D), seed)
    rng = np.random.default_rng(seed + 1)
    x = jnp.asarray(rng.normal(size=(*batch_shape, D)), jnp.float32)
    carry = jax.tree.map(
        lambda c: jnp.asarray(rng.normal(size=c.shape), c.dtype),
        cell.initial_carry(params, batch_shape),
    )
    if isinstance(carry, seqjax.SLSTMState):  # the normaliser of a reachable state is positive
        carry = carry._replace(n=jnp.abs(carry.n) + 0.5)
    return cell, params, carry, x


def _real(leaves):
    """Real leaves: a complex carry (the LRU's) as its real and imaginary parts."""
    out = []
    for leaf in leaves:
        out += [jnp.real(leaf), jnp.imag(leaf)] if jnp.iscomplexobj(leaf) else [leaf]
    return out


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)])
def test_step_matches_reference_equations(cell_name, batch_shape):
    cell, params, carry, x = _setup(cell_name, batch_shape)
    new, y = cell.apply(params, carry, x)
    ref_carry, ref_y = reference_step(cell_name, params, carry, x)
    np.testing.assert_allclose(y, ref_y, rtol=1e-5, atol=1e-5)
    for got, want in zip(jax.tree.leaves(new), jax.tree.leaves(ref_carry)):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5)
    assert y.shape == (*batch_shape, OUT_SIZE.get(cell_name, 6))


def test_apply_is_step_of_project(cell_name):
    cell, params, carry, x = _setup(cell_name, (4,))
    a = cell.apply(params, carry, x)
    b = cell.step(params, carry, cell.project(params, x))
    for u, v in zip(jax.tree.leaves(a), jax.tree.leaves(b)):
        np.testing.assert_array_equal(u, v)


def test_project_is_time_parallel(cell_name):
    """Projecting a whole [b, t, d] block equals projecting each step."""
    cell, params, _, _ = _setup(cell_name, ())
    xs = jax.random.normal(jax.random.key(3), (2, 7, D))
    whole = cell.project(params, xs)
    steps = jnp.stack([cell.project(params, xs[:, t]) for t in range(7)], axis=1)
    np.testing.assert_allclose(whole, steps, rtol=1e-6, atol=1e-6)


def test_vmap_equals_batched_call(cell_name):
    cell, params, carry, x = _setup(cell_name, (4,))
    batched = cell.apply(params, carry, x)
    mapped = jax.vmap(functools.partial(cell.apply, params))(carry, x)
    for u, v in zip(jax.tree.leaves(batched), jax.tree.leaves(mapped)):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


def test_jit_equals_no_jit(cell_name):
    cell, params, carry, x = _setup(cell_name, (4,))
    eager = cell.apply(params, carry, x)
    jitted = jax.jit(cell.apply)(params, carry, x)
    for u, v in zip(jax.tree.leaves(eager), jax.tree.leaves(jitted)):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


def test_apply_is_a_scan_body(cell_name):
    cell, params, carry, _ = _setup(cell_name, (2,))
    xs = jax.random.normal(jax.random.key(1), (5, 2, D))
    final, ys = jax.lax.scan(functools.partial(cell.apply, params), carry, xs)
    c = carry
    for t in range(5):
        c, y = cell.apply(params, c, xs[t])
        np.testing.assert_allclose(ys[t], y, rtol=1e-6, atol=1e-6)
    for u, v in zip(jax.tree.leaves(final), jax.tree.leaves(c)):
        np.testing.assert_allclose(u, v, rtol=1e-6, atol=1e-6)


def test_params_hold_only_arrays_and_initial_carry_is_zero(cell_name):
    cell = CELLS[cell_name]()
    params = cell.init(jax.random.key(0), D)
    assert all(isinstance(leaf, jax.Array) for leaf in jax.tree.leaves(params))
    carry = cell.initial_carry(params, (2, 3))
    for leaf in jax.tree.leaves(carry):
        assert leaf.shape[:2] == (2, 3) and leaf.dtype in (jnp.float32, jnp.complex64)
        assert not np.any(np.asarray(leaf))


def test_gradients_pass_check_grads(cell_name):
    with jax.enable_x64(True):
        cell, params, carry, x = _setup(cell_name, (2,), param_dtype=jnp.float64)
        x = x.astype(jnp.float64)
        assert jax.tree.leaves(carry)[0].dtype in (jnp.float64, jnp.complex128)

        def loss(params, carry, x):
            new, y = cell.apply(params, carry, x)
            return jnp.sum(y**2) + sum(jnp.sum(jnp.sin(c)) for c in _real(jax.tree.leaves(new)))

        check_grads(jax.jit(loss), (params, carry, x), order=2, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_bf16_params_run_with_float32_carry(cell_name):
    cell32, params32, carry, x = _setup(cell_name, (3,))
    cell16 = CELLS[cell_name](param_dtype=jnp.bfloat16)
    params16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params32)
    with jax.numpy_dtype_promotion("strict"):
        new16, y16 = cell16.apply(params16, carry, x)
    assert all(c.dtype in (jnp.float32, jnp.complex64) for c in jax.tree.leaves(new16))
    assert y16.dtype == jnp.float32
    _, y32 = cell32.apply(params32, carry, x)
    np.testing.assert_allclose(y16, y32, rtol=3e-2, atol=3e-2)


def test_dtype_sets_matmul_precision():
    cell = seqjax.lstm(6, dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(0), D)
    assert params["w_i"].dtype == jnp.float32
    x = jnp.ones((2, D))
    jaxpr = jax.make_jaxpr(cell.project)(params, x)
    assert "bf16" in str(jaxpr)


def test_lstm_forget_bias_and_init_options():
    cell = seqjax.lstm(4, forget_bias=2.5)
    p = cell.init(jax.random.key(0), 3)
    np.testing.assert_array_equal(p["b"], np.r_[np.zeros(4), np.full(4, 2.5), np.zeros(8)])
    assert p["w_i"].shape == (3, 16) and p["w_h"].shape == (4, 16)
    # The recurrent kernel is orthogonal per gate block.
    for g in range(4):
        block = np.asarray(p["w_h"][:, 4 * g : 4 * g + 4])
        np.testing.assert_allclose(block.T @ block, np.eye(4), atol=1e-5)
    ones = seqjax.lstm(4, kernel_init=jax.nn.initializers.ones, forget_bias=0.0)
    np.testing.assert_array_equal(ones.init(jax.random.key(0), 3)["w_i"], np.ones((3, 16)))
    proj = seqjax.lstm(4, proj_size=2).init(jax.random.key(0), 3)
    assert proj["w_h"].shape == (2, 16) and proj["w_proj"].shape == (4, 2)


def test_chrono_initialisation():
    p = seqjax.lstm(50, chrono_t_max=100.0).init(jax.random.key(0), 3)
    b_i, b_f, b_g, b_o = np.split(np.asarray(p["b"]), 4)
    assert np.all(b_f >= 0) and np.all(b_f <= np.log(99.0)) and b_f.std() > 0.3
    np.testing.assert_allclose(b_i, -b_f)
    assert not np.any(b_g) and not np.any(b_o)
    with pytest.raises(ValueError, match="chrono_t_max must be greater than 2"):
        seqjax.lstm(4, chrono_t_max=1.0)


def test_chrono_initialisation_of_the_linear_gated_cells():
    # minGRU: the update gate's bias is -log U(1, T - 1), so the state's keep rate
    # 1 - z = sigmoid(-b_z) starts between 1/2 and 1 - 1/T; minLSTM: forget and input
    # biases as the LSTM's.
    t_max = 1000.0
    b = np.asarray(seqjax.min_gru(50, chrono_t_max=t_max).init(jax.random.key(0), 3)["b"])
    b_z, b_h = np.split(b, 2)
    assert np.all(b_z <= 0) and np.all(b_z >= -np.log(t_max - 1)) and b_z.std() > 0.5
    assert not np.any(b_h)
    b = np.asarray(seqjax.min_lstm(50, chrono_t_max=t_max).init(jax.random.key(0), 3)["b"])
    b_f, b_i, b_h = np.split(b, 3)
    assert np.all(b_f >= 0) and np.all(b_f <= np.log(t_max - 1)) and b_f.std() > 0.5
    np.testing.assert_allclose(b_i, -b_f)
    assert not np.any(b_h)
    # Memory: with zero inputs the state decays by the keep rate each step; the chrono
    # cells keep a pulse far longer than the default initialisation does.
    for make in (seqjax.min_gru, seqjax.min_lstm):
        kept = {}
        for chrono in (None, t_max):
            cell = make(8, chrono_t_max=chrono)
            params = cell.init(jax.random.key(1), 2)
            params = {**params, "w_i": jnp.zeros_like(params["w_i"])}
            carry, _ = seqjax.scan(cell, params, jnp.zeros((1, 50, 2)), jnp.ones((1, 8)))
            kept[chrono] = float(jnp.max(carry))
        assert kept[None] < 1e-6 < 0.5 < kept[t_max], kept
    for make in (seqjax.min_gru, seqjax.min_lstm):
        with pytest.raises(ValueError, match="chrono_t_max must be greater than 2"):
            make(4, chrono_t_max=2.0)


def test_wrong_feature_size_is_a_clear_error(cell_name):
    cell, params, carry, _ = _setup(cell_name, (2,))
    with pytest.raises(
        ValueError, match=r"expected inputs whose last axis has 5 features.*\(2, 4\)"
    ):
        cell.apply(params, carry, jnp.ones((2, 4)))


@pytest.mark.parametrize(
    "make, error, match",
    [
        (lambda: seqjax.lstm(0), ValueError, "hidden_size must be a positive int, received 0"),
        (lambda: seqjax.gru(2.5), TypeError, "hidden_size must be an int"),
        (lambda: seqjax.lstm(4, proj_size=4), ValueError, "proj_size must be smaller"),
        (
            lambda: seqjax.simple_rnn(4, activation="sigmoid"),
            ValueError,
            "activation must be one of",
        ),
        (lambda: seqjax.lstm(4).init(jax.random.key(0), -1), ValueError, "input_size must be"),
    ],
)
def test_bad_hyperparameters(make, error, match):
    with pytest.raises(error, match=match):
        make()


def test_apply_checks_params_against_init():
    cell = seqjax.lstm(6)
    other = seqjax.gru(6).init(jax.random.key(0), 4)
    carry = cell.initial_carry(other, (2,))
    with pytest.raises(ValueError, match=r"expected w_i of shape \(4, 24\), received \(4, 18\)"):
        cell.apply(other, carry, jnp.ones((2, 4)))
    step = jax.jit(cell.apply)
    with pytest.raises(ValueError, match="unexpected b_hn"):
        step(other, carry, jnp.ones((2, 4)))


def test_narrow_param_dtypes_initialise(cell_name):
    # The orthogonal initialiser's QR has no bfloat16 kernel on CPU: drawn in float32.
    cell = CELLS[cell_name](param_dtype=jnp.bfloat16)
    params = cell.init(jax.random.key(0), 3)
    assert all(p.dtype == jnp.bfloat16 for p in jax.tree.leaves(params))
    carry, y = cell.apply(params, cell.initial_carry(params, (2,)), jnp.ones((2, 3), jnp.bfloat16))
    assert y.shape == (2, OUT_SIZE.get(cell_name, 6)) and bool(jnp.all(jnp.isfinite(y)))
