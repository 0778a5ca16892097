r"""Fused recurrences with hand-written backward passes for the standard cells.

A cell declares its fused step where it declares its plain one: the constructors of
:mod:`seqjax.cells` put a :class:`Spec` (forward step and hand-written backward step) in
``Cell.fused``; this module holds the :class:`Spec` type and the driver that runs any of
them.

:func:`fused_scan` runs a whole layer, input projection included, over time-major inputs
``xs: [t, B, d]`` and has a :func:`jax.custom_vjp`. The backward pass does per step only the
recurrent matmul :math:`\partial h_{t-1} = \partial a_t W_h^\top` and the gate arithmetic.
Time is cut into blocks of ``block`` steps, and after each block its input and weight
gradients are large matmuls over all its steps,

.. math::
    \partial W_h \mathrel{+}= H_{\mathrm{prev}}^\top \partial A, \quad
    \partial W_i \mathrel{+}= X^\top \partial U, \quad \partial X = \partial U\, W_i^\top,

contracting time and batch at once, instead of one small matmul and one ``[p, k]``
accumulation per step as the autodiff of ``lax.scan`` does. Blocks rather than the whole
sequence keep the cotangents of the pre-activations one block at a time: only the
residuals (activated gates, cell state, outputs) are stored for every step. On XLA's CPU
backend a call's temporaries are one allocation, which past glibc's mmap threshold
(32 MiB) comes as fresh pages on every call, so a smaller working set is also faster.

Choices measured with ``scripts/bench.py`` on a 2-core CPU:

* The forward pass projects each step's inputs inside the step (``x_t W_i``, as Flax
  does), instead of all steps at once: the ``[B, k]`` result feeds the gate arithmetic from
  cache, and a GRU's forward pass ran twice as fast as with the hoisted ``[t, B, k]``
  projection (an LSTM's and an Elman RNN's about as fast).
* The backward pass loads each step's residuals one step ahead (:func:`_scan_prefetch`):
  XLA's CPU backend otherwise fuses the per-step dynamic slices into the elementwise gate
  arithmetic, which then runs several times slower. The Elman RNN's backward pass, whose
  gate arithmetic is one multiply, instead unrolls each block with static slices
  (:attr:`Spec.static_steps`): its train step ran 4-13% faster that way, an LSTM's and a
  GRU's 14-30% slower.
* The logistic function is :math:`\sigma(x) = \tfrac12 \tanh(\tfrac12 x) + \tfrac12`, exact
  in real arithmetic and one vectorised ``tanh`` instead of an ``exp`` and a division; an
  LSTM's four gates take a single ``tanh`` over ``[B, 4h]``, and its backward gate
  arithmetic is one expression over ``[B, 4h]``. The derivatives come from the stored
  activations (:math:`\sigma' = \sigma(1 - \sigma)`, :math:`\tanh' = 1 - \tanh^2`).

* ``unroll=1`` (the engine's default) measured best overall: with ``unroll=2`` an LSTM's
  train step ran 0.87-0.90x as fast, its forward pass 1.02-1.06x, a GRU's mixed
  (0.97-1.14x), in one interleaved run.

Padded batches and packed segments run here too: a step past its sequence's length keeps
the carry and outputs zeros, and its cotangents pass the carry's through untouched (its
gate and input gradients are exact zeros; the engine zeroes the padding first, so no NaN
or inf it held gets in); a reset restarts the carry from a given one, whose cotangent
collects those of the restarted steps. The steps within a length must come first, as
``lengths`` makes them: the backward pass takes ``h0`` as the ``h`` before a step that
follows steps past the length (true only right to left, where those run first).

Forward-mode autodiff (``jax.jvp``, ``jax.jacfwd``) does not apply to a
:func:`jax.custom_vjp`: the engine then traces the plain scan instead
(:func:`seqjax.kernels.forward_mode`), and ``jax.hessian`` (forward over reverse) works
either way. A function jitted before ``jax.jvp`` reaches it keeps its cached fused trace;
under :func:`seqjax.kernels.disabled` it is traced again on the plain scan.

Shapes: ``t`` steps, ``B`` flattened batch, ``d`` inputs, ``h`` hidden units, ``k`` gate
pre-activations (``4h``, ``3h``, ``h``).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from seqjax._util import tree_where
from seqjax.typing import Array

__all__ = ["Spec", "fused_scan", "sigmoid"]


def sigmoid(x: Array) -> Array:
    r""":math:`\sigma(x) = \tfrac12 \tanh(\tfrac12 x) + \tfrac12`."""
    return 0.5 * jnp.tanh(0.5 * x) + 0.5


def _dot_t(a: Array, w: Array) -> Array:
    """``a @ w.T`` without materialising the transpose."""
    return jax.lax.dot_general(a, w, (((a.ndim - 1,), (1,)), ((), ())))


def _contract(a: Array, b: Array) -> Array:
    """``sum_{t, B} a[t, B, :]^T b[t, B, :]``: one matmul over time and batch."""
    return jax.lax.dot_general(a, b, (((0, 1), (0, 1)), ((), ())))


class Spec(NamedTuple):
    """One cell's step and its hand-written backward step (a ``Cell.fused``).

    ``forward(w_h, b_h, carry, u) -> (carry, h, residual)`` with ``u = x W_i + b``.
    ``backward(w_h_t, dcarry, dh, residual, h_prev, h) -> (dcarry_prev, du, drec)``, with
    ``w_h_t = W_h^T: [k, h]``, where
    ``dh`` is the cotangent of the step's output ``h``, ``du`` that of ``u`` and ``drec``
    that of the recurrent pre-activation ``h_prev W_h (+ b_h)``, or ``None`` when it equals
    ``du`` (the cell adds ``u`` and ``h_prev W_h``); ``b_h`` (GRU's ``b_hn``) adds to the
    trailing columns of ``h_prev W_h``.
    """

    forward: Callable[..., tuple[Any, Array, Any]]
    backward: Callable[..., tuple[Any, Array, Array]]
    # The backward pass unrolls each block's steps (static slices, no loop) instead of
    # looping with prefetched residuals: measured faster for the Elman RNN's one-line
    # gate arithmetic, slower for LSTM's and GRU's, whose fusions then read several
    # slices of the block.
    static_steps: bool = False
    # The cell's equations by name ("lstm", "gru", "simple_rnn_tanh", "simple_rnn_relu"),
    # for the paths that run a whole layer in a kernel of their own (seqjax.kernels.cpu,
    # seqjax.kernels.cudnn).
    name: str = ""


# --------------------------------------------------------------------------- driver


def _split_time(a: Array, block: int) -> tuple[Array, Array | None]:
    """``[t, ...] -> ([t // block, block, ...], remainder [t % block, ...] or None)``."""
    n, r = divmod(a.shape[0], block)
    main = a[: n * block].reshape(n, block, *a.shape[1:])
    return main, (a[n * block :] if r else None)


def _join_time(main: Any, rem: Any) -> Any:
    """Inverse of :func:`_split_time` on pytrees."""

    def join(m, r):
        m = m.reshape(-1, *m.shape[2:])
        return m if r is None else jnp.concatenate([m, r], axis=0)

    if rem is None:
        return jax.tree.map(lambda m: join(m, None), main)
    return jax.tree.map(join, main, rem)


def _parts(n_main: int, has_rem: bool, reverse: bool) -> list[str]:
    """The order in which the main blocks and the remainder (the last steps) run."""
    parts = (["main"] if n_main else []) + (["rem"] if has_rem else [])
    return parts[::-1] if reverse else parts


def _scan_prefetch(f, carry, xs, *, reverse, unroll):
    """``lax.scan(f, carry, xs)``, with each step's slice of ``xs`` loaded one step ahead.

    XLA's CPU backend fuses a scan's per-step dynamic slices into their elementwise
    consumers, and such fusions run about ten times slower than the same fusions over
    plain arrays (measured on the gate arithmetic). Loading the next step's slices into
    the carry materialises them instead.
    """
    n = jax.tree.leaves(xs)[0].shape[0]

    def load(j):
        return jax.tree.map(lambda a: jax.lax.dynamic_index_in_dim(a, j, keepdims=False), xs)

    def body(c, k):
        carry, cur = c
        nxt = load(jnp.clip(k - 1 if reverse else k + 1, 0, n - 1))
        carry, y = f(carry, cur)
        return (carry, nxt), y

    first = load(n - 1 if reverse else 0)
    k = jnp.arange(n, dtype=jnp.int32)
    (carry, _), ys = jax.lax.scan(body, (carry, first), k, reverse=reverse, unroll=unroll)
    return carry, ys


def _run(spec, reverse, unroll, params, xs, carry0, masks, save):
    w_i, w_h, b, b_h = params
    valid, resets, restart = masks

    def step(carry, inp):
        x, valid, reset = inp
        # The step's own input projection: its [B, k] result stays in cache for the gate
        # arithmetic (measured faster on CPU than reading a hoisted [t, B, k] projection).
        u = x @ w_i
        u = u if b is None else u + b
        start = carry if reset is None else tree_where(reset, restart, carry)
        new, h, res = spec.forward(w_h, b_h, start, u)
        if valid is not None:  # past a sequence's length: carry kept, output zero
            new = tree_where(valid, new, carry)
            h = jnp.where(valid[:, None], h, 0.0)
        return new, ((h, res) if save else h)

    return jax.lax.scan(step, carry0, (xs, valid, resets), reverse=reverse, unroll=unroll)


@functools.partial(jax.custom_vjp, nondiff_argnums=(0, 1, 2, 3))
def fused_scan(
    spec: Spec,
    reverse: bool,
    unroll: int | bool,
    block: int,
    params: tuple[Array, Array, Array | None, Array | None],
    xs: Array,
    carry0: Any,
    masks: tuple[Array | None, Array | None, Any] = (None, None, None),
) -> tuple[Any, Array]:
    """Runs ``spec``'s cell over ``xs: [t, B, d]``; returns ``(carry, hs: [t, B, h])``.

    Args:
      spec: the cell's :class:`Spec` (its ``Cell.fused``, declared beside its step in
        :mod:`seqjax.cells`).
      reverse: run right to left.
      unroll: steps unrolled per loop iteration.
      block: steps per block of the backward pass (see the module docstring).
      params: ``(w_i: [d, k], w_h: [h, k], b: [k] or None, b_h: [m] or None)``.
      xs: time-major inputs.
      carry0: the initial carry, leaves ``[B, h]``.
      masks: ``(valid, resets, restart)``: ``valid`` and ``resets`` are ``[t, B]`` booleans
        or ``None``. Where ``valid`` is false (past a sequence's length) a step keeps the
        carry and outputs zeros; ``valid`` must hold a prefix of each sequence's steps
        (``steps < lengths``; see the module docstring), with zeros in ``xs`` elsewhere.
        Where ``resets`` is true the carry restarts from ``restart`` (a carry like
        ``carry0``; the sequence's initial carry, also when ``carry0`` is that of a remat
        chunk) before the step. The sequence engine's semantics: see
        :func:`seqjax.recurrent`.
    """
    del block  # the backward pass's
    return _run(spec, reverse, unroll, params, xs, carry0, masks, save=False)


def _fused_fwd(spec, reverse, unroll, block, params, xs, carry0, masks=(None, None, None)):
    del block
    carry, (hs, res) = _run(spec, reverse, unroll, params, xs, carry0, masks, save=True)
    return (carry, hs), (params, xs, _h(carry0), hs, res, masks)


def _h(carry: Any) -> Array:
    """The output part ``h`` of a carry (an LSTM's ``(h, c)``, the others' ``h``)."""
    return carry[0] if isinstance(carry, tuple) else carry


def _fused_bwd(spec, reverse, unroll, block, saved, cts):
    (w_i, w_h, b, b_h), xs, h0, hs, res, masks = saved
    valid_all, _, restart = masks
    dcarry, dhs = cts
    t = xs.shape[0]
    # W_h^T materialised once: XLA would fold a plain transpose into the per-step dot, and
    # that transposed-operand dot measured 15-30% slower on CPU.
    w_h_t = jax.lax.optimization_barrier(w_h.T)
    zeros = functools.partial(jax.tree.map, jnp.zeros_like)

    def h_prev_at(idx, reset):
        """``h`` the step ``idx`` started from: the output of the step run before it, or
        ``h0`` for the first step run and after steps past the length (which, ``valid``
        being a prefix, run only before all valid steps); after a reset, ``restart``'s."""
        j = idx + 1 if reverse else idx - 1
        jc = jnp.clip(j, 0, t - 1)
        ok = jnp.broadcast_to((j >= 0) & (j < t), h0.shape[:1])
        if valid_all is not None:
            ok = ok & jax.lax.dynamic_index_in_dim(valid_all, jc, keepdims=False)
        h_prev = jnp.where(ok[:, None], jax.lax.dynamic_index_in_dim(hs, jc, keepdims=False), h0)
        return h_prev if reset is None else jnp.where(reset[:, None], _h(restart), h_prev)

    def steps(acc, blk):
        (dcarry, drestart), dw_i, dw_h, db, db_h = acc
        idx, x_blk, dh_blk, h_blk, res_blk, valid_blk, reset_blk = blk

        def step(c, inp):
            dcarry, drestart = c
            i, dh, h, r, valid, reset = inp
            h_prev = h_prev_at(i, reset)
            if valid is None:
                dcell = dcarry
            else:  # a step past the length passes the carry's cotangent through
                dcell = tree_where(valid, dcarry, zeros(dcarry))
                dh = jnp.where(valid[:, None], dh, 0.0)
            # Past the length the cotangents are zero, hence so are d_u, d_rec and dstart:
            # the engine zeroes the padding, so the residuals there are finite.
            dstart, d_u, d_rec = spec.backward(w_h_t, dcell, dh, r, h_prev, h)
            if reset is not None:  # a restarted step's carry came from restart
                drestart = jax.tree.map(jnp.add, drestart, tree_where(reset, dstart, zeros(dstart)))
                dstart = tree_where(reset, zeros(dstart), dstart)
            dprev = dstart if valid is None else tree_where(valid, dstart, dcarry)
            return (dprev, drestart), (d_u, d_rec, h_prev)

        scan = jax.lax.scan if spec.static_steps else _scan_prefetch
        (dcarry, drestart), (d_u, d_rec, h_prev) = scan(
            step,
            (dcarry, drestart),
            (idx, dh_blk, h_blk, res_blk, valid_blk, reset_blk),
            reverse=not reverse,
            unroll=True if spec.static_steps else unroll,
        )
        d_rec = d_u if d_rec is None else d_rec
        dw_i = dw_i + _contract(x_blk, d_u)
        dw_h = dw_h + _contract(h_prev, d_rec)
        if db is not None:
            db = db + jnp.sum(d_u, axis=(0, 1))
        if db_h is not None:
            db_h = db_h + jnp.sum(d_rec[..., -db_h.shape[0] :], axis=(0, 1))
        return ((dcarry, drestart), dw_i, dw_h, db, db_h), _dot_t(d_u, w_i)

    # With resets, the cotangents of restart from restarted steps add up along the way.
    drestart = None if restart is None else zeros(dcarry)
    acc = ((dcarry, drestart), zeros(w_i), zeros(w_h), zeros(b), zeros(b_h))
    inputs = (jnp.arange(t, dtype=jnp.int32), xs, dhs, hs, res, *masks[:2])
    main = jax.tree.map(lambda a: _split_time(a, block)[0], inputs)
    rem = jax.tree.map(lambda a: _split_time(a, block)[1], inputs)
    has_rem = t % block != 0
    dxs = {}
    # The backward pass visits the parts in the opposite order of the forward pass.
    for part in _parts(t // block, has_rem, not reverse):
        if part == "main":
            acc, dxs["main"] = jax.lax.scan(steps, acc, main, reverse=not reverse)
        else:
            acc, dxs["rem"] = steps(acc, rem)
    (dcarry, drestart), dw_i, dw_h, db, db_h = acc
    if "main" not in dxs:
        dx = dxs["rem"]
    else:
        dx = _join_time(dxs["main"], dxs.get("rem"))
    return (dw_i, dw_h, db, db_h), dx, dcarry, (None, None, drestart)


fused_scan.defvjp(_fused_fwd, _fused_bwd)
