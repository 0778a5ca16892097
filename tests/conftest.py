"""Shared fixtures: a catalogue of cells and hand-written NumPy references of their equations."""

from __future__ import annotations

import os
import pathlib

# One persistent XLA compilation cache for the whole run, shared by the xdist workers and
# by the subprocesses tests start (they inherit the environment): many tests compile the
# same small programs (the same config trained, killed and resumed), and a cache hit skips
# XLA. Set before jax is imported; the cache key holds jax's version and flags.
os.environ.setdefault(
    "JAX_COMPILATION_CACHE_DIR", str(pathlib.Path(__file__).resolve().parents[1] / ".jax_cache")
)
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0")
os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
# The suite's time is mostly XLA compiling small programs (an eager test compiles each of
# its primitives: one test of test_new_cells compiles 408 programs at 28 ms each), so it
# compiles them faster: LLVM at optimisation level 0 (XLA's own HLO passes still run) and
# XLA's classic elemental emitters for fusions instead of the MLIR fusion emitters (each
# builds an MLIR context). Same programs and semantics, machine code less optimised.
# Measured on 2026-12-07, one worker, cold cache: the dates task's train-step compile
# 2.30 s at level 1 -> 0.65 s at level 0, its init 1.52 -> 0.96 s; compile-bound tests
# 35-45% faster (engine features 8.2 -> 4.6 s, sequence-level distillation 27 -> 19 s);
# a test that trains for hundreds of steps runs its steps 2x slower at level 0, so such a
# test asks for level 1 on its own jitted step (``jax.jit(..., compiler_options=
# TRAINING_COMPILE)``). Level 1 against XLA's default 2 was measured on 2026-12-03: 35%
# faster compiles. Benchmarks and experiments do not read this file and keep the defaults.
_FAST_COMPILE = ("--xla_backend_optimization_level=0", "--xla_cpu_use_fusion_emitters=false")
TRAINING_COMPILE = {"xla_backend_optimization_level": 1}
# One pytest worker per core already keeps every core busy, so the CPU kernel's threads
# (seqjax.kernels.cpu) would only contend with the other workers: one thread each. The
# kernel's several-thread path is tested in a subprocess that sets its own count
# (test_cpu_kernel.py::test_thread_count_does_not_change_a_bit, six lanes on two threads).
os.environ.setdefault("SEQJAX_NUM_THREADS", "1")
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
    [_flags, *(f for f in _FAST_COMPILE if f.split("=")[0] not in _flags)]
).strip()

import numpy as np  # noqa: E402
import pytest  # noqa: E402

import seqjax  # noqa: E402

# name -> constructor of a small cell; hidden 6 (proj 4) keeps compile and run time low.
CELLS = {
    "rnn_tanh": lambda **kw: seqjax.simple_rnn(6, **kw),
    "rnn_relu": lambda **kw: seqjax.simple_rnn(6, activation="relu", **kw),
    "rnn_nobias": lambda **kw: seqjax.simple_rnn(6, use_bias=False, **kw),
    "lstm": lambda **kw: seqjax.lstm(6, **kw),
    "lstm_proj": lambda **kw: seqjax.lstm(6, proj_size=4, **kw),
    "lstm_ln": lambda **kw: seqjax.lstm(6, layer_norm=True, **kw),
    "lstm_nobias": lambda **kw: seqjax.lstm(6, use_bias=False, **kw),
    "gru": lambda **kw: seqjax.gru(6, **kw),
    "gru_before": lambda **kw: seqjax.gru(6, reset_after=False, **kw),
    "gru_nobias": lambda **kw: seqjax.gru(6, use_bias=False, **kw),
    "min_gru": lambda **kw: seqjax.min_gru(6, **kw),
    "min_lstm": lambda **kw: seqjax.min_lstm(6, **kw),
    "lru": lambda **kw: seqjax.lru(6, **kw),
    "lru_state": lambda **kw: seqjax.lru(6, state_size=4, r_min=0.5, max_phase=0.3, **kw),
    "rg_lru": lambda **kw: seqjax.rg_lru(6, **kw),
    "slstm": lambda **kw: seqjax.slstm(6, **kw),
    "slstm_heads": lambda **kw: seqjax.slstm(6, num_heads=3, **kw),
}
# Cells linear in their carry (with coefficients): the parallel scan applies.
LINEAR = ("min_gru", "min_lstm", "lru", "lru_state", "rg_lru")
OUT_SIZE = {"lstm_proj": 4}


@pytest.fixture(params=sorted(CELLS))
def cell_name(request):
    return request.param


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def _ln(x, scale, bias=0.0, eps=1e-5):
    mean = x.mean(-1, keepdims=True)
    var = ((x - mean) ** 2).mean(-1, keepdims=True)
    return (x - mean) / np.sqrt(var + eps) * scale + bias


