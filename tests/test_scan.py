"""The sequence engine: loop equals scan, lengths, resets, reverse, layouts, remat, errors."""

from __future__ import annotations

import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELLS, randomize
from hypothesis import given, settings
from hypothesis import strategies as st
from jax.test_util import check_grads

import seqjax

D = 5
TOL = dict(rtol=1e-5, atol=1e-6)


def _setup(name, seed=0, **kw):
    cell = CELLS[name](**kw)
    return cell, randomize(cell.init(jax.random.key(seed), D), seed)


def _xs(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def loop(cell, params, xs, carry=None, reverse=False):
    """A Python loop over ``cell.apply``: the reference for one batch-major block [*b, t, d]."""
    if carry is None:
        carry = cell.initial_carry(params, xs.shape[:-2])
    steps = range(xs.shape[-2])
    ys = [None] * xs.shape[-2]
    for t in reversed(steps) if reverse else steps:
        carry, ys[t] = cell.apply(params, carry, xs[..., t, :])
    return carry, jnp.stack(ys, axis=-2)


def alone(cell, params, x, length, reverse=False):
    """One unbatched sequence ``x: [t, d]`` cut to ``length``, outputs zero-padded back to t."""
    carry0 = cell.initial_carry(params, ())
    if length == 0:
        out = cell.apply(params, carry0, x[0])[1]
        return carry0, jnp.zeros((x.shape[0], out.shape[-1]))
    carry, ys = loop(cell, params, x[:length], reverse=reverse)
    return carry, jnp.pad(ys, [(0, x.shape[0] - length), (0, 0)])


def assert_trees_close(a, b, **tol):
    la, lb = jax.tree.leaves(a), jax.tree.leaves(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb):
        np.testing.assert_allclose(u, v, **(tol or TOL))


@pytest.mark.parametrize("reverse", [False, True])
def test_scan_equals_python_loop(cell_name, reverse):
    cell, params = _setup(cell_name)
    xs = _xs((2, 7, D))
    got = seqjax.scan(cell, params, xs, reverse=reverse)
    assert_trees_close(got, loop(cell, params, xs, reverse=reverse))


@pytest.mark.parametrize(
    "name, reverse, unroll, remat",
    list(itertools.product(["lstm", "gru"], [False, True], [1, 3], [None, "step", 3, "sqrt"])),
)
def test_unroll_and_remat_equal_python_loop(name, reverse, unroll, remat):
    cell, params = _setup(name)
    xs = _xs((2, 7, D))
    got = seqjax.scan(cell, params, xs, reverse=reverse, unroll=unroll, remat=remat)
    assert_trees_close(got, loop(cell, params, xs, reverse=reverse))


@pytest.mark.parametrize("batch_shape", [(), (3,), (2, 3)])
def test_time_major_equals_batch_major(batch_shape):
    cell, params = _setup("lstm")
    xs = _xs((*batch_shape, 6, D))
    lengths = jnp.asarray(np.arange(np.prod(batch_shape, dtype=int)) % 7).reshape(batch_shape)
    bm = seqjax.scan(cell, params, xs, lengths=lengths)
    tm = seqjax.scan(cell, params, jnp.moveaxis(xs, -2, 0), lengths=lengths, time_major=True)
    assert_trees_close(bm[0], tm[0])
    np.testing.assert_allclose(bm[1], jnp.moveaxis(tm[1], 0, -2), **TOL)


def test_time_major_does_not_transpose():
    cell, params = _setup("gru")
    layer = seqjax.recurrent(cell, time_major=True)
    jaxpr = str(jax.make_jaxpr(layer.apply)(params, _xs((6, 2, D))))
    assert "transpose" not in jaxpr


def test_jit_equals_no_jit(cell_name):
    cell, params = _setup(cell_name)
    layer = seqjax.recurrent(cell)
    xs, lengths = _xs((3, 6, D)), jnp.array([6, 2, 0])
    eager = layer.apply(params, xs, lengths=lengths)
    jitted = jax.jit(layer.apply)(params, xs, lengths=lengths)
    assert_trees_close(eager, jitted)


def test_vmap_equals_batched_call():
    cell, params = _setup("lstm_proj")
    layer = seqjax.recurrent(cell)
    xs, lengths = _xs((4, 6, D)), jnp.array([6, 3, 1, 0])
    batched = layer.apply(params, xs, lengths=lengths)
    mapped = jax.vmap(lambda x, n: layer.apply(params, x, lengths=n))(xs, lengths)
    assert_trees_close(batched, mapped)


@pytest.mark.parametrize("reverse", [False, True])
def test_padded_batch_equals_each_sequence_alone(cell_name, reverse):
    cell, params = _setup(cell_name)
    lengths = [7, 4, 1, 0]
    xs = _xs((len(lengths), 7, D))
    carry, ys = seqjax.scan(cell, params, xs, lengths=jnp.array(lengths), reverse=reverse)
    for i, n in enumerate(lengths):
        c_i, ys_i = alone(cell, params, xs[i], n, reverse=reverse)
        np.testing.assert_allclose(ys[i], ys_i, **TOL)
        assert_trees_close(jax.tree.map(lambda c, i=i: c[i], carry), c_i)
    assert not np.any(np.asarray(ys[1, 4:]))  # zeros past the length


def test_given_carry_is_used():
    cell, params = _setup("lstm")
    xs = _xs((2, 5, D))
    carry0 = jax.tree.map(lambda c: c + 0.3, cell.initial_carry(params, (2,)))
    assert_trees_close(seqjax.scan(cell, params, xs, carry0), loop(cell, params, xs, carry0))
    # A tuple in place of the LSTMState is accepted and comes back as an LSTMState.
    out, _ = seqjax.scan(cell, params, xs, tuple(carry0))
    assert isinstance(out, seqjax.LSTMState)


@pytest.mark.parametrize("reverse", [False, True])
def test_resets_equal_separate_runs(cell_name, reverse):
    """A packed row of segments [0:3], [3:5], [5:8] equals three separate sequences."""
    cell, params = _setup(cell_name)
    xs = _xs((2, 8, D))
    resets = np.zeros((2, 8), bool)
    resets[0, [0, 3, 5]] = True
    resets[1, 4] = True
    carry0 = jax.tree.map(lambda c: c + 0.1, cell.initial_carry(params, (2,)))
    carry, ys = seqjax.scan(cell, params, xs, carry0, resets=jnp.asarray(resets), reverse=reverse)
    for row, bounds in ((0, [0, 3, 5, 8]), (1, [0, 4, 8])):
        c_row = jax.tree.map(lambda c, row=row: c[row], carry0)
        for a, b in zip(bounds[:-1], bounds[1:]):
            c_seg, ys_seg = loop(cell, params, xs[row, a:b], c_row, reverse=reverse)
            np.testing.assert_allclose(ys[row, a:b], ys_seg, **TOL)
        # The final carry is the one after the last segment processed.
        seg = (bounds[0], bounds[1]) if reverse else (bounds[-2], bounds[-1])
        c_end, _ = loop(cell, params, xs[row, seg[0] : seg[1]], c_row, reverse=reverse)
        assert_trees_close(jax.tree.map(lambda c, row=row: c[row], carry), c_end)


def test_resets_past_the_length_are_ignored():
    cell, params = _setup("gru")
    xs, lengths = _xs((1, 6, D)), jnp.array([3])
    resets = jnp.zeros((1, 6), bool).at[0, 4].set(True)
    with_resets = seqjax.scan(cell, params, xs, lengths=lengths, resets=resets)
    assert_trees_close(with_resets, seqjax.scan(cell, params, xs, lengths=lengths))


def test_zero_length_time_axis():
    cell, params = _setup("lstm")
    carry0 = jax.tree.map(lambda c: c + 1.0, cell.initial_carry(params, (2,)))
    for remat in (None, 4):
        carry, ys = seqjax.scan(cell, params, jnp.zeros((2, 0, D)), carry0, remat=remat)
        assert ys.shape == (2, 0, 6)
        assert_trees_close(carry, carry0)


@pytest.mark.parametrize("name", ["min_gru", "min_lstm", "lru_state", "rg_lru"])
@pytest.mark.parametrize(
    "reverse, with_lengths, with_resets",
    list(itertools.product([False, True], repeat=3)),
)
def test_parallel_scan_equals_sequential(name, reverse, with_lengths, with_resets):
    cell, params = _setup(name)
    xs = _xs((3, 9, D))
    kw = {}
    if with_lengths:
        kw["lengths"] = jnp.array([9, 5, 0])
    if with_resets:
        kw["resets"] = jnp.asarray(np.random.default_rng(2).random((3, 9)) < 0.3)
    carry0 = cell.initial_carry(params, (3,)) + 0.5
    seq = seqjax.scan(cell, params, xs, carry0, reverse=reverse, **kw)
    par = seqjax.scan(cell, params, xs, carry0, reverse=reverse, parallel=True, **kw)
    assert_trees_close(seq, par, rtol=1e-5, atol=1e-5)


def test_remat_changes_no_gradient():
    cell, params = _setup("lstm")
    xs, lengths = _xs((2, 11, D)), jnp.array([11, 6])

    def loss(params, xs, remat):
        carry, ys = seqjax.scan(cell, params, xs, lengths=lengths, remat=remat)
        return jnp.sum(ys**2) + jnp.sum(carry.c)

    want = jax.grad(loss, argnums=(0, 1))(params, xs, None)
    for remat in ("step", 1, 4, "sqrt", 11, 50):
        got = jax.grad(loss, argnums=(0, 1))(params, xs, remat)
        assert_trees_close(got, want, rtol=1e-5, atol=1e-6)


def test_chunked_remat_stores_less():
    """Chunked remat keeps fewer residuals than storing every step (a compile-time count)."""
    cell, params = _setup("lstm")
    xs = _xs((2, 64, D))

    def temp_bytes(remat):
        def loss(params, xs):
            return jnp.sum(seqjax.scan(cell, params, xs, remat=remat)[1])

        compiled = jax.jit(jax.grad(loss)).lower(params, xs).compile()
        return compiled.memory_analysis().temp_size_in_bytes

    assert temp_bytes(8) < temp_bytes(None)


@pytest.mark.parametrize("name", ["lstm", "gru", "rnn_tanh", "min_gru", "slstm"])
def test_gradients_pass_check_grads(name):
    with jax.enable_x64(True):
        cell, params = _setup(name, param_dtype=jnp.float64)
        xs = _xs((2, 4, D)).astype(jnp.float64)
        lengths = jnp.array([4, 2])

        def loss(params, xs):
            carry, ys = seqjax.scan(cell, params, xs, lengths=lengths, reverse=True)
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in jax.tree.leaves(carry))

        check_grads(loss, (params, xs), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


def test_bf16_stays_close_to_float32():
    cell32, params = _setup("lstm")
    cell16 = CELLS["lstm"](param_dtype=jnp.bfloat16)
    params16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    xs = _xs((2, 12, D))
    c16, ys16 = seqjax.scan(cell16, params16, xs.astype(jnp.bfloat16))
    c32, ys32 = seqjax.scan(cell32, params, xs)
    assert ys16.dtype == jnp.float32 and c16.c.dtype == jnp.float32
    np.testing.assert_allclose(ys16, ys32, atol=3e-2)


@settings(max_examples=15, deadline=None)
@given(
    batch_shape=st.lists(st.integers(1, 3), min_size=0, max_size=2).map(tuple),
    t=st.integers(1, 6),
    reverse=st.booleans(),
    data=st.data(),
)
def test_random_shapes_and_lengths(batch_shape, t, reverse, data):
    cell, params = _setup("gru")
    n = int(np.prod(batch_shape, dtype=int))
    lengths = np.array(data.draw(st.lists(st.integers(0, t), min_size=n, max_size=n)), np.int32)
    lengths = lengths.reshape(batch_shape)
    xs = _xs((*batch_shape, t, D), seed=t)
    carry, ys = seqjax.scan(cell, params, xs, lengths=jnp.asarray(lengths), reverse=reverse)
    assert ys.shape == (*batch_shape, t, 6)
    flat_xs = xs.reshape(n, t, D)
    for i, length in enumerate(lengths.reshape(-1)):
        c_i, ys_i = alone(cell, params, flat_xs[i], int(length), reverse=reverse)
        np.testing.assert_allclose(ys.reshape(n, t, 6)[i], ys_i, **TOL)
        np.testing.assert_allclose(carry.reshape(n, 6)[i], c_i, **TOL)


# --------------------------------------------------------------------------- errors


@pytest.fixture
def lstm_layer():
    cell, params = _setup("lstm")
    return seqjax.recurrent(cell), params


@pytest.mark.parametrize(
    "xs_shape, kwargs, error, match",
    [
        (
            (2, 6, 4),
            {},
            ValueError,
            r"last axis has 5 features.*received xs of shape \(2, 6, 4\)",
        ),
        ((5,), {}, ValueError, r"expected xs of shape \[\*b, t, d\].*received shape \(5,\)"),
        (
            (2, 6, D),
            {"lengths": jnp.array([1, 2, 3])},
            ValueError,
            r"batch shape of xs, \(2,\).*\(3,\)",
        ),
        (
            (2, 6, D),
            {"lengths": jnp.array([1.0, 2.0])},
            TypeError,
            "integer array, received dtype float32",
        ),
        ((2, 6, D), {"lengths": jnp.array([7, 2])}, ValueError, r"lie in \[0, 6\].*from 2 to 7"),
        ((2, 6, D), {"lengths": jnp.array([-1, 2])}, ValueError, r"lie in \[0, 6\]"),
        (
            (2, 6, D),
            {"resets": jnp.zeros((2, 5), bool)},
            ValueError,
            r"resets must have shape \(2, 6\)",
        ),
        ((2, 6, D), {"resets": jnp.zeros((2, 6))}, TypeError, "bool array, received dtype float32"),
    ],
)
def test_bad_input_is_a_clear_error(lstm_layer, xs_shape, kwargs, error, match):
    layer, params = lstm_layer
    with pytest.raises(error, match=match):
        layer.apply(params, jnp.ones(xs_shape), **kwargs)


def test_feature_error_prints_the_shape_as_passed():
    cell, params = _setup("gru")
    layer = seqjax.recurrent(cell, time_major=True)
    with pytest.raises(ValueError, match=r"5 features.*received xs of shape \(7, 2, 3\)"):
        layer.apply(params, jnp.ones((7, 2, 3)))


@pytest.mark.parametrize(
    "other, match",
    [
        # another hidden size
        (
            lambda: seqjax.lstm(3).init(jax.random.key(0), D),
            r"expected w_h of shape \(6, 24\), received \(3, 12\)",
        ),
        # another cell: other shapes, and a leaf the LSTM does not have
        (lambda: seqjax.gru(6).init(jax.random.key(0), D), r"unexpected b_hn of shape \(6,\)"),
        # a leaf missing
        (lambda: seqjax.lstm(6, use_bias=False).init(jax.random.key(0), D), r"missing b "),
    ],
)
def test_params_of_another_cell_are_a_clear_error(lstm_layer, other, match):
    layer, _ = lstm_layer
    xs = jnp.ones((2, 4, D))
    with pytest.raises(ValueError, match=match):
        layer.apply(other(), xs)
    with pytest.raises(ValueError, match=match):  # shapes are static: a trace-time error
        jax.jit(layer.apply)(other(), xs)
    with pytest.raises(ValueError, match=match):
        seqjax.scan(seqjax.lstm(6), other(), xs)


def test_param_errors_name_the_leaf_of_a_stack():
    net = seqjax.stack(
        seqjax.bidirectional(seqjax.recurrent(seqjax.lstm(4))), seqjax.recurrent(seqjax.gru(3))
    )
    params = net.init(jax.random.key(0), D)
    bad = (params[0], seqjax.gru(2).init(jax.random.key(0), 8))
    with pytest.raises(ValueError, match=r"expected 1/w_h of shape \(3, 9\), received \(2, 6\)"):
        net.apply(bad, jnp.ones((2, 4, D)))
    with pytest.raises(ValueError, match=r"5 features.*received xs of shape \(2, 4, 3\)"):
        net.apply(params, jnp.ones((2, 4, 3)))
    # A checkpoint may restore the tuple of layers as a list: the same leaves.
    net.apply(list(params), jnp.ones((2, 4, D)))


def test_bad_carry_is_a_clear_error(lstm_layer):
    layer, params = lstm_layer
    bad = seqjax.LSTMState(jnp.zeros((3, 6)), jnp.zeros((3, 6)))
    with pytest.raises(
        ValueError, match=r"expected leaves of shapes \[\(2, 6\), \(2, 6\)\].*\(3, 6\)"
    ):
        layer.apply(params, jnp.ones((2, 4, D)), bad)
    with pytest.raises(ValueError, match="carry must match"):
        layer.apply(params, jnp.ones((2, 4, D)), jnp.zeros((2, 6)))


def test_errors_are_raised_at_trace_time_under_jit(lstm_layer):
    layer, params = lstm_layer
    with pytest.raises(ValueError, match="batch shape of xs"):
        jax.jit(layer.apply)(params, jnp.ones((2, 6, D)), lengths=jnp.array([1, 2, 3]))


def test_traced_lengths_out_of_range_are_clipped(lstm_layer):
    layer, params = lstm_layer
    xs = _xs((2, 6, D))
    got = jax.jit(layer.apply)(params, xs, lengths=jnp.array([9, -2]))
    assert_trees_close(got, layer.apply(params, xs, lengths=jnp.array([6, 0])))


@pytest.mark.parametrize(
    "kwargs, match",
    [
        ({"remat": "all"}, "remat must be None"),
        ({"remat": 0}, "remat must be None"),
        ({"unroll": 0}, "unroll must be a positive int"),
        ({"parallel": True}, "parallel=True needs a cell linear in its carry"),
    ],
)
def test_bad_options(kwargs, match):
    with pytest.raises(ValueError, match=match):
        seqjax.recurrent(seqjax.lstm(3), **kwargs)
    with pytest.raises(TypeError, match="expects a seqjax Cell"):
        seqjax.recurrent(lambda c, x: (c, x))


@pytest.mark.parametrize("t, want", [(16384, 128), (2048, 64), (1000, 40), (13, 4), (1, 1)])
def test_sqrt_remat_prefers_a_divisor_of_t(t, want):
    from seqjax.scan import _chunk_size

    assert _chunk_size("sqrt", t) == want


def test_an_init_that_needs_concrete_values_stays_unchecked():
    # A custom cell whose init cannot run abstractly still runs (its params unchecked).
    cell = seqjax.lstm(4)

    def init(key, d):
        int(np.asarray(jax.random.key_data(key))[0])  # needs a concrete key
        return cell.init(key, d)

    layer = seqjax.recurrent(cell._replace(init=init))
    params = cell.init(jax.random.key(0), 3)
    assert layer.apply(params, jnp.ones((2, 3, 3)))[1].shape == (2, 3, 4)
