"""Fast paths behind the sequence engine's contract.

:func:`sequential_scan` runs the standard cells (:func:`~seqjax.lstm`, :func:`~seqjax.gru`
with ``reset_after=True``, :func:`~seqjax.simple_rnn`) in float32 by a whole-layer
recurrence: on the CPU, one call of the multi-threaded C++ kernel of
:mod:`seqjax.kernels.cpu` (when it was built at install time); otherwise, and with resets,
the fused XLA recurrences of :mod:`seqjax.kernels.fused`. Both have hand-written backward
passes that compute the weight gradients as matmuls over many steps, handle lengths
(padded batches) as masks and run inside remat chunks; the fused ones also handle resets
(packed segments). They give the same numbers as the plain ``lax.scan`` of ``cell.step``
up to float rounding, and :func:`sequential_scan` returns ``None`` (so the engine takes
the plain path) for any cell or option they do not cover (other cells, non-float32
parameters, per-step remat, forward-mode autodiff: see :func:`forward_mode`).
:func:`disabled` turns the fast paths off (for benchmarks and equivalence tests, and for
``jax.jvp`` of a function jitted on the fast path); it is part of ``jax.jit``'s cache key,
so it applies to functions jitted before it too.
"""

from __future__ import annotations

import contextlib
from typing import Any

import jax
import jax.numpy as jnp

from seqjax._util import Switch
from seqjax.kernels import cpu, fused
from seqjax.typing import Array, Carry, Params

__all__ = [
    "cpu",
    "disabled",
    "enabled",
    "forward_mode",
    "fused",
    "kind",
    "nested_autodiff",
    "sequential_scan",
]

_FAST_PATHS = Switch()


def enabled() -> bool:
    """Whether the fast paths are on (read at trace time)."""
    return _FAST_PATHS.on()


def disabled(flag: bool = True) -> contextlib.AbstractContextManager[None]:
    """Within this context, the engine uses the plain path if ``flag``.

    The switch is part of ``jax.jit``'s cache key (on JAX versions with
    ``jax.make_user_context``): a function jitted outside is traced again inside, so
    ``disabled()`` takes effect on already-jitted functions too.
    """
    return _FAST_PATHS.off(flag)


def forward_mode() -> bool:
    """Whether forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``, the outer pass of
    ``jax.hessian``) is tracing this call, so that the fused path, whose custom VJP has no
    JVP, must give way to the plain scan.

    Read from JAX's trace stack down to the innermost ``jax.jit``: a jitted function's
    trace is cached and reused outside forward mode, so ``jax.jvp(jax.jit(f))`` is not
    detected (run it under :func:`disabled`). Uses JAX internals; where they differ (or
    reverse mode is itself built on JVP traces, ``jax_use_direct_linearize=False``), the
    answer is ``False`` and the behaviour is that of a plain custom VJP.
    """
    try:
        if not jax.config.jax_use_direct_linearize:
            return False
        from jax._src.interpreters import ad

        return on_trace_stack(ad.JVPTrace)
    except Exception:
        return False


def on_trace_stack(trace_type: type | tuple[type, ...]) -> bool:
    """Whether a trace of ``trace_type`` (JAX-internal: ``ad.JVPTrace``,
    ``batching.BatchTrace``) is tracing this call, read from JAX's trace stack down to the
    innermost ``jax.jit``. Raises where JAX's internals differ; callers choose the answer."""
    return traces_on_stack(trace_type) > 0


def traces_on_stack(trace_type: type | tuple[type, ...]) -> int:
    """How many traces of ``trace_type`` are tracing this call, down to the innermost
    ``jax.jit`` (as :func:`on_trace_stack`)."""
    from jax._src import core

    count = 0
    trace = core.unsafe_get_current_trace()
    while trace is not None:
        count += isinstance(trace, trace_type)
        info = getattr(getattr(trace, "frame", None), "debug_info", None)
        if getattr(info, "traced_for", None) == "jit":
            return count
        trace = getattr(trace, "parent_trace", None)
    return count


