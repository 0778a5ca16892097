r"""Recurrent cells: pure functions for one time step.

A :class:`Cell` is a ``NamedTuple`` of pure functions built by a lowercase constructor that
closes over hyperparameters (the stax / Optax idiom); its parameters are a plain pytree.

Every cell splits its step in two. ``project(params, xs)`` is the *time-parallel* part: the
input projection of all gates, fused into one matmul, applied to any number of steps at once
(``xs: [..., d] -> us: [..., k]``). ``step(params, carry, u)`` is the *time-sequential* part:
the recurrent matmul and the gate arithmetic for one step. ``apply(params, carry, x)`` is
``step(params, carry, project(params, x))``, so ``functools.partial(cell.apply, params)`` is a
valid :func:`jax.lax.scan` body. Every leading axis is a batch axis.

Precision: ``param_dtype`` is the dtype of the parameters, ``dtype`` the dtype the matmuls
run in (default: that of the parameters). Matmuls accumulate in at least float32 and the
carry is kept in at least float32, so bfloat16
parameters run with float32 carries and gate arithmetic.
"""

from __future__ import annotations

import functools
import math
import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax._util import at_least_f32, check_params, default_init, dot
from seqjax.kernels.fused import Spec, sigmoid
from seqjax.typing import Array, Carry, DTypeLike, Initializer, Params, PRNGKey, Shape

__all__ = [
    "CELLS",
    "Cell",
    "LSTMState",
    "SLSTMState",
    "cell_by_name",
    "gru",
    "lru",
    "lstm",
    "min_gru",
    "min_lstm",
    "rg_lru",
    "simple_rnn",
    "slstm",
]


class Cell(NamedTuple):
    r"""One recurrent time step as pure functions.

    Attributes:
      init: ``init(key, input_size) -> params``.
      initial_carry: ``initial_carry(params, batch_shape) -> carry`` (zeros), leaves
        ``[*batch_shape, ...]``; ``batch_shape=()`` for a single sequence.
      project: ``project(params, xs: [..., d]) -> us: [..., k]``, the time-parallel input
        projection of every gate, for any number of leading (time and batch) axes.
      step: ``step(params, carry, u: [*b, k]) -> (carry, y: [*b, p])``, the time-sequential
        part.
      coefficients: for cells whose recurrence is linear in the carry,
        ``coefficients(params, xs: [..., d]) -> (a, b)`` with
        :math:`h_t = a_t \odot h_{t-1} + b_t`; ``None`` otherwise.
      fused: a :class:`~seqjax.kernels.fused.Spec` (the step and its hand-written backward
        step) that computes exactly this cell, declared beside ``step`` in the cell's
        constructor; the sequence engine may run it through
        :func:`seqjax.kernels.fused.fused_scan` instead of scanning ``step``. ``None``
        otherwise.
      readout: for cells with ``coefficients`` whose output is not their state (the LRU),
        ``readout(params, hs: [..., n], xs: [..., d]) -> ys``, the output of every step from
        its state and input at once; ``None`` when ``y_t = h_t``.
      gates: ``gates(params, carry, u) -> (carry, y, activations)``, the same step that also
        returns its internal activations as a dict of ``[*b, h]`` arrays (what
        :func:`seqjax.inspect.gates` records); ``step`` is this function without the dict,
        so both are one set of equations. ``None`` for cells that do not expose them.
    """

    init: Callable[[PRNGKey, int], Params]
    initial_carry: Callable[[Params, Shape], Carry]
    project: Callable[[Params, Array], Array]
    step: Callable[[Params, Carry, Array], tuple[Carry, Array]]
    coefficients: Callable[[Params, Array], tuple[Array, Array]] | None = None
    fused: Spec | None = None
    readout: Callable[[Params, Array, Array], Array] | None = None
    gates: Callable[[Params, Carry, Array], tuple[Carry, Array, dict[str, Array]]] | None = None

    def apply(self, params: Params, carry: Carry, x: Array) -> tuple[Carry, Array]:
        """One step: ``step(params, carry, project(params, x))``; ``x: [*b, d]``.

        Raises ``ValueError`` when ``params`` lacks a leaf of ``init(key, d)``, has one it
        does not make, or has one of another shape (checked at trace time).
        """
        shape = np.shape(x)
        if shape:
            check_params(self.init, params, shape[-1], inputs=("x", shape))
        return self.step(params, carry, self.project(params, x))


class LSTMState(NamedTuple):
    """Carry of :func:`lstm`."""

    h: Array  # [*b, p] hidden state (the output), p = proj_size or hidden_size
    c: Array  # [*b, h] cell state


# --------------------------------------------------------------------------- helpers


def _check_size(name: str, value: Any) -> int:
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, received {value!r}") from None
    if isinstance(value, bool) or size < 1:
        raise ValueError(f"{name} must be a positive int, received {value!r}")
    return size


def _carry_dtype(params: Params) -> jnp.dtype:
    return at_least_f32(params["w_h"].dtype)


def _check_features(cell: str, xs: Array, w_i: Array) -> None:
    if xs.ndim < 1 or xs.shape[-1] != w_i.shape[0]:
        raise ValueError(
            f"{cell}: expected inputs whose last axis has {w_i.shape[0]} features "
            f"(the input_size given to init), received an array of shape {tuple(xs.shape)}"
        )


def _fusable(dtype: DTypeLike | None) -> bool:
    """Whether matmuls in ``dtype`` are what the float32 fused kernels compute."""
    return dtype is None or jnp.dtype(dtype) == jnp.float32


def _layer_norm(x: Array, scale: Array, bias: Array | None, eps: float) -> Array:
    mean = jnp.mean(x, axis=-1, keepdims=True)
    var = jnp.mean(jnp.square(x - mean), axis=-1, keepdims=True)
    y = (x - mean) * jax.lax.rsqrt(var + eps) * scale.astype(x.dtype)
    return y if bias is None else y + bias.astype(x.dtype)


def _input_projection(
    cell: str, params: Params, xs: Array, dtype: DTypeLike | None, ln_eps: float | None = None
) -> Array:
    """Fused input projection of all gates: ``xs @ w_i (+ b)``, optionally layer-normed."""
    xs = jnp.asarray(xs)
    _check_features(cell, xs, params["w_i"])
    us = dot(xs, params["w_i"], dtype)
    if ln_eps is not None:
        us = _layer_norm(us, params["ln_i"], None, ln_eps)
    if "b" in params:
        us = us + params["b"].astype(us.dtype)
    return us


def _draw(init: Initializer, key: PRNGKey, shape: Shape, dtype) -> Array:
    """``init(key, shape)`` drawn in at least float32, then cast to ``dtype``: the orthogonal
    initialiser's QR has no bfloat16 or float16 kernel on CPU."""
    return init(key, shape, at_least_f32(dtype)).astype(dtype)


