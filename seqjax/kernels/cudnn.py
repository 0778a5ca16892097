"""The cuDNN LSTM, through :mod:`jax.experimental.rnn`, for LSTM layers on a CUDA GPU.

On a CUDA GPU the sequence engine runs a layer of the standard LSTM
(:func:`~seqjax.lstm` without projection or layer norm, float32) as one cuDNN call, the
kernel that PyTorch's ``nn.LSTM`` uses there, when cuDNN covers the layer's options:
lengths (cuDNN's padded sequences), ``reverse`` (each sequence flipped within its length),
``time_major``, any number of batch axes and a given initial carry. Resets, remat,
forward-mode autodiff and ``jax.vmap`` (cuDNN's primitive has no batching rule) keep the
engine's own paths, as does every other cell, device or dtype. The choice is made at
trace time, so it costs nothing per call, and :func:`seqjax.kernels.disabled` turns it
off with the fused paths.

cuDNN's LSTM has two biases and PyTorch's gate order (i, f, g, o, as seqjax's cell):
seqjax's ``w_i: [d, 4h]``, ``w_h: [h, 4h]`` and ``b: [4h]`` become cuDNN's ``W_ih = w_i^T``,
``W_hh = w_h^T``, ``b_ih = b`` and ``b_hh = 0`` in its flat weight vector
(:func:`to_cudnn_weights`), a differentiable rearrangement, so gradients reach seqjax's
parameters. :func:`reference_lstm` is JAX's own reference implementation of the cuDNN call
(``jax.experimental.rnn.lstm_ref``) with the same signature: the tests run the whole path
through it on the CPU and compare it with seqjax's scan.

``vmap`` is seen from JAX's trace stack down to the innermost ``jax.jit`` (as
:func:`seqjax.kernels.forward_mode` sees ``jvp``): a function jitted for the GPU path and
then vmapped outside its jit cannot change its trace, so call it under
:func:`seqjax.kernels.disabled` (the trainer's DP-SGD vmaps inside its jit and is seen).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp

from seqjax._util import flip_within_lengths
from seqjax.typing import Array, Carry, Params

LSTMFn = Callable[..., tuple[Array, Array, Array]]


@functools.cache
def on_cuda() -> bool:
    """Whether JAX's default backend is a CUDA GPU with cuDNN's RNN kernels."""
    try:
        if jax.default_backend() != "gpu":
            return False
        from jax.experimental import rnn

        version = jax.devices()[0].client.platform_version.lower()
        return rnn.gpu_rnn is not None and "cuda" in version
    except Exception:
        return False


def under_vmap() -> bool:
    """Whether ``jax.vmap`` is tracing this call (down to the innermost ``jax.jit``)."""
    from seqjax import kernels

    try:
        from jax._src.interpreters import batching

        return kernels.on_trace_stack(batching.BatchTrace)
    except Exception:
        return True  # unknown internals: keep the engine's own path, which vmaps


def applies(cell: Any, params: Params, xs: Array, carry0: Carry, resets: Array | None) -> bool:
    """Whether the layer can run as one cuDNN call (see the module docstring)."""
    from seqjax import kernels

    if not on_cuda() or not kernels.enabled() or kernels.forward_mode() or under_vmap():
        return False
    spec = kernels.kind(cell)
    if spec is None or spec.name != "lstm" or resets is not None or xs.size == 0:
        return False
    arrays = [params["w_i"], params["w_h"], xs, *jax.tree.leaves(carry0)]
    if "b" in params:
        arrays.append(params["b"])
    return all(jnp.asarray(a).dtype == jnp.float32 for a in arrays)


def to_cudnn_weights(params: Params) -> Array:
    """seqjax LSTM params -> cuDNN's flat weights ``(W_ih, W_hh, b_ih, b_hh)``."""
    w_i, w_h = params["w_i"], params["w_h"]
    b = params.get("b", jnp.zeros(w_h.shape[-1:], w_h.dtype))
    parts = (w_i.T, w_h.T, b, jnp.zeros_like(b))
    return jnp.concatenate([p.reshape(-1) for p in parts])


def from_cudnn_weights(weights: Array, input_size: int, hidden_size: int) -> Params:
    """cuDNN's flat weights of one LSTM layer -> seqjax params (the biases summed)."""
    d, n = input_size, 4 * hidden_size
    sizes = [n * d, n * hidden_size, n, n]
    w_ih, w_hh, b_ih, b_hh = jnp.split(weights, list(jnp.cumsum(jnp.array(sizes))[:-1]))
    return {
        "w_i": w_ih.reshape(n, d).T,
        "w_h": w_hh.reshape(n, hidden_size).T,
        "b": b_ih + b_hh,
    }


def reference_lstm(x, h_0, c_0, weights, seq_lengths, *, input_size, hidden_size, **kw):
    """:func:`jax.experimental.rnn.lstm`'s reference implementation, the same signature."""
    from jax.experimental import rnn

    w_ih, w_hh, b_ih, b_hh = rnn.unpack_lstm_weights(
        weights, input_size, hidden_size, kw["num_layers"], kw["bidirectional"]
    )
    return rnn.lstm_ref(
        x, h_0, c_0, w_ih, w_hh, b_ih, b_hh, seq_lengths, input_size, hidden_size,
        kw["num_layers"], kw["dropout"], kw["bidirectional"],
    )  # fmt: skip


def _cudnn_lstm() -> LSTMFn:
    from jax.experimental import rnn

    return rnn.lstm


def lstm_scan(
    params: Params,
    xs: Array,
    carry0: Carry,
    lengths: Array | None,
    *,
    reverse: bool,
    lstm: LSTMFn | None = None,
) -> tuple[Carry, Array]:
    """One LSTM layer over time-major ``xs: [t, *b, d]`` by cuDNN: the engine's
    ``(carry, ys: [t, *b, h])``, zeros past each length, the carry at each length (the
    initial one for an empty sequence). ``lstm`` replaces :func:`jax.experimental.rnn.lstm`
    (the tests pass :func:`reference_lstm`)."""
    lstm = lstm or _cudnn_lstm()
    t, batch_shape, d = xs.shape[0], xs.shape[1:-1], xs.shape[-1]
    h = params["w_h"].shape[0]
    n = math.prod(batch_shape)
    x = jnp.swapaxes(xs.reshape(t, n, d), 0, 1)  # cuDNN's batch-first [n, t, d]
    full = lengths is None
    lengths = jnp.full((n,), t, jnp.int32) if full else lengths.reshape(n).astype(jnp.int32)
    if reverse:
        x = flip_within_lengths(x, None if full else lengths, time_major=False)
    h0, c0 = (a.reshape(1, n, h) for a in (carry0.h, carry0.c))
    y, h_n, c_n = lstm(
        x,
        h0,
        c0,
        to_cudnn_weights(params),
        jnp.maximum(lengths, 1),  # cuDNN needs a step; empty sequences are restored below
        input_size=d,
        hidden_size=h,
        num_layers=1,
        dropout=0.0,
        bidirectional=False,
    )
    if reverse:
        y = flip_within_lengths(y, None if full else lengths, time_major=False)
    empty = (lengths == 0)[:, None]
    y = jnp.where((jnp.arange(t) < lengths[:, None])[..., None], y, jnp.zeros((), y.dtype))
    h_n, c_n = jnp.where(empty, h0[0], h_n[0]), jnp.where(empty, c0[0], c_n[0])
    carry = type(carry0)(h=h_n.reshape(*batch_shape, h), c=c_n.reshape(*batch_shape, h))
    return carry, jnp.swapaxes(y, 0, 1).reshape(t, *batch_shape, h)
