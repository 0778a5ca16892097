r"""Why a recurrent model decides as it does: gate activations, attributions, gradient flow.

Pure functions over parameter pytrees (no Flax, no Optax):

* :func:`gates`: the per-step internal activations of a cell (LSTM ``i, f, g, o, c``; GRU
  ``r, z, n``; minGRU ``z, h_tilde``; every cell's ``h``), computed by the cell's own
  gate-returning step (:attr:`seqjax.Cell.gates`), never by a second copy of its equations.
* :func:`saliency`: gradient times input per step.
* :func:`integrated_gradients`: Sundararajan et al. (2017), whose attributions sum to
  ``fn(xs) - fn(baseline)`` (completeness).
* :func:`gradient_flow`: the norm of the loss's gradient with respect to each step's carry,
  :math:`\lVert \partial L / \partial c_t \rVert`, which shows vanishing and exploding
  gradients over time (Bengio et al. 1994; Pascanu et al. 2013).

Attributions are per step: ``[*b, t]`` for inputs ``xs: [*b, t, d]``, summed over the
features; steps at or past ``lengths`` get zero.
"""

from __future__ import annotations

import functools
from collections.abc import Callable

import jax
import jax.numpy as jnp

from seqjax.cells import Cell
from seqjax.scan import (
    Seq,
    _recurrent_apply,
    check_lengths,
    layout,
    recurrent,
    step_mask,
    tree_where,
)
from seqjax.typing import Array, ArrayLike, Params

__all__ = ["gates", "gradient_flow", "integrated_gradients", "saliency"]


def _cell_of(seq: Cell | Seq, what: str) -> tuple[Cell, dict]:
    """The cell of a :func:`~seqjax.recurrent` layer (or the cell itself) and its options."""
    if isinstance(seq, Cell):
        return seq, {"reverse": False, "time_major": False}
    apply = getattr(seq, "apply", None)
    if isinstance(apply, functools.partial) and apply.func is _recurrent_apply:
        (cell,) = apply.args
        return cell, apply.keywords
    raise TypeError(
        f"{what} expects a seqjax Cell or a layer made by seqjax.recurrent(cell), received "
        f"{type(seq).__name__} (for a stack, pass its layers one at a time)"
    )


def gates(
    cell: Cell | Seq, params: Params, xs: ArrayLike, *, lengths: ArrayLike | None = None
) -> dict[str, Array]:
    """Per-step internal activations of ``cell`` over ``xs``.

    Args:
      cell: a :class:`~seqjax.Cell` with ``gates`` (every built-in cell), or a layer made by
        :func:`~seqjax.recurrent` from one (its ``reverse`` and ``time_major`` apply).
      params: the cell's params.
      xs: ``[*b, t, d]`` inputs.
      lengths: ``int[*b]`` valid lengths; activations past them are zeros.

    Returns:
      ``{name: [*b, t, h]}``: for an LSTM ``i, f, g, o`` (gate activations after their
      nonlinearity), ``c`` (cell state) and ``h``; for a GRU ``r, z, n, h``; for an Elman
      RNN ``h``; for minGRU ``z, h_tilde, h``; each cell's docstring names the symbols.
    """
    cell, options = _cell_of(cell, "gates")
    if cell.gates is None:
        raise ValueError(
            "gates needs a cell whose Cell.gates field is set (a step that also returns its "
            "activations); this cell has gates=None"
        )
    step_gates = cell.gates

    def step(params: Params, carry, u: Array):
        carry, _, activations = step_gates(params, carry, u)
        return carry, activations

    probe = cell._replace(step=step, fused=None, coefficients=None)
    keep = {k: options[k] for k in ("reverse", "time_major") if k in options}
    _, activations = recurrent(probe, **keep).apply(params, xs, lengths=lengths)
    return dict(activations)


def _step_mask(xs: Array, lengths: ArrayLike | None) -> Array | None:
    """``bool[*b, t]``: step within its sequence's length (``None`` without lengths)."""
    t, batch = layout(xs, time_major=False)
    lengths = check_lengths(lengths, batch, t)
    if lengths is None:
        return None
    return jnp.moveaxis(step_mask(jnp.arange(t), lengths), 0, -1)


def _per_step(contrib: Array, mask: Array | None) -> Array:
    out = jnp.sum(contrib, axis=-1)
    return out if mask is None else jnp.where(mask, out, 0.0)


def _checked(xs: ArrayLike) -> Array:
    xs = jnp.asarray(xs)
    if not jnp.issubdtype(xs.dtype, jnp.floating):
        raise TypeError(
            f"attributions need floating inputs (embed token ids first), received dtype {xs.dtype}"
        )
    layout(xs, time_major=False)
    return xs


def _grad_sum(fn: Callable[[Array], Array]) -> Callable[[Array], Array]:
    """Gradient of ``sum(fn(xs))``: per-example gradients when ``fn`` maps examples apart."""
    return jax.grad(lambda xs: jnp.sum(fn(xs)))