def _blockwise(init: Initializer, key: PRNGKey, rows: int, cols: int, blocks: int, dtype) -> Array:
    """``blocks`` independent ``[rows, cols]`` draws side by side (one per gate)."""
    keys = jax.random.split(key, blocks)
    return jnp.concatenate([_draw(init, k, (rows, cols), dtype) for k in keys], axis=-1)


def _zeros_carry(params: Params, batch_shape: Shape, size: int) -> Array:
    return jnp.zeros((*tuple(batch_shape), size), _carry_dtype(params))


def _without_gates(step_gates: Callable) -> Callable:
    """``step(params, carry, u) -> (carry, y)``: a gate-returning step without its dict
    (under jit the unused activations cost nothing)."""

    def step(params: Params, carry: Carry, u: Array) -> tuple[Carry, Array]:
        carry, y, _ = step_gates(params, carry, u)
        return carry, y

    # Named after the constructor's step (``slstm.<locals>.step``), so that errors can say
    # which cell they are about.
    step.__qualname__ = step_gates.__qualname__.rsplit(".", 1)[0] + ".step"
    return step


# --------------------------------------------------------------------------- Elman RNN


# Fused steps (seqjax.kernels.fused.Spec): the same equations as `step` below, with
# hand-written backward steps, for the engine's fast path.


def _rnn_forward(act, w_h, b_h, h, u):
    del b_h
    h_new = act(u + h @ w_h)
    return h_new, h_new, ()


def _tanh_backward(w_h_t, dh_next, dh, res, h_prev, h):
    del res, h_prev
    d_pre = (dh + dh_next) * (1.0 - h * h)
    return d_pre @ w_h_t, d_pre, None


def _relu_backward(w_h_t, dh_next, dh, res, h_prev, h):
    del res, h_prev
    d_pre = jnp.where(h > 0, dh + dh_next, 0.0)
    return d_pre @ w_h_t, d_pre, None


_RNN_FUSED = {
    "tanh": Spec(
        functools.partial(_rnn_forward, jnp.tanh), _tanh_backward, True, "simple_rnn_tanh"
    ),
    "relu": Spec(
        functools.partial(_rnn_forward, jax.nn.relu), _relu_backward, True, "simple_rnn_relu"
    ),
}


def simple_rnn(
    hidden_size: int,
    *,
    activation: str = "tanh",
    use_bias: bool = True,
    kernel_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer = jax.nn.initializers.zeros,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
) -> Cell:
    r"""Elman RNN (Elman 1990).

    .. math::
        h_t = \phi(W_{i} x_t + W_{h} h_{t-1} + b), \qquad y_t = h_t,

    with :math:`\phi` = ``tanh`` or ``relu`` (as ``torch.nn.RNN``'s ``nonlinearity``).

    Params: ``w_i: [d, h]``, ``w_h: [h, h]``, ``b: [h]`` (absent when ``use_bias=False``).
    Carry: ``h: [*b, h]``.

    Args:
      hidden_size: number of hidden units ``h``.
      activation: ``"tanh"`` or ``"relu"``.
      use_bias: whether the cell has a bias.
      kernel_init: initialiser of ``w_i`` (default LeCun uniform, variance ``1/d``).
      recurrent_init: initialiser of ``w_h`` (default orthogonal, Saxe et al. 2014).
      bias_init: initialiser of ``b`` (default zeros).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
    """
    _check_size("hidden_size", hidden_size)
    acts = {"tanh": jnp.tanh, "relu": jax.nn.relu}
    if activation not in acts:
        raise ValueError(f"activation must be one of {sorted(acts)}, received {activation!r}")
    act = acts[activation]
    kernel_init = kernel_init or default_init()
    recurrent_init = recurrent_init or jax.nn.initializers.orthogonal()

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_h, k_b = jax.random.split(key, 3)
        params = {
            "w_i": kernel_init(k_i, (d, hidden_size), param_dtype),
            "w_h": _draw(recurrent_init, k_h, (hidden_size, hidden_size), param_dtype),
        }
        if use_bias:
            params["b"] = bias_init(k_b, (hidden_size,), param_dtype)
        return params

    def initial_carry(params: Params, batch_shape: Shape) -> Array:
        return _zeros_carry(params, batch_shape, hidden_size)

    def project(params: Params, xs: Array) -> Array:
        return _input_projection("simple_rnn", params, xs, dtype)

    def step_gates(params: Params, h: Array, u: Array) -> tuple[Array, Array, dict]:
        h_new = act(u + dot(h, params["w_h"], dtype)).astype(h.dtype)
        return h_new, h_new, {"h": h_new}

    fused = _RNN_FUSED[activation] if _fusable(dtype) else None
    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, fused=fused, gates=step_gates)


# --------------------------------------------------------------------------- LSTM


# Fused steps (seqjax.kernels.fused.Spec): the same equations as `step` below, with
# hand-written backward steps, for the engine's fast path.


def _check_chrono(chrono_t_max: float | None) -> None:
    if chrono_t_max is not None and not chrono_t_max > 2:
        raise ValueError(f"chrono_t_max must be greater than 2, received {chrono_t_max!r}")


def _chrono_log_t(key: PRNGKey, n: int, chrono_t_max: float, dtype: DTypeLike) -> Array:
    r""":math:`\log \mathcal{U}(1, T_{max} - 1)` for ``n`` units: the chrono initialisation's
    forget-gate bias (Tallec and Ollivier 2018), memory time scales spread up to
    ``chrono_t_max`` steps."""
    t = jax.random.uniform(key, (n,), jnp.float32, 1.0, chrono_t_max - 1.0)
    return jnp.log(t).astype(dtype)


def _lstm_scale(n: int) -> Array:
    """``s`` per gate column: ``s tanh(s x) + 1 - s`` is sigmoid for ``s = 1/2`` (i, f, o)
    and tanh for ``s = 1`` (g); its derivative is ``s^2 - (a - 1 + s)^2`` at output ``a``."""
    return jnp.concatenate([jnp.full((2 * n,), 0.5), jnp.ones((n,)), jnp.full((n,), 0.5)])


def _lstm_forward(w_h, b_h, carry, u):
    del b_h
    h, c = carry
    n = c.shape[-1]
    s = _lstm_scale(n)
    gates = s * jnp.tanh(s * (u + h @ w_h)) + (1.0 - s)  # one tanh for the four gates
    i, f, g, o = (gates[:, j * n : (j + 1) * n] for j in range(4))
    c_new = f * c + i * g
    h_new = o * jnp.tanh(c_new)
    return (h_new, c_new), h_new, (gates, c)