def nested_autodiff() -> bool:
    """Whether two or more autodiff transformations trace this call (a gradient of a
    gradient), so that a path whose backward pass is itself not differentiable (the CPU
    kernel's) must give way. Unknown internals answer ``True`` (the XLA paths differentiate
    at any order)."""
    try:
        from jax._src.interpreters import ad

        kinds = tuple(t for t in (ad.JVPTrace, getattr(ad, "LinearizeTrace", None)) if t)
        return traces_on_stack(kinds) >= 2
    except Exception:
        return True


def kind(cell: Any) -> fused.Spec | None:
    """The fused recurrence that computes ``cell``: its ``fused`` field, a
    :class:`~seqjax.kernels.fused.Spec` declared beside its step, or ``None``. The
    constructors of :mod:`seqjax.cells` declare one for an LSTM without projection or layer
    norm, a GRU with ``reset_after=True`` and a tanh or relu Elman RNN; the parameters must
    also be float32 (checked at trace time).
    """
    spec = getattr(cell, "fused", None)
    return spec if isinstance(spec, fused.Spec) else None


BLOCK = 16  # steps per block of the fused backward passes (see seqjax.kernels.fused)


def sequential_scan(
    cell: Any,
    params: Params,
    xs: Array,
    carry0: Carry,
    *,
    reverse: bool,
    unroll: int | bool,
    valid: Array | None = None,
    resets: Array | None = None,
    restart: Carry | None = None,
    batch_major: bool = False,
) -> tuple[Carry, Array] | None:
    """The engine's sequential scan over ``xs: [t, *b, d]`` by a fused recurrence.

    Same contract as the plain path without ``remat``: returns ``(carry, ys: [t, *b, h])``,
    or ``None`` when no fast path applies. ``valid: [t, *b]`` (a step is within its
    sequence's length: ``steps < lengths``, a prefix of each sequence, with ``xs`` zero
    elsewhere) and ``resets: [t, *b]`` (the carry restarts from ``restart``, by default
    ``carry0``, before the step) are booleans or ``None``; ``restart`` applies only with
    ``resets``.
    """
    if not enabled() or forward_mode():
        return None
    spec = kind(cell)
    if spec is None or xs.size == 0:  # no steps or an empty batch: the plain path's shapes
        return None
    leaves, treedef = jax.tree.flatten(carry0)
    arrays = [params["w_i"], params["w_h"], xs, *leaves]
    if any(jnp.asarray(a).dtype != jnp.float32 for a in arrays):
        return None
    if xs.shape[-1] != params["w_i"].shape[0]:
        return None  # the plain path raises the informative error
    t, batch_shape = xs.shape[0], xs.shape[1:-1]
    xs_flat = xs.reshape(t, -1, xs.shape[-1])
    flat = tuple(c.reshape(-1, c.shape[-1]) for c in leaves)
    carry_flat = flat if len(flat) > 1 else flat[0]
    valid, resets = (
        None if m is None else jnp.broadcast_to(m, (t, *batch_shape)).reshape(t, -1)
        for m in (valid, resets)
    )
    if cpu.applies(spec, params, resets):
        carry, hs = cpu.scan(
            spec, params, xs_flat, carry_flat, valid, reverse=reverse, batch_major=batch_major
        )
    else:
        restart = None if resets is None else carry0 if restart is None else restart
        if restart is not None:
            restart = tuple(c.reshape(-1, c.shape[-1]) for c in jax.tree.leaves(restart))
            restart = restart if len(restart) > 1 else restart[0]
        weights = (params["w_i"], params["w_h"], params.get("b"), params.get("b_hn"))
        carry, hs = fused.fused_scan(
            spec,
            reverse,
            unroll,
            BLOCK,
            weights,
            xs_flat,
            carry_flat,
            (valid, resets, restart),
        )
    carry = jax.tree.unflatten(
        treedef, [c.reshape(*batch_shape, -1) for c in jax.tree.leaves(carry)]
    )
    return carry, hs.reshape(t, *batch_shape, -1)
