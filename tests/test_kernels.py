"""The fused recurrences of seqjax.kernels equal the plain scan of cell.step."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import kernels
from seqjax.kernels import fused

RTOL, ATOL = 1e-5, 1e-5

CELLS = {
    "lstm": lambda: seqjax.lstm(8),
    "lstm_nobias": lambda: seqjax.lstm(8, use_bias=False),
    "gru": lambda: seqjax.gru(8),
    "gru_nobias": lambda: seqjax.gru(8, use_bias=False),
    "rnn_tanh": lambda: seqjax.simple_rnn(8),
    "rnn_relu": lambda: seqjax.simple_rnn(8, activation="relu"),
}


def _random_carry(layer, params, batch_shape, key):
    carry = layer.initial_carry(params, batch_shape)
    leaves, treedef = jax.tree.flatten(carry)
    keys = jax.random.split(key, len(leaves))
    return jax.tree.unflatten(
        treedef, [jax.random.normal(k, x.shape, x.dtype) for k, x in zip(keys, leaves)]
    )


def _loss_and_outputs(layer, plain, **kwargs):
    def run(params, xs, carry):
        with kernels.disabled(plain):
            return layer.apply(params, xs, carry, **kwargs)

    def loss(params, xs, carry):
        carry, ys = run(params, xs, carry)
        # Non-uniform cotangents for every output and carry leaf.
        w = jnp.sin(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        return jnp.sum(ys * w) + sum(
            jnp.sum(jnp.cos(jnp.real(c)) + jnp.sin(jnp.imag(c))) for c in jax.tree.leaves(carry)
        )  # a complex carry (the LRU's) through both its parts

    return run, loss


def _assert_close(a, b):
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b), strict=True):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=RTOL, atol=ATOL)


def _check_equal(
    cell,
    *,
    t,
    batch_shape,
    reverse=False,
    time_major=False,
    unroll=1,
    remat=None,
    d=5,
    lengths=None,
    resets=None,
    fast_path=None,
):
    layer = seqjax.recurrent(
        cell, reverse=reverse, time_major=time_major, unroll=unroll, remat=remat
    )
    fast_path = fast_path or _uses_fast_path
    k1, k2, k3 = jax.random.split(jax.random.key(t * 7 + len(batch_shape)), 3)
    params = layer.init(k1, d)
    shape = (t, *batch_shape, d) if time_major else (*batch_shape, t, d)
    xs = jax.random.normal(k2, shape)
    carry = _random_carry(layer, params, batch_shape, k3)
    kwargs = {"lengths": lengths, "resets": resets}
    assert fast_path(layer, params, xs, **kwargs) or t == 0

    @jax.jit  # one compilation for both paths, outputs and gradients
    def both(params, xs, carry):
        out = {}
        for plain in (False, True):
            run, loss = _loss_and_outputs(layer, plain, **kwargs)
            out[plain] = run(params, xs, carry), jax.grad(loss, (0, 1, 2))(params, xs, carry)
        return out

    out = both(params, xs, carry)
    _assert_close(out[False], out[True])


def _uses_fast_path(layer, params, xs, **kwargs) -> bool:
    jaxpr = jax.make_jaxpr(lambda p, x: layer.apply(p, x, **kwargs))(params, xs)
    return "custom_vjp_call" in str(jaxpr)


def _differs_from_plain(layer, params, xs, **kwargs) -> bool:
    def jaxpr(plain):
        with kernels.disabled(plain):
            return str(jax.make_jaxpr(lambda p, x: layer.apply(p, x, **kwargs))(params, xs))

    return jaxpr(False) != jaxpr(True)


LINEAR = {
    "min_gru": lambda: seqjax.min_gru(8),
    "min_lstm": lambda: seqjax.min_lstm(8),
    "lru": lambda: seqjax.lru(8, state_size=6, r_min=0.5),
    "rg_lru": lambda: seqjax.rg_lru(8),
}


@pytest.mark.parametrize("name", list(LINEAR))
def test_linear_cells_coefficients_at_once_equal_their_step(name):
    # A cell linear in its carry computes its coefficients for all steps before the loop,
    # whose steps are then one multiply-add: outputs, carries and gradients equal the scan
    # of its step, with lengths, resets, reverse, remat chunks and two batch axes.
    _check_lengths_and_resets(
        LINEAR[name], fast_path=_differs_from_plain, more=({}, {"reverse": True, "unroll": 2})
    )


@pytest.mark.parametrize("name", list(CELLS))
def test_fast_path_inside_remat_chunks(name):
    layer = seqjax.recurrent(CELLS[name](), remat=8)
    params = layer.init(jax.random.key(0), 5)
    assert _uses_fast_path(layer, params, jnp.ones((2, 32, 5)))
    _check_equal(CELLS[name](), t=32, batch_shape=(2,), remat=8)
    _check_equal(CELLS[name](), t=32, batch_shape=(2,), remat="sqrt", reverse=True)


@pytest.mark.parametrize("name", list(CELLS))
def test_fast_equals_plain(name):
    # Default blocks of 16 steps: a remainder only (1), whole blocks only (16), both (37).
    for t in (1, 16, 37):
        _check_equal(CELLS[name](), t=t, batch_shape=(3,))
    _check_equal(CELLS[name](), t=37, batch_shape=(3,), reverse=True)


@pytest.mark.parametrize("name", ["lstm", "gru_nobias", "rnn_tanh", "rnn_relu"])
def test_lengths_and_resets_equal_plain(name):
    # Padded batches and segment resets run the fused recurrence too: right to left,
    # inside remat chunks (a reset restarts from the sequence's carry, not the chunk's),
    # with zero lengths, and with the masks over two batch axes.
    _check_lengths_and_resets(CELLS[name])


def _check_lengths_and_resets(make_cell, fast_path=None, more=()):
    """The fast path equals the plain one with lengths and resets: right to left, inside
    remat chunks (a reset restarts from the sequence's carry, not the chunk's), with zero
    lengths, and with the masks over two batch axes; ``more`` cases beside."""
    t = 21
    lengths = jnp.array([t, 9, 0, 16])
    resets = jax.random.bernoulli(jax.random.key(5), 0.2, (4, t))
    cases = [
        *more,
        {"lengths": lengths},
        {"resets": resets, "reverse": True},
        {"lengths": lengths, "resets": resets, "remat": 8},
        {"lengths": lengths, "resets": resets, "reverse": True, "remat": "sqrt"},
    ]
    for case in cases:
        _check_equal(make_cell(), t=t, batch_shape=(4,), fast_path=fast_path, **case)
    _check_equal(
        make_cell(),
        t=t,
        batch_shape=(2, 2),
        time_major=True,
        lengths=lengths.reshape(2, 2),
        resets=resets.T.reshape(t, 2, 2),
        fast_path=fast_path,
    )


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_nan_padding_stays_out_of_the_gradients(name):
    # Steps past a length contribute exact zeros, whatever the padding holds, on both paths.
    layer = seqjax.recurrent(CELLS[name]())
    params = layer.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 20, 3))
    lengths = jnp.array([20, 7])

    def grads(xs, plain):
        def loss(p, x):
            with kernels.disabled(plain):
                carry, ys = layer.apply(p, x, lengths=lengths)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

        return jax.grad(loss, argnums=(0, 1))(params, xs)

    want = grads(xs.at[1, 7:].set(0.0), plain=True)
    for plain in (False, True):
        got = grads(xs.at[1, 7:].set(jnp.nan), plain)
        assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(got))
        _assert_close(got, want)


def test_forward_mode_runs_the_plain_path():
    # A custom VJP has no JVP: under jax.jvp / jacfwd the engine traces the plain scan.
    layer = seqjax.recurrent(seqjax.lstm(4))
    params = layer.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    lengths = jnp.array([5, 2])

    def f(x):
        return layer.apply(params, x, lengths=lengths)[1]

    ones = jnp.ones_like(xs)
    _, tangent = jax.jvp(f, (xs,), (ones,))
    _, vjp = jax.vjp(f, xs)  # the fused path's hand-written VJP
    # <J 1, 1> computed forward (plain) equals <1, J^T 1> computed backward (fused).
    np.testing.assert_allclose(jnp.sum(tangent), jnp.sum(vjp(jnp.ones_like(tangent))[0]), rtol=1e-5)
    _, jit_tangent = jax.jit(lambda x, v: jax.jvp(f, (x,), (v,)))(xs, ones)
    _assert_close(jit_tangent, tangent)
    jac = jax.jacfwd(lambda x: jnp.sum(f(x)))(xs)
    _assert_close(jac, jax.grad(lambda x: jnp.sum(f(x)))(xs))
    # jax.hessian (forward over reverse) needs no kernels.disabled() either.
    hess = jax.hessian(lambda a: jnp.sum(jnp.tanh(f(a * xs))))(1.0)
    with kernels.disabled():
        want = jax.hessian(lambda a: jnp.sum(jnp.tanh(f(a * xs))))(1.0)
    np.testing.assert_allclose(hess, want, rtol=1e-4, atol=1e-6)
    # Reverse mode keeps the fused path.
    assert not kernels.forward_mode()
    assert str(jax.make_jaxpr(jax.grad(lambda x: jnp.sum(f(x))))(xs)) != str(
        _plain(jax.make_jaxpr(jax.grad(lambda x: jnp.sum(f(x)))), xs)
    )


def test_disabled_applies_to_functions_jitted_before():
    layer = seqjax.recurrent(seqjax.gru(4))
    params = layer.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 5, 3))
    f = jax.jit(lambda x: jnp.sum(layer.apply(params, x)[1]))
    f(xs)  # traced and cached on the fused path
    with kernels.disabled():
        assert "custom_vjp_call" not in str(jax.make_jaxpr(f)(xs))
        # jax.jvp of a function jitted on the fused path needs the plain path's trace.
        _, tangent = jax.jvp(f, (xs,), (jnp.ones_like(xs),))
    assert "custom_vjp_call" in str(jax.make_jaxpr(f)(xs))
    np.testing.assert_allclose(tangent, jnp.sum(jax.grad(f)(xs)), rtol=1e-5)
    # Outside disabled(), the cached fused trace cannot be differentiated forward.
    with pytest.raises(TypeError, match="forward-mode"):
        jax.jvp(f, (xs,), (jnp.ones_like(xs),))


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh"])
def test_blocks_and_remainder(name, monkeypatch):
    monkeypatch.setattr(kernels, "BLOCK", 4)  # read at trace time
    for reverse in (False, True):
        _check_equal(CELLS[name](), t=11, batch_shape=(2,), reverse=reverse)


@pytest.mark.parametrize("batch_shape, time_major", [((), False), ((2, 3), True), ((1,), False)])
def test_batch_shapes_and_layouts(batch_shape, time_major):
    for name in ("lstm", "gru"):
        _check_equal(CELLS[name](), t=9, batch_shape=batch_shape, time_major=time_major)


@pytest.mark.parametrize("unroll", [3])
def test_unroll(unroll):
    for name in ("lstm", "rnn_relu"):
        _check_equal(CELLS[name](), t=12, batch_shape=(2,), unroll=unroll)


def test_jit_equals_no_jit():
    layer = seqjax.recurrent(seqjax.lstm(8))
    params = layer.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (2, 20, 4))
    _assert_close(jax.jit(layer.apply)(params, xs), layer.apply(params, xs))


def test_stack_and_bidirectional_use_and_match_fast_path():
    net = seqjax.stack(
        seqjax.bidirectional(seqjax.recurrent(seqjax.gru(6))), seqjax.recurrent(seqjax.lstm(5))
    )
    params = net.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 10, 3))
    assert _uses_fast_path(net, params, xs)

    def loss(p, x, plain):
        with kernels.disabled(plain):
            return jnp.sum(jnp.tanh(net.apply(p, x)[1]))

    _assert_close(net.apply(params, xs), _plain(net.apply, params, xs))
    _assert_close(
        jax.grad(loss, argnums=(0, 1))(params, xs, False),
        jax.grad(loss, argnums=(0, 1))(params, xs, True),
    )


def _plain(fn, *args, **kwargs):
    with kernels.disabled():
        return fn(*args, **kwargs)


@pytest.mark.parametrize("name", list(CELLS))
def test_fast_path_is_taken(name):
    layer = seqjax.recurrent(CELLS[name]())
    params = layer.init(jax.random.key(0), 3)
    xs = jnp.ones((2, 4, 3))
    assert kernels.kind(CELLS[name]()) is not None
    assert _uses_fast_path(layer, params, xs)
    with kernels.disabled():
        assert not _uses_fast_path(layer, params, xs)
    assert kernels.enabled()


@pytest.mark.parametrize(
    "cell",
    [
        seqjax.lstm(8, proj_size=4),
        seqjax.lstm(8, layer_norm=True),
        seqjax.lstm(8, dtype=jnp.bfloat16),
        seqjax.gru(8, reset_after=False),
        seqjax.min_gru(8),
    ],
)
def test_other_cells_take_the_plain_path(cell):
    layer = seqjax.recurrent(cell)
    params = layer.init(jax.random.key(0), 3)
    assert not _uses_fast_path(layer, params, jnp.ones((2, 4, 3)))


def test_bfloat16_params_take_the_plain_path():
    layer = seqjax.recurrent(seqjax.lstm(8))
    params = jax.tree.map(lambda p: p.astype(jnp.bfloat16), layer.init(jax.random.key(0), 3))
    assert not _uses_fast_path(layer, params, jnp.ones((2, 4, 3)))


def test_options_outside_the_fast_path_fall_back():
    cell = seqjax.lstm(8)
    params = cell.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
    # Per-step remat takes the plain scan; chunks, padded ones included, run the fused
    # recurrence (test_fast_path_inside_remat_chunks).
    assert not _uses_fast_path(seqjax.recurrent(cell, remat="step"), params, xs)
    assert _uses_fast_path(seqjax.recurrent(cell, remat=4), params, xs)
    # Remat still gives the fast path's numbers.
    want = seqjax.recurrent(cell).apply(params, xs)
    _assert_close(seqjax.recurrent(cell, remat="sqrt").apply(params, xs), want)


def test_empty_sequence_takes_the_plain_path():
    layer = seqjax.recurrent(seqjax.gru(4))
    params = layer.init(jax.random.key(0), 3)
    carry, ys = layer.apply(params, jnp.ones((2, 0, 3)))
    assert ys.shape == (2, 0, 4) and carry.shape == (2, 4)


@pytest.mark.parametrize("batch_shape", [(0,), (0, 3), (3, 0)])
@pytest.mark.parametrize(
    "options",
    [{}, {"time_major": True}, {"reverse": True}, {"remat": 2}, {"unroll": 2}],
)
def test_empty_batch_returns_empty_outputs_and_the_initial_carry(batch_shape, options):
    t, d = 5, 3
    net = seqjax.stack(
        seqjax.bidirectional(seqjax.recurrent(seqjax.lstm(4), **options)),
        seqjax.recurrent(seqjax.gru(3), **options),
    )
    params = net.init(jax.random.key(0), d)
    time_major = options.get("time_major", False)
    xs = jnp.ones((t, *batch_shape, d) if time_major else (*batch_shape, t, d))
    lengths = jnp.zeros(batch_shape, jnp.int32)
    resets = jnp.zeros((t, *batch_shape) if time_major else (*batch_shape, t), bool)

    def loss(p, x):
        carry, ys = net.apply(p, x, lengths=lengths, resets=resets)
        return jnp.sum(ys) + sum(jnp.sum(c) for c in jax.tree.leaves(carry))

    apply = jax.jit(net.apply)  # one program a call, not one per eager op
    for kwargs in ({}, {"lengths": lengths}, {"resets": resets}):
        carry, ys = apply(params, xs, **kwargs)
        want = _plain(apply, params, xs, **kwargs)
        assert ys.shape == want[1].shape == (xs.shape[:-1] + (3,))
        _assert_close(carry, net.initial_carry(params, batch_shape))
    grads = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, xs)
    assert all(bool(jnp.all(g == 0)) for g in jax.tree.leaves(grads))


def test_shape_errors_come_from_the_plain_path():
    layer = seqjax.recurrent(seqjax.lstm(4))
    params = layer.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match=r"3 features.*received xs of shape \(2, 5, 7\)"):
        layer.apply(params, jnp.ones((2, 5, 7)))
    # Params of another hidden size or cell: seqjax's message, not one from inside the kernel.
    other = seqjax.lstm(8).init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match=r"expected w_h of shape \(4, 16\), received \(8, 32\)"):
        layer.apply(other, jnp.ones((2, 5, 3)))
    with pytest.raises(ValueError, match="unexpected b_hn"):
        jax.jit(layer.apply)(seqjax.gru(4).init(jax.random.key(0), 3), jnp.ones((2, 5, 3)))


def test_sigmoid_form():
    # Exact in real arithmetic; in float32 its absolute error is of the order of XLA's own
    # logistic (both about 1e-7 against float64).
    x = np.linspace(-30.0, 30.0, 10001, dtype=np.float32)
    exact = 1.0 / (1.0 + np.exp(-x.astype(np.float64)))
    np.testing.assert_allclose(fused.sigmoid(jnp.asarray(x)), exact, rtol=0, atol=2e-7)


def test_disabled_restores_state():
    assert kernels.enabled()
    with kernels.disabled():
        assert not kernels.enabled()
        with kernels.disabled(False):
            assert not kernels.enabled()
    with kernels.disabled(False):
        assert kernels.enabled()
    assert kernels.enabled()