def _lstm_backward(w_h_t, dcarry, dh, res, h_prev, h):
    del h_prev, h
    dh_next, dc = dcarry
    gates, c_prev = res
    n = c_prev.shape[-1]
    i, f, g, o = (gates[:, j * n : (j + 1) * n] for j in range(4))
    tc = jnp.tanh(f * c_prev + i * g)
    dh = dh + dh_next
    dc = dc + dh * o * (1.0 - tc * tc)
    # d_pre = act'(gates) * partner * cotangent as one expression over [B, 4h], with the
    # partners (g, c_prev, i, tanh c) and cotangents (dc, dc, dc, dh) of gates i, f, g, o.
    s = _lstm_scale(n)
    a = gates - (1.0 - s)
    partner = jnp.concatenate([g, c_prev, i, tc], axis=-1)
    cot = jnp.concatenate([dc, dc, dc, dh], axis=-1)
    d_pre = (s * s - a * a) * partner * cot
    return (d_pre @ w_h_t, dc * f), d_pre, None


_LSTM_FUSED = Spec(_lstm_forward, _lstm_backward, name="lstm")


def lstm(
    hidden_size: int,
    *,
    forget_bias: float = 1.0,
    chrono_t_max: float | None = None,
    proj_size: int | None = None,
    layer_norm: bool = False,
    use_bias: bool = True,
    kernel_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer = jax.nn.initializers.zeros,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
    ln_eps: float = 1e-5,
) -> Cell:
    r"""Long short-term memory (Hochreiter and Schmidhuber 1997) with a forget gate
    (Gers et al. 2000); gate order i, f, g, o as in PyTorch and cuDNN.

    .. math::
        \begin{aligned}
        i_t &= \sigma(W_{ii} x_t + W_{hi} h_{t-1} + b_i) \\
        f_t &= \sigma(W_{if} x_t + W_{hf} h_{t-1} + b_f) \\
        g_t &= \tanh(W_{ig} x_t + W_{hg} h_{t-1} + b_g) \\
        o_t &= \sigma(W_{io} x_t + W_{ho} h_{t-1} + b_o) \\
        c_t &= f_t \odot c_{t-1} + i_t \odot g_t \\
        h_t &= o_t \odot \tanh(c_t), \qquad y_t = h_t
        \end{aligned}

    With ``proj_size`` (Sak et al. 2014; as ``torch.nn.LSTM``), :math:`h_t = W_{hr}(o_t \odot
    \tanh(c_t))` has ``proj_size`` units and feeds the recurrence. With ``layer_norm`` (Ba et
    al. 2016), the input and recurrent pre-activations are normalised separately,
    :math:`\mathrm{LN}(W_i x_t; \gamma_i) + \mathrm{LN}(W_h h_{t-1}; \gamma_h) + b`, and
    :math:`h_t = o_t \odot \tanh(\mathrm{LN}(c_t; \gamma_c, \beta_c))`.

    Params: ``w_i: [d, 4h]``, ``w_h: [p, 4h]``, ``b: [4h]`` (PyTorch's ``b_ih + b_hh``;
    absent when ``use_bias=False``), ``w_proj: [h, p]`` with ``proj_size``, and ``ln_i,
    ln_h: [4h]``, ``ln_c, ln_c_bias: [h]`` with ``layer_norm``. Carry: :class:`LSTMState`.

    Args:
      hidden_size: number of cell units ``h``.
      forget_bias: added to the forget-gate bias at initialisation only (Gers et al. 2000;
        Jozefowicz et al. 2015), so that the cell remembers by default; the forward pass has
        no hidden constant, which keeps PyTorch and Flax weights exact.
      chrono_t_max: chrono initialisation (Tallec and Ollivier 2018) for dependencies up to
        about ``chrono_t_max`` steps: the forget-gate bias is drawn as
        :math:`\log \mathcal{U}(1, T_{max} - 1)` and the input-gate bias is its negative,
        in place of ``forget_bias``. ``None`` (default) keeps ``forget_bias``.
      proj_size: size ``p`` of the projected hidden state, or ``None``.
      layer_norm: whether to layer-normalise the gate pre-activations and the cell.
      use_bias: whether the cell has a bias.
      kernel_init: initialiser of ``w_i`` (default LeCun uniform, variance ``1/d``).
      recurrent_init: initialiser of each gate's block of ``w_h`` (default orthogonal,
        Saxe et al. 2014); also used for ``w_proj``.
      bias_init: initialiser of ``b`` before ``forget_bias`` is added (default zeros).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
      ln_eps: epsilon of the layer normalisation.
    """
    _check_size("hidden_size", hidden_size)
    if proj_size is not None:
        _check_size("proj_size", proj_size)
        if proj_size >= hidden_size:
            raise ValueError(
                f"proj_size must be smaller than hidden_size ({hidden_size}), received {proj_size}"
            )
    _check_chrono(chrono_t_max)
    out_size = proj_size or hidden_size
    kernel_init = kernel_init or default_init()
    recurrent_init = recurrent_init or jax.nn.initializers.orthogonal()
    eps = ln_eps if layer_norm else None

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_h, k_b, k_p, k_c = jax.random.split(key, 5)
        h = hidden_size
        params = {
            "w_i": kernel_init(k_i, (d, 4 * h), param_dtype),
            "w_h": _blockwise(recurrent_init, k_h, out_size, h, 4, param_dtype),
        }
        if use_bias:
            b = bias_init(k_b, (4 * h,), param_dtype)
            if chrono_t_max is None:
                params["b"] = b.at[h : 2 * h].add(jnp.asarray(forget_bias, param_dtype))
            else:
                b_f = _chrono_log_t(k_c, h, chrono_t_max, param_dtype)
                params["b"] = b.at[:h].add(-b_f).at[h : 2 * h].add(b_f)
        if proj_size is not None:
            params["w_proj"] = _draw(recurrent_init, k_p, (h, proj_size), param_dtype)
        if layer_norm:
            params["ln_i"] = jnp.ones((4 * h,), param_dtype)
            params["ln_h"] = jnp.ones((4 * h,), param_dtype)
            params["ln_c"] = jnp.ones((h,), param_dtype)
            params["ln_c_bias"] = jnp.zeros((h,), param_dtype)
        return params

    def initial_carry(params: Params, batch_shape: Shape) -> LSTMState:
        return LSTMState(
            h=_zeros_carry(params, batch_shape, out_size),
            c=_zeros_carry(params, batch_shape, hidden_size),
        )

    def project(params: Params, xs: Array) -> Array:
        return _input_projection("lstm", params, xs, dtype, eps)

    def step_gates(params: Params, carry: LSTMState, u: Array) -> tuple[LSTMState, Array, dict]:
        h, c = carry
        rec = dot(h, params["w_h"], dtype)
        if layer_norm:
            rec = _layer_norm(rec, params["ln_h"], None, ln_eps)
        pre_i, pre_f, pre_g, pre_o = jnp.split(u + rec, 4, axis=-1)
        i, f, g, o = (
            jax.nn.sigmoid(pre_i),
            jax.nn.sigmoid(pre_f),
            jnp.tanh(pre_g),
            jax.nn.sigmoid(pre_o),
        )
        c_new = f * c + i * g
        c_out = (
            _layer_norm(c_new, params["ln_c"], params["ln_c_bias"], ln_eps) if layer_norm else c_new
        )
        h_new = o * jnp.tanh(c_out)
        if proj_size is not None:
            h_new = dot(h_new, params["w_proj"], dtype)
        h_new = h_new.astype(h.dtype)
        c_new = c_new.astype(c.dtype)
        return (
            LSTMState(h_new, c_new),
            h_new,
            {"i": i, "f": f, "g": g, "o": o, "c": c_new, "h": h_new},
        )

    plain = proj_size is None and not layer_norm
    fused = _LSTM_FUSED if plain and _fusable(dtype) else None
    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, fused=fused, gates=step_gates)


