"""PyTorch and Flax parity of :mod:`seqjax.interop`.

Every comparison goes through :func:`_assert_close`, which asserts float32 agreement within
``rtol=1e-4, atol=1e-5`` and records the worst error seen per kind of quantity (outputs,
final states, gradients); run with ``-s`` to see the table printed after the module.
"""

from __future__ import annotations

import functools
import itertools
import re

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import torch
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from seqjax.interop import from_flax, from_torch

RTOL, ATOL = 1e-4, 1e-5
# These tests compile about a hundred tiny programs once each: XLA's LLVM optimisations
# double the time spent and change nothing beyond float rounding.
_FAST_COMPILE = {"xla_backend_optimization_level": 0, "xla_llvm_disable_expensive_passes": True}
HIDDEN, PROJ, FEATURES, TIME, BATCH = 7, 4, 5, 6, 3
LENGTHS = np.array([4, TIME, 1])  # includes the full length; not sorted

# kind -> worst errors seen: max |a - e|; normwise relative max |a - e| / max |e|; and
# elementwise relative |a - e| / |e| over the elements with |e| >= 1e-2.
_WORST: dict[str, dict[str, float]] = {}


@pytest.fixture(scope="module", autouse=True)
def _report_worst():
    # Tiny torch RNNs spend far more time starting threads than computing.
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
    print("\nworst interop parity errors:")
    for kind, worst in sorted(_WORST.items()):
        print(f"  {kind:<19}" + "  ".join(f"{k} {v:.2e}" for k, v in worst.items()))


def _assert_close(kind: str, actual, expected, what: str = "") -> None:
    """Asserts float32 agreement with another library and records the errors."""
    a = np.asarray(actual, np.float64)
    e = np.asarray(expected, np.float64)
    assert a.shape == e.shape, f"{kind} {what}: shape {a.shape} != {e.shape}"
    err = np.abs(a - e)
    scale = np.abs(e).max(initial=0.0)
    big = np.abs(e) >= 1e-2
    errors = {
        "abs": err.max(initial=0.0),
        "rel": err.max(initial=0.0) / scale if scale else 0.0,
        "elem_rel": (err[big] / np.abs(e[big])).max(initial=0.0),
    }
    worst = _WORST.setdefault(kind, dict.fromkeys(errors, 0.0))
    for k, v in errors.items():
        worst[k] = max(worst[k], float(v))
    np.testing.assert_allclose(a, e, rtol=RTOL, atol=ATOL, err_msg=f"{kind} {what}")
    assert errors["rel"] <= RTOL, f"{kind} {what}: relative error {errors['rel']:.2e}"


def _valid_steps(lengths: np.ndarray, time_major: bool) -> np.ndarray:
    """``bool[t, b, 1]`` (``[b, t, 1]`` batch-major): whether a step is within its length."""
    steps = np.arange(TIME)[:, None]
    valid = steps < lengths  # [t, b]
    return (valid if time_major else valid.T)[..., None]


def _rng(*seed: int) -> np.random.Generator:
    return np.random.default_rng(list(seed))


def _normal(rng: np.random.Generator, shape) -> np.ndarray:
    return rng.normal(size=shape).astype(np.float32)


# --------------------------------------------------------------------------- PyTorch

TORCH_KINDS = ("rnn_tanh", "rnn_relu", "gru", "lstm", "lstm_proj")


def _torch_module(
    kind: str,
    *,
    num_layers: int = 1,
    bidirectional: bool = False,
    batch_first: bool = False,
    bias: bool = True,
    dropout: float = 0.0,
) -> torch.nn.RNNBase:
    torch.manual_seed(0)
    kw = dict(
        input_size=FEATURES,
        hidden_size=HIDDEN,
        num_layers=num_layers,
        bidirectional=bidirectional,
        batch_first=batch_first,
        bias=bias,
        dropout=dropout,
    )
    if kind.startswith("rnn"):
        return torch.nn.RNN(nonlinearity=kind[4:], **kw)
    if kind == "gru":
        return torch.nn.GRU(**kw)
    return torch.nn.LSTM(proj_size=PROJ if kind == "lstm_proj" else 0, **kw)


