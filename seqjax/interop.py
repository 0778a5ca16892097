"""Exact weight converters from PyTorch and Flax linen recurrent layers.

.. code-block:: python

    seq, params = seqjax.interop.from_torch(torch_lstm)
    carry, ys = seq.apply(params, xs, lengths=None)   # ys equals torch_lstm(xs)[0]

The returned :class:`~seqjax.Seq` takes and returns data in the source library's own layout:
``from_torch`` follows the module's ``batch_first`` and its carry is torch's ``h_n``
(``[num_layers * num_directions, *b, p]``), or ``(h_n, c_n)`` for an LSTM; ``from_flax``
follows ``time_major`` and its carry is Flax's (``(c, h)`` for an LSTM cell, ``h``
otherwise). The params are plain seqjax params of :func:`~seqjax.stack` /
:func:`~seqjax.recurrent`, so they train and run like any other.

torch and flax are imported only when these functions are called.
"""

from __future__ import annotations

import functools
from typing import Any

import jax.numpy as jnp
import numpy as np

from seqjax import _util
from seqjax.cells import Cell, LSTMState, gru, lstm, simple_rnn
from seqjax.combinators import bidirectional, stack
from seqjax.scan import Seq, recurrent
from seqjax.typing import Array, ArrayLike, Carry, Params, PRNGKey, Shape

__all__ = ["from_flax", "from_torch"]


def _array(t: Any) -> Array:
    """A torch tensor or any array-like as a jax array, keeping its dtype where JAX can."""
    if hasattr(t, "detach"):
        t = t.detach().cpu().numpy()
    return jnp.asarray(np.asarray(t))


def _wrap(net: Seq, to_outer: Any, to_inner: Any) -> Seq:
    """``net`` with its carry converted to another layout on the way in and out;
    ``to_inner(carry, xs)`` also sees the inputs, to check the carry against them."""

    def initial_carry(params: Params, batch_shape: Shape) -> Carry:
        return to_outer(net.initial_carry(params, batch_shape))

    def apply(
        params: Params,
        xs: ArrayLike,
        carry: Carry | None = None,
        *,
        lengths: ArrayLike | None = None,
        resets: ArrayLike | None = None,
        key: PRNGKey | None = None,
    ) -> tuple[Carry, Array]:
        inner = None if carry is None else to_inner(carry, xs)
        carry, ys = net.apply(params, xs, inner, lengths=lengths, resets=resets, key=key)
        return to_outer(carry), ys

    return Seq(net.init, initial_carry, apply)


# --------------------------------------------------------------------------- PyTorch

_TORCH_MODES = ("LSTM", "GRU", "RNN_TANH", "RNN_RELU")


def _torch_cell(mode: str, hidden: int, proj: int | None, bias: bool) -> Cell:
    if mode == "LSTM":
        return lstm(hidden, proj_size=proj, use_bias=bias)
    if mode == "GRU":
        return gru(hidden, reset_after=True, use_bias=bias)
    return simple_rnn(hidden, activation="tanh" if mode == "RNN_TANH" else "relu", use_bias=bias)


def _torch_layer_params(module: Any, mode: str, name: str) -> Params:
    w = {k: _array(v) for k, v in module.named_parameters() if k.endswith(name)}
    hidden = module.hidden_size
    params = {"w_i": w[f"weight_ih_{name}"].T, "w_h": w[f"weight_hh_{name}"].T}
    if module.bias:
        b_ih, b_hh = w[f"bias_ih_{name}"], w[f"bias_hh_{name}"]
        if mode == "GRU":
            # r and z see b_ih + b_hh; the hidden bias of n sits inside the reset product.
            params["b"] = b_ih + jnp.concatenate(
                [b_hh[: 2 * hidden], jnp.zeros_like(b_hh[:hidden])]
            )
            params["b_hn"] = b_hh[2 * hidden :]
        else:
            params["b"] = b_ih + b_hh
    if mode == "LSTM" and module.proj_size > 0:
        params["w_proj"] = w[f"weight_hr_{name}"].T
    return params