# --------------------------------------------------------------------------- GRU


# Fused steps (seqjax.kernels.fused.Spec): the same equations as `step` below, with
# hand-written backward steps, for the engine's fast path.


def _gru_forward(w_h, b_h, h, u):
    n_ = h.shape[-1]
    rec = h @ w_h
    rz = sigmoid(u[:, : 2 * n_] + rec[:, : 2 * n_])
    rec_n = rec[:, 2 * n_ :]
    if b_h is not None:
        rec_n = rec_n + b_h
    n = jnp.tanh(u[:, 2 * n_ :] + rz[:, :n_] * rec_n)
    h_new = n + rz[:, n_:] * (h - n)
    return h_new, h_new, (rz, n, rec_n)


def _gru_backward(w_h_t, dh_next, dh, res, h_prev, h):
    del h
    rz, n, rec_n = res
    n_ = n.shape[-1]
    r, z = rz[:, :n_], rz[:, n_:]
    dh = dh + dh_next
    d_n = dh * (1.0 - z) * (1.0 - n * n)
    d_r = d_n * rec_n * r * (1.0 - r)
    d_z = dh * (h_prev - n) * z * (1.0 - z)
    d_u = jnp.concatenate([d_r, d_z, d_n], axis=-1)
    d_rec = jnp.concatenate([d_r, d_z, d_n * r], axis=-1)
    return dh * z + d_rec @ w_h_t, d_u, d_rec


_GRU_FUSED = Spec(_gru_forward, _gru_backward, name="gru")


def gru(
    hidden_size: int,
    *,
    reset_after: bool = True,
    use_bias: bool = True,
    kernel_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    bias_init: Initializer = jax.nn.initializers.zeros,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
) -> Cell:
    r"""Gated recurrent unit (Cho et al. 2014); gate order r, z, n as in PyTorch.

    With ``reset_after=True`` (PyTorch, cuDNN and Keras default) the reset gate multiplies
    the recurrent projection including its bias:

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_{ir} x_t + W_{hr} h_{t-1} + b_r) \\
        z_t &= \sigma(W_{iz} x_t + W_{hz} h_{t-1} + b_z) \\
        n_t &= \tanh(W_{in} x_t + b_{in} + r_t \odot (W_{hn} h_{t-1} + b_{hn})) \\
        h_t &= (1 - z_t) \odot n_t + z_t \odot h_{t-1}, \qquad y_t = h_t
        \end{aligned}

    With ``reset_after=False`` (the original form of Cho et al. 2014) the reset gate acts on
    the state before the matmul: :math:`n_t = \tanh(W_{in} x_t + W_{hn} (r_t \odot h_{t-1})
    + b_n)`.

    Params: ``w_i: [d, 3h]``, ``w_h: [h, 3h]``, ``b: [3h]`` (for r and z PyTorch's
    ``b_ih + b_hh``; for n, ``b_in``), and ``b_hn: [h]`` when ``reset_after``; no biases
    when ``use_bias=False``. Carry: ``h: [*b, h]``.

    Args:
      hidden_size: number of hidden units ``h``.
      reset_after: where the reset gate applies (see above).
      use_bias: whether the cell has biases.
      kernel_init: initialiser of ``w_i`` (default LeCun uniform, variance ``1/d``).
      recurrent_init: initialiser of each gate's block of ``w_h`` (default orthogonal).
      bias_init: initialiser of the biases (default zeros).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
    """
    _check_size("hidden_size", hidden_size)
    kernel_init = kernel_init or default_init()
    recurrent_init = recurrent_init or jax.nn.initializers.orthogonal()
    hs = hidden_size

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_h, k_b, k_bn = jax.random.split(key, 4)
        params = {
            "w_i": kernel_init(k_i, (d, 3 * hs), param_dtype),
            "w_h": _blockwise(recurrent_init, k_h, hs, hs, 3, param_dtype),
        }
        if use_bias:
            params["b"] = bias_init(k_b, (3 * hs,), param_dtype)
            if reset_after:
                params["b_hn"] = bias_init(k_bn, (hs,), param_dtype)
        return params

    def initial_carry(params: Params, batch_shape: Shape) -> Array:
        return _zeros_carry(params, batch_shape, hs)

    def project(params: Params, xs: Array) -> Array:
        return _input_projection("gru", params, xs, dtype)

    def step_gates(params: Params, h: Array, u: Array) -> tuple[Array, Array, dict]:
        w_h = params["w_h"]
        u_rz, u_n = u[..., : 2 * hs], u[..., 2 * hs :]
        if reset_after:
            rec = dot(h, w_h, dtype)
            r, z = jnp.split(jax.nn.sigmoid(u_rz + rec[..., : 2 * hs]), 2, axis=-1)
            rec_n = rec[..., 2 * hs :]
            if "b_hn" in params:
                rec_n = rec_n + params["b_hn"].astype(rec_n.dtype)
            n = jnp.tanh(u_n + r * rec_n)
        else:
            r, z = jnp.split(jax.nn.sigmoid(u_rz + dot(h, w_h[:, : 2 * hs], dtype)), 2, axis=-1)
            n = jnp.tanh(u_n + dot(r * h, w_h[:, 2 * hs :], dtype))
        h_new = (n + z * (h - n)).astype(h.dtype)
        return h_new, h_new, {"r": r, "z": z, "n": n, "h": h_new}

    fused = _GRU_FUSED if reset_after and _fusable(dtype) else None
    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, fused=fused, gates=step_gates)


# --------------------------------------------------------------------------- minGRU


