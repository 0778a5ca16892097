r"""The LSTM recurrence as one multi-threaded CPU kernel, through XLA's FFI.

XLA's CPU runtime runs the ops of a loop body one after another on one thread, and splits
only large matmuls across threads; an LSTM step's recurrent matmul ``[B, h] x [h, 4h]`` is
too small, so the fused recurrence of :mod:`seqjax.kernels.fused` uses one core where
PyTorch's oneDNN kernel uses all of them. The C++ kernel in ``csrc/recurrent.cc``
(compiled when seqjax is installed, as the extension ``seqjax.kernels._recurrent``) runs a
layer's whole recurrence in one call and splits every step over threads by hidden unit:
each thread computes the four gate columns of its own units, so the gate arithmetic needs
no other thread's results and a step costs one barrier. The input projection
:math:`U = X W_i + b` and, in the backward pass, the weight and input gradients

.. math::
    \partial W_h = H_{\mathrm{prev}}^\top \partial A, \quad
    \partial W_i = X^\top \partial A, \quad \partial X = \partial A\, W_i^\top

stay in XLA as large matmuls over all steps (:math:`\partial A` the gates' pre-activation
cotangents, which the kernel's backward pass returns for every step).

The sequence engine takes this path for the standard LSTM (:func:`~seqjax.lstm` without
projection or layer norm) in float32 on the CPU backend, with lengths, ``reverse``, any
batch axes and inside remat chunks; resets, forward-mode autodiff and ``jax.vmap`` (seen
down to the innermost ``jax.jit``) keep the fused recurrence, as does a machine where the
extension did not build (no C++ compiler at install time: :func:`available` is then
``False`` and :func:`why_unavailable` says why). :func:`disabled` turns off this path
alone; :func:`seqjax.kernels.disabled` turns off every fast path. The kernel's numbers are
the plain path's up to float rounding (its ``tanh`` is a rational approximation with a
relative error below 4e-7, as XLA's is); the tests compare outputs, carries and gradients.

Threads: ``SEQJAX_NUM_THREADS`` (default: the CPUs this process may run on, at most 8),
used when a step has enough work (at least 8 hidden units and 32k multiply-adds a thread);
a call that finds the threads busy with another runs on one.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.typing import Array, Carry, Params

__all__ = ["applies", "available", "disabled", "lstm_scan", "why_unavailable"]

_PREFIX = "seqjax_"
_make_context = getattr(jax, "make_user_context", None)
_DISABLED = None if _make_context is None else _make_context(default_value=False)
_state = {"disabled": False}


@functools.cache
def _load() -> tuple[Any, str]:
    """The extension module with its handlers registered, or ``(None, reason)``."""
    try:
        from seqjax.kernels import _recurrent  # type: ignore[attr-defined]
    except ImportError as e:
        return None, f"the extension seqjax.kernels._recurrent was not built ({e})"
    try:
        for name, capsule in _recurrent.handlers().items():
            jax.ffi.register_ffi_target(_PREFIX + name, capsule, platform="cpu")
    except Exception as e:  # an XLA without this FFI version
        return None, f"registering the kernels with XLA failed ({e})"
    return _recurrent, ""


def available() -> bool:
    """Whether the CPU kernels were built and registered with XLA."""
    return _load()[0] is not None


def why_unavailable() -> str:
    """Why :func:`available` is ``False`` (empty when it is ``True``)."""
    return _load()[1]


def max_threads() -> int:
    """Threads a call may use (``SEQJAX_NUM_THREADS``); 0 without the kernels."""
    module = _load()[0]
    return 0 if module is None else int(module.max_threads())


def _enabled() -> bool:
    return not (_state["disabled"] if _DISABLED is None else _DISABLED.value)


@contextlib.contextmanager
def disabled(flag: bool = True) -> Iterator[None]:
    """Within this context, LSTM layers take the fused XLA recurrence instead of the CPU
    kernel if ``flag`` (part of ``jax.jit``'s cache key, as :func:`seqjax.kernels.disabled`)."""
    off = not _enabled() or bool(flag)
    if _DISABLED is not None:
        with _DISABLED(off):
            yield
        return
    prev = _state["disabled"]
    _state["disabled"] = off
    try:
        yield
    finally:
        _state["disabled"] = prev


def _on_cpu() -> bool:
    try:
        return jax.default_backend() == "cpu"
    except Exception:
        return False


def applies(spec: Any, params: Params, resets: Array | None) -> bool:
    """Whether the LSTM kernel runs this layer: ``spec`` (the cell's fused spec, already
    checked float32 by the caller) is the standard LSTM's, there are no resets, the backend
    is the CPU and neither forward-mode autodiff nor ``vmap`` is tracing the call."""
    from seqjax import kernels
    from seqjax.kernels import cudnn

    if spec.name != "lstm" or resets is not None or not _enabled():
        return False
    if "b" in params and jnp.asarray(params["b"]).dtype != jnp.float32:
        return False
    return _on_cpu() and available() and not kernels.forward_mode() and not cudnn.under_vmap()


def _call(name: str, outs: list[tuple[tuple[int, ...], Any]], *args: Array, reverse: bool):
    return jax.ffi.ffi_call(
        _PREFIX + name,
        [jax.ShapeDtypeStruct(shape, dtype) for shape, dtype in outs],
        vmap_method="sequential",  # a vmap the engine did not see (jitted inside it)
    )(*args, reverse=np.int64(reverse))


@functools.partial(jax.custom_vjp, nondiff_argnums=(0,))
def _lstm(reverse: bool, w_i, w_h, b, xs, h0, c0, valid):
    t, n, h = xs.shape[0], xs.shape[1], w_h.shape[0]
    f32 = jnp.float32
    hs, h_n, c_n = _call(
        "lstm_forward",
        [((t, n, h), f32), ((n, h), f32), ((n, h), f32)],
        xs, w_i, w_h, b, h0, c0, valid, reverse=reverse,
    )  # fmt: skip
    return hs, h_n, c_n


def _lstm_fwd(reverse, w_i, w_h, b, xs, h0, c0, valid):
    t, n, h = xs.shape[0], xs.shape[1], w_h.shape[0]
    f32 = jnp.float32
    hs, h_n, c_n, gates, c_prev = _call(
        "lstm_forward_train",
        [((t, n, h), f32), ((n, h), f32), ((n, h), f32), ((t, n, 4 * h), f32), ((t, n, h), f32)],
        xs, w_i, w_h, b, h0, c0, valid, reverse=reverse,
    )  # fmt: skip
    return (hs, h_n, c_n), (w_i, w_h, xs, hs, h0, gates, c_prev, valid)


def _lstm_bwd(reverse, res, cts):
    w_i, w_h, xs, hs, h0, gates, c_prev, valid = res
    dhs, dh_n, dc_n = cts
    f32 = jnp.float32
    dxs, dw_i, dw_h, db, dh0, dc0 = _call(
        "lstm_backward",
        [(xs.shape, f32), (w_i.shape, f32), (w_h.shape, f32), (w_h.shape[-1:], f32),
         (h0.shape, f32), (h0.shape, f32)],
        xs, w_i, w_h, hs, h0, gates, c_prev, dhs, dh_n, dc_n, valid, reverse=reverse,
    )  # fmt: skip
    return dw_i, dw_h, db, dxs, dh0, dc0, None


_lstm.defvjp(_lstm_fwd, _lstm_bwd)


def lstm_scan(
    params: Params,
    xs: Array,
    carry0: Carry,
    valid: Array | None,
    *,
    reverse: bool,
) -> tuple[Carry, Array]:
    """An LSTM layer over time-major ``xs: [t, B, d]`` by the CPU kernel.

    ``carry0`` is ``(h, c)``, each ``[B, h]``, and ``valid: bool[t, B]`` (or
    ``None``) marks the steps within each sequence's length: elsewhere a step keeps the
    carry and outputs zeros. Returns ``(carry, hs: [t, B, h])``, as
    :func:`seqjax.kernels.fused.fused_scan` does.
    """
    w_i, w_h = params["w_i"], params["w_h"]
    b = params.get("b")
    b = jnp.zeros(w_h.shape[-1:], jnp.float32) if b is None else b
    t, n = xs.shape[:2]
    mask = jnp.ones((t, n), jnp.uint8) if valid is None else valid.astype(jnp.uint8)
    hs, h_n, c_n = _lstm(bool(reverse), w_i, w_h, b, xs, carry0[0], carry0[1], mask)
    return (h_n, c_n), hs