def saliency(
    fn: Callable[[Array], Array], xs: ArrayLike, *, lengths: ArrayLike | None = None
) -> Array:
    r"""Gradient times input per step: :math:`a_t = \sum_d x_{t,d}\, \partial f / \partial
    x_{t,d}`.

    Args:
      fn: a differentiable function of ``xs: [*b, t, d]`` to a scalar or to one value per
        example ``[*b]`` (examples must not interact: a batch is differentiated as a sum).
      xs: ``[*b, t, d]`` floating inputs (embedded tokens for a language model).
      lengths: ``int[*b]`` valid lengths; steps past them get zero.

    Returns:
      ``[*b, t]`` attributions.
    """
    xs = _checked(xs)
    return _per_step(xs * _grad_sum(fn)(xs), _step_mask(xs, lengths))


def integrated_gradients(
    fn: Callable[[Array], Array],
    xs: ArrayLike,
    *,
    baseline: ArrayLike | None = None,
    steps: int = 64,
    lengths: ArrayLike | None = None,
) -> Array:
    r"""Integrated gradients (Sundararajan et al. 2017) per step.

    .. math::
        a_t = \sum_d (x_{t,d} - x'_{t,d}) \int_0^1
        \frac{\partial f(x' + \alpha (x - x'))}{\partial x_{t,d}}\, d\alpha,

    the integral by the trapezoid rule on ``steps`` intervals. Completeness: the
    attributions sum to :math:`f(x) - f(x')` up to the quadrature error, which shrinks as
    ``steps`` grows.

    Args:
      fn: a differentiable function of ``xs: [*b, t, d]`` to a scalar or to ``[*b]``.
      xs: ``[*b, t, d]`` floating inputs.
      baseline: ``x'``, broadcastable to ``xs`` (default zeros).
      steps: number of trapezoid intervals (``steps + 1`` gradient evaluations, run one
        after another so memory stays that of one gradient).
      lengths: ``int[*b]`` valid lengths; steps past them get zero.

    Returns:
      ``[*b, t]`` attributions.
    """
    xs = _checked(xs)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive int, received {steps!r}")
    base = jnp.zeros_like(xs) if baseline is None else jnp.broadcast_to(baseline, xs.shape)
    base = base.astype(xs.dtype)
    grad = _grad_sum(fn)
    alphas = jnp.linspace(0.0, 1.0, steps + 1, dtype=xs.dtype)
    weights = jnp.full((steps + 1,), 1.0 / steps, xs.dtype).at[jnp.array([0, -1])].mul(0.5)

    def body(total, inp):
        alpha, w = inp
        return total + w * grad(base + alpha * (xs - base)), None

    avg, _ = jax.lax.scan(body, jnp.zeros_like(xs), (alphas, weights))
    return _per_step((xs - base) * avg, _step_mask(xs, lengths))


def gradient_flow(
    seq: Cell | Seq,
    params: Params,
    xs: ArrayLike,
    *,
    loss_fn: Callable[[Array], Array],
    lengths: ArrayLike | None = None,
) -> Array:
    r"""Norm of the loss's gradient with respect to the carry each step reads,
    :math:`\lVert \partial L / \partial c_{t-1} \rVert` at step ``t`` (every leaf of the
    carry together; at ``t = 0`` the initial carry).

    A zero perturbation is added to the carry entering every step and ``L`` is
    differentiated with respect to it, which gives the total derivative through that step
    and all later ones: the vanishing (or exploding) gradients of backpropagation through
    time made visible.

    Args:
      seq: a :class:`~seqjax.Cell`, or a layer made by :func:`~seqjax.recurrent` (left to
        right, batch-first).
      params: its params.
      xs: ``[*b, t, d]`` inputs.
      loss_fn: ``loss_fn(ys: [*b, t, p])`` -> a scalar or per-example losses ``[*b]``
        (summed; examples must not interact).
      lengths: ``int[*b]`` valid lengths; steps past them get zero.

    Returns:
      ``[*b, t]`` gradient norms.
    """
    cell, options = _cell_of(seq, "gradient_flow")
    if options.get("reverse") or options.get("time_major"):
        raise ValueError("gradient_flow expects a left-to-right, batch-first layer")
    xs = jnp.asarray(xs)
    t, batch = layout(xs, time_major=False)
    lengths = check_lengths(lengths, batch, t)
    carry0 = cell.initial_carry(params, batch)
    us = cell.project(params, jnp.moveaxis(xs, -2, 0))  # [t, *b, k]
    valid = None if lengths is None else step_mask(jnp.arange(t), lengths)  # [t, *b]

    def loss_of(eps):
        def body(carry, inp):
            u, e, ok = inp
            new, y = cell.step(params, jax.tree.map(jnp.add, carry, e), u)
            if ok is not None:
                new = tree_where(ok, new, carry)
                y = jnp.where(ok[..., None], y, 0.0)
            return new, y

        _, ys = jax.lax.scan(body, carry0, (us, eps, valid))
        return jnp.sum(loss_fn(jnp.moveaxis(ys, 0, -2)))

    eps = jax.tree.map(lambda c: jnp.zeros((t, *c.shape), c.dtype), carry0)
    grads = jax.grad(loss_of)(eps)
    squares = sum(jnp.sum(jnp.square(g), axis=-1) for g in jax.tree.leaves(grads))  # [t, *b]
    norms = jnp.moveaxis(jnp.sqrt(squares), 0, -1)
    if valid is not None:
        norms = jnp.where(jnp.moveaxis(valid, 0, -1), norms, 0.0)
    return norms
