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

import operator
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax._util import check_params
from seqjax.typing import Array, Carry, DTypeLike, Initializer, Params, PRNGKey, Shape

__all__ = [
    "CELLS",
    "Cell",
    "LSTMState",
    "cell_by_name",
    "gru",
    "lstm",
    "min_gru",
    "simple_rnn",
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
      fused: the name of a fused recurrence in :mod:`seqjax.kernels` that computes exactly
        this cell (``"lstm"``, ``"gru"``, ``"rnn_tanh"``, ``"rnn_relu"``), which the sequence
        engine may use instead of scanning ``step``; ``None`` otherwise.
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
    fused: str | None = None
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


def _default_kernel_init() -> Initializer:
    # LeCun uniform: variance 1/fan_in, where fan_in = d is the same whether gates are fused.
    return jax.nn.initializers.variance_scaling(1.0, "fan_in", "uniform")


def _check_size(name: str, value: Any) -> int:
    try:
        size = operator.index(value)
    except TypeError:
        raise TypeError(f"{name} must be an int, received {value!r}") from None
    if isinstance(value, bool) or size < 1:
        raise ValueError(f"{name} must be a positive int, received {value!r}")
    return size


def _at_least_f32(dtype: DTypeLike) -> jnp.dtype:
    """float32 for narrower floats (bfloat16, float16), the dtype itself otherwise."""
    dtype = jnp.dtype(dtype)
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.dtype(jnp.float32)


def _carry_dtype(params: Params) -> jnp.dtype:
    return _at_least_f32(params["w_h"].dtype)


def _dot(x: Array, w: Array, dtype: DTypeLike | None) -> Array:
    """``x @ w`` in ``dtype`` (default ``w.dtype``), accumulated in at least float32."""
    dt = w.dtype if dtype is None else jnp.dtype(dtype)
    acc = _at_least_f32(dt)
    dims = (((x.ndim - 1,), (0,)), ((), ()))
    return jax.lax.dot_general(x.astype(dt), w.astype(dt), dims, preferred_element_type=acc)


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
    us = _dot(xs, params["w_i"], dtype)
    if ln_eps is not None:
        us = _layer_norm(us, params["ln_i"], None, ln_eps)
    if "b" in params:
        us = us + params["b"].astype(us.dtype)
    return us


def _draw(init: Initializer, key: PRNGKey, shape: Shape, dtype) -> Array:
    """``init(key, shape)`` drawn in at least float32, then cast to ``dtype``: the orthogonal
    initialiser's QR has no bfloat16 or float16 kernel on CPU."""
    return init(key, shape, _at_least_f32(dtype)).astype(dtype)


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

    return step


# --------------------------------------------------------------------------- Elman RNN


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
    kernel_init = kernel_init or _default_kernel_init()
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
        h_new = act(u + _dot(h, params["w_h"], dtype)).astype(h.dtype)
        return h_new, h_new, {"h": h_new}

    fused = f"rnn_{activation}" if _fusable(dtype) else None
    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, fused=fused, gates=step_gates)


# --------------------------------------------------------------------------- LSTM


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
    if chrono_t_max is not None and not chrono_t_max > 2:
        raise ValueError(f"chrono_t_max must be greater than 2, received {chrono_t_max!r}")
    out_size = proj_size or hidden_size
    kernel_init = kernel_init or _default_kernel_init()
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
                t = jax.random.uniform(k_c, (h,), jnp.float32, 1.0, chrono_t_max - 1.0)
                b_f = jnp.log(t).astype(param_dtype)
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
        rec = _dot(h, params["w_h"], dtype)
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
            h_new = _dot(h_new, params["w_proj"], dtype)
        h_new = h_new.astype(h.dtype)
        c_new = c_new.astype(c.dtype)
        return (
            LSTMState(h_new, c_new),
            h_new,
            {"i": i, "f": f, "g": g, "o": o, "c": c_new, "h": h_new},
        )

    plain = proj_size is None and not layer_norm
    fused = "lstm" if plain and _fusable(dtype) else None
    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, fused=fused, gates=step_gates)


# --------------------------------------------------------------------------- GRU


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
    kernel_init = kernel_init or _default_kernel_init()
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
            rec = _dot(h, w_h, dtype)
            r, z = jnp.split(jax.nn.sigmoid(u_rz + rec[..., : 2 * hs]), 2, axis=-1)
            rec_n = rec[..., 2 * hs :]
            if "b_hn" in params:
                rec_n = rec_n + params["b_hn"].astype(rec_n.dtype)
            n = jnp.tanh(u_n + r * rec_n)
        else:
            r, z = jnp.split(jax.nn.sigmoid(u_rz + _dot(h, w_h[:, : 2 * hs], dtype)), 2, axis=-1)
            n = jnp.tanh(u_n + _dot(r * h, w_h[:, 2 * hs :], dtype))
        h_new = (n + z * (h - n)).astype(h.dtype)
        return h_new, h_new, {"r": r, "z": z, "n": n, "h": h_new}

    fused = "gru" if reset_after and _fusable(dtype) else None
    step = _without_gates(step_gates)
    return Cell(init, initial_carry, project, step, fused=fused, gates=step_gates)


# --------------------------------------------------------------------------- minGRU


def min_gru(
    hidden_size: int,
    *,
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
    """
    _check_size("hidden_size", hidden_size)
    kernel_init = kernel_init or _default_kernel_init()
    hs = hidden_size

    def init(key: PRNGKey, input_size: int) -> Params:
        d = _check_size("input_size", input_size)
        k_i, k_b = jax.random.split(key)
        return {
            "w_i": kernel_init(k_i, (d, 2 * hs), param_dtype),
            "b": bias_init(k_b, (2 * hs,), param_dtype),
        }

    def initial_carry(params: Params, batch_shape: Shape) -> Array:
        return jnp.zeros((*tuple(batch_shape), hs), _at_least_f32(params["w_i"].dtype))

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


CELLS: dict[str, Callable[..., Cell]] = {
    "lstm": lstm,
    "gru": gru,
    "simple_rnn": simple_rnn,
    "min_gru": min_gru,
}
"""Every cell constructor by its one name (configs, modules and experiments use these)."""


def cell_by_name(name: str, hidden_size: int, **options: Any) -> Cell:
    """The cell ``CELLS[name](hidden_size, **options)``, or a ValueError listing the names."""
    if name not in CELLS:
        raise ValueError(f"cell must be one of {sorted(CELLS)}, received {name!r}")
    return CELLS[name](hidden_size, **options)