def _state_sizes(module: torch.nn.RNNBase) -> tuple[int, ...]:
    """Sizes of torch's final states: ``(h,)`` or, for an LSTM, ``(h, c)``."""
    if module.mode == "LSTM":
        return (module.proj_size or module.hidden_size, module.hidden_size)
    return (module.hidden_size,)


def _as_tuple(state) -> tuple:
    return tuple(state) if isinstance(state, tuple) else (state,)


def _from_tuple(module: torch.nn.RNNBase, states: tuple):
    return tuple(states) if module.mode == "LSTM" else states[0]


def _torch_run(module, xs, h0s, lengths, out_weight, state_weights, grads=True):
    """Torch outputs, final states and gradients for ``sum(ys * R) + sum(h_n * S) ...``.

    With ``lengths`` the batch goes through ``pack_padded_sequence`` (unsorted) and back
    through ``pad_packed_sequence`` padded to the full time.
    """
    module.zero_grad(set_to_none=True)
    x = torch.tensor(xs, requires_grad=True)
    h0 = None
    if h0s is not None:
        h0 = [torch.tensor(h, requires_grad=True) for h in h0s]
    inp = x
    if lengths is not None:
        inp = pack_padded_sequence(
            x, torch.tensor(lengths), batch_first=module.batch_first, enforce_sorted=False
        )
    out, state = module(inp, None if h0 is None else _from_tuple(module, h0))
    if lengths is not None:
        out, _ = pad_packed_sequence(out, batch_first=module.batch_first, total_length=TIME)
    states = _as_tuple(state)
    loss = (out * torch.tensor(out_weight)).sum()
    for s, w in zip(states, state_weights):
        loss = loss + (s * torch.tensor(w)).sum()
    result = {"ys": out.detach().numpy(), "states": [s.detach().numpy() for s in states]}
    if grads:
        loss.backward()
        result["grads"] = {name: p.grad.numpy() for name, p in module.named_parameters()}
        result["xs_grad"] = x.grad.numpy()
        result["h0_grads"] = None if h0 is None else [h.grad.numpy() for h in h0]
    return result


def _jax_run(module, xs, h0s, lengths, out_weight, state_weights, grads=True):
    """The same as :func:`_torch_run` through ``from_torch``, jitted."""
    seq, params = from_torch(module)

    def loss(params, xs, h0s):
        carry = None if h0s is None else _from_tuple(module, h0s)
        carry, ys = seq.apply(params, xs, carry, lengths=lengths)
        states = _as_tuple(carry)
        value = jnp.sum(ys * out_weight)
        for s, w in zip(states, state_weights):
            value = value + jnp.sum(s * w)
        return value, (ys, states)

    h0s = None if h0s is None else tuple(jnp.asarray(h) for h in h0s)
    xs = jnp.asarray(xs)
    if not grads:
        _, (ys, states) = jax.jit(loss, compiler_options=_FAST_COMPILE)(params, xs, h0s)
        return {"ys": ys, "states": list(states)}
    grad_fn = jax.jit(
        jax.value_and_grad(loss, argnums=(0, 1, 2), has_aux=True), compiler_options=_FAST_COMPILE
    )
    (_, (ys, states)), (p_grads, xs_grad, h0_grads) = grad_fn(params, xs, h0s)
    return {
        "ys": ys,
        "states": list(states),
        "grads": p_grads,
        "xs_grad": xs_grad,
        "h0_grads": h0_grads,
    }


def _seqjax_layers(module, params):
    """``(torch suffix, seqjax params of that layer and direction)`` for each one."""
    for i, p in enumerate(params):
        parts = p if module.bidirectional else (p,)
        for direction, q in enumerate(parts):
            yield f"l{i}" + ("_reverse" if direction else ""), q


