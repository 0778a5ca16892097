"""The cuDNN LSTM path (seqjax.kernels.cudnn), run on the CPU through JAX's reference
implementation of the cuDNN call: the same numbers and gradients as seqjax's own scan, and
chosen only where cuDNN serves (a CUDA GPU, a plain float32 LSTM, no resets, no vmap)."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import kernels
from seqjax.kernels import cudnn

B, T, D, H = 3, 7, 5, 4


def _setup(lengths=True):
    cell = seqjax.lstm(H)
    params = cell.init(jax.random.key(0), D)
    params["b"] = params["b"] + 0.1 * jax.random.normal(jax.random.key(3), params["b"].shape)
    xs = jax.random.normal(jax.random.key(1), (2, B, T, D))
    lens = jnp.array([[7, 3, 0], [1, 7, 5]]) if lengths else None
    carry = seqjax.LSTMState(
        h=0.5 * jax.random.normal(jax.random.key(4), (2, B, H)),
        c=0.5 * jax.random.normal(jax.random.key(5), (2, B, H)),
    )
    return cell, params, xs, lens, carry


def test_weights_round_trip_in_cudnn_layout():
    from jax.experimental import rnn

    _, params, *_ = _setup()
    flat = cudnn.to_cudnn_weights(params)
    assert flat.shape == (rnn.get_num_params_in_lstm(D, H, 1, False),)
    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(flat, D, H, 1, False)
    np.testing.assert_array_equal(w_ih[0], params["w_i"].T)
    np.testing.assert_array_equal(w_hh[0], params["w_h"].T)
    np.testing.assert_array_equal(b_ih[0] + b_hh[0], params["b"])
    back = cudnn.from_cudnn_weights(flat, D, H)
    jax.tree.map(np.testing.assert_array_equal, back, params)


@pytest.mark.parametrize("reverse", [False, True])
@pytest.mark.parametrize("time_major", [False, True])
@pytest.mark.parametrize("lengths", [False, True])
def test_cudnn_path_equals_the_scan_with_gradients(reverse, time_major, lengths):
    cell, params, xs, lens, carry = _setup(lengths)
    if time_major:
        xs = jnp.moveaxis(xs, -2, 0)
    layer = seqjax.recurrent(cell, reverse=reverse, time_major=time_major)

    def ours(p, x, c):
        return layer.apply(p, x, c, lengths=lens)

    def theirs(p, x, c):
        x_t = x if time_major else jnp.moveaxis(x, -2, 0)
        if lens is not None:
            x_t = jnp.where((jnp.arange(T)[:, None, None] < lens)[..., None], x_t, 0.0)
        c, y = cudnn.lstm_scan(p, x_t, c, lens, reverse=reverse, lstm=cudnn.reference_lstm)
        return c, (y if time_major else jnp.moveaxis(y, 0, -2))

    want, got = jax.jit(ours)(params, xs, carry), jax.jit(theirs)(params, xs, carry)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), want, got)

    def loss(f):
        def value(p, x, c):
            (h, cc), y = f(p, x, c)
            return jnp.sum(jnp.sin(y)) + jnp.sum(h * cc)

        return jax.jit(jax.grad(value, argnums=(0, 1, 2)))

    g_want, g_got = loss(ours)(params, xs, carry), loss(theirs)(params, xs, carry)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5), g_want, g_got)


def test_chosen_only_where_cudnn_serves(monkeypatch):
    cell, params, xs, lens, carry = _setup()
    xs_t = jnp.moveaxis(xs, -2, 0)
    assert not cudnn.applies(cell, params, xs_t, carry, None)  # this CPU
    monkeypatch.setattr(cudnn, "on_cuda", lambda: True)
    assert cudnn.applies(cell, params, xs_t, carry, None)
    resets = jnp.zeros((T, 2, B), bool)
    assert not cudnn.applies(cell, params, xs_t, carry, resets)
    with kernels.disabled():
        assert not cudnn.applies(cell, params, xs_t, carry, None)
    for other in (seqjax.gru(H), seqjax.lstm(H, layer_norm=True), seqjax.min_gru(H)):
        p = other.init(jax.random.key(0), D)
        c = other.initial_carry(p, (2, B))
        assert not cudnn.applies(other, p, xs_t, c, None)
    half = jax.tree.map(lambda a: a.astype(jnp.bfloat16), params)
    assert not cudnn.applies(cell, half, xs_t, carry, None)
    seen = []
    jax.vmap(lambda x: seen.append(cudnn.applies(cell, params, x, carry, None)) or 0.0)(xs_t)
    jax.jit(lambda x: seen.append(cudnn.applies(cell, params, x, carry, None)) or 0.0)(xs_t)
    assert seen == [False, True]


def test_the_engine_dispatches_to_cudnn_on_a_gpu(monkeypatch):
    """With the GPU check forced and cuDNN's call replaced by its reference, the engine
    takes the cuDNN path (the call is counted) and still returns the scan's numbers."""
    cell, params, xs, lens, carry = _setup()
    layer = seqjax.recurrent(cell, reverse=True)
    want = jax.jit(lambda p, x: layer.apply(p, x, carry, lengths=lens))(params, xs)
    calls = []

    def counted(*args, **kw):
        calls.append(1)
        return cudnn.reference_lstm(*args, **kw)

    monkeypatch.setattr(cudnn, "on_cuda", lambda: True)
    monkeypatch.setattr(cudnn, "_cudnn_lstm", lambda: counted)
    got = jax.jit(lambda p, x: layer.apply(p, x, carry, lengths=lens))(params, xs)
    assert calls == [1]
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), want, got)
    # resets keep the engine's own path
    resets = jnp.zeros((2, B, T), bool).at[:, :, 3].set(True)
    layer.apply(params, xs, carry, lengths=lens, resets=resets)
    assert calls == [1]
