"""Decoding: greedy, sampling and beam search against hand-built models and brute force."""

from __future__ import annotations

import functools
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import seqjax
from seqjax import decoding as D

EOS = 1


def _rnn_model(seed=0, v=7, h=8, batch=(5,), eos_bias=1.0):
    """A random GRU language model; its logits depend on the whole carry, so beam search
    must reorder carries correctly. Aux is a pytree (output and probabilities)."""
    cell = seqjax.gru(h)
    k = jax.random.split(jax.random.key(seed), 5)
    params = {
        "emb": jax.random.normal(k[0], (v, h)),
        "cell": cell.init(k[1], h),
        "w": 2.0 * jax.random.normal(k[2], (h, v)),
        "b": jax.random.normal(k[3], (v,)).at[EOS].add(eos_bias),
    }

    def step_fn(carry, tokens):
        carry, y = cell.apply(params["cell"], carry, params["emb"][tokens])
        logits = y @ params["w"] + params["b"]
        return carry, logits, {"y": y, "p": jax.nn.softmax(logits)}

    carry0 = jax.random.normal(k[4], (*batch, h))
    return step_fn, carry0


@functools.partial(jax.jit, static_argnums=0)
def _teacher_forced_log_probs(step_fn, carry, start, tokens):
    """Per-step log-probs of ``tokens: [*b, T]`` fed back one step late, and the argmaxes."""
    inputs = jnp.concatenate([start[..., None], tokens[..., :-1]], axis=-1)

    def body(carry, tok):
        carry, logits, aux = step_fn(carry, tok)
        return carry, (jax.nn.log_softmax(logits), aux)

    _, (logp, aux) = jax.lax.scan(body, carry, jnp.moveaxis(inputs, -1, 0))
    logp = jnp.moveaxis(logp, 0, -2)  # [*b, T, v]
    picked = jnp.take_along_axis(logp, tokens[..., None], -1)[..., 0]
    return picked, jnp.argmax(logp, -1), jax.tree.map(lambda a: jnp.moveaxis(a, 0, -2), aux)


def _valid(lengths, t):
    return np.arange(t) < np.asarray(lengths)[..., None]


# --------------------------------------------------------------------------- greedy


def test_greedy_equals_teacher_forced_pass_on_its_tokens():
    step_fn, carry = _rnn_model()
    start = jnp.zeros((5,), jnp.int32)
    out = jax.jit(functools.partial(D.greedy, step_fn, max_length=9, eos_id=EOS))(carry, start)
    assert out.tokens.shape == (5, 9) and out.tokens.dtype == jnp.int32
    assert set(np.asarray(out.lengths)) != {9}, "pick a model where some sequences end early"
    picked, argmax, aux = _teacher_forced_log_probs(step_fn, carry, start, out.tokens)
    valid = _valid(out.lengths, 9)
    np.testing.assert_array_equal(np.asarray(argmax)[valid], np.asarray(out.tokens)[valid])
    np.testing.assert_allclose(out.log_probs, np.sum(np.where(valid, picked, 0), -1), rtol=1e-5)
    np.testing.assert_array_equal(out.scores, out.log_probs)
    for name in ("y", "p"):
        got, want = np.asarray(out.aux[name]), np.asarray(aux[name])
        np.testing.assert_allclose(got[valid], want[valid], rtol=1e-5, atol=1e-6)
        assert np.all(got[~valid] == 0)
    # After the end: padding, and the end token is counted in the length.
    toks = np.asarray(out.tokens)
    for b, n in enumerate(np.asarray(out.lengths)):
        assert np.all(toks[b, n:] == 0)
        assert (toks[b, n - 1] == EOS) == (n < 9 or toks[b, 8] == EOS)
        assert EOS not in toks[b, : n - 1]


def test_greedy_without_eos_runs_max_length():
    step_fn, carry = _rnn_model()
    out = D.greedy(step_fn, carry, jnp.zeros((5,), jnp.int32), max_length=6, pad_id=-1)
    np.testing.assert_array_equal(out.lengths, 6)
    assert np.all(np.asarray(out.tokens) >= 0)


# --------------------------------------------------------------------------- beam search


