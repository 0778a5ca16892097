"""Fuzzing the public sequence API: every call returns the documented shapes or raises
seqjax's own ValueError / TypeError, never an internal JAX error, ZeroDivisionError or
KeyError."""

from __future__ import annotations

import pathlib
import traceback

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import HealthCheck, example, given, seed, settings
from hypothesis import strategies as st

import seqjax

SEQJAX = pathlib.Path(seqjax.__file__).resolve().parent

# name -> (constructor of a cell with hidden size h, its output size)
CELLS = {
    "lstm": (lambda h, **kw: seqjax.lstm(h, **kw), lambda h: h),
    "lstm_proj": (lambda h, **kw: seqjax.lstm(h + 1, proj_size=h, **kw), lambda h: h),
    "lstm_ln": (lambda h, **kw: seqjax.lstm(h, layer_norm=True, **kw), lambda h: h),
    "gru": (lambda h, **kw: seqjax.gru(h, **kw), lambda h: h),
    "gru_before": (lambda h, **kw: seqjax.gru(h, reset_after=False, **kw), lambda h: h),
    "rnn_tanh": (lambda h, **kw: seqjax.simple_rnn(h, **kw), lambda h: h),
    "rnn_relu": (lambda h, **kw: seqjax.simple_rnn(h, activation="relu", **kw), lambda h: h),
    "min_gru": (lambda h, **kw: seqjax.min_gru(h, **kw), lambda h: h),
    "min_lstm": (lambda h, **kw: seqjax.min_lstm(h, **kw), lambda h: h),
    "lru": (lambda h, **kw: seqjax.lru(h, state_size=h + 1, **kw), lambda h: h),
    "rg_lru": (lambda h, **kw: seqjax.rg_lru(h, **kw), lambda h: h),
    "slstm": (lambda h, **kw: seqjax.slstm(h, **kw), lambda h: h),
}
LINEAR = {"min_gru", "min_lstm", "lru", "rg_lru"}  # with coefficients


# At most one fault per call, so that most calls are valid and each fault is seen alone.
FAULTS = [
    "wrong_d",
    "lengths_out_of_range",
    "lengths_float",
    "resets_wrong_shape",
    "carry_wrong_batch",
    "parallel_without_coefficients",
    "params_of_another_size",
]
BATCH_SHAPES = [(), (0,), (2,), (0, 3), (3, 0), (2, 3), (1,), (0,)]


@st.composite
def calls(draw):
    fault = draw(st.sampled_from([None] * 2 * len(FAULTS) + FAULTS))
    name = draw(st.sampled_from(sorted(CELLS)))
    parallel = name in LINEAR and draw(st.booleans())
    options = {
        "reverse": draw(st.booleans()),
        "time_major": draw(st.booleans()),
        "remat": draw(st.sampled_from([None, None, None, "step", "sqrt", 2])),
        "unroll": draw(st.sampled_from([1, 1, 2, True])),
        "parallel": parallel or fault == "parallel_without_coefficients",
    }
    if options["parallel"] and fault == "parallel_without_coefficients":
        name = draw(st.sampled_from(sorted(set(CELLS) - LINEAR)))
    return {
        "fault": fault,
        "name": name,
        "hidden": draw(st.integers(1, 4)),
        "dtype": draw(st.sampled_from(["float32", "float32", "float32", "bfloat16"])),
        "structure": draw(st.sampled_from(["layer", "scan", "bidirectional", "stack"])),
        "options": options,
        "batch_shape": draw(st.sampled_from(BATCH_SHAPES)),
        "t": draw(st.sampled_from([0, 1, 3, 5])),
        "d": draw(st.integers(1, 3)),
        "lengths": draw(st.booleans()),
        "resets": draw(st.booleans()),
        "carry": draw(st.booleans()),
        "jit": draw(st.booleans()),
        "grad": draw(st.booleans()),
        "seed": draw(st.integers(0, 2**16)),
    }


def _call(**changes):
    """A call for an explicit example: the issue's cases, run on every test run."""
    options = {"reverse": False, "time_major": False, "remat": None, "unroll": 1}
    options.update({"parallel": False, **changes.pop("options", {})})
    call = dict(fault=None, name="lstm", hidden=3, dtype="float32", structure="layer")
    call.update(batch_shape=(0,), t=4, d=2, lengths=False, resets=False, carry=False)
    call.update(jit=False, grad=False, seed=0, options=options)
    return {**call, **changes}


def _build(call):
    make, out_size = CELLS[call["name"]]
    cell = make(call["hidden"], param_dtype=jnp.dtype(call["dtype"]))
    layer = seqjax.recurrent(cell, **call["options"])
    out = out_size(call["hidden"])
    if call["structure"] == "bidirectional":
        return seqjax.bidirectional(layer), 2 * out
    if call["structure"] == "stack":
        return seqjax.stack(seqjax.bidirectional(layer), layer, dropout=0.25), out
    return layer, out


