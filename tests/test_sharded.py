"""Time-sharded linear scans: on 4 forced host devices, every chunking of time (including
lengths that do not divide by the devices), forward and reverse, with resets and lengths,
equals the single-device associative scan and the sequential scan; gradients too."""

from __future__ import annotations

import os
import pathlib
import subprocess
import sys

import jax
import numpy as np
import pytest
from jax.sharding import Mesh

import seqjax
from seqjax.sharded import check_time_shards

ROOT = pathlib.Path(__file__).resolve().parents[1]

_FOUR_DEVICES = r"""
import jax, jax.numpy as jnp, numpy as np
from jax.sharding import Mesh
import seqjax
assert jax.device_count() == 4, jax.devices()
mesh = Mesh(np.asarray(jax.devices()), ("time",))
grid = Mesh(np.asarray(jax.devices()).reshape(2, 2), ("data", "time"))
cell = seqjax.min_gru(5)
params = cell.init(jax.random.PRNGKey(0), 3)
checked = 0
# (t, reverse, mesh, resets, lengths): 11 and 1 steps do not divide by 4 devices.
cases = [
    (11, False, mesh, True, True),
    (11, True, mesh, True, True),
    (8, False, grid, True, False),
    (8, True, mesh, False, False),
    (1, False, mesh, False, True),
    (11, True, grid, False, True),
]
for t, reverse, m, use_resets, use_lengths in cases:
    xs = jax.random.normal(jax.random.PRNGKey(t), (3, t, 3))
    kw = {}
    if use_resets:
        kw["resets"] = jax.random.bernoulli(jax.random.PRNGKey(t + 1), 0.25, (3, t))
    if use_lengths:
        kw["lengths"] = jnp.array([t, t // 2, 0])
    carry0 = jax.random.normal(jax.random.PRNGKey(7), (3, 5))
    one = seqjax.recurrent(cell, parallel=True, reverse=reverse)
    seq = seqjax.recurrent(cell, reverse=reverse)
    many = seqjax.recurrent(cell, parallel=True, reverse=reverse, time_shards=(m, "time"))
    want, got, plain = (
        jax.jit(lambda p, x, c, layer=layer: layer.apply(p, x, c, **kw))(params, xs, carry0)
        for layer in (one, many, seq)
    )
    for a, b, c in zip(jax.tree.leaves(want), jax.tree.leaves(got), jax.tree.leaves(plain)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(b, c, rtol=1e-5, atol=1e-6)
    checked += 1

# Gradients through the sharded scan equal the single-device ones.
xs = jax.random.normal(jax.random.PRNGKey(3), (2, 12, 3))
resets = jnp.zeros((2, 12), bool).at[:, 5].set(True)
def loss(layer):
    return lambda p, x: jnp.sum(layer.apply(p, x, resets=resets)[1] ** 2)
one = seqjax.recurrent(cell, parallel=True)
many = seqjax.recurrent(cell, parallel=True, time_shards=(mesh, "time"))
g1 = jax.grad(loss(one))(params, xs)
g4 = jax.jit(jax.grad(loss(many)))(params, xs)
for a, b in zip(jax.tree.leaves(g1), jax.tree.leaves(g4)):
    np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)
# The output stays sharded along time over the 4 devices.
major = seqjax.recurrent(cell, parallel=True, time_major=True, time_shards=(mesh, "time"))
ys = jax.jit(lambda p, x: major.apply(p, x)[1])(params, jnp.moveaxis(xs, 1, 0))
assert len(ys.sharding.device_set) == 4, ys.sharding
print("checked", checked)
"""


def test_four_devices_equal_one_with_resets_and_lengths():
    flags = os.environ.get("XLA_FLAGS", "") + " --xla_force_host_platform_device_count=4"
    env = {**os.environ, "XLA_FLAGS": flags.strip()}
    env["PYTHONPATH"] = str(ROOT)
    out = subprocess.run(
        [sys.executable, "-c", _FOUR_DEVICES],
        env=env,
        capture_output=True,
        text=True,
        timeout=900,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    assert "checked 6" in out.stdout


def test_one_device_mesh_equals_the_plain_parallel_scan():
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("time",))
    cell = seqjax.min_gru(4)
    params = cell.init(jax.random.PRNGKey(0), 2)
    xs = jax.random.normal(jax.random.PRNGKey(1), (2, 6, 2))
    resets = np.zeros((2, 6), bool)
    resets[0, 3] = True
    want = seqjax.scan(cell, params, xs, resets=resets, parallel=True)
    got = seqjax.scan(cell, params, xs, resets=resets, parallel=True, time_shards=(mesh, "time"))
    for a, b in zip(jax.tree.leaves(want), jax.tree.leaves(got)):
        np.testing.assert_allclose(b, a, rtol=1e-5, atol=1e-6)


def test_bad_time_shards_are_clear_errors():
    mesh = Mesh(np.asarray(jax.devices()[:1]), ("time",))
    cell = seqjax.min_gru(4)
    with pytest.raises(ValueError, match="time_shards needs parallel=True"):
        seqjax.recurrent(cell, time_shards=(mesh, "time"))
    with pytest.raises(ValueError, match=r"an axis of the mesh \('time',\), received 'data'"):
        seqjax.recurrent(cell, parallel=True, time_shards=(mesh, "data"))
    with pytest.raises(TypeError, match="a jax.sharding.Mesh, received str"):
        check_time_shards(("mesh", "time"))
    with pytest.raises(TypeError, match=r"a \(jax.sharding.Mesh, axis name\) pair"):
        check_time_shards(mesh)
