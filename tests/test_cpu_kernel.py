"""The CPU kernel of the standard cells (seqjax.kernels.cpu, an XLA FFI call) equals the
plain scan of cell.step and the fused XLA recurrence: outputs, carries and gradients."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import kernels
from seqjax.kernels import cpu

RTOL, ATOL = 1e-5, 1e-5
# hidden 70, batch 7: two lanes of units (35 each, not a multiple of the kernel's tiles);
# hidden 200: six lanes; hidden 6: one lane. The suite runs the kernel on one thread per
# worker (conftest.py); test_thread_count_does_not_change_a_bit runs six lanes on two.
SIZES = {"two_threads": (70, 7), "six_lanes": (200, 3), "one_thread": (6, 3)}
CELLS = {
    "lstm": seqjax.lstm,
    "gru": seqjax.gru,
    "gru_nobias": lambda h: seqjax.gru(h, use_bias=False),
    "rnn_tanh": seqjax.simple_rnn,
    "rnn_relu": lambda h: seqjax.simple_rnn(h, activation="relu"),
}


def test_kernel_is_built_and_registered():
    assert cpu.available(), cpu.why_unavailable()
    assert cpu.why_unavailable() == ""
    assert cpu.max_threads() >= 1


def _uses_kernel(layer, params, xs, **kwargs) -> bool:
    jaxpr = jax.make_jaxpr(lambda p, x: layer.apply(p, x, **kwargs))(params, xs)
    return "seqjax_forward" in str(jaxpr)


def _paths(layer, params, xs, carry, **kwargs):
    """Outputs and gradients of the kernel, the fused recurrence and the plain scan, in one
    compilation."""

    def run(params, xs, carry):
        carry, ys = layer.apply(params, xs, carry, **kwargs)
        w = jnp.sin(jnp.arange(ys.size, dtype=ys.dtype)).reshape(ys.shape)
        loss = jnp.sum(ys * w) + sum(jnp.sum(jnp.cos(c)) for c in jax.tree.leaves(carry))
        return loss, (carry, ys)

    grad = jax.grad(run, (0, 1, 2), has_aux=True)

    @jax.jit
    def all_paths(params, xs, carry):
        out = {"kernel": grad(params, xs, carry)}
        with cpu.disabled():
            out["fused"] = grad(params, xs, carry)
        with kernels.disabled():
            out["plain"] = grad(params, xs, carry)
        return out

    return all_paths(params, xs, carry)


def _check(cell, size, *, t=33, batch_shape=None, d=5, lengths=False, time_major=False, **options):
    hidden, batch = SIZES[size]
    batch_shape = (batch,) if batch_shape is None else batch_shape
    layer = seqjax.recurrent(CELLS[cell](hidden), time_major=time_major, **options)
    k1, k2, k3, k4 = jax.random.split(jax.random.key(t + hidden), 4)
    params = layer.init(k1, d)
    # random biases (zero at init), and smaller weights for the relu RNN, whose
    # activations otherwise grow without bound over 33 steps
    scale = 0.3 if cell == "rnn_relu" else 1.0
    params = {
        k: v * scale if k.startswith("w") else jax.random.normal(k4, v.shape)
        for k, v in params.items()
    }
    shape = (t, *batch_shape, d) if time_major else (*batch_shape, t, d)
    xs = jax.random.normal(k2, shape)
    carry = jax.tree.map(
        lambda c: jax.random.normal(k3, c.shape), layer.initial_carry(params, batch_shape)
    )
    kwargs = {}
    if lengths:  # an empty sequence, a full one, and the rest in between
        n = int(np.prod(batch_shape))
        lens = np.random.default_rng(t).integers(0, t + 1, size=n)
        lens[0], lens[-1] = 0, t
        kwargs["lengths"] = jnp.asarray(lens.reshape(batch_shape), jnp.int32)
    assert _uses_kernel(layer, params, xs, **kwargs)
    out = _paths(layer, params, xs, carry, **kwargs)
    for other in ("fused", "plain"):
        for a, b in zip(jax.tree.leaves(out["kernel"]), jax.tree.leaves(out[other]), strict=True):
            np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=RTOL, atol=ATOL)
    return out


OPTIONS = {
    "plain": {},
    "lengths": {"lengths": True},
    "reverse_lengths": {"lengths": True, "reverse": True},
    "time_major_2_axes": {"reverse": True, "time_major": True, "batch_shape": (2, 3)},
    "remat8": {"remat": 8, "lengths": True},
    "sqrt": {"remat": "sqrt", "reverse": True},
    "t1": {"t": 1},
    "one_feature": {"d": 1, "lengths": True},  # fewer inputs than threads: some own no dx
}
# Every cell with every option on two threads; on one thread, the LSTM with every option and
# the other cells plain.
CASES = [(c, "two_threads", o) for c in sorted(CELLS) for o in OPTIONS]
CASES += [("lstm", "one_thread", o) for o in OPTIONS if o != "plain"]
CASES += [(c, "one_thread", "plain") for c in sorted(CELLS)]
CASES += [(c, "six_lanes", o) for c in ("lstm", "gru") for o in ("plain", "reverse_lengths")]


@pytest.mark.parametrize("cell, size, options", CASES)
def test_kernel_equals_plain_and_fused(cell, size, options):
    _check(cell, size, **OPTIONS[options])


@pytest.mark.parametrize("cell", ["lstm", "gru"])
def test_more_rows_than_a_weight_gradient_block(cell):
    # 300 rows: a block of one step (256 // 300 -> 1), flushed after every step.
    _check(cell, "two_threads", t=4, batch_shape=(300,), lengths=True)


def test_nan_reaches_the_outputs_as_in_the_plain_path():
    for activation in ("relu", "tanh"):
        layer = seqjax.recurrent(seqjax.simple_rnn(16, activation=activation))
        params = layer.init(jax.random.key(0), 3)
        xs = jax.random.normal(jax.random.key(1), (4, 6, 3)).at[1, 2, 0].set(jnp.nan)
        _, ys = layer.apply(params, xs)
        with kernels.disabled():
            _, ys_plain = layer.apply(params, xs)
        np.testing.assert_array_equal(np.isnan(ys), np.isnan(ys_plain))
        assert np.isnan(ys).any()


def test_gradient_of_a_gradient_takes_the_xla_path():
    # The kernel's backward pass has no derivative of its own: a gradient penalty (grad of
    # grad) runs on the fused XLA recurrence, with the plain path's numbers.
    layer = seqjax.recurrent(seqjax.lstm(16))
    params = layer.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (4, 7, 3))

    def loss(p):
        return jnp.sum(layer.apply(p, xs)[1] ** 2)

    def penalty(p):
        return sum(jnp.sum(g**2) for g in jax.tree.leaves(jax.grad(loss)(p)))

    assert "seqjax_forward" in str(jax.make_jaxpr(jax.grad(loss))(params))
    assert "seqjax_forward" not in str(jax.make_jaxpr(jax.grad(penalty))(params))
    got = jax.jit(jax.grad(penalty))(params)
    with kernels.disabled():
        want = jax.jit(jax.grad(penalty))(params)
    for a, b in zip(jax.tree.leaves(got), jax.tree.leaves(want), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.max(jnp.abs(b))))


def test_saturated_gates():
    # Biases of +-20 saturate every gate (past the kernel's tanh clamp at +-9), and zero
    # recurrent weights: still the plain numbers.
    layer = seqjax.recurrent(seqjax.lstm(16))
    params = layer.init(jax.random.key(0), 4)
    signs = jnp.sign(jax.random.normal(jax.random.key(2), params["b"].shape))
    params = {**params, "b": 20.0 * signs, "w_h": jnp.zeros_like(params["w_h"])}
    xs = jax.random.normal(jax.random.key(1), (5, 12, 4))
    _, ys = layer.apply(params, xs)
    with kernels.disabled():
        _, ys_plain = layer.apply(params, xs)
    np.testing.assert_allclose(ys, ys_plain, rtol=RTOL, atol=ATOL)
    assert np.all(np.abs(ys) <= 1.0)


def test_thread_count_does_not_change_a_bit(tmp_path):
    # The lanes of units do not depend on the threads, and each output column sums over the
    # same k in the same order whichever thread takes its lane, so one thread and several
    # give bitwise the same outputs and gradients.
    script = textwrap.dedent(
        """
        import sys
        import jax, jax.numpy as jnp, numpy as np
        import seqjax
        layer = seqjax.recurrent(seqjax.lstm(200))  # six lanes
        params = layer.init(jax.random.key(0), 5)
        xs = jax.random.normal(jax.random.key(1), (7, 40, 5))
        lens = jnp.array([40, 3, 0, 17, 40, 25, 9])
        loss = lambda p, x: layer.apply(p, x, lengths=lens)[1].sum()
        _, ys = jax.jit(lambda p, x: layer.apply(p, x, lengths=lens))(params, xs)
        g = jax.jit(jax.grad(loss, (0, 1)))(params, xs)
        leaves = [ys] + jax.tree.leaves(g)
        np.savez(sys.argv[1], *[np.asarray(a) for a in leaves])
        """
    )
    results = []
    for threads in ("1", str(max(2, cpu.max_threads()))):
        out = tmp_path / f"threads{threads}.npz"
        env = {**os.environ, "SEQJAX_NUM_THREADS": threads}
        subprocess.run([sys.executable, "-c", script, str(out)], env=env, check=True)
        with np.load(out) as f:
            results.append([f[k] for k in sorted(f.files, key=lambda k: int(k.split("_")[1]))])
    for a, b in zip(*results, strict=True):
        np.testing.assert_array_equal(a, b)


def test_resets_vmap_and_jvp_keep_the_xla_paths():
    layer = seqjax.recurrent(seqjax.lstm(8))
    params = layer.init(jax.random.key(0), 3)
    xs = jax.random.normal(jax.random.key(1), (2, 6, 3))
    resets = jnp.zeros((2, 6), bool).at[:, 3].set(True)
    assert not _uses_kernel(layer, params, xs, resets=resets)
    assert "custom_vjp_call" in str(
        jax.make_jaxpr(lambda p, x: layer.apply(p, x, resets=resets))(params, xs)
    )  # the fused XLA recurrence

    # vmap over examples: the engine's own path, equal to a loop over them.
    one = jax.vmap(lambda x: layer.apply(params, x)[1])
    assert "seqjax_forward" not in str(jax.make_jaxpr(one)(xs))
    np.testing.assert_allclose(
        one(xs), jnp.stack([layer.apply(params, x)[1] for x in xs]), rtol=RTOL, atol=ATOL
    )

    # Forward mode traces the plain scan.
    f = lambda x: layer.apply(params, x)[1].sum()  # noqa: E731
    tangent = jnp.ones_like(xs)
    _, jvp = jax.jvp(f, (xs,), (tangent,))
    np.testing.assert_allclose(jvp, jnp.vdot(jax.grad(f)(xs), tangent), rtol=1e-4)


def test_switches_and_other_dtypes():
    layer = seqjax.recurrent(seqjax.lstm(8))
    params = layer.init(jax.random.key(0), 3)
    xs = jnp.ones((2, 4, 3))
    assert _uses_kernel(layer, params, xs)
    with cpu.disabled():
        assert not _uses_kernel(layer, params, xs)
        with cpu.disabled(False):  # nesting cannot turn it back on
            assert not _uses_kernel(layer, params, xs)
    with kernels.disabled():
        assert not _uses_kernel(layer, params, xs)
    assert _uses_kernel(layer, params, xs)
    bf16 = jax.tree.map(lambda p: p.astype(jnp.bfloat16), params)
    assert not _uses_kernel(layer, bf16, xs.astype(jnp.bfloat16))
    for cell in (
        seqjax.lstm(8, proj_size=4),
        seqjax.gru(8, reset_after=False),
        seqjax.lstm(8, layer_norm=True),
        seqjax.min_gru(8),
    ):
        other = seqjax.recurrent(cell)
        assert not _uses_kernel(other, other.init(jax.random.key(0), 3), xs)


def test_torch_parity_through_the_kernel():
    import torch

    torch.manual_seed(0)
    module = torch.nn.LSTM(5, 40, batch_first=True)
    seq, params = seqjax.interop.from_torch(module)
    x = np.random.default_rng(0).standard_normal((6, 21, 5)).astype(np.float32)
    assert _uses_kernel(seq, params, jnp.asarray(x))
    (h_n, c_n), ys = seq.apply(params, jnp.asarray(x))
    with torch.no_grad():
        ref, (th, tc) = module(torch.from_numpy(x))
    np.testing.assert_allclose(ys, ref.numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(h_n[0], th[0].numpy(), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c_n[0], tc[0].numpy(), rtol=1e-4, atol=1e-5)


def test_keep_freed_memory_stops_a_large_block_faulting_in_again():
    """A 48 MiB block (above glibc's 32 MiB mmap limit) freed and allocated again: with
    glibc's defaults each allocation is a fresh mapping whose pages fault in anew; after
    keep_freed_memory the second one reuses the first one's pages. In a subprocess, so the
    suite's own allocator keeps its defaults."""
    script = textwrap.dedent(
        """
        import resource, sys
        import numpy as np
        from seqjax.kernels import cpu

        def faults_of_one_block():
            before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
            block = np.empty(12 << 20, np.float32)  # 48 MiB
            block.fill(1.0)
            del block
            return resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before

        faults_of_one_block()
        default = min(faults_of_one_block() for _ in range(3))
        applied = cpu.keep_freed_memory()
        faults_of_one_block()
        kept = max(faults_of_one_block() for _ in range(3))
        print(applied, default, kept)
        """
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True)
    applied, default, kept = out.stdout.split()
    assert applied == "True"  # glibc on Linux
    # 48 MiB is 12,288 pages of 4 KiB (fewer where huge pages serve the block).
    assert int(default) > 20 and int(kept) < int(default) // 4, out.stdout
