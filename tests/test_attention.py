"""Attention: scores against NumPy references, masking, broadcasting, the decoder cell."""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import attention as A

RTOL, ATOL = 1e-5, 1e-6
KINDS = {
    "bahdanau": lambda: A.bahdanau(5),
    "bahdanau_nobias": lambda: A.bahdanau(5, use_bias=False),
    "concat": lambda: A.luong_concat(5),
    "dot": lambda: A.luong_dot(),
    "scaled_dot": lambda: A.luong_dot(scaled=True),
    "general": lambda: A.luong_general(),
}
Q, M, S = 6, 6, 7  # query, memory and source sizes (dot needs q == m)


def _randomize(params, seed):
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda x: jnp.asarray(rng.normal(0, 0.5, x.shape), x.dtype), params)


def _reference_scores(kind, params, query, values):
    """Scores from the papers' formulas, float64 NumPy; query [b, q], values [b, s, m]."""
    p = {k: np.asarray(v, np.float64) for k, v in params.items()}
    q, h = np.asarray(query, np.float64), np.asarray(values, np.float64)
    if kind.startswith("bahdanau") or kind == "concat":
        pre = (q @ p["w_q"])[:, None, :] + h @ p["w_k"] + p.get("b", 0.0)
        return np.tanh(pre) @ p["v"]
    if kind in ("dot", "scaled_dot"):
        e = np.einsum("bq,bsq->bs", q, h)
        return e / np.sqrt(h.shape[-1]) if kind == "scaled_dot" else e
    if kind == "general":  # h_t^T W_a h_s with W_a = w^T
        return np.einsum("bq,bsm,mq->bs", q, h, p["w"])
    raise KeyError(kind)


def _reference_attend(scores, values, lengths):
    mask = np.arange(scores.shape[-1]) < np.asarray(lengths)[:, None]
    e = np.where(mask, scores, -np.inf)
    w = np.exp(e - e.max(-1, keepdims=True))
    w = np.where(mask, w, 0.0)
    w = w / w.sum(-1, keepdims=True)
    return np.einsum("bs,bsm->bm", w, np.asarray(values, np.float64)), w


