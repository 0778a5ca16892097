r"""The sequence engine: run a :class:`~seqjax.cells.Cell` over whole sequences.

A :class:`Seq` is a ``NamedTuple`` ``(init, initial_carry, apply)`` of pure functions:

.. code-block:: python

    layer = seqjax.recurrent(seqjax.lstm(128))
    params = layer.init(key, input_size)
    carry, ys = layer.apply(params, xs, carry=None, lengths=None, resets=None, key=None)

The input projection of every step is one matmul (``cell.project`` on the whole sequence);
only the recurrent part runs inside :func:`jax.lax.scan`.

Semantics shared by every ``apply``:

* ``xs: [*b, t, d]`` (``[t, *b, d]`` with ``time_major=True``, which runs without any
  transpose); any number of leading batch axes, including none.
* ``lengths: int[*b]`` marks right-padded sequences. Outputs at steps ``>= length`` are zeros
  and the returned carry is the one after the last valid step (steps past the length leave
  the carry untouched, so no per-step carries are stored). A length of zero returns the
  initial carry and all-zero outputs. Concrete lengths outside ``[0, t]`` raise
  ``ValueError``; under ``jit`` they cannot be checked and are clipped to ``[0, t]``.
* ``resets: bool[*b, t]`` (``[t, *b]`` time-major) marks the first step of each segment of a
  packed sequence: the carry restarts from the initial carry there. With ``reverse=True``
  the segments are the same and each is run right to left, so a bidirectional layer
  sees each segment as a separate sequence.
* ``reverse=True`` runs right to left; with ``lengths`` each sequence is reversed within its
  own length and outputs stay aligned with their inputs.
* A sequence of length ``t = 0`` returns the initial (or given) carry and ``ys`` with a time
  axis of size 0.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import kernels
from seqjax._util import check_params, combine_linear, step_mask, tree_where
from seqjax.cells import Cell
from seqjax.kernels import cudnn
from seqjax.typing import Array, ArrayLike, Carry, Params, PRNGKey, Shape

__all__ = ["Seq", "recurrent", "scan"]


class Seq(NamedTuple):
    """A whole-sequence function as pure functions.

    Attributes:
      init: ``init(key, input_size) -> params``.
      initial_carry: ``initial_carry(params, batch_shape) -> carry``.
      apply: ``apply(params, xs, carry=None, *, lengths=None, resets=None, key=None)
        -> (carry, ys)``; see the module docstring for the semantics.
    """

    init: Callable[[PRNGKey, int], Params]
    initial_carry: Callable[[Params, Shape], Carry]
    apply: Callable[..., tuple[Carry, Array]]


Remat = None | str | int


def recurrent(
    cell: Cell,
    *,
    reverse: bool = False,
    time_major: bool = False,
    unroll: int | bool = 1,
    remat: Remat = None,
    parallel: bool = False,
    time_shards: Any = None,
) -> Seq:
    """Turns a cell into a :class:`Seq` that runs it over whole sequences.

    Args:
      cell: the :class:`~seqjax.cells.Cell` to run.
      reverse: run right to left (within each sequence's length).
      time_major: ``xs`` is ``[t, *b, d]`` instead of ``[*b, t, d]``.
      unroll: steps unrolled per loop iteration (:func:`jax.lax.scan`'s ``unroll``).
      remat: what the backward pass recomputes instead of storing. ``None``: nothing
        (fastest, memory grows as ``t`` times the per-step activations). ``"step"``: each
        step's gate activations (the carries and input projections are still stored).
        An int ``k``: the sequence is cut in chunks of ``k`` steps and only the carries at
        chunk boundaries are stored; the input projection and the steps of a chunk are
        recomputed in the backward pass, so memory grows as ``t / k + k``. ``"sqrt"``:
        ``k`` near ``sqrt(t)``, a divisor of ``t`` when one lies in ``[sqrt(t), 2 sqrt(t)]``.
      parallel: run the recurrence as an associative scan (O(log t) depth). Needs a cell
        with ``coefficients`` (linear in its carry: :func:`~seqjax.min_gru`,
        :func:`~seqjax.min_lstm`, :func:`~seqjax.lru`, :func:`~seqjax.rg_lru`), and
        raises ``ValueError`` for any other; gives the same outputs, carries and gradients
        as the sequential scan up to float rounding, with lengths, resets and reverse.
      time_shards: with ``parallel``, a ``(jax.sharding.Mesh, axis name)`` pair: the time
        axis is split over that mesh axis, each device scans its chunk and the chunks'
        carries are combined across devices (:func:`seqjax.sharded.linear_scan`).

    Returns:
      A :class:`Seq` whose ``init`` and ``initial_carry`` are the cell's.
    """
    if not isinstance(cell, Cell):
        raise TypeError(f"recurrent expects a seqjax Cell, received {type(cell).__name__}")
    _check_remat(remat)
    if parallel and cell.coefficients is None:
        raise ValueError(
            f"parallel=True needs a cell linear in its carry, with coefficients (such as "
            f"min_gru, min_lstm, lru, rg_lru); {_cell_name(cell)} has none: its step is "
            f"not linear in its carry, so it runs only as a sequential scan"
        )
    if not isinstance(unroll, bool) and (not isinstance(unroll, int) or unroll < 1):
        raise ValueError(f"unroll must be a positive int or a bool, received {unroll!r}")
    if time_shards is not None:
        from seqjax.sharded import check_time_shards

        if not parallel:
            raise ValueError("time_shards needs parallel=True (a cell linear in its carry)")
        check_time_shards(time_shards)
    apply = functools.partial(
        _recurrent_apply,
        cell,
        reverse=bool(reverse),
        time_major=bool(time_major),
        unroll=unroll,
        remat=remat,
        parallel=bool(parallel),
        time_shards=time_shards,
    )
    return Seq(cell.init, cell.initial_carry, apply)


def _cell_name(cell: Cell) -> str:
    """The constructor that built ``cell`` (``slstm``, ``lstm``...), from its step's name."""
    name = getattr(cell.step, "__qualname__", "")
    return f"the {name.split('.')[0]} cell" if ".<locals>." in name else "this cell"


def scan(
    cell: Cell,
    params: Params,
    xs: ArrayLike,
    carry: Carry | None = None,
    *,
    lengths: ArrayLike | None = None,
    resets: ArrayLike | None = None,
    key: PRNGKey | None = None,
    **options: Any,
) -> tuple[Carry, Array]:
    """Shorthand for ``recurrent(cell, **options).apply(params, xs, carry, ...)``."""
    return recurrent(cell, **options).apply(
        params, xs, carry, lengths=lengths, resets=resets, key=key
    )


def reversed_layer(seq: Seq) -> Seq | None:
    """The same recurrent layer running the other way, or ``None`` if ``seq`` is not one."""
    apply = seq.apply
    if isinstance(apply, functools.partial) and apply.func is _recurrent_apply:
        (cell,) = apply.args
        return recurrent(cell, **{**apply.keywords, "reverse": not apply.keywords["reverse"]})
    return None


def layout(xs: Array, time_major: bool) -> tuple[int, Shape]:
    """``(t, batch_shape)`` of ``xs``, checking that it has a time and a feature axis."""
    if xs.ndim < 2:
        want = "[t, *b, d]" if time_major else "[*b, t, d]"
        raise ValueError(
            f"expected xs of shape {want} with at least a time and a feature axis, "
            f"received shape {tuple(xs.shape)}"
        )
    if time_major:
        return xs.shape[0], tuple(xs.shape[1:-1])
    return xs.shape[-2], tuple(xs.shape[:-2])


def check_lengths(lengths: ArrayLike | None, batch_shape: Shape, t: int) -> Array | None:
    """Validates ``lengths: int[*b]``; values outside ``[0, t]`` raise when concrete."""
    if lengths is None:
        return None
    lengths = jnp.asarray(lengths)
    if not jnp.issubdtype(lengths.dtype, jnp.integer):
        raise TypeError(f"lengths must be an integer array, received dtype {lengths.dtype}")
    if tuple(lengths.shape) != tuple(batch_shape):
        raise ValueError(
            f"lengths must have the batch shape of xs, {tuple(batch_shape)}, "
            f"received shape {tuple(lengths.shape)}"
        )
    try:
        concrete = np.asarray(lengths)
    except (jax.errors.TracerArrayConversionError, jax.errors.ConcretizationTypeError):
        return jnp.clip(lengths, 0, t)
    if concrete.size and (concrete.min() < 0 or concrete.max() > t):
        raise ValueError(
            f"lengths must lie in [0, {t}] (the time axis of xs), received values from "
            f"{concrete.min()} to {concrete.max()}"
        )
    return lengths


def check_resets(
    resets: ArrayLike | None, batch_shape: Shape, t: int, time_major: bool
) -> Array | None:
    """Validates ``resets: bool[*b, t]`` (``[t, *b]`` time-major); returns it time-major."""
    if resets is None:
        return None
    resets = jnp.asarray(resets)
    if resets.dtype != jnp.bool_:
        raise TypeError(f"resets must be a bool array, received dtype {resets.dtype}")
    want = (t, *batch_shape) if time_major else (*batch_shape, t)
    if tuple(resets.shape) != want:
        raise ValueError(f"resets must have shape {want}, received shape {tuple(resets.shape)}")
    return resets if time_major else jnp.moveaxis(resets, -1, 0)


def check_carry(
    initial_carry: Callable[[Params, Shape], Carry],
    params: Params,
    carry: Carry | None,
    batch_shape: Shape,
) -> Carry:
    """The given carry cast to the expected structure and dtypes, or the initial carry."""
    if carry is None:
        return initial_carry(params, batch_shape)
    expected = jax.eval_shape(lambda p: initial_carry(p, batch_shape), params)
    want, treedef = jax.tree.flatten(expected)
    got = jax.tree.leaves(carry)
    if len(got) != len(want) or any(np.shape(g) != w.shape for g, w in zip(got, want)):
        raise ValueError(
            f"carry must match the initial carry for batch shape {tuple(batch_shape)}: "
            f"expected leaves of shapes {[w.shape for w in want]}, "
            f"received {[tuple(np.shape(g)) for g in got]}"
        )
    return jax.tree.unflatten(treedef, [jnp.asarray(g, w.dtype) for g, w in zip(got, want)])


# --------------------------------------------------------------------------- engine


def _check_remat(remat: Remat) -> None:
    if remat is None or remat in ("step", "sqrt"):
        return
    if isinstance(remat, bool) or not isinstance(remat, int) or remat < 1:
        raise ValueError(
            f'remat must be None, "step", "sqrt" or a positive int chunk size, received {remat!r}'
        )


def _chunk_size(remat: Remat, t: int) -> int | None:
    if t == 0 or remat is None or remat == "step":
        return None
    if not isinstance(remat, str):
        return min(remat, t)
    root = math.isqrt(t - 1) + 1  # ceil(sqrt(t))
    # A divisor of t near sqrt(t) needs no padded (masked, wasted) steps.
    return next((k for k in range(root, min(2 * root, t) + 1) if t % k == 0), root)


def _recurrent_apply(
    cell: Cell,
    params: Params,
    xs: ArrayLike,
    carry: Carry | None = None,
    *,
    lengths: ArrayLike | None = None,
    resets: ArrayLike | None = None,
    key: PRNGKey | None = None,
    reverse: bool,
    time_major: bool,
    unroll: int | bool,
    remat: Remat,
    parallel: bool,
    time_shards: Any = None,
) -> tuple[Carry, Array]:
    del key  # a plain recurrent layer is deterministic
    xs = jnp.asarray(xs)
    t, batch_shape = layout(xs, time_major)
    check_params(cell.init, params, xs.shape[-1], inputs=("xs", xs.shape))
    carry0 = check_carry(cell.initial_carry, params, carry, batch_shape)
    lengths = check_lengths(lengths, batch_shape, t)
    resets = check_resets(resets, batch_shape, t, time_major)
    if reverse and resets is not None:
        # Right to left, a segment starts at the step just before the next segment's first.
        resets = jnp.concatenate([resets[1:], jnp.zeros_like(resets[:1])], axis=0)
    xs_t = xs if time_major else jnp.moveaxis(xs, -2, 0)  # [t, *b, d]
    if lengths is not None:
        # Padding is zeroed once, so that whatever it holds (NaN included) reaches no output
        # and adds exact zeros to every gradient, on every path.
        valid = step_mask(jnp.arange(t), lengths)
        xs_t = jnp.where(valid[..., None], xs_t, jnp.zeros((), xs_t.dtype))
    run = (
        functools.partial(_parallel_scan, time_shards=time_shards) if parallel else _sequential_scan
    )
    kw = {} if parallel else {"batch_major": not time_major and xs.ndim == 3}
    carry, ys_t = run(
        cell,
        params,
        xs_t,
        carry0,
        lengths,
        resets,
        reverse=reverse,
        unroll=unroll,
        remat=remat,
        **kw,
    )
    # A step may output a pytree (an attention decoder's outputs and weights): map every leaf.
    return carry, (ys_t if time_major else jax.tree.map(lambda y: jnp.moveaxis(y, 0, -2), ys_t))


def _sequential_scan(
    cell: Cell,
    params: Params,
    xs: Array,
    carry0: Carry,
    lengths: Array | None,
    resets: Array | None,
    *,
    reverse: bool,
    unroll: int | bool,
    remat: Remat,
    batch_major: bool = False,
) -> tuple[Carry, Array]:
    """``lax.scan`` of ``cell.step`` over time-major inputs ``xs: [t, *b, d]``
    (``batch_major``: moved there from a ``[b, t, d]`` array, a layout the CPU kernel reads
    as it is)."""
    t = xs.shape[0]
    chunk = _chunk_size(remat, t)
    pad = (-t) % chunk if chunk else 0
    if pad and lengths is None:
        lengths = jnp.full(xs.shape[1:-1], t, jnp.int32)  # masks the padding steps

    def body(carry, inp):
        step_t, u, reset_t = inp
        prev = carry
        if reset_t is not None:
            carry = tree_where(reset_t, carry0, carry)
        new, y = cell.step(params, carry, u)
        if lengths is not None:
            valid = step_t < lengths
            new = tree_where(valid, new, prev)
            y = tree_where(valid, y, jax.tree.map(jnp.zeros_like, y))
        return new, y

    if remat == "step":
        body = jax.checkpoint(body)
    steps = jnp.arange(t + pad, dtype=jnp.int32)

    def fused_or_none(xs, carry, steps, resets, batch_major=False):
        """The fused recurrence with a hand-written VJP, or None where none applies."""
        valid = None if lengths is None else step_mask(steps, lengths)
        return kernels.sequential_scan(
            cell,
            params,
            xs,
            carry,
            reverse=reverse,
            unroll=unroll,
            valid=valid,
            resets=resets,
            restart=carry0,  # a reset restarts from the sequence's carry, not the chunk's
            batch_major=batch_major,
        )

    def linear_or_none(xs, carry, steps, resets):
        """A cell linear in its carry: its coefficients for all steps at once, then a
        multiply-add per step (same numbers as its step, far less work inside the loop)."""
        if cell.coefficients is None or not kernels.enabled():
            return None
        valid = None if lengths is None else step_mask(steps, lengths)
        return _linear_scan(
            cell,
            params,
            xs,
            carry,
            carry0,
            valid=valid,
            resets=resets,
            reverse=reverse,
            unroll=unroll,
        )

    if chunk is None:
        if remat is None and cudnn.applies(cell, params, xs, carry0, resets):
            return cudnn.lstm_scan(params, xs, carry0, lengths, reverse=reverse)
        if remat is None:
            fast = fused_or_none(xs, carry0, steps, resets, batch_major)
            fast = linear_or_none(xs, carry0, steps, resets) if fast is None else fast
            if fast is not None:
                return fast
        us = cell.project(params, xs)
        return jax.lax.scan(body, carry0, (steps, us, resets), reverse=reverse, unroll=unroll)

    def pad_and_fold(a):
        a = jnp.pad(a, [(0, pad)] + [(0, 0)] * (a.ndim - 1))
        return a.reshape((a.shape[0] // chunk, chunk) + a.shape[1:])

    @jax.checkpoint
    def chunk_body(carry, inp):
        steps_c, xs_c, resets_c = inp
        fast = fused_or_none(xs_c, carry, steps_c, resets_c)
        fast = linear_or_none(xs_c, carry, steps_c, resets_c) if fast is None else fast
        if fast is not None:  # the fast path, recomputed chunk by chunk
            return fast
        us_c = cell.project(params, xs_c)
        return jax.lax.scan(body, carry, (steps_c, us_c, resets_c), reverse=reverse, unroll=unroll)

    folded = (steps.reshape(-1, chunk), *jax.tree.map(pad_and_fold, (xs, resets)))
    carry, ys = jax.lax.scan(chunk_body, carry0, folded, reverse=reverse)
    # An explicit size, not -1: reshape cannot infer one for an empty batch.
    return carry, jax.tree.map(lambda y: y.reshape((y.shape[0] * chunk,) + y.shape[2:])[:t], ys)


def _parallel_scan(
    cell: Cell,
    params: Params,
    xs: Array,
    h0: Array,
    lengths: Array | None,
    resets: Array | None,
    *,
    reverse: bool,
    unroll: int | bool,
    remat: Remat,
    time_shards: Any = None,
) -> tuple[Array, Array]:
    """Associative scan of :math:`h_t = a_t h_{t-1} + b_t` over ``xs: [t, *b, d]``; the
    outputs are the states, or ``cell.readout`` of them. With any ``remat`` the whole scan
    is recomputed in the backward pass (it stores only its inputs): the associative scan
    has no sequential chunks to store between."""
    del unroll
    valid = None if lengths is None else step_mask(jnp.arange(xs.shape[0]), lengths)
    run = functools.partial(
        _linear_scan, cell, valid=valid, resets=resets, reverse=reverse, time_shards=time_shards
    )
    return (run if remat is None else jax.checkpoint(run))(params, xs, h0, h0)


def _linear_scan(
    cell: Cell,
    params: Params,
    xs: Array,
    h0: Array,
    restart: Array,
    *,
    valid: Array | None,
    resets: Array | None,
    reverse: bool,
    unroll: int | bool | None = None,
    time_shards: Any = None,
) -> tuple[Array, Array]:
    """:math:`h_t = a_t h_{t-1} + b_t` from ``h0`` over ``xs: [t, *b, d]``, with the
    coefficients of every step computed at once by ``cell.coefficients`` (one vectorised
    pass over ``[t, *b, h]``, not ``t`` small ones inside a loop); a step past its length
    (``valid`` false) keeps the state, a reset restarts it from ``restart``. ``unroll``
    ``None``: an associative scan (over ``time_shards`` if given); otherwise a sequential
    ``lax.scan`` whose steps are one multiply-add. Returns ``(carry, ys)``, the outputs
    the states or ``cell.readout`` of them, zero past the length."""
    if xs.shape[0] == 0:
        if cell.readout is None:
            return h0, jnp.zeros((0, *h0.shape), h0.dtype)
        return h0, cell.readout(params, jnp.zeros((0, *h0.shape), h0.dtype), xs)
    assert cell.coefficients is not None  # the callers check: a cell linear in its carry
    a, b = cell.coefficients(params, xs)  # [t, *b, h]
    a, b = a.astype(h0.dtype), b.astype(h0.dtype)
    if resets is not None:
        r = resets[..., None]
        b = jnp.where(r, a * restart + b, b)
        a = jnp.where(r, jnp.zeros((), a.dtype), a)
    if valid is not None:
        a = jnp.where(valid[..., None], a, jnp.ones((), a.dtype))
        b = jnp.where(valid[..., None], b, jnp.zeros((), b.dtype))
    if unroll is not None:

        def step(h, ab):
            h = ab[0] * h + ab[1]
            return h, h

        _, hs = jax.lax.scan(step, h0, (a, b), reverse=reverse, unroll=unroll)
    elif time_shards is not None:
        from seqjax.sharded import linear_scan

        hs = linear_scan(a, b, h0, *time_shards, reverse=reverse)
    else:
        a_cum, b_cum = jax.lax.associative_scan(combine_linear, (a, b), axis=0, reverse=reverse)
        hs = a_cum * h0 + b_cum
    carry = hs[0] if reverse else hs[-1]
    ys = hs if cell.readout is None else cell.readout(params, hs, xs)
    return carry, (
        ys if valid is None else jnp.where(valid[..., None], ys, jnp.zeros((), ys.dtype))
    )