def _table_model(probs):
    """A bigram model: the next-token distribution depends on the input token only."""
    table = jnp.log(jnp.asarray(probs, jnp.float32))

    def step_fn(carry, tokens):
        return carry + 1, table[tokens], None

    return step_fn


def test_beam_search_finds_better_sequence_than_greedy():
    # tokens: 0 pad/start, 1 eos, 2 "A", 3 "B". Greedy takes A (0.6) and then can only end
    # with 0.34; B (0.4) ends with 0.99, a better sequence: 0.396 > 0.204.
    p = np.full((4, 4), 1e-9)
    p[0, [2, 3]] = 0.6, 0.4
    p[2, [1, 2, 3]] = 0.34, 0.33, 0.33
    p[3, [1, 2]] = 0.99, 0.01
    p[1, 1] = 1.0
    step_fn = _table_model(p / p.sum(1, keepdims=True))
    start, carry = jnp.zeros((2,), jnp.int32), jnp.zeros((2,))
    greedy = D.greedy(step_fn, carry, start, max_length=4, eos_id=EOS)
    beam = jax.jit(
        functools.partial(D.beam_search, step_fn, beam_size=2, max_length=4, eos_id=EOS)
    )(carry, start)
    np.testing.assert_array_equal(greedy.tokens[0], [2, 1, 0, 0])
    np.testing.assert_array_equal(beam.tokens[0, 0], [3, 1, 0, 0])
    np.testing.assert_array_equal(beam.tokens[0, 1], [2, 1, 0, 0])
    np.testing.assert_allclose(greedy.log_probs[0], np.log(0.6 * 0.34), rtol=1e-5)
    np.testing.assert_allclose(beam.log_probs[0], np.log([0.4 * 0.99, 0.6 * 0.34]), rtol=1e-5)
    np.testing.assert_array_equal(beam.lengths[0], [2, 2])
    assert beam.log_probs[0, 0] > greedy.log_probs[0]


def test_beam_one_equals_greedy():
    step_fn, carry = _rnn_model(seed=3)
    start = jnp.full((5,), 2, jnp.int32)
    greedy = D.greedy(step_fn, carry, start, max_length=10, eos_id=EOS)  # eager
    beam = jax.jit(
        functools.partial(D.beam_search, step_fn, beam_size=1, max_length=10, eos_id=EOS)
    )(carry, start)
    np.testing.assert_array_equal(beam.tokens[:, 0], greedy.tokens)
    np.testing.assert_array_equal(beam.lengths[:, 0], greedy.lengths)
    np.testing.assert_allclose(beam.log_probs[:, 0], greedy.log_probs, rtol=1e-6)
    for name in ("y", "p"):
        np.testing.assert_allclose(beam.aux[name][:, 0], greedy.aux[name], rtol=1e-6, atol=1e-7)


def _brute_force(step_fn, carry, start, v, t, alpha):
    """Every distinct hypothesis of at most ``t`` tokens with its log-prob and score."""
    seqs = jnp.asarray(list(itertools.product(range(v), repeat=t)), jnp.int32)  # [n, t]
    n = seqs.shape[0]
    tiled = jax.tree.map(lambda c: jnp.broadcast_to(c, (n, *c.shape)), carry)
    picked, _, _ = _teacher_forced_log_probs(step_fn, tiled, jnp.full((n,), start), seqs)
    seqs, picked = np.asarray(seqs), np.asarray(picked)
    found = {}
    for s, lp in zip(seqs, picked, strict=True):
        ends = np.flatnonzero(s == EOS)
        n_tok = int(ends[0]) + 1 if ends.size else t
        key = tuple(s[:n_tok]) + (0,) * (t - n_tok)
        logp = float(lp[:n_tok].sum())
        found[key] = (logp, logp / ((5 + n_tok) / 6) ** alpha, n_tok)
    return sorted(found.items(), key=lambda kv: -kv[1][1])


