"""Private helpers shared by every floor: length masks, flips within lengths, a pytree
``where``, matmuls accumulated in float32, the default initialiser, output sizes by
abstract evaluation, and checking parameter trees against ``init``.

Each of these ideas lives here once; cells, the sequence engine, the kernels, attention,
the Flax shells and the losses import them instead of writing their twins.

A cell's or a Seq's ``init(key, input_size)`` is the one truth about the shapes of its
params; :func:`check_params` compares a given tree with ``jax.eval_shape`` of it, so no
second table of shapes exists. Shapes are static, so the check costs nothing under
``jit`` after tracing, and the abstract ``init`` is cached per ``(init, input_size)``.
"""

from __future__ import annotations

import contextlib
import weakref
from collections.abc import Callable, Iterator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.typing import Array, ArrayLike, Carry, DTypeLike, Initializer, Params, Shape

# Top-level entries that hold data bound into the params rather than parameters (the
# encoder memory of seqjax.bind_memory); their absence from `init` is not an error.
BOUND_KEYS = frozenset({"memory"})

# --------------------------------------------------------------------------- switches


class Switch:
    """An on/off switch read at trace time, such as the fast paths' (``seqjax.kernels``).

    It is a jit-cache-sensitive context where JAX has them (``jax.make_user_context``), so
    that a function jitted before ``off()`` is traced again inside it rather than reusing
    its trace; older JAX falls back to a flag read at trace time.
    """

    def __init__(self) -> None:
        make = getattr(jax, "make_user_context", None)
        self._context = None if make is None else make(default_value=False)
        self._off = False

    def on(self) -> bool:
        """Whether the switch is on (read at trace time)."""
        return not (self._off if self._context is None else self._context.value)

    @contextlib.contextmanager
    def off(self, flag: bool = True) -> Iterator[None]:
        """Within this context the switch is off if ``flag`` (or if it already was)."""
        off = not self.on() or bool(flag)
        if self._context is not None:
            with self._context(off):
                yield
            return
        prev, self._off = self._off, off
        try:
            yield
        finally:
            self._off = prev


# --------------------------------------------------------------------------- arrays


def step_mask(steps: Array, lengths: Array) -> Array:
    """``steps: int[t]``, ``lengths: int[*b]`` -> ``bool[t, *b]``: step within the length
    (time-major, as the sequence engine scans)."""
    return jnp.reshape(steps, (-1,) + (1,) * jnp.ndim(lengths)) < lengths


def length_mask(lengths: ArrayLike, size: int) -> Array:
    """``lengths: int[*b]`` -> ``bool[*b, size]``: True at positions before each length."""
    return jnp.arange(size) < jnp.asarray(lengths)[..., None]


def flip_within_lengths(ys: Array, lengths: Array | None, time_major: bool) -> Array:
    """Reverses each sequence of ``ys: [*b, t, ...]`` (``[t, *b, ...]`` time-major) within
    its length ``lengths: int[*b]``; padding stays at the end (all of ``t`` when ``None``)."""
    if lengths is None:
        return jnp.flip(ys, axis=0 if time_major else -2)
    lengths = jnp.asarray(lengths)
    axis = 0 if time_major else lengths.ndim
    t = ys.shape[axis]
    if time_major:
        steps, bound = jnp.arange(t).reshape((t,) + (1,) * lengths.ndim), lengths[None]
    else:
        steps, bound = jnp.arange(t), lengths[..., None]
    idx = jnp.where(steps < bound, bound - 1 - steps, steps)
    return jnp.take_along_axis(ys, idx.reshape(idx.shape + (1,) * (ys.ndim - idx.ndim)), axis)


def combine_linear(earlier: tuple[Array, Array], later: tuple[Array, Array]):
    r"""Two steps of :math:`h \mapsto a h + b` as one, ``earlier`` first: the associative
    operator :math:`(a_1, b_1) \bullet (a_2, b_2) = (a_1 a_2, a_2 b_1 + b_2)`."""
    a1, b1 = earlier
    a2, b2 = later
    return a1 * a2, a2 * b1 + b2


def tree_where(mask: Array, on_true: Carry, on_false: Carry) -> Carry:
    """``where(mask, on_true, on_false)`` on every leaf; ``mask: [*b]``, leaves ``[*b, ...]``
    (the mask is broadcast over each leaf's trailing axes)."""

    def leaf(x, y):
        return jnp.where(jnp.reshape(mask, jnp.shape(mask) + (1,) * (x.ndim - mask.ndim)), x, y)

    return jax.tree.map(leaf, on_true, on_false)


def at_least_f32(dtype: DTypeLike) -> jnp.dtype:
    """float32 for narrower floats (bfloat16, float16), the dtype itself otherwise."""
    dtype = jnp.dtype(dtype)
    if not jnp.issubdtype(dtype, jnp.floating):
        return dtype
    return dtype if jnp.finfo(dtype).bits >= 32 else jnp.dtype(jnp.float32)


def dot(x: ArrayLike, w: Array, dtype: DTypeLike | None = None) -> Array:
    """``x @ w`` over ``x``'s last axis and ``w``'s first, with the operands in ``dtype``
    (default ``w.dtype``) and the products accumulated in at least float32."""
    x = jnp.asarray(x)
    dt = w.dtype if dtype is None else jnp.dtype(dtype)
    dims = (((x.ndim - 1,), (0,)), ((), ()))
    return jax.lax.dot_general(
        x.astype(dt), w.astype(dt), dims, preferred_element_type=at_least_f32(dt)
    )


