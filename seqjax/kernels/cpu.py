r"""The standard cells' recurrence as one multi-threaded CPU kernel, through XLA's FFI.

XLA's CPU runtime runs the ops of a loop body one after another on one thread, and splits
only large matmuls across threads; a recurrent step's matmul (``[B, h] x [h, 4h]`` for an
LSTM) is too small, so the fused recurrences of :mod:`seqjax.kernels.fused` use one core
where PyTorch's oneDNN kernel uses all of them. The C++ kernel in ``csrc/recurrent.cc``
(compiled when seqjax is installed, as the extension ``seqjax.kernels._recurrent``) runs a
layer's whole recurrence in one call. It cuts the hidden units into lanes and shares the
lanes of every step out among the threads (each first takes its own lanes, then helps
with the others', so a thread slowed down for a while holds the others up by one lane at
most); a lane's gate columns need no other lane's results, so a step costs one
synchronisation. Each step is one matmul of ``[x_t, h]`` against a lane's columns of
``[W_i; W_h]`` (two for the GRU, whose reset gate multiplies only the recurrent part).
The backward pass runs in the kernel too: per step the carry's and the input's
cotangents, and every 256 rows the weight gradients of a lane's gate columns as block
matmuls,

.. math::
    \partial W_i \mathrel{+}= X^\top \partial A, \quad
    \partial W_h \mathrel{+}= H_{\mathrm{prev}}^\top \partial A,

with :math:`\partial A` the gates' pre-activation cotangents of those rows.

The sequence engine takes this path for the standard LSTM (:func:`~seqjax.lstm` without
projection or layer norm), GRU (``reset_after=True``) and Elman RNN (tanh or relu) in
float32 on the CPU backend, with lengths, ``reverse``, any batch axes and inside remat
chunks; resets, forward-mode autodiff, gradients of gradients and ``jax.vmap`` (seen down
to the innermost ``jax.jit``) keep the fused recurrences, as does a machine where the
extension did not build (no C++ compiler at install time: :func:`available` is then
``False`` and :func:`why_unavailable` says why). A custom call has no compatibility
guarantee across versions, so ``jax.export`` refuses a function traced on this path: trace
it under :func:`disabled` (or :func:`seqjax.kernels.disabled`) to export it.
:func:`disabled` turns off this path alone; :func:`seqjax.kernels.disabled` turns off every
fast path. The kernel's numbers are the plain path's up to float rounding (its ``tanh`` is
a rational approximation with a relative error below 4e-7); the tests compare outputs,
carries and gradients, and check that one thread and several give bitwise the same
numbers (the lanes depend on the layer's size only).

Threads: ``SEQJAX_NUM_THREADS`` (default: the CPUs this process may run on, at most 8),
used when a step has enough work (at least 8 hidden units and 32k multiply-adds a thread,
and no more threads than lanes: one per 32 units, at most 8); a call that finds the
threads busy with another runs on one.
"""

from __future__ import annotations

import contextlib
import functools
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax._util import Switch
from seqjax.typing import Array, Params

__all__ = [
    "applies",
    "available",
    "disabled",
    "keep_freed_memory",
    "max_threads",
    "scan",
    "why_unavailable",
]

_PREFIX = "seqjax_"
_KERNEL = Switch()


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


def disabled(flag: bool = True) -> contextlib.AbstractContextManager[None]:
    """Within this context, layers of the standard cells take the fused XLA recurrences
    instead of the CPU kernel if ``flag`` (part of ``jax.jit``'s cache key, as
    :func:`seqjax.kernels.disabled`)."""
    return _KERNEL.off(flag)


# glibc's mallopt parameters (malloc.h)
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