@pytest.mark.parametrize("alpha", [0.0, 1.5])
def test_exhaustive_beam_equals_brute_force(alpha):
    """With room for every hypothesis, beam search is exhaustive: same ranking as brute
    force over all sequences, through the carry-dependent model."""
    v, t = 4, 4
    step_fn, carry = _rnn_model(seed=1, v=v, h=6, batch=())
    out = jax.jit(
        functools.partial(
            D.beam_search, step_fn, beam_size=v**t, max_length=t, eos_id=EOS, alpha=alpha
        )
    )(carry, jnp.asarray(2))
    best = _brute_force(step_fn, carry, 2, v, t, alpha)
    top = 12
    np.testing.assert_array_equal(out.tokens[:top], [k for k, _ in best[:top]])
    np.testing.assert_allclose(out.scores[:top], [s for _, (_, s, _) in best[:top]], rtol=1e-5)
    np.testing.assert_allclose(out.log_probs[:top], [lp for _, (lp, _, _) in best[:top]], rtol=1e-5)
    np.testing.assert_array_equal(out.lengths[:top], [n for _, (_, _, n) in best[:top]])
    finite = np.isfinite(np.asarray(out.scores))
    assert finite.sum() == len(best)  # every distinct hypothesis, each once
    assert np.all(np.diff(np.asarray(out.scores)[finite]) <= 0)


def test_small_beam_keeps_best_first_and_matches_teacher_forcing():
    step_fn, carry = _rnn_model(seed=2)
    start = jnp.zeros((5,), jnp.int32)
    out = jax.jit(
        functools.partial(D.beam_search, beam_size=3, max_length=8, eos_id=EOS, alpha=0.6),
        static_argnums=0,
    )(step_fn, carry, start)
    assert out.tokens.shape == (5, 3, 8) and out.aux["y"].shape == (5, 3, 8, 8)
    assert np.all(np.diff(np.asarray(out.scores), axis=-1) <= 0)
    np.testing.assert_allclose(
        out.scores, out.log_probs / D.length_penalty(out.lengths, 0.6), rtol=1e-6
    )
    # Each beam's tokens, log-prob and aux are those of teacher forcing on its tokens.
    tiled = jnp.broadcast_to(carry[:, None], (5, 3, carry.shape[-1]))
    picked, _, aux = _teacher_forced_log_probs(
        step_fn, tiled, jnp.zeros((5, 3), jnp.int32), out.tokens
    )
    valid = _valid(out.lengths, 8)
    np.testing.assert_allclose(out.log_probs, np.sum(np.where(valid, picked, 0), -1), rtol=1e-5)
    np.testing.assert_allclose(
        np.asarray(out.aux["p"])[valid], np.asarray(aux["p"])[valid], rtol=1e-5, atol=1e-6
    )
    assert np.all(np.asarray(out.aux["p"])[~valid] == 0)
    assert np.all(np.asarray(out.tokens)[~valid] == 0)


def test_length_penalty_formula():
    np.testing.assert_allclose(D.length_penalty(jnp.asarray([1, 7]), 0.6), [1.0, 2.0**0.6])
    np.testing.assert_array_equal(D.length_penalty(jnp.asarray([3, 9]), 0.0), [1.0, 1.0])


# --------------------------------------------------------------------------- sampling


def test_sample_top1_equals_greedy_and_log_probs_are_the_models():
    step_fn, carry = _rnn_model(seed=4)
    start = jnp.zeros((5,), jnp.int32)
    greedy = jax.jit(functools.partial(D.greedy, step_fn, max_length=8, eos_id=EOS))
    sample = jax.jit(
        functools.partial(D.sample, max_length=8, eos_id=EOS),
        static_argnums=0,
        static_argnames="top_k",
    )
    s1 = sample(step_fn, carry, start, jax.random.key(0), top_k=1)
    g = greedy(carry, start)
    np.testing.assert_array_equal(s1.tokens, g.tokens)
    np.testing.assert_allclose(s1.log_probs, g.log_probs, rtol=1e-6)
    out = sample(step_fn, carry, start, jax.random.key(1))
    picked, _, _ = _teacher_forced_log_probs(step_fn, carry, start, out.tokens)
    valid = _valid(out.lengths, 8)
    np.testing.assert_allclose(out.log_probs, np.sum(np.where(valid, picked, 0), -1), rtol=1e-5)