def default_init() -> Initializer:
    """LeCun uniform (variance ``1/fan_in``): every input kernel's default initialiser."""
    return jax.nn.initializers.variance_scaling(1.0, "fan_in", "uniform")


def cell_output_size(cell: Any) -> int:
    """Feature size of a cell's outputs (independent of its input size), by abstract
    evaluation (no compute)."""

    def run(key):
        params = cell.init(key, 1)
        return cell.apply(params, cell.initial_carry(params, ()), jnp.zeros((1,)))[1]

    return jax.eval_shape(run, jax.random.key(0)).shape[-1]


def seq_output_size(seq: Any, params: Params, input_size: int) -> int:
    """Feature size of a Seq's outputs for ``params`` and inputs of ``input_size``, by
    abstract evaluation (no compute)."""
    ys = jax.eval_shape(lambda p: seq.apply(p, jnp.zeros((1, 1, input_size)))[1], params)
    return ys.shape[-1]


# --------------------------------------------------------------------------- params

_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()

# JAX's errors for code that needs concrete values (a TypeError, not a shape problem).
_UNTRACEABLE = tuple(
    getattr(jax.errors, name)
    for name in (
        "ConcretizationTypeError",
        "TracerArrayConversionError",
        "TracerIntegerConversionError",
    )
    if hasattr(jax.errors, name)
)


def _name(path: tuple) -> str:
    """``("1", "w_h")``-style key path as ``1/w_h``, Flax's way of naming params."""
    parts = []
    for key in path:
        for attr in ("key", "idx", "name"):
            if hasattr(key, attr):
                parts.append(str(getattr(key, attr)))
                break
        else:
            parts.append(str(key))
    return "/".join(parts)


def shapes(tree: Any) -> dict[str, Shape]:
    """``{path: shape}`` of every leaf; tuples and lists (a checkpoint may turn one into the
    other) and dicts and FrozenDicts name their entries alike."""
    leaves, _ = jax.tree_util.tree_flatten_with_path(tree)
    return {_name(path): tuple(np.shape(leaf)) for path, leaf in leaves}


def expected_shapes(init: Callable[..., Params], input_size: int) -> dict[str, Shape]:
    """``{path: shape}`` of ``init(key, input_size)``, by abstract evaluation (no compute)."""
    try:
        cache = _CACHE.setdefault(init, {})
    except TypeError:  # not weakly referenceable: no cache
        cache = {}
    if input_size not in cache:
        cache[input_size] = shapes(jax.eval_shape(lambda k: init(k, input_size), jax.random.key(0)))
    return cache[input_size]


def mismatches(want: dict[str, Shape], got: dict[str, Shape]) -> list[str]:
    """What differs between two ``{path: shape}`` maps, one line per leaf."""
    out = []
    for name, shape in want.items():
        if name not in got:
            out.append(f"missing {name} (expected shape {shape})")
        elif got[name] != shape:
            out.append(f"expected {name} of shape {shape}, received {got[name]}")
    for name, shape in got.items():
        if name not in want and name.split("/")[0] not in BOUND_KEYS:
            out.append(f"unexpected {name} of shape {shape}")
    return out


def guess_input_size(init: Callable[..., Params], got: dict[str, Shape]) -> int | None:
    """The input size that the first leaf growing with it says the params were made for."""
    try:
        one, two = expected_shapes(init, 1), expected_shapes(init, 2)
    except Exception:  # an init that cannot run abstractly: no guess
        return None
    for name, s1 in one.items():
        s2, s = two.get(name), got.get(name)
        if s2 is None or s is None or len(s) != len(s1) or s1 == s2:
            continue
        # The first axis that grows with the input size: size = a * d + c.
        axis = next(i for i, (a, b) in enumerate(zip(s1, s2)) if a != b)
        a, c = s2[axis] - s1[axis], 2 * s1[axis] - s2[axis]
        d, r = divmod(s[axis] - c, a)
        return d if not r and d >= 1 else None
    return None


def _fitting_input_size(init: Callable[..., Params], got: dict[str, Shape]) -> int | None:
    """The input size the params were made for, when they fit ``init`` for one."""
    d = guess_input_size(init, got)
    if d is None:
        return None
    try:
        return d if not mismatches(expected_shapes(init, d), got) else None
    except Exception:
        return None


def check_params(
    init: Callable[..., Params],
    params: Params,
    input_size: int,
    *,
    inputs: tuple[str, Shape] | None = None,
) -> None:
    """Raises ``ValueError`` unless ``params`` has the leaves and shapes of
    ``init(key, input_size)``.

    Args:
      init: the cell's or Seq's ``init(key, input_size)``.
      params: the tree to check.
      input_size: the feature size of the inputs given with ``params``.
      inputs: ``(name, shape)`` of those inputs as the caller passed them; when the params
        fit another input size, the error says so about the inputs instead.
    """
    got = shapes(params)
    rejected = None
    try:
        problems = mismatches(expected_shapes(init, input_size), got)
    except _UNTRACEABLE:  # an init that cannot run abstractly stays unchecked
        return
    except (ValueError, TypeError) as e:  # init rejects this input size (e.g. zero)
        problems, rejected = [], e
    except Exception:
        return
    if not problems and rejected is None:
        return
    fit = None if inputs is None else _fitting_input_size(init, got)
    if fit is not None:
        name, shape = inputs
        raise ValueError(
            f"expected inputs whose last axis has {fit} features (the input_size given to "
            f"init), received {name} of shape {tuple(shape)}"
        )
    if rejected is not None:
        raise rejected
    shown = "; ".join(problems[:6]) + ("; ..." if len(problems) > 6 else "")
    raise ValueError(f"params do not fit inputs of {input_size} features: {shown}")