def _assert_grads_match(module, seqjax_grads, torch_grads) -> None:
    """Each seqjax parameter gradient against the torch parameter(s) it was made of."""
    hidden = module.hidden_size
    seen = set()
    for sfx, g in _seqjax_layers(module, seqjax_grads):
        t = {name[: -len(sfx) - 1]: v for name, v in torch_grads.items() if name.endswith(sfx)}
        expected_keys = {"w_i", "w_h"}
        _assert_close("torch grad_weights", g["w_i"], t["weight_ih"].T, f"w_i {sfx}")
        _assert_close("torch grad_weights", g["w_h"], t["weight_hh"].T, f"w_h {sfx}")
        if module.bias:
            expected_keys.add("b")
            # The fused b = b_ih + b_hh gets the gradient of each of its summands.
            _assert_close("torch grad_weights", g["b"], t["bias_ih"], f"b vs bias_ih {sfx}")
            if module.mode == "GRU":
                expected_keys.add("b_hn")
                n_rz = 2 * hidden
                _assert_close("torch grad_weights", g["b"][:n_rz], t["bias_hh"][:n_rz], f"b {sfx}")
                _assert_close("torch grad_weights", g["b_hn"], t["bias_hh"][n_rz:], f"b_hn {sfx}")
            else:
                _assert_close("torch grad_weights", g["b"], t["bias_hh"], f"b vs bias_hh {sfx}")
        if module.mode == "LSTM" and module.proj_size:
            expected_keys.add("w_proj")
            _assert_close("torch grad_weights", g["w_proj"], t["weight_hr"].T, f"w_proj {sfx}")
        assert set(g) == expected_keys
        seen.update(f"{name}_{sfx}" for name in t)
    assert seen == set(torch_grads)


def _check_torch_parity(module, xs, h0s=None, lengths=None, seed=0, grads=True) -> None:
    """Outputs and final states, and with ``grads`` the gradients with respect to the
    inputs, the initial carry and every weight, of a random projection of both."""
    rng = _rng(seed, 1)
    out_size = module.proj_size or module.hidden_size if module.mode == "LSTM" else HIDDEN
    out_weight = _normal(rng, (*xs.shape[:-1], out_size * (2 if module.bidirectional else 1)))
    n_states = module.num_layers * (2 if module.bidirectional else 1)
    batch = xs.shape[:-2] if module.batch_first else xs.shape[1:-1]
    state_weights = [_normal(rng, (n_states, *batch, size)) for size in _state_sizes(module)]

    ref = _torch_run(module, xs, h0s, lengths, out_weight, state_weights, grads)
    got = _jax_run(module, xs, h0s, lengths, out_weight, state_weights, grads)

    _assert_close("torch outputs", got["ys"], ref["ys"])
    if lengths is not None:
        valid = _valid_steps(lengths, time_major=not module.batch_first)
        padding = np.asarray(got["ys"])[~np.broadcast_to(valid, got["ys"].shape)]
        assert not np.any(padding), "outputs past a length must be zeros"
    assert len(got["states"]) == len(ref["states"])
    for g, r in zip(got["states"], ref["states"]):
        _assert_close("torch states", g, r)
    if not grads:
        return
    _assert_close("torch grad_inputs", got["xs_grad"], ref["xs_grad"])
    if h0s is not None:
        for g, r in zip(got["h0_grads"], ref["h0_grads"]):
            _assert_close("torch grad_carry", g, r)
    _assert_grads_match(module, got["grads"], ref["grads"])


def _inputs(module, seed=0, batch: int | None = BATCH, time: int = TIME) -> np.ndarray:
    if batch is None:
        return _normal(_rng(seed), (time, FEATURES))
    shape = (batch, time, FEATURES) if module.batch_first else (time, batch, FEATURES)
    return _normal(_rng(seed), shape)


def _initial_states(module, batch: tuple[int, ...] = (BATCH,), seed=2) -> tuple:
    n_states = module.num_layers * (2 if module.bidirectional else 1)
    rng = _rng(seed)
    return tuple(0.5 * _normal(rng, (n_states, *batch, s)) for s in _state_sizes(module))


# Each test compiles one program, so the grids cross the options that interact (stacking,
# direction, packing, layout); gradients, whose programs take longest to compile, are
# checked on smaller grids that still reach every option.


@pytest.mark.parametrize(
    "kind, num_layers, bidirectional, batch_first",
    list(itertools.product(TORCH_KINDS, (1, 3), (False, True), (False, True))),
)
def test_from_torch_matches_torch(kind, num_layers, bidirectional, batch_first):
    module = _torch_module(
        kind, num_layers=num_layers, bidirectional=bidirectional, batch_first=batch_first
    )
    _check_torch_parity(module, _inputs(module), grads=False)