def keep_freed_memory() -> bool:
    """Keep the memory this process frees for its next allocations (glibc on Linux).

    XLA's CPU runtime allocates a compiled program's temporaries as one block on every
    call and frees it after. glibc maps a block above 32 MiB fresh from the kernel and
    unmaps it on free, and shrinks its heaps when their free top grows, so each call
    faults in every page of its temporaries again: a train step of the GRU at batch 64,
    time 128, hidden 256 (48 MiB of temporaries, mostly the CPU kernel's residuals) took
    3,600 page faults a call. Where fresh pages are dear (a virtual machine whose host
    takes back the guest's freed memory), that step took 145-165 ms in some rounds
    against 105-120 in others; with freed memory kept, 105-110 ms in every round.
    PyTorch's LSTM maps fresh memory at that size too and gains as much.

    After this call glibc serves every allocation from its heaps and keeps freed memory
    there (``mallopt(M_MMAP_MAX, 0)``, ``mallopt(M_TRIM_THRESHOLD, 2**31 - 1)``). The
    cost: the process keeps its peak heap instead of returning memory to the system. It
    changes the allocator of the whole process (every library in it), for allocations
    made after the call; ``GLIBC_TUNABLES=glibc.malloc.mmap_max=0:glibc.malloc.
    trim_threshold=2147483647`` does the same from process start.

    Returns whether the settings were applied (``False`` where the C library has no
    ``mallopt``, as on macOS or with musl).
    """
    import ctypes

    try:
        mallopt = ctypes.CDLL(None).mallopt
    except (OSError, AttributeError):
        return False
    mallopt.argtypes, mallopt.restype = [ctypes.c_int, ctypes.c_int], ctypes.c_int
    return bool(mallopt(_M_MMAP_MAX, 0)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def _on_cpu() -> bool:
    try:
        return jax.default_backend() == "cpu"
    except Exception:
        return False


@functools.cache
def _cells() -> dict[str, tuple[int, int, int]]:
    """Cell name -> (the kernel's code, gate groups, residual groups), read once."""
    module = _load()[0]
    return {} if module is None else dict(module.cells())


def applies(spec: Any, params: Params, resets: Array | None) -> bool:
    """Whether the CPU kernel runs this layer: ``spec`` (the cell's fused spec, already
    checked float32 by the caller) names a cell the kernel has, there are no resets, the
    backend is the CPU and neither forward-mode autodiff, a second reverse-mode pass (a
    gradient of a gradient: the kernel's backward pass has no derivative of its own) nor
    ``vmap`` is tracing the call."""
    from seqjax import kernels
    from seqjax.kernels import cudnn

    if resets is not None or not _KERNEL.on() or not _on_cpu() or spec.name not in _cells():
        return False
    if any(jnp.asarray(params[k]).dtype != jnp.float32 for k in ("b", "b_hn") if k in params):
        return False
    return not (kernels.forward_mode() or kernels.nested_autodiff() or cudnn.under_vmap())


def _call(name: str, outs, *args: Array, cell: int, reverse: bool, batch_major: bool):
    return jax.ffi.ffi_call(
        _PREFIX + name,
        [jax.ShapeDtypeStruct(shape, jnp.float32) for shape in outs],
        vmap_method="sequential",  # a vmap the engine did not see (jitted inside it)
    )(
        *args,
        cell=np.int64(cell),
        reverse=np.int64(reverse),
        batch_major=np.int64(batch_major),
    )


def _rows(xs: Array, batch_major: bool) -> tuple[int, int]:
    """``(t, B)`` of ``xs``: ``[t, B, d]``, or ``[B, t, d]`` batch-major."""
    return (xs.shape[1], xs.shape[0]) if batch_major else (xs.shape[0], xs.shape[1])


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2))
def _run(name: str, reverse: bool, batch_major: bool, w_i, w_h, b, bh, xs, h0, c0, valid):
    code = _cells()[name][0]
    h = w_h.shape[0]
    ys, h_n, c_n = _call(
        "forward", [(*xs.shape[:2], h), h0.shape, h0.shape],
        xs, w_i, w_h, b, bh, h0, c0, valid, cell=code, reverse=reverse, batch_major=batch_major,
    )  # fmt: skip
    return ys, h_n, c_n


def _run_fwd(name, reverse, batch_major, w_i, w_h, b, bh, xs, h0, c0, valid):
    code, _, residuals = _cells()[name]
    h = w_h.shape[0]
    t, n = _rows(xs, batch_major)
    ys, h_n, c_n, res = _call(
        "forward_train",
        [(*xs.shape[:2], h), h0.shape, h0.shape, (t, n, residuals * h)],
        xs, w_i, w_h, b, bh, h0, c0, valid, cell=code, reverse=reverse, batch_major=batch_major,
    )  # fmt: skip
    return (ys, h_n, c_n), (w_i, w_h, b, bh, xs, h0, ys, res, valid)


def _run_bwd(name, reverse, batch_major, saved, cts):
    w_i, w_h, b, bh, xs, h0, ys, res, valid = saved
    dys, dh_n, dc_n = cts
    grads = _call(
        "backward",
        [xs.shape, w_i.shape, w_h.shape, b.shape, bh.shape, h0.shape, h0.shape],
        xs, w_i, w_h, b, bh, h0, ys, res, dys, dh_n, dc_n, valid,
        cell=_cells()[name][0], reverse=reverse, batch_major=batch_major,
    )  # fmt: skip
    dxs, dw_i, dw_h, db, dbh, dh0, dc0 = grads
    return dw_i, dw_h, db, dbh, dxs, dh0, dc0, None


_run.defvjp(_run_fwd, _run_bwd)


def scan(
    spec: Any,
    params: Params,
    xs: Array,
    carry0: Array | tuple[Array, Array],
    valid: Array | None,
    *,
    reverse: bool,
    batch_major: bool = False,
) -> tuple[Array | tuple[Array, Array], Array]:
    """A layer of ``spec``'s cell over time-major ``xs: [t, B, d]`` by the CPU kernel.

    ``carry0`` is the LSTM's ``(h, c)`` or the other cells' ``h``, each ``[B, h]``, and
    ``valid: bool[t, B]`` (or ``None``) marks the steps within each sequence's length,
    a prefix of each sequence's steps: elsewhere a step keeps the carry and outputs zeros.
    With ``batch_major``, the kernel reads ``xs`` and writes the outputs as ``[B, t, .]``
    (the two transposes around it cancel those of a batch-major caller). Returns
    ``(carry, hs: [t, B, h])``, as :func:`seqjax.kernels.fused.fused_scan` does.
    """
    w_i, w_h = params["w_i"], params["w_h"]
    h = w_h.shape[0]
    b = params.get("b", jnp.zeros(w_h.shape[-1:], jnp.float32))
    bh = params.get("b_hn", jnp.zeros((h,), jnp.float32))
    if isinstance(carry0, tuple):  # the LSTM's (h, c)
        h0, c0, lstm = carry0[0], carry0[1], True
    else:
        h0, c0, lstm = carry0, jnp.zeros_like(carry0), False
    t, n = xs.shape[:2]
    mask = jnp.ones((t, n), jnp.uint8) if valid is None else valid.astype(jnp.uint8)
    x = jnp.swapaxes(xs, 0, 1) if batch_major else xs
    ys, h_n, c_n = _run(
        spec.name, bool(reverse), bool(batch_major), w_i, w_h, b, bh, x, h0, c0, mask
    )
    ys = jnp.swapaxes(ys, 0, 1) if batch_major else ys
    return ((h_n, c_n) if lstm else h_n), ys