def _inputs(call, net, params):
    rng = np.random.default_rng(call["seed"])
    b, t, time_major, fault = (
        call["batch_shape"],
        call["t"],
        call["options"]["time_major"],
        call["fault"],
    )
    d = call["d"] + (1 if fault == "wrong_d" else 0)
    shape = (t, *b, d) if time_major else (*b, t, d)
    xs = jnp.asarray(rng.normal(size=shape), jnp.dtype(call["dtype"]))
    kwargs = {}
    if fault == "lengths_out_of_range":
        kwargs["lengths"] = jnp.full(b, t + 1, jnp.int32)
    elif fault == "lengths_float":
        kwargs["lengths"] = jnp.zeros(b, jnp.float32)
    elif call["lengths"]:
        kwargs["lengths"] = jnp.asarray(rng.integers(0, t + 1, size=b), jnp.int32)
    if call["resets"] or fault == "resets_wrong_shape":
        r_shape = (t, *b) if time_major else (*b, t)
        if fault == "resets_wrong_shape":
            r_shape = r_shape[:-1] + (r_shape[-1] + 1,)
        kwargs["resets"] = jnp.asarray(rng.random(r_shape) < 0.3)
    if fault == "carry_wrong_batch":
        kwargs["carry"] = net.initial_carry(params, (*b, 2))
    elif call["carry"]:
        kwargs["carry"] = net.initial_carry(params, b)
    if call["structure"] == "stack":
        kwargs["key"] = jax.random.key(call["seed"])
    return xs, kwargs


def _run(call):
    """``(carry, ys, want_carry, want_ys_shape)`` or a raised exception."""
    net, out = _build(call)
    if call["structure"] == "scan":
        make, _ = CELLS[call["name"]]
        cell = make(call["hidden"], param_dtype=jnp.dtype(call["dtype"]))

        def apply(params, xs, carry=None, **kwargs):
            return seqjax.scan(cell, params, xs, carry, **kwargs, **call["options"])

    else:
        apply = net.apply
    params = net.init(jax.random.key(call["seed"]), call["d"])
    xs, kwargs = _inputs(call, net, params)
    if call["fault"] == "params_of_another_size":
        params = _build({**call, "hidden": call["hidden"] + 1})[0].init(
            jax.random.key(0), call["d"]
        )
    carry = kwargs.pop("carry", None)

    def f(params, xs, carry):
        return apply(params, xs, carry, **kwargs)

    if call["grad"]:

        def loss(params, xs, carry):
            c, ys = f(params, xs, carry)
            total = jnp.sum(ys.astype(jnp.float32))
            return total + sum(jnp.sum(x.astype(jnp.float32)) for x in jax.tree.leaves(c))

        grads = jax.grad(loss, argnums=(0, 1))
        if call["jit"]:
            grads = jax.jit(grads)
        g_params, g_xs = grads(params, xs, carry)
        assert jax.tree.map(jnp.shape, g_params) == jax.tree.map(jnp.shape, params)
        assert g_xs.shape == xs.shape
    run = jax.jit(f) if call["jit"] else f
    carry_out, ys = run(params, xs, carry)
    b, t = call["batch_shape"], call["t"]
    want_ys = (t, *b, out) if call["options"]["time_major"] else (*b, t, out)
    return carry_out, ys, net.initial_carry(params, b), want_ys


def _raised_by_seqjax(error: BaseException) -> bool:
    """Whether the innermost frame of the traceback is in seqjax's own (pure) code."""
    frames = traceback.extract_tb(error.__traceback__)
    where = pathlib.Path(frames[-1].filename).resolve()
    return SEQJAX in where.parents and where.parent.name not in ("train", "data")


def _valid(call) -> bool:
    """Whether the call is within the documented contract (so it must succeed)."""
    if call["fault"] == "lengths_out_of_range":
        # Concrete lengths outside [0, t] raise; traced ones (under jit) are clipped, and an
        # empty batch has none.
        return call["jit"] or 0 in call["batch_shape"]
    return call["fault"] is None


@pytest.fixture
def unfiltered_tracebacks():
    # JAX hides its own frames from tracebacks; an internal error must show where it arose.
    prev = jax.config.jax_traceback_filtering
    jax.config.update("jax_traceback_filtering", "off")
    yield
    jax.config.update("jax_traceback_filtering", prev)


@seed(20261201)  # deterministic: the same calls on every run
@settings(
    max_examples=30,
    deadline=None,
    database=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(call=calls())
# An empty batch on the fused path, with lengths and gradients, bidirectional and stacked,
# with 2-D batch axes and time-major, inside remat chunks; bfloat16 params.
@example(call=_call(lengths=True, grad=True))
@example(call=_call(name="gru", structure="bidirectional", resets=True, jit=True, grad=True))
@example(call=_call(name="rnn_tanh", structure="stack", batch_shape=(3, 0), carry=True))
@example(call=_call(batch_shape=(0, 3), options={"time_major": True, "remat": 2}, grad=True))
@example(call=_call(name="gru", dtype="bfloat16", batch_shape=(2,), grad=True))
@example(call=_call(fault="wrong_d", options={"time_major": True}))
def test_sequence_api_returns_documented_shapes_or_raises_its_own_errors(
    call, unfiltered_tracebacks
):
    try:
        carry, ys, want_carry, want_ys = _run(call)
    except (ValueError, TypeError) as e:
        assert _raised_by_seqjax(e), f"{type(e).__name__} from outside seqjax: {e}"
        assert not _valid(call), f"a valid call raised {type(e).__name__}: {e}"
        return
    assert _valid(call), "an invalid call was accepted"
    assert ys.shape == want_ys
    assert jax.tree.structure(carry) == jax.tree.structure(want_carry)
    assert [c.shape for c in jax.tree.leaves(carry)] == [
        c.shape for c in jax.tree.leaves(want_carry)
    ]
    if call["dtype"] == "float32":
        assert bool(jnp.all(jnp.isfinite(ys)))