@pytest.mark.parametrize(
    "kind, bidirectional, batch_first",
    list(itertools.product(TORCH_KINDS, (False, True), (False, True))),
)
def test_from_torch_packed_matches_torch(kind, bidirectional, batch_first):
    """Unsorted lengths with the full length among them, and a given initial carry."""
    module = _torch_module(kind, num_layers=2, bidirectional=bidirectional, batch_first=batch_first)
    xs = _inputs(module, seed=3)  # nonzero padding: it must not leak into anything
    _check_torch_parity(module, xs, _initial_states(module), lengths=LENGTHS, seed=3, grads=False)


@pytest.mark.parametrize("kind, bidirectional", list(itertools.product(TORCH_KINDS, (False, True))))
def test_from_torch_packed_gradients_match_torch(kind, bidirectional):
    module = _torch_module(kind, num_layers=2, bidirectional=bidirectional)
    xs = _inputs(module, seed=3)
    _check_torch_parity(module, xs, _initial_states(module), lengths=LENGTHS, seed=3)


@pytest.mark.parametrize("kind, bias", list(itertools.product(TORCH_KINDS, (True, False))))
def test_from_torch_gradients_match_torch(kind, bias):
    """Full-length sequences, which seqjax may run through its fused kernels: 19 steps
    cross their 16-step blocks and leave a remainder."""
    module = _torch_module(kind, bidirectional=True, batch_first=True, bias=bias)
    xs = _inputs(module, seed=4, time=19)
    _check_torch_parity(module, xs, _initial_states(module), seed=4)


@pytest.mark.parametrize("kind, batch_first", list(itertools.product(TORCH_KINDS, (False, True))))
def test_from_torch_unbatched_matches_torch(kind, batch_first):
    """A 2-D ``[t, d]`` input is one unbatched sequence, whatever ``batch_first`` says; its
    ``h_0`` is ``[num_layers * num_directions, size]``."""
    module = _torch_module(kind, num_layers=2, bidirectional=True, batch_first=batch_first)
    h0s = _initial_states(module, batch=())
    _check_torch_parity(module, _inputs(module, seed=5, batch=None), h0s, seed=5, grads=False)


def test_from_torch_dropout_is_off_without_key():
    """torch's inter-layer dropout in eval mode equals seqjax's with no ``key``."""
    module = _torch_module("lstm", num_layers=2, dropout=0.5).eval()
    xs = _inputs(module, seed=6)
    seq, params = from_torch(module)
    carry, ys = seq.apply(params, xs)
    with torch.no_grad():
        out, state = module(torch.tensor(xs))
    _assert_close("torch outputs", ys, out.numpy())
    for g, r in zip(_as_tuple(carry), _as_tuple(state)):
        _assert_close("torch states", g, r.numpy())


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_from_torch_initial_carry_matches_torch_layout(kind):
    """``initial_carry`` and the returned carry are torch's ``h_n`` / ``(h_n, c_n)``."""
    module = _torch_module(kind, num_layers=2, bidirectional=True)
    seq, params = from_torch(module)
    n_states = 4
    carry = seq.initial_carry(params, (BATCH,))
    assert [np.shape(c) for c in _as_tuple(carry)] == [
        (n_states, BATCH, s) for s in _state_sizes(module)
    ]
    assert all(not np.any(c) for c in _as_tuple(carry))


def test_from_torch_rejects_other_modules():
    with pytest.raises(TypeError, match="LSTM"):
        from_torch(torch.nn.Linear(3, 4))
    with pytest.raises(TypeError, match="LSTMCell"):
        from_torch(torch.nn.LSTMCell(3, 4))


@pytest.mark.parametrize("kind", TORCH_KINDS)
def test_from_torch_rejects_wrong_initial_carry(kind):
    """A wrong ``h_0`` raises at the entry, naming torch's expected shapes."""
    module = _torch_module(kind, num_layers=2)
    seq, params = from_torch(module)
    xs = _inputs(module)
    good = _initial_states(module)
    expected = re.escape(str([(2, BATCH, size) for size in _state_sizes(module)]))
    bad = {
        "one state where two layers need two": tuple(s[:1] for s in good),
        "a wrong batch": tuple(s[:, :2] for s in good),
        "a wrong size": tuple(np.concatenate([s, s], axis=-1) for s in good),
        "no batch axis": tuple(s[:, 0] for s in good),
    }
    for what, states in bad.items():
        with pytest.raises(ValueError, match=expected):
            seq.apply(params, xs, _from_tuple(module, states))
            pytest.fail(what)
    unbatched = _inputs(module, batch=None)
    with pytest.raises(ValueError, match=re.escape(str([(2, n) for n in _state_sizes(module)]))):
        seq.apply(params, unbatched, _from_tuple(module, good))
    if module.mode == "LSTM":
        with pytest.raises(ValueError, match=r"\(h_0, c_0\)"):
            seq.apply(params, xs, good[0])  # h_0 alone
        with pytest.raises(ValueError, match=r"\(h_0, c_0\)"):
            seq.apply(params, xs, (*good, good[1]))
    else:
        with pytest.raises(ValueError, match="h_0 of shapes"):
            seq.apply(params, xs, good)  # a tuple where torch takes a tensor


