"""minLSTM, LRU, RG-LRU and sLSTM: whole sequences against float64 NumPy transcriptions of
their papers, parallel against sequential scans (outputs, carries, gradients), the engine's
features, initialisations and numerical safety.

The one-step equations of each cell are also checked by the generic tests of
``test_cells.py`` and the engine's by ``test_scan.py``, which run over every cell of
``conftest.CELLS``; this file holds what is particular to the new cells."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import CELLS, LINEAR, randomize, reference_step
from jax.test_util import check_grads

import seqjax

D = 5
NEW = ("min_lstm", "lru", "lru_state", "rg_lru", "slstm", "slstm_heads")


def _setup(name, seed=0, **kw):
    cell = CELLS[name](**kw)
    return cell, randomize(cell.init(jax.random.key(seed), D), seed)


def _xs(shape, seed=1):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _real(tree):
    """Real leaves: a complex carry as its real and imaginary parts."""
    out = []
    for leaf in jax.tree.leaves(tree):
        if jnp.iscomplexobj(leaf):
            out += [jnp.real(leaf), jnp.imag(leaf)]
        else:
            out.append(leaf)
    return out


def _close(a, b, rtol=1e-5, atol=1e-5):
    la, lb = _real(a), _real(b)
    assert len(la) == len(lb)
    for u, v in zip(la, lb):
        np.testing.assert_allclose(u, v, rtol=rtol, atol=atol)


def _numpy_scan(name, params, xs, lengths=None, resets=None, reverse=False):
    """The paper's recurrence step by step in float64 NumPy over ``xs: [b, t, d]``, with the
    engine's semantics of lengths (zeros past them, carry kept) and resets (the carry
    restarts from zeros)."""
    xs = np.asarray(xs, np.float64)
    b, t, _ = xs.shape
    cell = CELLS[name]()
    zero = jax.tree.map(np.asarray, cell.initial_carry(params, ()))
    lengths = np.full(b, t) if lengths is None else np.asarray(lengths)
    carries, ys = [], np.zeros((b, t, 6))
    for k in range(b):
        carry = zero
        steps = range(lengths[k])
        for s in reversed(steps) if reverse else steps:
            if resets is not None and reverse:
                # Right to left, a segment's last step (the first run) precedes the next
                # segment's first step.
                restart = s + 1 < t and resets[k, s + 1]
            else:
                restart = resets is not None and resets[k, s]
            if restart:
                carry = zero
            carry, ys[k, s] = reference_step(name, params, carry, xs[k, s])
        carries.append(carry)
    return carries, ys


@pytest.mark.parametrize("name", NEW)
@pytest.mark.parametrize("reverse", [False, True])
def test_sequences_match_numpy_transcription(name, reverse):
    cell, params = _setup(name)
    xs = _xs((3, 12, D))
    lengths = np.array([12, 7, 1])
    resets = np.random.default_rng(4).random((3, 12)) < 0.25
    want_carries, want_ys = _numpy_scan(name, params, xs, lengths, resets, reverse)
    options = [dict()] + ([dict(parallel=True)] if name in LINEAR else [])
    for opts in options:
        carry, ys = seqjax.scan(
            cell,
            params,
            xs,
            lengths=jnp.asarray(lengths),
            resets=jnp.asarray(resets),
            reverse=reverse,
            **opts,
        )
        np.testing.assert_allclose(ys, want_ys, rtol=1e-5, atol=1e-5)
        for k in range(3):
            _close(jax.tree.map(lambda c, k=k: c[k], carry), want_carries[k])


@pytest.mark.parametrize("name", LINEAR)
@pytest.mark.parametrize("reverse", [False, True])
def test_parallel_gradients_equal_sequential(name, reverse):
    cell, params = _setup(name)
    xs = _xs((3, 10, D))
    lengths = jnp.array([10, 6, 0])
    resets = jnp.asarray(np.random.default_rng(2).random((3, 10)) < 0.3)
    carry0 = jax.tree.map(lambda c: c + 0.5, cell.initial_carry(params, (3,)))

    def loss(params, xs, carry0, parallel):
        carry, ys = seqjax.scan(
            cell,
            params,
            xs,
            carry0,
            lengths=lengths,
            resets=resets,
            reverse=reverse,
            parallel=parallel,
        )
        return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(jnp.cos(c)) for c in _real(carry))

    grad = jax.grad(loss, argnums=(0, 1, 2))
    seq = grad(params, xs, carry0, False)
    par = grad(params, xs, carry0, True)
    # A complex carry's gradient is complex (the conjugate convention of JAX).
    _close(seq, par, rtol=2e-5, atol=2e-5)


@pytest.mark.parametrize("name", NEW)
def test_gradients_pass_check_grads(name):
    with jax.enable_x64(True):
        cell, params = _setup(name, param_dtype=jnp.float64)
        xs = _xs((2, 4, D)).astype(jnp.float64)
        lengths = jnp.array([4, 2])
        parallel = name in LINEAR

        def loss(params, xs):
            carry, ys = seqjax.scan(
                cell, params, xs, lengths=lengths, reverse=True, parallel=parallel
            )
            return jnp.sum(jnp.sin(ys)) + sum(jnp.sum(c**2) for c in _real(carry))

        check_grads(jax.jit(loss), (params, xs), order=1, modes=["rev"], atol=1e-5, rtol=1e-5)


@pytest.mark.parametrize("name", NEW)
def test_bf16_params_stay_close_to_float32_with_float32_carries(name):
    cell32, params = _setup(name)
    cell16 = CELLS[name](param_dtype=jnp.bfloat16)
    params16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    xs = _xs((2, 12, D))
    for parallel in [False, True] if name in LINEAR else [False]:
        c16, ys16 = seqjax.scan(cell16, params16, xs.astype(jnp.bfloat16), parallel=parallel)
        c32, ys32 = seqjax.scan(cell32, params, xs, parallel=parallel)
        assert ys16.dtype == jnp.float32
        assert all(c.dtype in (jnp.float32, jnp.complex64) for c in jax.tree.leaves(c16))
        scale = float(jnp.max(jnp.abs(ys32)))
        np.testing.assert_allclose(ys16, ys32, rtol=3e-2, atol=3e-2 * max(scale, 1.0))


def test_parallel_on_a_cell_not_linear_in_its_carry_is_a_clear_error():
    for cell in (seqjax.slstm(4), seqjax.lstm(4)):
        with pytest.raises(ValueError, match=r"parallel=True needs a cell linear in its carry"):
            seqjax.recurrent(cell, parallel=True)
    with pytest.raises(ValueError, match=r"the slstm cell has none: its step is not linear"):
        seqjax.recurrent(seqjax.slstm(4), parallel=True)


@pytest.mark.parametrize("name", NEW)
def test_engine_features(name):
    """Bidirectional stacks on padded batches, chunked remat, time-major layout and vmap, on
    the sequential path and (for linear cells) the parallel one."""
    cell, params = _setup(name)
    xs, lengths = _xs((3, 9, D)), jnp.array([9, 4, 0])
    for parallel in [False, True] if name in LINEAR else [False]:
        layer = seqjax.recurrent(cell, parallel=parallel)
        # Each padded sequence alone equals its row of the padded batch, both directions.
        net = seqjax.stack(seqjax.bidirectional(layer), seqjax.recurrent(CELLS[name]()))
        net_params = net.init(jax.random.key(1), D)
        apply = jax.jit(net.apply)  # one program per shape, not one per primitive
        _, ys = apply(net_params, xs, lengths=lengths)
        assert ys.shape == (3, 9, 6)
        for k, n in enumerate([9, 4, 0]):
            if n:
                _, alone = apply(net_params, xs[k : k + 1, :n])
                np.testing.assert_allclose(ys[k, :n], alone[0], rtol=1e-5, atol=1e-5)
            np.testing.assert_array_equal(ys[k, n:], 0.0)

        # Chunked remat changes no gradient.
        def loss(p, remat, parallel=parallel):
            c, y = seqjax.scan(cell, p, xs, lengths=lengths, remat=remat, parallel=parallel)
            return jnp.sum(y**2) + sum(jnp.sum(jnp.cos(a)) for a in _real(c))

        grad = jax.jit(jax.grad(loss), static_argnums=1)
        _close(grad(params, 4), grad(params, None))
        # Time-major without a transpose equals batch-major.
        scan = jax.jit(
            lambda p, x, time_major, parallel=parallel: seqjax.scan(
                cell, p, x, time_major=time_major, parallel=parallel
            ),
            static_argnums=2,
        )
        want = scan(params, xs, False)
        got = scan(params, jnp.swapaxes(xs, 0, 1), True)
        _close(got[0], want[0])
        np.testing.assert_allclose(jnp.swapaxes(got[1], 0, 1), want[1], rtol=1e-5, atol=1e-5)
        # vmap over examples equals the batched call.
        mapped = jax.jit(jax.vmap(lambda x, scan=scan: scan(params, x, False)))(xs)
        _close(mapped, want)


def test_lru_ring_initialisation_and_real_params():
    r_min, r_max, max_phase = 0.4, 0.9, 0.5
    cell = seqjax.lru(64, state_size=256, r_min=r_min, r_max=r_max, max_phase=max_phase)
    params = cell.init(jax.random.key(0), 3)
    assert all(not jnp.iscomplexobj(p) for p in jax.tree.leaves(params))
    nu, theta = np.exp(np.asarray(params["nu_log"])), np.exp(np.asarray(params["theta_log"]))
    modulus, phase = np.exp(-nu), theta
    assert np.all(modulus >= r_min - 1e-6) and np.all(modulus <= r_max + 1e-6)
    assert np.all(phase >= 0) and np.all(phase <= max_phase + 1e-6)
    # Uniform on the ring: |lambda|^2 uniform in [r_min^2, r_max^2] (mean in the middle).
    assert abs(np.mean(modulus**2) - (r_min**2 + r_max**2) / 2) < 0.05
    np.testing.assert_allclose(
        np.exp(params["gamma_log"]), np.sqrt(1 - modulus**2), rtol=1e-5, atol=1e-6
    )
    assert params["B_re"].shape == (3, 256) and params["C_im"].shape == (256, 64)
    assert params["D"].shape == (3, 64)
    carry = cell.initial_carry(params, (2,))
    assert carry.dtype == jnp.complex64 and carry.shape == (2, 256)
    with pytest.raises(ValueError, match="expected 0 <= r_min < r_max <= 1"):
        seqjax.lru(4, r_min=0.9, r_max=0.5)
    with pytest.raises(ValueError, match="max_phase must be positive"):
        seqjax.lru(4, max_phase=0.0)


def test_lru_normalisation_keeps_white_noise_variance():
    """gamma = sqrt(1 - |lambda|^2) at init keeps the state's variance near the input's
    projection's, whatever the decay (the paper's section 3.4)."""
    cell = seqjax.lru(32, r_min=0.99, r_max=0.999)
    params = cell.init(jax.random.key(0), 16)
    xs = jax.random.normal(jax.random.key(1), (16, 2000, 16))
    final = seqjax.scan(cell, params, xs, parallel=True)[0]
    bu = xs[:, -1] @ (params["B_re"] + 1j * params["B_im"])
    ratio = float(jnp.mean(jnp.abs(final) ** 2) / jnp.mean(jnp.abs(bu) ** 2))
    assert 0.5 < ratio < 1.5


def test_rg_lru_initialisation():
    params = seqjax.rg_lru(512).init(jax.random.key(0), 3)
    a_c = np.asarray(jax.nn.sigmoid(params["a_param"])) ** 8.0
    assert np.all(a_c >= 0.9 - 1e-5) and np.all(a_c <= 0.999 + 1e-5) and a_c.std() > 0.01
    with pytest.raises(ValueError, match="expected 0 < a_min < a_max < 1"):
        seqjax.rg_lru(4, a_min=0.99, a_max=0.9)


def test_min_lstm_log_space_gates_stay_finite_where_the_quotient_underflows():
    cell = seqjax.min_lstm(3)
    params = {"w_i": jnp.zeros((1, 9)), "b": jnp.array([-200.0] * 3 + [-201.0] * 3 + [2.0] * 3)}
    _, ys = seqjax.scan(cell, params, jnp.ones((1, 4, 1)))
    # f / (f + i) = 1 / (1 + e^-1) exactly in real arithmetic, though f + i underflows.
    a = 1.0 / (1.0 + math.exp(-1.0))
    want = [2.0 * (1 - a**k) for k in range(1, 5)]
    np.testing.assert_allclose(ys[0, :, 0], want, rtol=1e-6)
    f = jax.nn.sigmoid(jnp.float32(-200.0))
    i = jax.nn.sigmoid(jnp.float32(-201.0))
    assert not np.isfinite(float(f / (f + i)))  # what the plain quotient gives


def test_min_lstm_long_parallel_scan_is_finite_and_sequential():
    cell = seqjax.min_lstm(8)
    params = cell.init(jax.random.key(0), 4)
    xs = jax.random.normal(jax.random.key(1), (2, 4096, 4))
    seq = seqjax.scan(cell, params, xs)
    par = seqjax.scan(cell, params, xs, parallel=True)
    assert bool(jnp.all(jnp.isfinite(par[1])))
    _close(seq, par, rtol=1e-4, atol=1e-5)


def test_slstm_stabiliser_keeps_large_gates_finite():
    """Pre-activations that overflow exp in float32 give the unstabilised cell's output."""
    cell = seqjax.slstm(2)
    params = cell.init(jax.random.key(0), 1)
    params = {**params, "w_h": jnp.zeros_like(params["w_h"])}
    b = jnp.array([100.0, 95.0, 120.0, 110.0, 0.5, -0.5, 1.0, 1.0])  # i, f, z, o
    params["b"] = b
    _, ys = seqjax.scan(cell, params, jnp.zeros((1, 5, 1)))
    assert bool(jnp.all(jnp.isfinite(ys)))
    # Unstabilised, in float64: c_t / n_t with c = sum f^(t-k) i z, n = sum f^(t-k) i.
    i, f = np.exp(np.float64(b[:2])), np.exp(np.float64(b[2:4]))
    z, o = np.tanh(np.float64(b[4:6])), 1 / (1 + np.exp(-np.float64(b[6:])))
    c = n = 0.0
    for t in range(5):
        c, n = f * c + i * z, f * n + i
        np.testing.assert_allclose(ys[0, t], o * c / n, rtol=1e-5)