def min_gru(
    hidden_size: int,
    *,
    chrono_t_max: float | None = None,
    kernel_init: Initializer | None = None,
    bias_init: Initializer = jax.nn.initializers.zeros,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
) -> Cell:
    r"""minGRU (Feng et al. 2024, "Were RNNs All We Needed?"), linear in its carry.

    .. math::
        z_t = \sigma(W_z x_t + b_z), \quad \tilde h_t = W_h x_t + b_h, \quad
        h_t = (1 - z_t) \odot h_{t-1} + z_t \odot \tilde h_t, \qquad y_t = h_t

    The gates depend on the input only, so ``coefficients`` gives :math:`a_t = 1 - z_t`,
    :math:`b_t = z_t \odot \tilde h_t` and the sequence level can run the recurrence as a
    parallel (associative) scan.

    Params: ``w_i: [d, 2h]``, ``b: [2h]``. Carry: ``h: [*b, h]``.

    Args:
      hidden_size: number of hidden units ``h``.
      chrono_t_max: chrono initialisation (Tallec and Ollivier 2018) for dependencies up to
        about ``chrono_t_max`` steps: the update gate's bias is drawn as
        :math:`-\log \mathcal{U}(1, T_{max} - 1)`, so that :math:`1 - z_t` keeps the state
        over that many steps at the start of training (at the default zero bias it halves
        every step). ``None`` (default) keeps ``bias_init``.
      kernel_init: initialiser of ``w_i`` (default LeCun uniform, variance ``1/d``).
      bias_init: initialiser of ``b`` (default zeros).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
    """
    _check_size("hidden_size", hidden_size)
    _check_chrono(chrono_t_max)
    kernel_init = kernel_init or default_init()
    hs = hidden_size

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_b, k_c = jax.random.split(key, 3)
        b = bias_init(k_b, (2 * hs,), param_dtype)
        if chrono_t_max is not None:
            b = b.at[:hs].add(-_chrono_log_t(k_c, hs, chrono_t_max, param_dtype))
        return {"w_i": kernel_init(k_i, (d, 2 * hs), param_dtype), "b": b}

    def initial_carry(params: Params, batch_shape: Shape) -> Array:
        return jnp.zeros((*tuple(batch_shape), hs), at_least_f32(params["w_i"].dtype))

    def project(params: Params, xs: Array) -> Array:
        return _input_projection("min_gru", params, xs, dtype)

    def _gates(us: Array) -> tuple[Array, Array]:
        return jax.nn.sigmoid(us[..., :hs]), us[..., hs:]

    def _ab(us: Array) -> tuple[Array, Array]:
        z, h_tilde = _gates(us)
        return 1.0 - z, z * h_tilde

    def step_gates(params: Params, h: Array, u: Array) -> tuple[Array, Array, dict]:
        a, b = _ab(u)
        h_new = (a * h + b).astype(h.dtype)
        z, h_tilde = _gates(u)
        return h_new, h_new, {"z": z, "h_tilde": h_tilde, "h": h_new}

    def coefficients(params: Params, xs: Array) -> tuple[Array, Array]:
        return _ab(project(params, xs))

    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, coefficients, gates=step_gates)


# --------------------------------------------------------------------------- minLSTM


def min_lstm(
    hidden: int,
    *,
    chrono_t_max: float | None = None,
    kernel_init: Initializer | None = None,
    bias_init: Initializer = jax.nn.initializers.zeros,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
) -> Cell:
    r"""minLSTM (Feng et al. 2024, "Were RNNs All We Needed?", section 3.2), linear in its
    carry.

    .. math::
        \begin{aligned}
        f_t &= \sigma(W_f x_t + b_f), \quad i_t = \sigma(W_i x_t + b_i), \quad
        \tilde h_t = W_h x_t + b_h \\
        f'_t &= \frac{f_t}{f_t + i_t}, \quad i'_t = \frac{i_t}{f_t + i_t} \\
        h_t &= f'_t \odot h_{t-1} + i'_t \odot \tilde h_t, \qquad y_t = h_t
        \end{aligned}

    The normalised gates make the state a convex combination of the past and the candidate
    (the paper's time-independent scale). ``coefficients`` gives :math:`a_t = f'_t`,
    :math:`b_t = i'_t \odot \tilde h_t`, so ``recurrent(..., parallel=True)`` runs the
    recurrence as an associative scan.

    Log space (the paper's form for long sequences): with :math:`k_f, k_i` the gate
    pre-activations, :math:`\log f_t = -\mathrm{softplus}(-k_f)`, and the normalised gates
    are computed as

    .. math::
        \log f'_t = -\mathrm{softplus}\big(\mathrm{softplus}(-k_f) - \mathrm{softplus}(-k_i)
        \big), \quad
        \log i'_t = -\mathrm{softplus}\big(\mathrm{softplus}(-k_i) - \mathrm{softplus}(-k_f)
        \big),

    which stays finite where :math:`f_t + i_t` underflows (both pre-activations below about
    -87 in float32, where the quotient is 0/0). The step and the parallel path use the same
    log-space coefficients, so they agree. The paper's log-space *scan* (a log-cumsum-exp of
    :math:`\log b_t - \sum \log a`, which needs :math:`\tilde h_t > 0` and hence its
    activation :math:`g`) exists to avoid dividing by vanishing cumulative products; the
    engine's associative scan combines :math:`(a, b)` pairs by products and multiply-adds
    only, never divides, so the cell keeps the real-valued :math:`\tilde h_t` of the
    paper's main equations and long products simply decay to zero, as they should.

    Params: ``w_i: [d, 3h]`` (gates f, i and the candidate, fused), ``b: [3h]``.
    Carry: ``h: [*b, h]``.

    Args:
      hidden: number of hidden units ``h``.
      chrono_t_max: chrono initialisation (Tallec and Ollivier 2018), as the LSTM's: the
        forget gate's bias is drawn as :math:`\log \mathcal{U}(1, T_{max} - 1)` and the
        input gate's is its negative, so that :math:`f'_t` keeps the state over up to about
        ``chrono_t_max`` steps at the start of training. ``None`` (default) keeps
        ``bias_init``.
      kernel_init: initialiser of ``w_i`` (default LeCun uniform, variance ``1/d``).
      bias_init: initialiser of ``b`` (default zeros).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
    """
    _check_size("hidden", hidden)
    _check_chrono(chrono_t_max)
    kernel_init = kernel_init or default_init()
    hs = hidden

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_b, k_c = jax.random.split(key, 3)
        b = bias_init(k_b, (3 * hs,), param_dtype)
        if chrono_t_max is not None:
            b_f = _chrono_log_t(k_c, hs, chrono_t_max, param_dtype)
            b = b.at[:hs].add(b_f).at[hs : 2 * hs].add(-b_f)
        return {"w_i": kernel_init(k_i, (d, 3 * hs), param_dtype), "b": b}

    def initial_carry(params: Params, batch_shape: Shape) -> Array:
        return jnp.zeros((*tuple(batch_shape), hs), at_least_f32(params["w_i"].dtype))

    def project(params: Params, xs: Array) -> Array:
        return _input_projection("min_lstm", params, xs, dtype)

    def _ab(us: Array) -> tuple[Array, Array]:
        sf = jax.nn.softplus(-us[..., :hs])  # -log f
        si = jax.nn.softplus(-us[..., hs : 2 * hs])  # -log i
        log_f, log_i = -jax.nn.softplus(sf - si), -jax.nn.softplus(si - sf)
        return jnp.exp(log_f), jnp.exp(log_i) * us[..., 2 * hs :]

    def step_gates(params: Params, h: Array, u: Array) -> tuple[Array, Array, dict]:
        a, b = _ab(u)
        h_new = (a * h + b).astype(h.dtype)
        return h_new, h_new, {"f": a, "i_h": b, "h": h_new}  # f'_t, i'_t * h~_t, h_t

    def coefficients(params: Params, xs: Array) -> tuple[Array, Array]:
        return _ab(project(params, xs))

    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, coefficients, gates=step_gates)


