"""Combinators: stack and bidirectional equal their parts run by hand; dropout; errors."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import randomize
from test_scan import alone, assert_trees_close

import seqjax

D = 5
TOL = dict(rtol=1e-5, atol=1e-6)


def _xs(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def test_stack_equals_layers_in_sequence():
    l1, l2 = seqjax.recurrent(seqjax.lstm(6, proj_size=3)), seqjax.recurrent(seqjax.gru(4))
    net = seqjax.stack(l1, l2)
    params = randomize(net.init(jax.random.key(0), D))
    assert params[1]["w_i"].shape == (3, 12)  # the second layer sees the projected size
    xs, lengths = _xs((3, 6, D)), jnp.array([6, 2, 0])
    carry, ys = net.apply(params, xs, lengths=lengths)
    c1, h1 = l1.apply(params[0], xs, lengths=lengths)
    c2, h2 = l2.apply(params[1], h1, lengths=lengths)
    np.testing.assert_allclose(ys, h2, **TOL)
    assert_trees_close((carry[0], carry[1]), (c1, c2))
    assert_trees_close(
        net.initial_carry(params, (3,)),
        (l1.initial_carry(params[0], (3,)), l2.initial_carry(params[1], (3,))),
    )


def test_bidirectional_with_lengths_equals_each_sequence_alone():
    cell = seqjax.gru(4)
    net = seqjax.bidirectional(seqjax.recurrent(cell))
    params = randomize(net.init(jax.random.key(0), D))
    lengths = [6, 3, 0]
    xs = _xs((3, 6, D))
    (c_f, c_b), ys = net.apply(params, xs, lengths=jnp.array(lengths))
    assert ys.shape == (3, 6, 8)
    for i, n in enumerate(lengths):
        cf_i, yf_i = alone(cell, params[0], xs[i], n)
        cb_i, yb_i = alone(cell, params[1], xs[i], n, reverse=True)
        np.testing.assert_allclose(ys[i], jnp.concatenate([yf_i, yb_i], -1), **TOL)
        np.testing.assert_allclose(c_f[i], cf_i, **TOL)
        np.testing.assert_allclose(c_b[i], cb_i, **TOL)


def test_bidirectional_merges_and_explicit_backward():
    fwd = seqjax.recurrent(seqjax.simple_rnn(4))
    bwd = seqjax.recurrent(seqjax.simple_rnn(4), reverse=True)
    params = randomize(seqjax.bidirectional(fwd, bwd).init(jax.random.key(0), D))
    xs = _xs((2, 5, D))
    _, cat = seqjax.bidirectional(fwd, bwd).apply(params, xs)
    _, total = seqjax.bidirectional(fwd, merge="sum").apply(params, xs)
    _, mean = seqjax.bidirectional(fwd, merge="mean").apply(params, xs)
    np.testing.assert_allclose(total, cat[..., :4] + cat[..., 4:], **TOL)
    np.testing.assert_allclose(mean, total / 2, **TOL)


def test_stacked_bidirectional_time_major_with_resets():
    layer = seqjax.recurrent(seqjax.lstm(4), time_major=True)
    net = seqjax.stack(seqjax.bidirectional(layer), seqjax.bidirectional(layer))
    params = net.init(jax.random.key(0), D)
    assert params[1][0]["w_i"].shape == (8, 16)
    xs = _xs((7, 2, D))
    resets = jnp.zeros((7, 2), bool).at[4, 0].set(True)
    _, ys = net.apply(params, xs, resets=resets)
    # Row 0 is two packed segments: each equals its own run.
    _, first = net.apply(params, xs[:4, :1])
    _, second = net.apply(params, xs[4:, :1])
    np.testing.assert_allclose(ys[:, :1], jnp.concatenate([first, second]), **TOL)


def test_dropout_between_layers_only_with_a_key():
    layer = seqjax.recurrent(seqjax.gru(8))
    net = seqjax.stack(layer, layer, dropout=0.5)
    plain = seqjax.stack(layer, layer)
    params = net.init(jax.random.key(0), D)
    xs = _xs((2, 5, D))
    _, det = net.apply(params, xs)
    np.testing.assert_allclose(det, plain.apply(params, xs)[1], **TOL)
    _, a = net.apply(params, xs, key=jax.random.key(1))
    _, b = net.apply(params, xs, key=jax.random.key(1))
    _, c = net.apply(params, xs, key=jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c) and not np.allclose(a, det)
    # A single layer has no dropout (none after the last layer).
    one = seqjax.stack(layer, dropout=0.5)
    np.testing.assert_array_equal(
        one.apply(params[:1], xs, key=jax.random.key(1))[1], layer.apply(params[0], xs)[1]
    )


def test_dropout_function():
    x = jnp.ones((1000,))
    y = seqjax.dropout(jax.random.key(0), x, 0.25)
    kept = np.asarray(y) != 0
    assert 0.65 < kept.mean() < 0.85
    np.testing.assert_allclose(np.asarray(y)[kept], 1 / 0.75, rtol=1e-6)
    assert seqjax.dropout(None, x, 0.5) is x
    with pytest.raises(ValueError, match=r"lie in \[0, 1\)"):
        seqjax.dropout(jax.random.key(0), x, 1.0)


def test_gradients_through_stack_reach_every_parameter():
    layer = seqjax.recurrent(seqjax.lstm(4))
    net = seqjax.stack(seqjax.bidirectional(layer), layer, dropout=0.1)
    params = net.init(jax.random.key(0), D)
    xs = _xs((2, 5, D))

    def loss(params):
        return jnp.sum(net.apply(params, xs, lengths=jnp.array([5, 3]), key=jax.random.key(0))[1])

    grads = jax.jit(jax.grad(loss))(params)
    for g in jax.tree.leaves(grads):
        assert np.all(np.isfinite(g)) and np.any(np.asarray(g) != 0)


def test_combinator_errors():
    layer = seqjax.recurrent(seqjax.gru(3))
    with pytest.raises(ValueError, match="at least one layer"):
        seqjax.stack()
    with pytest.raises(TypeError, match="expects seqjax Seq layers"):
        seqjax.stack(seqjax.gru(3))
    with pytest.raises(ValueError, match="merge must be one of"):
        seqjax.bidirectional(layer, merge="max")
    with pytest.raises(TypeError, match="pass backward= explicitly"):
        seqjax.bidirectional(seqjax.stack(layer))
    net = seqjax.stack(layer, layer)
    params = net.init(jax.random.key(0), D)
    with pytest.raises(
        ValueError, match="params as a tuple of 2 entries, received tuple of length 1"
    ):
        net.apply(params[:1], _xs((2, 4, D)))
    with pytest.raises(ValueError, match="carry as a tuple of 2 entries"):
        net.apply(params, _xs((2, 4, D)), carry=jnp.zeros((2, 3)))