def test_slstm_heads_are_block_diagonal():
    """A head's gates read only its own units of h: the Jacobian of one step's output with
    respect to the previous h has zero off-diagonal blocks."""
    cell = seqjax.slstm(6, num_heads=3)
    params = randomize(cell.init(jax.random.key(0), 2))
    assert params["w_h"].shape == (3, 2, 8)
    carry = cell.initial_carry(params, ())
    u = cell.project(params, jnp.ones((2,)))
    jac = jax.jacobian(lambda h: cell.step(params, carry._replace(h=h), u)[1])(carry.h + 0.3)
    mask = np.kron(np.eye(3), np.ones((2, 2)))
    np.testing.assert_array_equal(np.asarray(jac)[mask == 0], 0.0)
    assert np.all(np.abs(np.asarray(jac)[mask == 1]) > 0)
    with pytest.raises(ValueError, match="hidden must be a multiple of num_heads"):
        seqjax.slstm(5, num_heads=2)


@pytest.mark.parametrize("name", ["min_lstm", "lru", "rg_lru", "slstm"])
def test_registered_by_name(name):
    assert seqjax.CELLS[name] is getattr(seqjax, name)
    cell = seqjax.cell_by_name(name, 4)
    params = cell.init(jax.random.key(0), 3)
    carry, ys = seqjax.scan(cell, params, jnp.ones((2, 5, 3)))
    assert ys.shape == (2, 5, 4)


def test_seq2seq_with_a_complex_carry():
    """An LRU encoder and decoder: the dense bridge maps complex carries by their real and
    imaginary parts, and beam search gathers them."""
    snn = pytest.importorskip("seqjax.nn")
    model = snn.Seq2Seq(12, 12, embed_size=6, hidden_size=8, cell="lru")
    src, lengths = jnp.ones((2, 5), jnp.int32), jnp.array([5, 3])
    tgt, tgt_lengths = jnp.ones((2, 4), jnp.int32), jnp.array([4, 2])
    variables = model.init(jax.random.key(0), src, lengths, tgt, tgt_lengths)
    logits, _ = model.apply(variables, src, lengths, tgt, tgt_lengths)
    assert logits.shape == (2, 4, 12) and bool(jnp.all(jnp.isfinite(logits)))
    out = model.apply(
        variables, src, lengths, max_length=4, strategy="beam", beam_size=2, method="decode"
    )
    assert out.tokens.shape == (2, 2, 4)
