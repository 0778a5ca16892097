"""The Transformer baseline: cached decoding equals the full causal pass, padding is
irrelevant to valid positions, beam 1 is greedy, and bad input is named."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from seqjax import decoding
from seqjax.nn import (
    KVCache,
    TransformerClassifier,
    TransformerConfig,
    TransformerEncoder,
    TransformerForecaster,
    TransformerLM,
    TransformerSeq2Seq,
    TransformerTagger,
)
from seqjax.nn.transformer import sinusoidal_positions

TOL = dict(rtol=1e-5, atol=2e-5)
V = 11


def _config(positions="sinusoidal", **kw):
    return TransformerConfig(
        model_size=32, num_layers=2, num_heads=4, max_length=16, positions=positions, **kw
    )


def _tokens(shape, seed=0, low=0, high=V):
    return jax.random.randint(jax.random.key(seed), shape, low, high)


def _stepwise(model, variables, tokens):
    """Logits of feeding ``tokens: int[b, t]`` one at a time through the cached step."""

    def run(m):
        step, cache = m.step_fn(), m.initial_cache(tokens.shape[:-1])
        out = []
        for t in range(tokens.shape[-1]):
            cache, logits, _ = step(cache, tokens[..., t])
            out.append(logits)
        return cache, jnp.stack(out, -2)

    return jax.jit(lambda v: model.apply(v, method=run))(variables)


@pytest.mark.parametrize("positions", ["sinusoidal", "learned"])
def test_lm_cached_steps_equal_the_full_causal_pass(positions):
    model = TransformerLM(V, _config(positions))
    tokens = _tokens((3, 12))
    variables = model.init(jax.random.key(1), tokens)
    cache, stepped = _stepwise(model, variables, tokens)
    np.testing.assert_allclose(stepped, model.apply(variables, tokens), **TOL)
    assert isinstance(cache, KVCache)
    np.testing.assert_array_equal(cache.position, [12, 12, 12])
    keys = cache.layers["block_0"]["self_attention"]["cached_key"]
    assert keys.shape == (3, 16, 4, 8)  # [*b, max_length, heads, head_dim], preallocated


def test_lm_unbatched_and_two_batch_axes():
    model = TransformerLM(V, _config())
    tokens = _tokens((2, 3, 6))
    variables = model.init(jax.random.key(1), tokens)
    full = model.apply(variables, tokens)
    assert full.shape == (2, 3, 6, V)
    np.testing.assert_allclose(model.apply(variables, tokens[1, 2]), full[1, 2], **TOL)
    _, stepped = _stepwise(model, variables, tokens)
    np.testing.assert_allclose(stepped, full, **TOL)


def test_lm_right_padding_does_not_reach_valid_positions():
    model = TransformerLM(V, _config())
    tokens = _tokens((2, 9))
    variables = model.init(jax.random.key(1), tokens)
    lengths = jnp.array([9, 5])
    other = tokens.at[1, 5:].set(3)  # different padding content
    a = model.apply(variables, tokens, lengths=lengths)
    b = model.apply(variables, other, lengths=lengths)
    np.testing.assert_allclose(a[1, :5], b[1, :5], **TOL)
    np.testing.assert_allclose(a[1, :5], model.apply(variables, tokens[1, :5]), **TOL)


def test_lm_context_carry_continues_a_chunked_text():
    model = TransformerLM(V, _config(), return_carry=True)
    tokens = _tokens((2, 16))
    variables = model.init(jax.random.key(1), tokens[:, :8])
    _, full = model.apply(variables, tokens)
    carry, first = model.apply(variables, tokens[:, :8])
    np.testing.assert_array_equal(carry, tokens[:, :8])  # max_length - 8 = 8 tokens kept
    carry, second = model.apply(variables, tokens[:, 8:], carry)
    np.testing.assert_allclose(jnp.concatenate([first, second], 1), full, **TOL)
    np.testing.assert_array_equal(carry, tokens[:, 8:])


def test_lm_beam_one_is_greedy_and_decoding_runs_through_seqjax_decoding():
    model = TransformerLM(V, _config())
    prompt = _tokens((3, 4))
    variables = model.init(jax.random.key(1), prompt)
    run = lambda **kw: model.apply(variables, prompt, max_length=8, method="decode", **kw)  # noqa: E731
    greedy = run()
    beam = run(strategy="beam", beam_size=1)
    np.testing.assert_array_equal(beam.tokens[:, 0], greedy.tokens)
    np.testing.assert_allclose(beam.log_probs[:, 0], greedy.log_probs, rtol=1e-5, atol=1e-5)
    # greedy continuation: each token is the argmax of the full pass over what came before
    seq = jnp.concatenate([prompt, greedy.tokens], -1)
    logits = model.apply(variables, seq[:, :-1])
    np.testing.assert_array_equal(jnp.argmax(logits[:, 3:], -1), greedy.tokens)
    beams = run(strategy="beam", beam_size=3)
    assert beams.tokens.shape == (3, 3, 8)
    assert np.all(np.diff(np.asarray(beams.scores), axis=-1) <= 1e-6)  # best first
    assert np.all(beams.scores[:, 0] >= greedy.scores - 1e-5)
    sampled = model.apply(
        variables, prompt, jax.random.key(3), max_length=8, top_k=1, method="generate"
    )
    np.testing.assert_array_equal(sampled.tokens, greedy.tokens)  # top-1 sampling is greedy
    jitted = jax.jit(lambda v, p: model.apply(v, p, max_length=8, method="decode").tokens)
    np.testing.assert_array_equal(jitted(variables, prompt), greedy.tokens)


def _s2s_data():
    src = _tokens((3, 7), seed=2, low=3)
    src_len = jnp.array([7, 4, 1])
    tgt_in = _tokens((3, 6), seed=3, low=3)
    return src, src_len, tgt_in


def test_seq2seq_cached_steps_equal_teacher_forcing():
    model = TransformerSeq2Seq(13, V, _config())
    src, src_len, tgt_in = _s2s_data()
    variables = model.init(jax.random.key(4), src, src_len, tgt_in)
    logits, weights = model.apply(variables, src, src_len, tgt_in)
    assert logits.shape == (3, 6, V) and weights is None

    def run(m):
        from seqjax.nn.transformer import _empty_cache, _step_fn

        memory, valid = m.encode(src, src_len)
        trunk, params = m._decoder(True), m.variables["params"]["decoder"]
        cache = _empty_cache(trunk, params, (3,), memory, valid)
        step = _step_fn(trunk, params, memory, valid)
        out, aux = [], []
        for t in range(tgt_in.shape[-1]):
            cache, lg, w = step(cache, tgt_in[:, t])
            out.append(lg)
            aux.append(w)
        return jnp.stack(out, 1), jnp.stack(aux, 1)

    stepped, attn = jax.jit(lambda v: model.apply(v, method=run))(variables)
    np.testing.assert_allclose(stepped, logits, **TOL)
    # cross-attention weights: zero on padded source positions, a distribution otherwise
    np.testing.assert_array_equal(attn[2, :, 1:], 0.0)
    np.testing.assert_allclose(attn.sum(-1), 1.0, rtol=1e-5)


def test_seq2seq_source_padding_is_irrelevant():
    model = TransformerSeq2Seq(13, V, _config())
    src, src_len, tgt_in = _s2s_data()
    variables = model.init(jax.random.key(4), src, src_len, tgt_in)
    logits, _ = model.apply(variables, src, src_len, tgt_in)
    repadded = src.at[1, 4:].set(5)
    again, _ = model.apply(variables, repadded, src_len, tgt_in)
    np.testing.assert_allclose(again, logits, **TOL)
    alone, _ = model.apply(variables, src[1:2, :4], None, tgt_in[1:2])
    np.testing.assert_allclose(alone[0], logits[1], **TOL)


def test_seq2seq_decode_beam_one_is_greedy_and_aux_are_weights():
    model = TransformerSeq2Seq(13, V, _config(), eos_id=2)
    src, src_len, tgt_in = _s2s_data()
    variables = model.init(jax.random.key(4), src, src_len, tgt_in)
    run = lambda **kw: model.apply(variables, src, src_len, max_length=6, method="decode", **kw)  # noqa: E731
    greedy = run()
    beam1 = run(strategy="beam", beam_size=1)
    np.testing.assert_array_equal(beam1.tokens[:, 0], greedy.tokens)
    assert greedy.aux.shape == (3, 6, 7)
    np.testing.assert_array_equal(greedy.aux[2, :, 1:], 0.0)
    beams = run(strategy="beam", beam_size=3, alpha=0.6)
    assert beams.tokens.shape == (3, 3, 6) and beams.aux.shape == (3, 3, 6, 7)
    # greedy decoding is the argmax of teacher forcing on its own outputs
    bos = jnp.full((3, 1), 1, jnp.int32)
    logits, _ = model.apply(variables, src, src_len, jnp.concatenate([bos, greedy.tokens], 1))
    np.testing.assert_array_equal(jnp.argmax(logits[:, :-1], -1)[:, :1], greedy.tokens[:, :1])
    with pytest.raises(ValueError, match="key"):
        run(strategy="sample")
    with pytest.raises(ValueError, match="strategy"):
        run(strategy="viterbi")


def test_encoder_heads_ignore_padding_and_have_their_shapes():
    xs = jax.random.normal(jax.random.key(0), (3, 8, 5))
    lengths = jnp.array([8, 5, 0])
    enc = TransformerEncoder(_config())
    variables = enc.init(jax.random.key(1), xs, lengths)
    ys = enc.apply(variables, xs, lengths)
    assert ys.shape == (3, 8, 32)
    np.testing.assert_array_equal(ys[1, 5:], 0.0)
    np.testing.assert_allclose(ys[1, :5], enc.apply(variables, xs[1, :5]), **TOL)
    noisy = xs.at[1, 5:].set(100.0)
    np.testing.assert_allclose(enc.apply(variables, noisy, lengths), ys, **TOL)
    causal = TransformerEncoder(_config(), causal=True)
    cv = causal.init(jax.random.key(1), xs)
    full = causal.apply(cv, xs)
    np.testing.assert_allclose(causal.apply(cv, xs[:, :4]), full[:, :4], **TOL)

    clf = TransformerClassifier(4, _config())
    v = clf.init(jax.random.key(2), xs, lengths)
    assert clf.apply(v, xs, lengths).shape == (3, 4)
    np.testing.assert_allclose(clf.apply(v, noisy, lengths), clf.apply(v, xs, lengths), **TOL)
    tokens = _tokens((3, 8))
    tagger = TransformerTagger(6, _config(), vocab_size=V)
    v = tagger.init(jax.random.key(2), tokens, lengths)
    assert tagger.apply(v, tokens, lengths).shape == (3, 8, 6)
    fc = TransformerForecaster(2, _config(), horizon=3)
    v = fc.init(jax.random.key(2), xs)
    assert fc.apply(v, xs, lengths).shape == (3, 3, 2)
    per_step = TransformerForecaster(1, _config())
    v = per_step.init(jax.random.key(2), xs)
    assert per_step.apply(v, xs).shape == (3, 8, 1)


def test_dropout_is_stochastic_only_when_asked():
    model = TransformerLM(V, _config(dropout=0.3))
    tokens = _tokens((2, 8))
    variables = model.init(jax.random.key(1), tokens)
    a = model.apply(variables, tokens)
    np.testing.assert_allclose(model.apply(variables, tokens), a)
    b = model.apply(variables, tokens, deterministic=False, rngs={"dropout": jax.random.key(5)})
    assert not np.allclose(a, b)


def test_gradients_reach_every_parameter():
    model = TransformerSeq2Seq(13, V, _config("learned"))
    src, src_len, tgt_in = _s2s_data()
    variables = model.init(jax.random.key(4), src, src_len, tgt_in)

    def loss(params):
        logits, _ = model.apply({"params": params}, src, src_len, tgt_in)
        return jnp.mean(jax.nn.log_softmax(logits)[..., 3])

    grads = jax.jit(jax.grad(loss))(variables["params"])
    for path, g in jax.tree_util.tree_flatten_with_path(grads)[0]:
        assert np.all(np.isfinite(g)), path
        assert np.any(g != 0), jax.tree_util.keystr(path)


def test_sinusoidal_positions_follow_the_formula():
    table = np.asarray(sinusoidal_positions(50, 6))
    p, i = 17, 2
    np.testing.assert_allclose(table[p, 2 * i], np.sin(p / 10000 ** (2 * i / 6)), rtol=1e-6)
    np.testing.assert_allclose(table[p, 2 * i + 1], np.cos(p / 10000 ** (2 * i / 6)), rtol=1e-6)
    assert sinusoidal_positions(4, 5).shape == (4, 5)


def test_bad_input_is_named():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        TransformerConfig(model_size=30, num_heads=4)
    with pytest.raises(ValueError, match="positions must be one of"):
        TransformerConfig(positions="rotary")
    with pytest.raises(ValueError, match="num_layers must be a positive int"):
        TransformerConfig(num_layers=0)
    with pytest.raises(ValueError, match="dropout"):
        TransformerConfig(dropout=1.5)
    model = TransformerLM(V, _config())
    tokens = _tokens((2, 8))
    variables = model.init(jax.random.key(1), tokens)
    with pytest.raises(ValueError, match="17 positions is longer than .*max_length = 16"):
        model.apply(variables, _tokens((2, 17)))
    with pytest.raises(ValueError, match="max_length = 16"):
        model.apply(variables, tokens, max_length=10, method="decode")  # 7 + 10 > 16
    with pytest.raises(ValueError, match="resets"):
        model.apply(variables, tokens, resets=jnp.zeros((2, 8), bool))
    with pytest.raises(ValueError, match="lengths must have the batch shape"):
        model.apply(variables, tokens, lengths=jnp.array([1, 2, 3]))
    with pytest.raises(ValueError, match="carry must be"):
        model.apply(variables, tokens, jnp.zeros((3, 2), jnp.int32))
    with pytest.raises(ValueError, match="prompt must be"):
        model.apply(variables, jnp.zeros((2, 0), jnp.int32), max_length=3, method="decode")
    with pytest.raises(TypeError, match="integers"):
        model.apply(variables, jnp.ones((2, 8)))
    s2s = TransformerSeq2Seq(13, V, _config())
    src, src_len, tgt_in = _s2s_data()
    v = s2s.init(jax.random.key(4), src, src_len, tgt_in)
    with pytest.raises(ValueError, match="a source of 20 positions"):
        s2s.apply(v, _tokens((3, 20)), None, tgt_in)
    with pytest.raises(ValueError, match="a decoding of 17 positions"):
        s2s.apply(v, src, src_len, max_length=17, method="decode")
    with pytest.raises(ValueError, match=r"xs must be \[\*b, t, d\]"):
        TransformerEncoder(_config()).init(jax.random.key(0), jnp.ones((4,)))


def test_decode_by_name_dispatches():
    def step_fn(carry, tokens):
        logits = jax.nn.one_hot((tokens + 1) % 5, 5) * 10.0
        return carry, logits, None

    start = jnp.array([0, 3])
    out = decoding.decode(step_fn, (), start, strategy="greedy", max_length=4)
    np.testing.assert_array_equal(out.tokens, [[1, 2, 3, 4], [4, 0, 1, 2]])
    beam = decoding.decode(step_fn, (), start, strategy="beam", beam_size=2, max_length=4)
    np.testing.assert_array_equal(beam.tokens[:, 0], out.tokens)
    with pytest.raises(ValueError, match="strategy must be"):
        decoding.decode(step_fn, (), start, strategy="nucleus", max_length=4)