@pytest.fixture
def data():
    rng = np.random.default_rng(0)
    query = jnp.asarray(rng.normal(size=(4, Q)), jnp.float32)
    values = jnp.asarray(rng.normal(size=(4, S, M)), jnp.float32)
    lengths = jnp.asarray([7, 3, 1, 5], jnp.int32)
    return query, values, lengths


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_scores_contexts_and_weights_match_reference(kind, data):
    query, values, lengths = data
    att = KINDS[kind]()
    params = _randomize(att.init(jax.random.key(0), Q, M), seed=1)
    memory = A.attention_memory(att, params, values, lengths=lengths)
    context, weights = A.attend(att, params, query, memory)
    assert context.shape == (4, M) and weights.shape == (4, S)
    ref_ctx, ref_w = _reference_attend(
        _reference_scores(kind, params, query, values), values, lengths
    )
    np.testing.assert_allclose(weights, ref_w, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(context, ref_ctx, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_weights_sum_to_one_and_are_zero_when_masked(kind, data):
    query, values, lengths = data
    att = KINDS[kind]()
    params = att.init(jax.random.key(0), Q, M)
    # Huge values at padded positions must not leak into weights or contexts.
    mask = A.length_mask(lengths, S)
    values = jnp.where(mask[..., None], values, 1e4)
    memory = A.attention_memory(att, params, values, mask=mask)
    context, weights = A.attend(att, params, query, memory)
    np.testing.assert_allclose(weights.sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.asarray(weights)[~np.asarray(mask)] == 0.0)
    assert np.all(np.abs(np.asarray(context)) < 100)


def test_masked_softmax_empty_row_gives_zeros_and_finite_grads():
    scores = jnp.asarray([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    mask = jnp.asarray([[True, False, True], [False, False, False]])
    w = A.masked_softmax(scores, mask)
    sm = np.exp([1.0, 3.0]) / np.exp([1.0, 3.0]).sum()
    np.testing.assert_allclose(w[0], [sm[0], 0.0, sm[1]], rtol=1e-6)
    assert np.all(np.asarray(w[1]) == 0.0)
    g = jax.grad(lambda s: jnp.sum(A.masked_softmax(s, mask) * jnp.arange(3.0)))(scores)
    assert np.all(np.isfinite(g)) and np.all(np.asarray(g)[~np.asarray(mask)] == 0.0)


def test_memory_broadcasts_over_extra_query_axes(data):
    query, values, lengths = data
    att = A.bahdanau(5)
    params = att.init(jax.random.key(0), Q, M)
    beams = jnp.stack([query, -query, 2 * query], axis=1)  # [b, k=3, q]
    memory = A.attention_memory(att, params, values, lengths=lengths)
    ctx, w = A.attend(att, params, beams, memory)
    assert ctx.shape == (4, 3, M) and w.shape == (4, 3, S)
    for j in range(3):
        c_j, w_j = A.attend(att, params, beams[:, j], memory)
        np.testing.assert_allclose(ctx[:, j], c_j, rtol=RTOL, atol=ATOL)
        np.testing.assert_allclose(w[:, j], w_j, rtol=RTOL, atol=ATOL)
    # An unbatched memory serves every query.
    one = A.attention_memory(att, params, values[1], lengths=lengths[1])
    c1, _ = A.attend(att, params, query, one)
    np.testing.assert_allclose(c1[3], A.attend(att, params, query[3], one)[0], rtol=RTOL)


def test_errors(data):
    query, values, lengths = data
    with pytest.raises(ValueError, match="query and memory sizes"):
        A.luong_dot().init(jax.random.key(0), 3, 4)
    att = A.luong_general()
    params = att.init(jax.random.key(0), Q, M)
    with pytest.raises(ValueError, match="lengths must have the batch shape"):
        A.attention_memory(att, params, values, lengths=lengths[:2])
    with pytest.raises(ValueError, match="prefix"):
        A.attend(att, params, query[:2], A.attention_memory(att, params, values))
    with pytest.raises(TypeError, match="integer"):
        A.length_mask(jnp.asarray([1.0]), 3)
    cell = A.attention_decoder(seqjax.gru(4), att, memory_size=M)
    p = cell.init(jax.random.key(0), 3)
    with pytest.raises(ValueError, match="bind_memory"):
        cell.apply(p, cell.initial_carry(p, (2,)), jnp.zeros((2, 3)))
    with pytest.raises(TypeError, match="Cell"):
        A.attention_decoder(att, att, memory_size=M)


# --------------------------------------------------------------------------- decoder cell


def _decoder(kind="general", inner=None, **kw):
    att = KINDS[kind]() if kind != "dot" else A.luong_dot()
    inner = inner or seqjax.lstm(M if kind == "dot" else 5)
    return att, A.attention_decoder(inner, att, memory_size=M, **kw)


def _bound(att, cell, values, lengths, d=3, seed=0):
    params = _randomize(cell.init(jax.random.key(seed), d), seed + 1)
    return A.bind_memory(att, params, values, lengths=lengths)


def test_decoder_step_matches_reference_equations(data):
    """One step with an Elman inner cell, from Luong et al. (2015) eqs. 5-7, float64 NumPy."""
    _, values, lengths = data
    att, cell = _decoder("general", inner=seqjax.simple_rnn(5), attention_size=4)
    bound = _bound(att, cell, values, lengths)
    rng = np.random.default_rng(3)
    x = jnp.asarray(rng.normal(size=(4, 3)), jnp.float32)
    carry = A.AttentionState(
        jnp.asarray(rng.normal(size=(4, 5)), jnp.float32),
        jnp.asarray(rng.normal(size=(4, 4)), jnp.float32),
    )
    new, out = cell.apply(bound, carry, x)
    p = jax.tree.map(lambda a: np.asarray(a, np.float64), bound["cell"])
    inp = np.concatenate([np.asarray(x), np.asarray(carry.feed)], -1)
    h = np.tanh(inp @ p["w_i"] + np.asarray(carry.cell) @ p["w_h"] + p["b"])
    scores = _reference_scores("general", bound["attention"], h, values)
    ctx, w = _reference_attend(scores, values, lengths)
    feed = np.tanh(np.concatenate([ctx, h], -1) @ np.asarray(bound["w_c"], np.float64))
    np.testing.assert_allclose(new.cell, h, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out.weights, w, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(out.outputs, feed, rtol=RTOL, atol=1e-5)
    np.testing.assert_allclose(new.feed, feed, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("kind", ["general", "bahdanau", "dot"])
@pytest.mark.parametrize("input_feeding", [True, False])
def test_decoder_cell_scanned_equals_step_by_step(kind, input_feeding, data):
    _, values, src_lengths = data
    att, cell = _decoder(kind, input_feeding=input_feeding)
    bound = _bound(att, cell, values, src_lengths)
    xs = jnp.asarray(np.random.default_rng(4).normal(size=(4, 6, 3)), jnp.float32)
    lengths = jnp.asarray([6, 2, 0, 4], jnp.int32)
    carry, ys = jax.jit(seqjax.recurrent(cell).apply)(bound, xs, lengths=lengths)
    c = cell.initial_carry(bound, (4,))
    for b in range(4):
        cb = jax.tree.map(lambda a, b=b: a[b], c)
        mem = A.Memory(*(None if m is None else m[b] for m in bound["memory"]))
        pb = {**bound, "memory": mem}
        for t in range(6):
            if t < int(lengths[b]):
                cb, yb = cell.apply(pb, cb, xs[b, t])
                np.testing.assert_allclose(ys.outputs[b, t], yb.outputs, rtol=RTOL, atol=ATOL)
                np.testing.assert_allclose(ys.weights[b, t], yb.weights, rtol=RTOL, atol=ATOL)
            else:
                assert np.all(np.asarray(ys.outputs[b, t]) == 0)
                assert np.all(np.asarray(ys.weights[b, t]) == 0)
        for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(cb), strict=True):
            np.testing.assert_allclose(got[b], want, rtol=RTOL, atol=ATOL)
    np.testing.assert_allclose(
        ys.weights.sum(-1), (np.arange(6) < np.asarray(lengths)[:, None]).astype(float), rtol=1e-6
    )
    assert np.all(np.asarray(ys.weights)[1, :2, 3:] == 0)  # source 1 has length 3


def test_decoder_cell_options_and_jit(data):
    _, values, lengths = data
    att, cell = _decoder("bahdanau", attention_size=7, return_weights=False)
    bound = _bound(att, cell, values, lengths)
    xs = jnp.ones((4, 3, 3))
    carry, ys = seqjax.scan(cell, bound, xs)
    assert isinstance(ys, jax.Array) and ys.shape == (4, 3, 7)
    assert carry.feed.shape == (4, 7) and bound["w_c"].shape == (M + 5, 7)
    c2, ys2 = jax.jit(functools.partial(seqjax.scan, cell))(bound, xs)
    np.testing.assert_allclose(ys2, ys, rtol=RTOL, atol=ATOL)
    # Unbatched: one source, one target.
    one = A.bind_memory(att, {k: v for k, v in bound.items() if k != "memory"}, values[0])
    _, y1 = seqjax.scan(cell, one, xs[0])
    assert y1.shape == (3, 7)


@pytest.mark.parametrize("kind", sorted(KINDS))
def test_gradients_reach_every_parameter_and_the_memory(kind, data):
    _, values, lengths = data
    att = KINDS[kind]()
    inner = seqjax.lstm(M) if kind in ("dot", "scaled_dot") else seqjax.gru(5)
    cell = A.attention_decoder(inner, att, memory_size=M)
    params = _randomize(cell.init(jax.random.key(0), 3), 1)
    xs = jnp.asarray(np.random.default_rng(2).normal(size=(4, 5, 3)), jnp.float32)

    def loss(params, values):
        bound = A.bind_memory(att, params, values, lengths=lengths)
        _, ys = seqjax.scan(cell, bound, xs, lengths=jnp.asarray([5, 4, 3, 2]))
        return jnp.sum(jnp.sin(ys.outputs)) + jnp.sum(ys.weights * jnp.arange(S))

    g_params, g_values = jax.jit(jax.grad(loss, argnums=(0, 1)))(params, values)
    for path, leaf in jax.tree_util.tree_leaves_with_path(g_params):
        assert np.all(np.isfinite(leaf)), path
        assert np.any(np.asarray(leaf) != 0), f"zero gradient at {jax.tree_util.keystr(path)}"
    valid = np.asarray(A.length_mask(lengths, S))
    assert np.all(np.any(np.asarray(g_values) != 0, -1)[valid])
    assert np.all(np.asarray(g_values)[~valid] == 0)  # padded memory has no influence