# --------------------------------------------------------------------------- LRU


def lru(
    hidden: int,
    *,
    state_size: int | None = None,
    r_min: float = 0.0,
    r_max: float = 1.0,
    max_phase: float = 2 * math.pi,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
) -> Cell:
    r"""Linear recurrent unit (Orvieto et al. 2023, "Resurrecting Recurrent Neural Networks
    for Long Sequences"): a complex diagonal linear recurrence, linear in its carry.

    .. math::
        \begin{aligned}
        \lambda_j &= \exp(-\exp(\nu_j) + i \exp(\theta_j)), \quad
        \gamma_j = \exp(\gamma^{\log}_j) \\
        x_t &= \lambda \odot x_{t-1} + \gamma \odot (B u_t), \quad
        B = B^{re} + i B^{im} \\
        y_t &= \mathrm{Re}(C x_t) + D u_t, \quad C = C^{re} + i C^{im}
        \end{aligned}

    The exponential parametrisation of :math:`\lambda` (the paper's section 3.3, eq. 6)
    keeps :math:`|\lambda_j| = e^{-e^{\nu_j}} < 1`, so the recurrence is stable whatever
    the parameters. The normalisation :math:`\gamma_j` is initialised at
    :math:`\sqrt{1 - |\lambda_j|^2}` (section 3.4), the factor that keeps the state's
    variance that of the inputs for white noise, and is trained as in the paper's code
    (``gamma_log``). Ring initialisation (section 3.3, lemma 3.2): :math:`|\lambda_j|` is
    drawn uniformly on the ring :math:`[r_{min}, r_{max}]` of the complex plane (area
    uniform: :math:`|\lambda|^2 \sim \mathcal U(r_{min}^2, r_{max}^2)`) and its phase
    uniformly in :math:`[0, \phi_{max}]`, so :math:`\nu = \log(-\tfrac12 \log
    |\lambda|^2)` and :math:`\theta = \log \phi`. :math:`B` and :math:`C` are Glorot-like
    complex Gaussians (variance :math:`1/(2d)` per part for :math:`B`, :math:`1/n` for
    :math:`C`).

    The cell's input ``u_t`` has ``d`` features and its output ``h``: the paper's
    element-wise skip :math:`D \odot u_t` (input and output of one width) becomes a dense
    ``D: [d, h]`` (variance ``1/d``), which is the paper's form when ``D`` is diagonal.

    Every parameter is a real array (the real and imaginary parts of :math:`B` and
    :math:`C` apart), so optimisers, checkpoints and weight decay see real leaves. The
    carry is the complex state :math:`x_t`, ``complex64`` (``complex128`` with float64
    parameters): the associative scan of the engine multiplies its coefficients as complex
    numbers, and a pair of real arrays could not be scanned element-wise. ``coefficients``
    gives :math:`a_t = \lambda`, :math:`b_t = \gamma \odot B u_t`; ``readout`` gives
    :math:`y_t` from every state at once.

    Params: ``nu_log, theta_log, gamma_log: [n]``, ``B_re, B_im: [d, n]``, ``C_re, C_im:
    [n, h]``, ``D: [d, h]``, with ``n = state_size``. Carry: ``x: complex[*b, n]``.

    Args:
      hidden: output size ``h``.
      state_size: size ``n`` of the complex state (default ``hidden``).
      r_min: smallest initial modulus of :math:`\lambda`, in ``[0, 1)``.
      r_max: largest initial modulus of :math:`\lambda`, in ``(r_min, 1]``.
      max_phase: largest initial phase of :math:`\lambda` (the paper uses
        :math:`\pi / 10` on its long-range tasks).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
    """
    _check_size("hidden", hidden)
    n = hidden if state_size is None else _check_size("state_size", state_size)
    if not 0.0 <= r_min < r_max <= 1.0:
        raise ValueError(
            f"expected 0 <= r_min < r_max <= 1, received r_min={r_min!r}, r_max={r_max!r}"
        )
    if not max_phase > 0:
        raise ValueError(f"max_phase must be positive, received {max_phase!r}")
    hs = hidden

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_nu, k_th, k_br, k_bi, k_cr, k_ci, k_d = jax.random.split(key, 7)
        f32 = jnp.float32
        u1 = jax.random.uniform(k_nu, (n,), f32)
        u2 = jax.random.uniform(k_th, (n,), f32)
        nu_log = jnp.log(-0.5 * jnp.log(u1 * (r_max**2 - r_min**2) + r_min**2))
        theta_log = jnp.log(max_phase * u2)
        # log sqrt(1 - |lambda|^2) = 0.5 log(1 - exp(-2 exp(nu))), as -expm1 for precision.
        gamma_log = 0.5 * jnp.log(-jnp.expm1(-2.0 * jnp.exp(nu_log)))

        def normal(k, shape, var):
            return jax.random.normal(k, shape, f32) * math.sqrt(var)

        params = {
            "nu_log": nu_log,
            "theta_log": theta_log,
            "gamma_log": gamma_log,
            "B_re": normal(k_br, (d, n), 1.0 / (2 * d)),
            "B_im": normal(k_bi, (d, n), 1.0 / (2 * d)),
            "C_re": normal(k_cr, (n, hs), 1.0 / n),
            "C_im": normal(k_ci, (n, hs), 1.0 / n),
            "D": normal(k_d, (d, hs), 1.0 / d),
        }
        return {k: v.astype(param_dtype) for k, v in params.items()}

    def _complex(params: Params) -> jnp.dtype:
        f = at_least_f32(params["nu_log"].dtype)
        return jnp.dtype(jnp.complex128 if f == jnp.float64 else jnp.complex64)

    def _lambda(params: Params) -> Array:
        f = at_least_f32(params["nu_log"].dtype)
        nu, theta = (jnp.exp(params[k].astype(f)) for k in ("nu_log", "theta_log"))
        return jnp.exp(jax.lax.complex(-nu, theta))

    def initial_carry(params: Params, batch_shape: Shape) -> Array:
        return jnp.zeros((*tuple(batch_shape), n), _complex(params))

    def project(params: Params, xs: Array) -> Array:
        """``[..., d] -> [..., 2n + h]``: real and imaginary parts of :math:`\\gamma \\odot
        B u` and the skip :math:`D u`, as one matmul."""
        xs = jnp.asarray(xs)
        _check_features("lru", xs, params["D"])
        w = jnp.concatenate([params["B_re"], params["B_im"], params["D"]], axis=-1)
        us = dot(xs, w, dtype)
        gamma = jnp.exp(params["gamma_log"].astype(us.dtype))
        return jnp.concatenate(
            [us[..., :n] * gamma, us[..., n : 2 * n] * gamma, us[..., 2 * n :]], axis=-1
        )

    def _input(u: Array) -> Array:
        return jax.lax.complex(u[..., :n], u[..., n : 2 * n])

    def _out(params: Params, x: Array, skip: Array) -> Array:
        y = dot(jnp.real(x), params["C_re"], dtype) - dot(jnp.imag(x), params["C_im"], dtype)
        return y + skip

    def step_gates(params: Params, x: Array, u: Array) -> tuple[Array, Array, dict]:
        x_new = (_lambda(params) * x + _input(u)).astype(x.dtype)
        y = _out(params, x_new, u[..., 2 * n :])
        return x_new, y, {"state_abs": jnp.abs(x_new), "h": y}  # |x_t| and y_t

    step = _without_gates(step_gates)

    def coefficients(params: Params, xs: Array) -> tuple[Array, Array]:
        b = _input(project(params, xs))
        return jnp.broadcast_to(_lambda(params), b.shape), b

    def readout(params: Params, states: Array, xs: Array) -> Array:
        return _out(params, states, dot(xs, params["D"], dtype))

    return Cell(init, initial_carry, project, step, coefficients, readout=readout, gates=step_gates)