@pytest.mark.parametrize(("temperature", "top_k"), [(1.0, None), (0.5, None), (1.0, 2)])
def test_sample_distribution(temperature, top_k):
    logits = jnp.asarray([1.0, 0.2, -0.5, 0.7])

    def step_fn(carry, tokens):
        return carry, jnp.broadcast_to(logits, (*tokens.shape, 4)), None

    n = 40000
    out = jax.jit(
        functools.partial(D.sample, step_fn, max_length=1, temperature=temperature, top_k=top_k)
    )(jnp.zeros((n,)), jnp.zeros((n,), jnp.int32), jax.random.key(7))
    freq = np.bincount(np.asarray(out.tokens[:, 0]), minlength=4) / n
    z = np.asarray(logits) / temperature
    if top_k is not None:
        z = np.where(z >= np.sort(z)[-top_k], z, -np.inf)
    want = np.exp(z - z.max()) / np.exp(z - z.max()).sum()
    np.testing.assert_allclose(freq, want, atol=0.01)
    if top_k is not None:
        assert np.all(freq[want == 0] == 0)


def test_sample_is_deterministic_given_key():
    step_fn, carry = _rnn_model()
    start = jnp.zeros((5,), jnp.int32)
    run = jax.jit(functools.partial(D.sample, step_fn, max_length=8, eos_id=EOS, top_k=3))
    a, b = run(carry, start, jax.random.key(0)), run(carry, start, jax.random.key(0))
    c = run(carry, start, jax.random.key(1))
    np.testing.assert_array_equal(a.tokens, b.tokens)
    assert not np.array_equal(a.tokens, c.tokens)
    eager = D.sample(step_fn, carry, start, jax.random.key(0), max_length=8, eos_id=EOS, top_k=3)
    np.testing.assert_array_equal(eager.tokens, a.tokens)


# --------------------------------------------------------------------------- batching, jit


def test_any_batch_shape_and_jit():
    step_fn, carry = _rnn_model(batch=(2, 3))
    start = jnp.zeros((2, 3), jnp.int32)
    flat_fn, _ = _rnn_model(batch=(6,))
    flat_carry, flat_start = carry.reshape(6, -1), start.reshape(6)
    kw = dict(max_length=6, eos_id=EOS)
    runs = {
        "greedy": lambda f, c, s: D.greedy(f, c, s, **kw),
        "sample": lambda f, c, s: D.sample(f, c, s, jax.random.key(0), **kw),
        "beam": lambda f, c, s: D.beam_search(f, c, s, beam_size=2, **kw),
    }
    for name, run in runs.items():
        out = jax.jit(functools.partial(run, step_fn))(carry, start)
        lead = (2, 3, 2) if name == "beam" else (2, 3)
        assert out.tokens.shape == (*lead, 6) and out.aux["p"].shape == (*lead, 6, 7)
        if name == "sample":  # the same key draws differently for another batch shape
            continue
        flat = jax.jit(functools.partial(run, flat_fn))(flat_carry, flat_start)
        for got, want in zip(jax.tree.leaves(out), jax.tree.leaves(flat), strict=True):
            np.testing.assert_allclose(
                got.reshape(want.shape), want, rtol=1e-6, atol=1e-7, err_msg=name
            )


def test_errors():
    step_fn, carry = _rnn_model()
    start = jnp.zeros((5,), jnp.int32)
    with pytest.raises(ValueError, match="max_length"):
        D.greedy(step_fn, carry, start, max_length=0)
    with pytest.raises(ValueError, match="beam_size"):
        D.beam_search(step_fn, carry, start, beam_size=0, max_length=3)
    with pytest.raises(ValueError, match="temperature"):
        D.sample(step_fn, carry, start, jax.random.key(0), max_length=3, temperature=0.0)
    with pytest.raises(ValueError, match="top_k"):
        D.sample(step_fn, carry, start, jax.random.key(0), max_length=3, top_k=0)
    with pytest.raises(TypeError, match="integers"):
        D.greedy(step_fn, carry, jnp.zeros((5,)), max_length=3)
    with pytest.raises(ValueError, match="logits of shape"):
        D.greedy(lambda c, t: (c, jnp.zeros((3, 4)), None), carry, start, max_length=2)