def reference_step(name, params, carry, x):
    """One step of ``name`` written from the standard equations, in float64 NumPy."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    x = np.asarray(x, np.float64)
    b = p.get("b", 0.0)
    if name.startswith("rnn"):
        h = np.asarray(carry, np.float64)
        pre = x @ p["w_i"] + h @ p["w_h"] + b
        h = np.maximum(pre, 0.0) if name == "rnn_relu" else np.tanh(pre)
        return h, h
    if name.startswith("lstm"):
        h, c = (np.asarray(a, np.float64) for a in carry)
        if name == "lstm_ln":
            z = _ln(x @ p["w_i"], p["ln_i"]) + _ln(h @ p["w_h"], p["ln_h"]) + b
        else:
            z = x @ p["w_i"] + h @ p["w_h"] + b
        i, f, g, o = np.split(z, 4, axis=-1)
        c = _sigmoid(f) * c + _sigmoid(i) * np.tanh(g)
        c_out = _ln(c, p["ln_c"], p["ln_c_bias"]) if name == "lstm_ln" else c
        h = _sigmoid(o) * np.tanh(c_out)
        if "w_proj" in p:
            h = h @ p["w_proj"]
        return (h, c), h
    if name.startswith("gru"):
        h = np.asarray(carry, np.float64)
        n_h = h.shape[-1]
        xi = x @ p["w_i"] + b
        w_r, w_z, w_n = np.split(p["w_h"], 3, axis=-1)
        r = _sigmoid(xi[..., :n_h] + h @ w_r)
        z = _sigmoid(xi[..., n_h : 2 * n_h] + h @ w_z)
        if name == "gru_before":
            n = np.tanh(xi[..., 2 * n_h :] + (r * h) @ w_n)
        else:
            n = np.tanh(xi[..., 2 * n_h :] + r * (h @ w_n + p.get("b_hn", 0.0)))
        h = (1 - z) * n + z * h
        return h, h
    if name == "min_gru":
        h = np.asarray(carry, np.float64)
        n_h = h.shape[-1]
        pre = x @ p["w_i"] + b
        z = _sigmoid(pre[..., :n_h])
        h = (1 - z) * h + z * pre[..., n_h:]
        return h, h
    if name == "min_lstm":  # Feng et al. 2024, section 3.2
        h = np.asarray(carry, np.float64)
        n_h = h.shape[-1]
        pre = x @ p["w_i"] + b
        f, i = _sigmoid(pre[..., :n_h]), _sigmoid(pre[..., n_h : 2 * n_h])
        h = f / (f + i) * h + i / (f + i) * pre[..., 2 * n_h :]
        return h, h
    if name.startswith("lru"):  # Orvieto et al. 2023, eqs. (6)-(7) and section 3.4
        state = np.asarray(carry, np.complex128)
        lam = np.exp(-np.exp(p["nu_log"]) + 1j * np.exp(p["theta_log"]))
        bu = x @ (p["B_re"] + 1j * p["B_im"])
        state = lam * state + np.exp(p["gamma_log"]) * bu
        y = np.real(state @ (p["C_re"] + 1j * p["C_im"])) + x @ p["D"]
        return state, y
    if name == "rg_lru":  # De et al. 2024, section 2.4
        h = np.asarray(carry, np.float64)
        n_h = h.shape[-1]
        pre = x @ p["w_i"] + b
        r, i = _sigmoid(pre[..., :n_h]), _sigmoid(pre[..., n_h : 2 * n_h])
        a_t = _sigmoid(p["a_param"]) ** (8.0 * r)
        h = a_t * h + np.sqrt(1.0 - a_t**2) * (i * pre[..., 2 * n_h :])
        return h, h
    if name.startswith("slstm"):  # Beck et al. 2024, eqs. (8)-(17), stabilised
        h, c, n, m = (np.asarray(a, np.float64) for a in carry)
        heads, hd, _ = p["w_h"].shape
        n_h = heads * hd
        # The block-diagonal R as one dense [h, 4h] matrix in the layout of w_i's gates.
        r_full = np.zeros((n_h, 4 * n_h))
        for k in range(heads):
            for g in range(4):
                rows = slice(k * hd, (k + 1) * hd)
                cols = slice(g * n_h + k * hd, g * n_h + (k + 1) * hd)
                r_full[rows, cols] = p["w_h"][k][:, g * hd : (g + 1) * hd]
        i_, f_, z_, o_ = np.split(x @ p["w_i"] + h @ r_full + b, 4, axis=-1)
        m_new = np.maximum(f_ + m, i_)
        i, f = np.exp(i_ - m_new), np.exp(f_ + m - m_new)
        c = f * c + i * np.tanh(z_)
        n = f * n + i
        h = _sigmoid(o_) * c / n
        return (h, c, n, m_new), h
    raise KeyError(name)


def randomize(params, seed=0, scale=0.5):
    """Every leaf redrawn from N(0, scale^2), so zero biases and unit scales get tested too."""
    import jax

    leaves, treedef = jax.tree.flatten(params)
    rng = np.random.default_rng(seed)
    new = [np.asarray(rng.normal(0, scale, np.shape(x)), np.asarray(x).dtype) for x in leaves]
    return jax.tree.unflatten(treedef, [jax.numpy.asarray(x) for x in new])