# --------------------------------------------------------------------------- RG-LRU

_RG_LRU_C = 8.0  # Griffin's fixed exponent c of the recurrence gate


def rg_lru(
    hidden: int,
    *,
    a_min: float = 0.9,
    a_max: float = 0.999,
    kernel_init: Initializer | None = None,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
) -> Cell:
    r"""Real-gated linear recurrent unit (De et al. 2024, "Griffin: Mixing Gated Linear
    Recurrences with Local Attention for Efficient Language Models", section 2.4), the
    recurrence of Griffin and RecurrentGemma; linear in its carry.

    .. math::
        \begin{aligned}
        r_t &= \sigma(W_a x_t + b_a), \quad i_t = \sigma(W_x x_t + b_x), \quad
        v_t = W_v x_t + b_v \\
        a_t &= a^{c r_t}, \quad a = \sigma(\Lambda), \quad c = 8 \\
        h_t &= a_t \odot h_{t-1} + \sqrt{1 - a_t^2} \odot (i_t \odot v_t),
        \qquad y_t = h_t
        \end{aligned}

    :math:`r_t` is the recurrence gate and :math:`i_t` the input gate (the paper's eqs. 1-4).
    The paper's RG-LRU takes an input of width ``h`` (Griffin's recurrent block makes it
    with a linear layer and a short convolution); here the value projection :math:`v_t`
    stands for that, so the cell takes inputs of any size.

    Computed in log space, as in the paper: :math:`\log a_t = -c\, r_t\,
    \mathrm{softplus}(-\Lambda)`, :math:`a_t = \exp(\log a_t)` and :math:`\sqrt{1 - a_t^2}
    = \sqrt{-\mathrm{expm1}(2 \log a_t)}`, exact where :math:`a_t` is near 1 (where
    :math:`1 - a_t^2` would lose its digits). ``coefficients`` gives :math:`a_t` and
    :math:`b_t = \sqrt{1 - a_t^2} \odot i_t \odot v_t`.

    Initialisation (the paper's appendix A): :math:`\Lambda` such that :math:`a^c` lies
    in ``[a_min, a_max]`` = ``[0.9, 0.999]``, drawn uniformly in :math:`a^{2c}` (on a ring,
    as for the LRU).

    Params: ``w_i: [d, 3h]`` (gates a, x and the value, fused), ``b: [3h]``,
    ``a_param: [h]`` (:math:`\Lambda`). Carry: ``h: [*b, h]``.

    Args:
      hidden: number of hidden units ``h``.
      a_min: smallest initial :math:`a^c`, in ``(0, 1)``.
      a_max: largest initial :math:`a^c`, in ``(a_min, 1)``.
      kernel_init: initialiser of ``w_i`` (default LeCun uniform, variance ``1/d``).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
    """
    _check_size("hidden", hidden)
    if not 0.0 < a_min < a_max < 1.0:
        raise ValueError(
            f"expected 0 < a_min < a_max < 1, received a_min={a_min!r}, a_max={a_max!r}"
        )
    kernel_init = kernel_init or default_init()
    hs = hidden

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_a = jax.random.split(key)
        a2c = jax.random.uniform(k_a, (hs,), jnp.float32, a_min**2, a_max**2)
        # softplus(-Lambda) = -log(a) = -log(a^c) / c, and softplus^-1(y) = log(expm1(y)).
        sp = -0.5 * jnp.log(a2c) / _RG_LRU_C
        return {
            "w_i": kernel_init(k_i, (d, 3 * hs), param_dtype),
            "b": jnp.zeros((3 * hs,), param_dtype),
            "a_param": (-jnp.log(jnp.expm1(sp))).astype(param_dtype),
        }

    def initial_carry(params: Params, batch_shape: Shape) -> Array:
        return jnp.zeros((*tuple(batch_shape), hs), at_least_f32(params["w_i"].dtype))

    def project(params: Params, xs: Array) -> Array:
        return _input_projection("rg_lru", params, xs, dtype)

    def _ab(params: Params, us: Array) -> tuple[Array, Array]:
        r = jax.nn.sigmoid(us[..., :hs])
        i = jax.nn.sigmoid(us[..., hs : 2 * hs])
        log_a = -_RG_LRU_C * r * jax.nn.softplus(-params["a_param"].astype(us.dtype))
        norm = jnp.sqrt(-jnp.expm1(2.0 * log_a))
        return jnp.exp(log_a), norm * i * us[..., 2 * hs :]

    def step_gates(params: Params, h: Array, u: Array) -> tuple[Array, Array, dict]:
        a, b = _ab(params, u)
        h_new = (a * h + b).astype(h.dtype)
        return h_new, h_new, {"a": a, "b": b, "h": h_new}  # a_t, the gated input, h_t

    def coefficients(params: Params, xs: Array) -> tuple[Array, Array]:
        return _ab(params, project(params, xs))

    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, coefficients, gates=step_gates)


# --------------------------------------------------------------------------- sLSTM