def from_torch(module: Any) -> tuple[Seq, Params]:
    """Converts a ``torch.nn.RNN``, ``LSTM`` or ``GRU`` to a seqjax Seq and its params.

    Every configuration is supported: ``num_layers``, ``bidirectional``, ``proj_size``,
    ``batch_first``, ``nonlinearity="relu"``, ``bias=False`` and ``dropout`` (active only
    when ``apply`` gets a ``key``, as torch's only in training mode).

    Args:
      module: the torch module.

    Returns:
      ``(seq, params)``: ``seq.apply(params, xs, carry=None, lengths=None)`` returns
      ``(carry, ys)`` where ``ys`` equals the module's output (with ``lengths``: what
      ``pack_padded_sequence`` then ``pad_packed_sequence`` give, zeros past each length)
      and ``carry`` is ``h_n`` (an RNN or GRU) or ``(h_n, c_n)`` (an LSTM), each
      ``[num_layers * num_directions, *b, size]``. A given ``carry`` takes the same form
      (torch's ``h_0`` / ``(h_0, c_0)``).

    Raises:
      TypeError: ``module`` is not a ``torch.nn.RNN``, ``LSTM`` or ``GRU``.
      ValueError: (from ``seq.apply``) a given carry whose structure or shapes are not
        torch's for these inputs.
    """
    mode = getattr(module, "mode", None)
    if mode not in _TORCH_MODES:
        raise TypeError(
            "from_torch expects a torch.nn.RNN, LSTM or GRU module, "
            f"received {type(module).__name__}"
        )
    proj = module.proj_size if mode == "LSTM" and module.proj_size > 0 else None
    n_dirs = 2 if module.bidirectional else 1
    cell = _torch_cell(mode, module.hidden_size, proj, module.bias)
    layer = recurrent(cell, time_major=not module.batch_first)
    layers, params = [], []
    for i in range(module.num_layers):
        p_fwd = _torch_layer_params(module, mode, f"l{i}")
        if n_dirs == 2:
            layers.append(bidirectional(layer))
            params.append((p_fwd, _torch_layer_params(module, mode, f"l{i}_reverse")))
        else:
            layers.append(layer)
            params.append(p_fwd)
    net = stack(*layers, dropout=float(module.dropout))
    n_states = module.num_layers * n_dirs
    is_lstm = mode == "LSTM"

    def states(carry: tuple) -> list:
        flat: list = []
        for c in carry:
            flat.extend(c if n_dirs == 2 else (c,))
        return flat

    def to_torch(carry: tuple) -> Carry:
        flat = states(carry)
        if is_lstm:
            return jnp.stack([s.h for s in flat]), jnp.stack([s.c for s in flat])
        return jnp.stack(flat)

    sizes = (proj or module.hidden_size, module.hidden_size) if is_lstm else (module.hidden_size,)
    time_major = not module.batch_first

    def from_torch_carry(carry: Carry, xs: ArrayLike) -> tuple:
        shape = np.shape(xs)
        batch_shape = tuple(shape[1:-1] if time_major else shape[:-2])
        want = "(h_0, c_0)" if is_lstm else "h_0"
        expected = [(n_states, *batch_shape, size) for size in sizes]
        is_seq = isinstance(carry, (tuple, list))
        received: str | list[tuple[int, ...]]
        if is_lstm != is_seq or (is_seq and len(carry) != 2):
            received = f"{type(carry).__name__}" + (
                f" of length {len(carry)}" if is_seq else f" of shape {np.shape(carry)}"
            )
        else:
            parts = tuple(carry) if is_lstm else (carry,)
            received = [tuple(np.shape(p)) for p in parts]
        if received != expected:
            raise ValueError(
                f"carry must be torch's {want} of shapes {expected} "
                f"([num_layers * num_directions, *batch, size] for these inputs), "
                f"received {received}"
            )
        flat = [LSTMState(h, c) for h, c in zip(*parts)] if is_lstm else list(parts[0])
        per_layer = [flat[i * n_dirs : (i + 1) * n_dirs] for i in range(module.num_layers)]
        return tuple(tuple(p) if n_dirs == 2 else p[0] for p in per_layer)

    return _wrap(net, to_torch, from_torch_carry), tuple(params)


# --------------------------------------------------------------------------- Flax linen


def _flax_cell(cell: Any, params: Params, check: Any) -> tuple[Cell, Params, bool]:
    """``(seqjax cell, seqjax params, is_lstm)`` for a Flax linen cell and its params;
    ``check()`` validates the variables once the cell's options are known to be supported."""
    import flax.linen as nn

    name = type(cell).__name__

    def kernel(n: str) -> Array:
        return jnp.asarray(params[n]["kernel"])

    def bias(n: str) -> Array:
        return jnp.asarray(params[n]["bias"])

    def standard_activations(*pairs: tuple[str, Any]) -> None:
        for field, fn in pairs:
            if getattr(cell, field) is not fn:
                raise ValueError(f"from_flax supports {name} with {field}={fn.__name__} only")

    if isinstance(cell, (nn.LSTMCell, nn.OptimizedLSTMCell)):
        standard_activations(("gate_fn", nn.sigmoid), ("activation_fn", nn.tanh))
        check()
        gates = "ifgo"
        out = {
            "w_i": jnp.concatenate([kernel(f"i{g}") for g in gates], axis=-1),
            "w_h": jnp.concatenate([kernel(f"h{g}") for g in gates], axis=-1),
            "b": jnp.concatenate([bias(f"h{g}") for g in gates], axis=-1),
        }
        return lstm(cell.features), out, True
    if isinstance(cell, nn.GRUCell):
        standard_activations(("gate_fn", nn.sigmoid), ("activation_fn", nn.tanh))
        check()
        out = {
            "w_i": jnp.concatenate([kernel(f"i{g}") for g in "rzn"], axis=-1),
            "w_h": jnp.concatenate([kernel(f"h{g}") for g in "rzn"], axis=-1),
            # Flax puts the r and z biases on the input side (ir, iz) and has no hr, hz bias.
            "b": jnp.concatenate([bias(f"i{g}") for g in "rzn"], axis=-1),
            "b_hn": bias("hn"),
        }
        return gru(cell.features, reset_after=True), out, False
    if isinstance(cell, nn.SimpleCell):
        if cell.residual:
            raise ValueError("from_flax does not support SimpleCell(residual=True)")
        acts = {nn.tanh: "tanh", nn.relu: "relu"}
        if cell.activation_fn not in acts:
            raise ValueError("from_flax supports SimpleCell with activation_fn tanh or relu")
        check()
        out = {"w_i": kernel("i"), "w_h": kernel("h"), "b": bias("i")}
        return simple_rnn(cell.features, activation=acts[cell.activation_fn]), out, False
    raise TypeError(
        "from_flax expects a flax.linen LSTMCell, OptimizedLSTMCell, GRUCell, SimpleCell or "
        f"RNN over one of them, received {name}"
    )