# --------------------------------------------------------------------------- Flax

FLAX_CELLS = {
    "lstm": lambda: nn.LSTMCell(HIDDEN),
    "optimized_lstm": lambda: nn.OptimizedLSTMCell(HIDDEN),
    "gru": lambda: nn.GRUCell(HIDDEN),
    "simple_tanh": lambda: nn.SimpleCell(HIDDEN),
    "simple_relu": lambda: nn.SimpleCell(HIDDEN, activation_fn=nn.relu),
}


def _randomized(variables, seed: int):
    """Every leaf redrawn from N(0, 0.5^2): Flax initialises biases to zero, which would hide
    a bias that lands in the wrong place."""
    leaves, treedef = jax.tree.flatten(variables)
    rng = _rng(seed, 7)
    return jax.tree.unflatten(treedef, [jnp.asarray(0.5 * _normal(rng, x.shape)) for x in leaves])


def _flax_cell_and_variables(name: str, batch_shape=(BATCH,), seed=0):
    cell = FLAX_CELLS[name]()
    x = jnp.zeros((*batch_shape, FEATURES))
    carry = cell.initialize_carry(jax.random.key(0), x.shape)
    return cell, _randomized(cell.init(jax.random.key(1), carry, x), seed)


def _rnn_variables(name: str, seed: int):
    """Variables of ``nn.RNN(cell)``: the cell's, under ``cell`` (``rnn.init`` would
    compile a whole scan just to create them)."""
    _, variables = _flax_cell_and_variables(name, seed=seed)
    return {"params": {"cell": variables["params"]}}


@pytest.mark.parametrize("name", FLAX_CELLS)
def test_rnn_variables_have_the_layout_of_rnn_init(name):
    rnn = nn.RNN(FLAX_CELLS[name]())
    xs = jnp.zeros((BATCH, TIME, FEATURES))
    expected = jax.eval_shape(lambda: rnn.init(jax.random.key(0), xs))
    got = jax.eval_shape(lambda: _rnn_variables(name, seed=0))
    assert jax.tree.map(lambda a: a.shape, got) == jax.tree.map(lambda a: a.shape, expected)


def _random_carry(cell, batch_shape, seed):
    template = cell.initialize_carry(jax.random.key(0), (*batch_shape, FEATURES))
    rng = _rng(seed, 8)
    return jax.tree.map(lambda c: jnp.asarray(0.5 * _normal(rng, c.shape)), template)


@pytest.mark.parametrize("name, batch_shape", list(itertools.product(FLAX_CELLS, ((), (2, BATCH)))))
def test_from_flax_cell_equals_python_loop(name, batch_shape):
    """A bare cell converts to a batch-major left-to-right scan of that cell."""
    cell, variables = _flax_cell_and_variables(name, batch_shape)
    xs = jnp.asarray(_normal(_rng(9), (*batch_shape, TIME, FEATURES)))
    carry0 = _random_carry(cell, batch_shape, 10)

    def both(variables, xs, carry):
        ref_ys = []
        for t in range(TIME):
            carry, y = cell.apply(variables, carry, xs[..., t, :])
            ref_ys.append(y)
        seq, params = from_flax(cell, variables)
        return (carry, jnp.stack(ref_ys, axis=-2)), seq.apply(params, xs, carry0)

    (carry, ref_ys), (got_carry, got_ys) = jax.jit(both, compiler_options=_FAST_COMPILE)(
        variables, xs, carry0
    )
    _assert_close("flax outputs", got_ys, ref_ys)
    assert jax.tree.structure(got_carry) == jax.tree.structure(carry)
    for g, r in zip(jax.tree.leaves(got_carry), jax.tree.leaves(carry)):
        _assert_close("flax states", g, r)


