r"""Linear recurrences with the time axis sharded over devices.

For a recurrence linear in its carry, :math:`h_t = a_t \odot h_{t-1} + b_t`, the steps
compose associatively: :math:`(a_1, b_1) \bullet (a_2, b_2) = (a_1 a_2, a_2 b_1 + b_2)`.
So a sequence cut into ``n`` chunks of time, one per device, runs in three phases
(Blelloch 1990, applied to linear RNNs by Martin and Cundy 2018):

1. each device scans its own chunk from a zero carry, giving every step's
   :math:`(A_t, B_t)` with :math:`h_t = A_t h_{in} + B_t`, :math:`h_{in}` the carry
   entering the chunk;
2. the chunks' totals (one :math:`(A, B)` pair per device, the size of one carry) are
   gathered across devices and combined, giving each device its :math:`h_{in}`;
3. each device applies its :math:`h_{in}` to its steps.

Only phase 2 communicates, and it moves ``n`` carries, not the sequence. Used by
:func:`seqjax.recurrent` with ``parallel=True, time_shards=(mesh, axis)``; resets and
lengths are already folded into the coefficients there, so they hold across chunk
boundaries as they do within one.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.sharding import Mesh, PartitionSpec

from seqjax._util import combine_linear
from seqjax.typing import Array

__all__ = ["check_time_shards", "linear_scan"]


def check_time_shards(time_shards) -> tuple[Mesh, str]:
    """``(mesh, axis_name)`` checked: a :class:`jax.sharding.Mesh` and one of its axes."""
    try:
        mesh, axis = time_shards
    except (TypeError, ValueError):
        raise TypeError(
            f"time_shards must be a (jax.sharding.Mesh, axis name) pair, received {time_shards!r}"
        ) from None
    if not isinstance(mesh, Mesh):
        raise TypeError(
            f"time_shards[0] must be a jax.sharding.Mesh, received {type(mesh).__name__}"
        )
    if axis not in mesh.axis_names:
        raise ValueError(
            f"time_shards[1] must be an axis of the mesh {tuple(mesh.axis_names)}, "
            f"received {axis!r}"
        )
    return mesh, axis


def linear_scan(
    a: Array, b: Array, h0: Array, mesh: Mesh, axis: str, *, reverse: bool = False
) -> Array:
    """Every :math:`h_t = a_t h_{t-1} + b_t` (right to left with ``reverse``), from
    ``h0``, with time cut into one chunk per device along the mesh axis ``axis``.

    Args:
      a, b: ``[t, *b, h]`` coefficients, time-major. A time axis that does not divide by
        the number of devices is padded with identity steps (``a = 1, b = 0``).
      h0: ``[*b, h]`` the carry before the first step (after the last with ``reverse``).
      mesh, axis: the devices and the mesh axis the time axis is split over; the other
        axes of the mesh hold replicas.
      reverse: run from the last step to the first.

    Returns:
      ``hs: [t, *b, h]``, sharded along time over ``axis``; equal to the single-device
      associative scan up to float rounding.
    """
    n = mesh.shape[axis]
    t = a.shape[0]
    pad = (-t) % n
    if pad:
        widths = [(0, pad)] + [(0, 0)] * (a.ndim - 1)
        a = jnp.pad(a, widths, constant_values=1)
        b = jnp.pad(b, widths)  # at the end: last steps forward, first ones in reverse

    def chunk(a_c, b_c, h0):
        a_cum, b_cum = jax.lax.associative_scan(combine_linear, (a_c, b_c), axis=0, reverse=reverse)
        last = 0 if reverse else -1
        totals = jax.lax.all_gather((a_cum[last], b_cum[last]), axis)  # ([n, *b, h], ...)
        # The carry after each chunk, from h0, in the order the recurrence runs.
        t_a, t_b = jax.lax.associative_scan(combine_linear, totals, axis=0, reverse=reverse)
        ends = t_a * h0 + t_b  # [n, *b, h]
        i = jax.lax.axis_index(axis)
        before = i + 1 if reverse else i - 1
        first = (i == n - 1) if reverse else (i == 0)
        h_in = jnp.where(first, h0, ends[jnp.clip(before, 0, n - 1)])
        return a_cum * h_in + b_cum

    spec = PartitionSpec(axis)
    hs = jax.shard_map(
        chunk,
        mesh=mesh,
        in_specs=(spec, spec, PartitionSpec()),
        out_specs=spec,
        check_vma=False,
    )(a, b, h0)
    return hs[:t] if pad else hs