def _check_flax_params(module: Any, params: Params) -> None:
    """Raises ``ValueError`` naming every param that ``module``'s own ``init`` would not make,
    would make but is missing, or would make with another shape."""
    import flax.linen as nn

    if not hasattr(params, "keys"):
        raise TypeError(
            f"from_flax expects the module's variables or params as a dict, received "
            f"{type(params).__name__}"
        )

    def init(key, d):
        if isinstance(module, nn.RNN):
            return module.init(key, jnp.zeros((1, 1, d)))["params"]
        x = jnp.zeros((1, d))
        return module.init(key, module.initialize_carry(key, x.shape), x)["params"]

    got = _util.shapes(params)
    try:
        d = _util.guess_input_size(init, got) or 1
        want = _util.expected_shapes(init, d)
    except Exception:  # a module Flax cannot initialise abstractly: left to the conversion
        return
    cell = module.cell if isinstance(module, nn.RNN) else module
    what = type(module).__name__ + (f"({type(cell).__name__})" if cell is not module else "")
    what += f" with features={cell.features}"

    def layers(paths):  # Flax's submodules: ii, hf, ... (cell/ii under an RNN)
        return sorted({p.rpartition("/")[0] or p for p in paths})

    if layers(want) != layers(got):
        raise ValueError(
            f"from_flax: the variables do not fit {what}: expected params of "
            f"{', '.join(layers(want))}; found {', '.join(layers(got)) or 'none'}"
        )
    problems = _util.mismatches(want, got)
    if problems:
        shown = "; ".join(problems[:4]) + (
            f"; ({len(problems) - 4} more)" if len(problems) > 4 else ""
        )
        raise ValueError(
            f"from_flax: the variables do not fit {what} and inputs of {d} features: {shown}"
        )


def from_flax(module: Any, variables: Params) -> tuple[Seq, Params]:
    """Converts a Flax linen recurrent cell or ``nn.RNN`` and its variables.

    Args:
      module: an ``nn.LSTMCell``, ``nn.OptimizedLSTMCell``, ``nn.GRUCell``,
        ``nn.SimpleCell``, or an ``nn.RNN`` over one of them (its ``time_major``,
        ``reverse`` and ``keep_order`` are honoured).
      variables: the module's variables (``{"params": ...}``) or its params.

    Returns:
      ``(seq, params)``: ``seq.apply(params, xs, carry=None, lengths=None)`` returns
      ``(carry, ys)`` equal to ``nn.RNN(cell, return_carry=True)`` with ``seq_lengths``
      (for a bare cell: batch-major, left to right). The carry is in Flax's form, ``(c, h)``
      for an LSTM cell. With ``lengths``, outputs past a length are zeros here, where Flax
      leaves what its cell computed on the padding; the valid steps and carries agree.
    """
    import flax.linen as nn

    params = variables.get("params", variables) if hasattr(variables, "get") else variables
    outer = params
    time_major, reverse, keep_order = False, False, False
    cell = module
    if isinstance(module, nn.RNN):
        cell, params = module.cell, params.get("cell", {}) if hasattr(params, "get") else {}
        time_major, reverse, keep_order = module.time_major, module.reverse, module.keep_order
    check = functools.partial(_check_flax_params, module, outer)
    seq_cell, seq_params, is_lstm = _flax_cell(cell, params, check)
    net = recurrent(seq_cell, time_major=time_major, reverse=reverse)

    if is_lstm:
        seq = _wrap(net, lambda s: (s.c, s.h), lambda c, xs: LSTMState(h=c[1], c=c[0]))
    else:
        seq = net
    if not (reverse and not keep_order):
        return seq, seq_params

    def apply(params, xs, carry=None, *, lengths=None, resets=None, key=None):
        carry, ys = seq.apply(params, xs, carry, lengths=lengths, resets=resets, key=key)
        return carry, _util.flip_within_lengths(ys, lengths, time_major)

    return Seq(seq.init, seq.initial_carry, apply), seq_params