FLAX_DIRECTIONS = {
    "forward": (False, False),
    "reverse_keep": (True, True),
    "reverse": (True, False),
}


def _check_flax_rnn(name, direction, *, time_major, lengths, carry0=None, grads=False):
    """``nn.RNN(return_carry=True)`` against ``from_flax``: outputs, carry and, with
    ``grads``, gradients of a random projection of both, all from one jitted program.

    Flax's ``nn.RNN`` leaves on the padding whatever its cell computed there, where seqjax
    writes zeros, so only the valid steps are compared (and seqjax's padding is checked to
    be zero); the loss weighs valid steps only, so the gradients compare everywhere.
    Without ``keep_order`` a reversed Flax RNN returns each sequence's outputs reversed
    within its length, padding still at the end; so does the converter.
    """
    reverse, keep_order = FLAX_DIRECTIONS[direction]
    cell = FLAX_CELLS[name]()
    rnn = nn.RNN(
        cell, return_carry=True, time_major=time_major, reverse=reverse, keep_order=keep_order
    )
    shape = (TIME, BATCH, FEATURES) if time_major else (BATCH, TIME, FEATURES)
    rng = _rng(11)
    xs = jnp.asarray(_normal(rng, shape))
    variables = _rnn_variables(name, seed=12)
    valid = _valid_steps(np.full(BATCH, TIME) if lengths is None else lengths, time_major)
    lengths = None if lengths is None else jnp.asarray(lengths)
    out_weight = jnp.asarray(_normal(rng, (*shape[:-1], HIDDEN))) * valid
    template = cell.initialize_carry(jax.random.key(0), (BATCH, FEATURES))
    state_weights = jax.tree.map(lambda c: jnp.asarray(_normal(rng, c.shape)), template)

    def objective(carry, ys):
        value = jnp.sum(ys * out_weight)
        for c, w in zip(jax.tree.leaves(carry), jax.tree.leaves(state_weights)):
            value = value + jnp.sum(c * w)
        return value

    def flax_loss(variables, xs, carry0):
        carry, ys = rnn.apply(variables, xs, initial_carry=carry0, seq_lengths=lengths)
        return objective(carry, ys), (carry, ys)

    def seqjax_loss(variables, xs, carry0):
        # Differentiating through the converter gives gradients in Flax's own layout.
        seq, params = from_flax(rnn, variables)
        carry, ys = seq.apply(params, xs, carry0, lengths=lengths)
        return objective(carry, ys), (carry, ys)

    def both(*args):
        if grads:
            vg = functools.partial(jax.value_and_grad, argnums=(0, 1, 2), has_aux=True)
            return vg(flax_loss)(*args), vg(seqjax_loss)(*args)
        return flax_loss(*args), seqjax_loss(*args)

    ref, got = jax.jit(both, compiler_options=_FAST_COMPILE)(variables, xs, carry0)
    if grads:
        ((_, (ref_carry, ref_ys)), ref_grads), ((_, (got_carry, got_ys)), got_grads) = ref, got
    else:
        (_, (ref_carry, ref_ys)), (_, (got_carry, got_ys)) = ref, got

    _assert_close("flax outputs", jnp.where(valid, got_ys, 0.0), jnp.where(valid, ref_ys, 0.0))
    assert not np.any(np.asarray(got_ys)[~np.broadcast_to(valid, got_ys.shape)])
    assert jax.tree.structure(got_carry) == jax.tree.structure(ref_carry)
    for g, r in zip(jax.tree.leaves(got_carry), jax.tree.leaves(ref_carry)):
        _assert_close("flax states", g, r)
    if grads:
        (ref_vgrads, ref_xgrad, ref_cgrad), (got_vgrads, got_xgrad, got_cgrad) = (
            ref_grads,
            got_grads,
        )
        _assert_close("flax grad_inputs", got_xgrad, ref_xgrad)
        for g, r in zip(jax.tree.leaves(got_cgrad), jax.tree.leaves(ref_cgrad), strict=True):
            _assert_close("flax grad_carry", g, r)
        assert jax.tree.structure(got_vgrads) == jax.tree.structure(ref_vgrads)
        flat_ref = dict(jax.tree_util.tree_flatten_with_path(ref_vgrads)[0])
        for path, g in jax.tree_util.tree_flatten_with_path(got_vgrads)[0]:
            _assert_close("flax grad_weights", g, flat_ref[path], jax.tree_util.keystr(path))