class SLSTMState(NamedTuple):
    """Carry of :func:`slstm`."""

    h: Array  # [*b, h] hidden state (the output)
    c: Array  # [*b, h] cell state
    n: Array  # [*b, h] normaliser state
    m: Array  # [*b, h] stabiliser state (a running max of log gates)


def slstm(
    hidden: int,
    *,
    num_heads: int = 1,
    kernel_init: Initializer | None = None,
    recurrent_init: Initializer | None = None,
    dtype: DTypeLike | None = None,
    param_dtype: DTypeLike = jnp.float32,
) -> Cell:
    r"""sLSTM, the scalar-memory cell of xLSTM (Beck et al. 2024, "xLSTM: Extended Long
    Short-Term Memory", section 2.2), with exponential input and forget gates, a normaliser
    and a stabiliser state, and head-wise (block-diagonal) recurrent weights.

    .. math::
        \begin{aligned}
        (\tilde\imath_t, \tilde f_t, \tilde z_t, \tilde o_t)
          &= W x_t + R\, h_{t-1} + b \\
        m_t &= \max(\tilde f_t + m_{t-1},\ \tilde\imath_t) \\
        i'_t &= \exp(\tilde\imath_t - m_t), \quad f'_t = \exp(\tilde f_t + m_{t-1} - m_t) \\
        c_t &= f'_t \odot c_{t-1} + i'_t \odot \tanh(\tilde z_t) \\
        n_t &= f'_t \odot n_{t-1} + i'_t \\
        h_t &= \sigma(\tilde o_t) \odot c_t / n_t, \qquad y_t = h_t
        \end{aligned}

    These are the paper's eqs. 8-17 with the exponential forget gate
    :math:`f_t = \exp(\tilde f_t)` and the stabilised gates of its eqs. 15-17: :math:`m_t`
    rescales :math:`c_t` and :math:`n_t` alike, so :math:`h_t` equals that of the
    unstabilised cell while no exponential overflows. :math:`R` is block diagonal: the
    ``h`` units form ``num_heads`` heads of ``h / num_heads`` units, and each head's gates
    see only its own units of :math:`h_{t-1}` (the paper's section 2.2, "multiple heads").

    The recurrence is not linear in the carry (the gates read :math:`h_{t-1}`), so the cell
    has no ``coefficients`` and runs sequentially; ``recurrent(slstm(...), parallel=True)``
    is an error.

    Params: ``w_i: [d, 4h]`` (gates i, f, z, o, fused), ``w_h: [heads, h / heads,
    4 h / heads]`` (each head's gates i, f, z, o), ``b: [4h]`` (the forget gate's
    initialised from 3 to 6 across each head's units, so that the cell remembers by
    default; the others zero). Carry: :class:`SLSTMState`.

    Args:
      hidden: number of hidden units ``h``, a multiple of ``num_heads``.
      num_heads: number of heads of the block-diagonal recurrent matrix.
      kernel_init: initialiser of ``w_i`` (default LeCun uniform, variance ``1/d``).
      recurrent_init: initialiser of each head's gate blocks of ``w_h`` (default
        orthogonal).
      dtype: dtype of the matmuls (default: that of the parameters).
      param_dtype: dtype of the parameters.
    """
    _check_size("hidden", hidden)
    heads = _check_size("num_heads", num_heads)
    if hidden % heads:
        raise ValueError(
            f"hidden must be a multiple of num_heads ({heads}), received hidden={hidden}"
        )
    kernel_init = kernel_init or default_init()
    recurrent_init = recurrent_init or jax.nn.initializers.orthogonal()
    hs, hd = hidden, hidden // heads

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_h = jax.random.split(key)
        keys = jax.random.split(k_h, heads)
        w_h = jnp.stack([_blockwise(recurrent_init, k, hd, hd, 4, param_dtype) for k in keys])
        b_f = jnp.tile(jnp.linspace(3.0, 6.0, hd, dtype=jnp.float32), heads)
        b = jnp.zeros((4 * hs,), jnp.float32).at[hs : 2 * hs].set(b_f)
        return {
            "w_i": kernel_init(k_i, (d, 4 * hs), param_dtype),
            "w_h": w_h,
            "b": b.astype(param_dtype),
        }

    def initial_carry(params: Params, batch_shape: Shape) -> SLSTMState:
        zeros = _zeros_carry(params, batch_shape, hs)
        return SLSTMState(zeros, zeros, zeros, zeros)

    def project(params: Params, xs: Array) -> Array:
        return _input_projection("slstm", params, xs, dtype)

    def _recurrent(params: Params, h: Array) -> Array:
        """``h: [*b, h] -> [*b, 4h]`` in the gate layout of ``project``: per head
        ``[*b, heads, hd] @ [heads, hd, 4hd]``, then gates first."""
        w = params["w_h"]
        dt = w.dtype if dtype is None else jnp.dtype(dtype)
        hh = h.reshape(*h.shape[:-1], heads, hd).astype(dt)
        rec = jnp.einsum(
            "...nk,nkg->...ng", hh, w.astype(dt), preferred_element_type=at_least_f32(dt)
        )
        rec = rec.reshape(*h.shape[:-1], heads, 4, hd)
        return jnp.swapaxes(rec, -3, -2).reshape(*h.shape[:-1], 4 * hs)

    def step_gates(params: Params, carry: SLSTMState, u: Array) -> tuple[SLSTMState, Array, dict]:
        h, c, n, m = carry
        i_, f_, z_, o_ = jnp.split(u + _recurrent(params, h), 4, axis=-1)
        m_new = jnp.maximum(f_ + m, i_)
        i = jnp.exp(i_ - m_new)
        f = jnp.exp(f_ + m - m_new)
        z, o = jnp.tanh(z_), jax.nn.sigmoid(o_)
        c_new = f * c + i * z
        n_new = f * n + i
        h_new = o * c_new / n_new
        dt = h.dtype
        new = SLSTMState(*(a.astype(dt) for a in (h_new, c_new, n_new, m_new)))
        gates = {"i": i, "f": f, "z": z, "o": o, "c": new.c, "n": new.n, "m": new.m, "h": new.h}
        return new, new.h, gates  # i, f: the stabilised exponential gates

    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, gates=step_gates)


CELLS: dict[str, Callable[..., Cell]] = {
    "lstm": lstm,
    "gru": gru,
    "simple_rnn": simple_rnn,
    "min_gru": min_gru,
    "min_lstm": min_lstm,
    "lru": lru,
    "rg_lru": rg_lru,
    "slstm": slstm,
}
"""Every cell constructor by its one name (configs, modules and experiments use these)."""


def cell_by_name(name: str, hidden_size: int, **options: Any) -> Cell:
    """The cell ``CELLS[name](hidden_size, **options)``, or a ValueError listing the names."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, received {name!r}")
    return CELLS[name](hidden_size, **options)