@pytest.mark.parametrize(
    "name, direction, time_major, with_lengths",
    list(itertools.product(FLAX_CELLS, FLAX_DIRECTIONS, (False, True), (False, True))),
)
def test_from_flax_rnn_matches_flax(name, direction, time_major, with_lengths):
    """``nn.RNN`` over every cell: forward, reversed with and without ``keep_order``,
    ``time_major``, and ``seq_lengths`` (unsorted, the full length among them)."""
    lengths = LENGTHS if with_lengths else None
    _check_flax_rnn(name, direction, time_major=time_major, lengths=lengths)


@pytest.mark.parametrize(
    "name, direction", list(itertools.product(FLAX_CELLS, ("forward", "reverse")))
)
def test_from_flax_rnn_gradients_match_flax(name, direction):
    """Every cell, from a given initial carry, with ``seq_lengths``."""
    carry0 = _random_carry(FLAX_CELLS[name](), (BATCH,), 15)
    _check_flax_rnn(name, direction, time_major=False, lengths=LENGTHS, carry0=carry0, grads=True)


def test_from_flax_accepts_params_without_the_collection():
    cell, variables = _flax_cell_and_variables("lstm")
    xs = jnp.asarray(_normal(_rng(16), (BATCH, TIME, FEATURES)))
    seq, params = from_flax(cell, variables)
    seq2, params2 = from_flax(cell, variables["params"])
    np.testing.assert_array_equal(seq.apply(params, xs)[1], seq2.apply(params2, xs)[1])


def test_from_flax_rejects_unsupported_modules():
    with pytest.raises(TypeError, match="LSTMCell"):
        from_flax(nn.Dense(3), {"params": {}})
    with pytest.raises(TypeError, match="MGUCell"):
        from_flax(nn.MGUCell(3), {"params": {}})
    with pytest.raises(ValueError, match="residual"):
        from_flax(nn.SimpleCell(3, residual=True), {"params": {}})
    with pytest.raises(ValueError, match="activation_fn"):
        from_flax(nn.SimpleCell(3, activation_fn=nn.gelu), {"params": {}})
    with pytest.raises(ValueError, match="gate_fn"):
        from_flax(nn.LSTMCell(3, gate_fn=nn.hard_sigmoid), {"params": {}})


def test_from_flax_mismatched_variables_are_a_clear_error():
    x = jnp.ones((2, FEATURES))
    lstm_cell, gru_cell = nn.LSTMCell(8), nn.GRUCell(8)
    lstm_vars = lstm_cell.init(
        jax.random.key(0), lstm_cell.initialize_carry(jax.random.key(0), x.shape), x
    )
    gru_vars = gru_cell.init(
        jax.random.key(0), gru_cell.initialize_carry(jax.random.key(0), x.shape), x
    )
    # Another cell's variables: what was expected and what was found, not KeyError: 'ii'.
    with pytest.raises(ValueError, match=r"expected params of hf, hg, .*ii, io; found hn, hr"):
        from_flax(lstm_cell, gru_vars)
    # Another hidden size: the leaf, the expected and the received shape.
    with pytest.raises(
        ValueError,
        match=r"features=16 and inputs of 5 features: "
        r"expected hf/bias of shape \(16,\), received \(8,\)",
    ):
        from_flax(nn.LSTMCell(16), lstm_vars)
    # A cell's variables for an nn.RNN over it, and the other way round.
    with pytest.raises(ValueError, match=r"RNN\(GRUCell\).*expected params of cell/hn"):
        from_flax(nn.RNN(gru_cell), gru_vars)
    rnn_vars = nn.RNN(gru_cell).init(jax.random.key(0), jnp.ones((2, 5, FEATURES)))
    with pytest.raises(ValueError, match="found cell/hn"):
        from_flax(gru_cell, rnn_vars)
    with pytest.raises(TypeError, match="as a dict"):
        from_flax(gru_cell, [1, 2])
