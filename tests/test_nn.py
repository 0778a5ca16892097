"""Flax modules: shells equal to the pure functions; seq2seq decoding equals teacher forcing."""

from __future__ import annotations

import functools
import subprocess
import sys

import flax.errors
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from conftest import TRAINING_COMPILE

import seqjax
import seqjax.nn as snn
from seqjax.nn import functional as F

RTOL, ATOL = 1e-5, 1e-6
KEY = jax.random.key(0)


def _tokens(seed, shape, low, high):
    return jnp.asarray(np.random.default_rng(seed).integers(low, high, shape), jnp.int32)


def _features(seed, shape):
    return jnp.asarray(np.random.default_rng(seed).normal(size=shape), jnp.float32)


def _random_init(model, *args, seed=0, **kwargs):
    """Variables with the structure of ``model.init`` filled with N(0, 0.5^2) draws.

    Compiling the real ``init`` (orthogonal initialisers run QR decompositions) costs far
    more than the tests themselves; the real ``init`` is exercised once per module below.
    """
    shapes = jax.eval_shape(functools.partial(model.init, **kwargs), KEY, *args)
    leaves, treedef = jax.tree.flatten(shapes)
    rng = np.random.default_rng(seed)
    return jax.tree.unflatten(
        treedef, [jnp.asarray(rng.normal(0, 0.5, x.shape), x.dtype) for x in leaves]
    )


@functools.cache  # one compiled function per module and options
def _forward(model, **kw):
    return jax.jit(functools.partial(model.apply, **kw))


@functools.cache
def _decode(model, **kw):
    return jax.jit(functools.partial(model.apply, method="decode", **kw))


def _log_softmax(logits):
    z = np.asarray(logits, np.float64)
    z = z - z.max(-1, keepdims=True)
    return z - np.log(np.exp(z).sum(-1, keepdims=True))


def _assert_all_grads_nonzero(grads):
    for path, leaf in jax.tree_util.tree_leaves_with_path(grads):
        name = jax.tree_util.keystr(path)
        assert np.all(np.isfinite(leaf)), name
        assert np.any(np.asarray(leaf) != 0), f"zero gradient at {name}"


def test_import_seqjax_does_not_import_flax():
    code = (
        "import sys, seqjax; assert 'flax' not in sys.modules, 'seqjax imported flax'; "
        "import seqjax.nn; assert 'flax' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------- Recurrent


def test_recurrent_layer_is_the_pure_seq():
    seq = seqjax.stack(
        seqjax.bidirectional(seqjax.recurrent(seqjax.lstm(6))), seqjax.recurrent(seqjax.gru(5))
    )
    layer = snn.Recurrent(seq, return_carry=True)
    xs = _features(0, (3, 7, 4))
    lengths = jnp.asarray([7, 2, 0])
    resets = jnp.zeros((3, 7), bool).at[0, 3].set(True)
    variables = _random_init(layer, xs)
    params = variables["params"]["rnn"]
    assert jax.tree.structure(params) == jax.tree.structure(seq.init(KEY, 4))
    carry0 = jax.tree.map(lambda a: a + 0.1, seq.initial_carry(params, (3,)))
    carry, ys = _forward(layer)(variables, xs, carry0, lengths=lengths, resets=resets)
    reference = jax.jit(functools.partial(seq.apply, lengths=lengths, resets=resets))
    want_carry, want_ys = reference(params, xs, carry0)
    np.testing.assert_allclose(ys, want_ys, rtol=RTOL, atol=ATOL)
    for got, want in zip(jax.tree.leaves(carry), jax.tree.leaves(want_carry), strict=True):
        np.testing.assert_allclose(got, want, rtol=RTOL, atol=ATOL)


def test_recurrent_learned_initial_carry():
    seq = seqjax.recurrent(seqjax.lstm(4))
    layer = snn.Recurrent(seq, learn_initial_carry=True)
    xs = _features(1, (2, 5, 3))
    c0 = jax.eval_shape(layer.init, KEY, xs)["params"]["initial_carry"]
    assert isinstance(c0, seqjax.LSTMState) and c0.h.shape == (4,)
    variables = _random_init(layer, xs)
    c0 = variables["params"]["initial_carry"]
    ys = _forward(layer)(variables, xs)
    batch_c0 = jax.tree.map(lambda a: np.broadcast_to(a, (2, 4)), c0)
    want = jax.jit(seq.apply)(variables["params"]["rnn"], xs, batch_c0)[1]
    np.testing.assert_allclose(ys, want, rtol=RTOL, atol=ATOL)
    grads = jax.jit(jax.grad(lambda v: jnp.sum(layer.apply(v, xs) ** 2)))(variables)
    _assert_all_grads_nonzero(grads)


def test_recurrent_dropout_uses_the_dropout_stream():
    seq = seqjax.stack(
        seqjax.recurrent(seqjax.gru(8)), seqjax.recurrent(seqjax.gru(8)), dropout=0.3
    )
    layer = snn.Recurrent(seq, dropout=0.5)
    xs = _features(2, (4, 6, 3))
    variables = _random_init(layer, xs)
    det = _forward(layer)(variables, xs)
    noisy = _forward(layer, deterministic=False)
    a = noisy(variables, xs, rngs={"dropout": jax.random.key(1)})
    b = noisy(variables, xs, rngs={"dropout": jax.random.key(2)})
    assert not np.allclose(a, det) and not np.allclose(a, b)
    assert 0.3 < np.mean(np.asarray(a) == 0) < 0.7
    with pytest.raises(flax.errors.InvalidRngError):
        layer.apply(variables, xs, deterministic=False)


# --------------------------------------------------------------------------- heads


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_classifier_pools_valid_steps_only(pooling):
    seq = seqjax.recurrent(seqjax.gru(6))
    if pooling != "last":
        seq = seqjax.bidirectional(seq)
    model = snn.SequenceClassifier(seq, 3, pooling=pooling, vocab_size=11, embed_size=4)
    tokens = _tokens(3, (3, 6), 1, 11)
    lengths = jnp.asarray([6, 2, 4])
    variables = _random_init(model, tokens, lengths)
    logits = _forward(model)(variables, tokens, lengths)
    assert logits.shape == (3, 3)

    @jax.jit
    def reference(p):
        xs = F.embed(p["features"]["embedding"], tokens)
        ys = seq.apply(p["features"]["recurrent"]["rnn"], xs, lengths=lengths)[1]
        return F.pool(pooling, ys, lengths) @ p["head"]["kernel"] + p["head"]["bias"]

    want = reference(variables["params"])
    np.testing.assert_allclose(logits, want, rtol=RTOL, atol=1e-5)
    alone = _forward(model)(variables, tokens[1:2, :2], None)  # padding is invisible
    np.testing.assert_allclose(logits[1], alone[0], rtol=RTOL, atol=1e-5)


def test_pooling_helpers():
    ys = jnp.arange(2 * 4 * 1, dtype=jnp.float32).reshape(2, 4, 1)
    lengths = jnp.asarray([2, 0])
    np.testing.assert_array_equal(F.last_valid(ys, lengths)[:, 0], [1.0, 0.0])
    np.testing.assert_array_equal(F.masked_mean(ys, lengths)[:, 0], [0.5, 0.0])
    np.testing.assert_array_equal(F.masked_max(ys, lengths)[:, 0], [1.0, 0.0])
    np.testing.assert_array_equal(F.last_valid(ys)[:, 0], [3.0, 7.0])
    with pytest.raises(ValueError, match="pooling"):
        F.pool("median", ys)


def test_tagger_per_step_logits():
    seq = seqjax.bidirectional(seqjax.recurrent(seqjax.lstm(5)))
    model = snn.Tagger(seq, 4, dropout=0.1)
    xs = _features(4, (2, 5, 3))
    lengths = jnp.asarray([5, 3])
    variables = _random_init(model, xs, lengths)
    logits = _forward(model)(variables, xs, lengths)
    assert logits.shape == (2, 5, 4)
    alone = _forward(model)(variables, xs[1:, :3], None)
    np.testing.assert_allclose(logits[1, :3], alone[0], rtol=RTOL, atol=1e-5)
    noisy = _forward(model, deterministic=False)(variables, xs, lengths, rngs={"dropout": KEY})
    assert not np.allclose(noisy, logits)


def test_language_model():
    seq = seqjax.stack(seqjax.recurrent(seqjax.lstm(8)), seqjax.recurrent(seqjax.gru(6)))
    model = snn.LanguageModel(13, 5, seq, tie_embeddings=True, return_carry=True)
    tokens = _tokens(5, (2, 8), 0, 13)
    variables = _random_init(model, tokens)
    params = variables["params"]
    assert "output" not in params and params["projection"]["w"].shape == (6, 5)
    forward = _forward(model)
    carry, logits = forward(variables, tokens)
    assert logits.shape == (2, 8, 13)

    @jax.jit
    def reference(p):
        ys = seq.apply(p["rnn"], F.embed(p["embedding"], tokens))[1]
        return F.dense(p["projection"], ys) @ p["embedding"].T + p["output_bias"]

    np.testing.assert_allclose(logits, reference(params), rtol=RTOL, atol=1e-5)
    # Chunks continued through the carry equal the full pass.
    c1, l1 = forward(variables, tokens[:, :4], seq.initial_carry(params["rnn"], (2,)))
    _, l2 = forward(variables, tokens[:, 4:], c1)
    np.testing.assert_allclose(np.concatenate([l1, l2], 1), logits, rtol=RTOL, atol=1e-5)
    # Generation step by step equals the forward pass on the generated tokens.
    gen = _forward(model, max_length=5, top_k=1, method="generate")
    out = gen(variables, tokens[:, :3], jax.random.key(1))
    full = np.concatenate([tokens[:, :3], out.tokens], axis=1)
    _, fl = forward(variables, full)
    np.testing.assert_array_equal(np.argmax(fl[:, 2:-1], -1), out.tokens)
    lp = np.take_along_axis(_log_softmax(fl[:, 2:-1]), np.asarray(out.tokens)[..., None], -1)
    np.testing.assert_allclose(out.log_probs, lp[..., 0].sum(-1), rtol=1e-5)
    loss = jax.jit(jax.grad(lambda v: jnp.sum(jnp.sin(model.apply(v, tokens)[1]))))
    _assert_all_grads_nonzero(loss(variables))


def test_language_model_untied_and_real_init():
    model = snn.LanguageModel(7, 4, seqjax.recurrent(seqjax.gru(5)))
    tokens = _tokens(6, (3, 4), 0, 7)
    variables = model.init(KEY, tokens)  # the real initialisers, once
    params = variables["params"]
    assert params["output"]["w"].shape == (5, 7) and "output_bias" not in params
    np.testing.assert_allclose(
        params["rnn"]["w_h"][:, :5] @ params["rnn"]["w_h"][:, :5].T, np.eye(5), atol=1e-5
    )
    logits = _forward(model)(variables, tokens)
    ys = model.seq.apply(params["rnn"], F.embed(params["embedding"], tokens))[1]
    np.testing.assert_allclose(logits, F.dense(params["output"], ys), rtol=RTOL, atol=ATOL)


@pytest.mark.parametrize("horizon", [None, 3])
def test_forecaster(horizon):
    model = snn.Forecaster(seqjax.recurrent(seqjax.gru(6)), 2, horizon=horizon)
    xs = _features(6, (3, 7, 2))
    lengths = jnp.asarray([7, 4, 1])
    variables = _random_init(model, xs, lengths)
    out = _forward(model)(variables, xs, lengths)
    assert out.shape == ((3, 7, 2) if horizon is None else (3, 3, 2))
    alone = _forward(model)(variables, xs[1:2, :4], None)[0]
    np.testing.assert_allclose(out[1, : 4 if horizon is None else 3], alone, rtol=RTOL, atol=1e-5)


@pytest.mark.parametrize("kind", ["general", "bahdanau", "dot"])
def test_attention_layer(kind):
    layer = snn.Attention(kind)
    query = _features(7, (2, 3, 5))  # 3 queries per memory
    values = _features(8, (2, 4, 5))
    lengths = jnp.asarray([4, 2])
    variables = _random_init(layer, query, values, lengths=lengths)
    ctx, w = layer.apply(variables, query, values, lengths=lengths)
    assert ctx.shape == (2, 3, 5) and w.shape == (2, 3, 4)
    np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-6)
    assert np.all(np.asarray(w)[1, :, 2:] == 0)


# --------------------------------------------------------------------------- seq2seq

SRC_V, TGT_V, BOS, EOS = 9, 10, 1, 2
SRC = _tokens(9, (4, 6), 3, SRC_V)
SRC_LEN = jnp.asarray([6, 3, 1, 5], jnp.int32)
SRC = jnp.where(jnp.arange(6) < SRC_LEN[:, None], SRC, 0)
TGT_IN = _tokens(10, (4, 7), 3, TGT_V).at[:, 0].set(BOS)  # 7 = max_length: one compile
TGT_LEN = jnp.asarray([7, 2, 4, 1], jnp.int32)

CONFIGS = {
    "general": dict(attention="general"),
    "bahdanau_gru_2layers": dict(attention="bahdanau", cell="gru", encoder_layers=2),
    "no_attention": dict(attention=None, bidirectional=False),
}


@functools.cache
def _model(name):
    model = snn.Seq2Seq(SRC_V, TGT_V, embed_size=6, hidden_size=8, **CONFIGS[name])
    variables = _random_init(model, SRC, SRC_LEN, TGT_IN, TGT_LEN)
    # A larger output bias on EOS makes some decodings end early.
    out = variables["params"]["decoder"]["output"]
    out = {**out, "b": out["b"].at[EOS].add(1.0)}
    params = {**variables["params"], "decoder": {**variables["params"]["decoder"], "output": out}}
    return model, {"params": params}


def _check_decoded_against_teacher_forcing(model, variables, src, src_len, out, greedy=True):
    """Feeds the decoded tokens back: logits, log-probs and attention weights must agree."""
    tokens = np.asarray(out.tokens)
    batch, t = tokens.shape[:-1], tokens.shape[-1]
    tgt_in = np.concatenate([np.full((*batch, 1), BOS, np.int32), tokens[..., :-1]], -1)
    logits, weights = _forward(model)(variables, src, src_len, tgt_in, out.lengths)
    valid = np.arange(t) < np.asarray(out.lengths)[..., None]
    if greedy:
        np.testing.assert_array_equal(np.argmax(logits, -1)[valid], tokens[valid])
    lp = np.take_along_axis(_log_softmax(logits), tokens[..., None], -1)[..., 0]
    np.testing.assert_allclose(
        out.log_probs, np.sum(np.where(valid, lp, 0), -1), rtol=1e-5, atol=1e-5
    )
    if weights is None:
        assert out.aux is None
    else:
        np.testing.assert_allclose(
            np.asarray(out.aux)[valid], np.asarray(weights)[valid], rtol=1e-5, atol=1e-6
        )
        src_valid = np.arange(src.shape[-1]) < np.asarray(src_len)[:, None]
        assert np.all(np.asarray(weights).swapaxes(-1, -2)[~src_valid] == 0)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_seq2seq_greedy_decoding_equals_teacher_forcing(name):
    model, variables = _model(name)
    out = _decode(model, max_length=7)(variables, SRC, SRC_LEN)
    assert out.tokens.shape == (4, 7)
    _check_decoded_against_teacher_forcing(model, variables, SRC, SRC_LEN, out)
    logits, weights = _forward(model)(variables, SRC, SRC_LEN, TGT_IN, TGT_LEN)
    assert logits.shape == (4, 7, TGT_V)
    if weights is not None:
        assert weights.shape == (4, 7, 6)
        valid = np.arange(7) < np.asarray(TGT_LEN)[:, None]
        np.testing.assert_allclose(np.asarray(weights.sum(-1))[valid], 1.0, rtol=1e-6)


def test_seq2seq_beam_search():
    model, variables = _model("general")
    greedy = _decode(model, max_length=7)(variables, SRC, SRC_LEN)
    beam1 = _decode(model, max_length=7, strategy="beam", beam_size=1)(variables, SRC, SRC_LEN)
    np.testing.assert_array_equal(beam1.tokens[:, 0], greedy.tokens)
    np.testing.assert_allclose(beam1.log_probs[:, 0], greedy.log_probs, rtol=1e-6)
    np.testing.assert_allclose(beam1.aux[:, 0], greedy.aux, rtol=1e-6, atol=1e-7)
    beam = _decode(model, max_length=7, strategy="beam", beam_size=3, alpha=0.5)(
        variables, SRC, SRC_LEN
    )
    assert beam.tokens.shape == (4, 3, 7)
    assert np.all(np.diff(np.asarray(beam.scores), axis=-1) <= 0)
    # Every beam is a real hypothesis of the model: flatten beams into the batch.
    flat = jax.tree.map(lambda a: a.reshape(12, *a.shape[2:]), beam)
    src = jnp.repeat(SRC, 3, axis=0)
    _check_decoded_against_teacher_forcing(
        model, variables, src, jnp.repeat(SRC_LEN, 3), flat, greedy=False
    )


def test_seq2seq_padding_is_invisible():
    model, variables = _model("bahdanau_gru_2layers")
    out = _decode(model, max_length=7)(variables, SRC, SRC_LEN)
    i, n = 1, int(SRC_LEN[1])
    alone = _decode(model, max_length=7)(variables, SRC[i : i + 1, :n], None)
    np.testing.assert_array_equal(alone.tokens[0], out.tokens[i])
    np.testing.assert_allclose(alone.log_probs[0], out.log_probs[i], rtol=1e-5)
    np.testing.assert_allclose(alone.aux[0, :, :n], out.aux[i, :, :n], rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("name", ["general", "no_attention"])
def test_seq2seq_gradients_reach_every_parameter(name):
    model, variables = _model(name)
    tgt_out = _tokens(11, (4, 7), 2, TGT_V)

    def loss(params):
        logits, _ = model.apply({"params": params}, SRC, SRC_LEN, TGT_IN, TGT_LEN)
        mask = jnp.arange(7) < TGT_LEN[:, None]
        return jnp.sum(optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out) * mask)

    grads = jax.jit(jax.grad(loss))(variables["params"])
    _assert_all_grads_nonzero(grads)
    assert ("bridge" in grads) and jax.tree.leaves(grads["encoder"])


def test_seq2seq_scheduled_sampling_and_dropout():
    model, variables = _model("general")
    forward = _forward(model, deterministic=False)
    rngs = {"dropout": jax.random.key(3)}
    teacher, w_teacher = _forward(model)(variables, SRC, SRC_LEN, TGT_IN, TGT_LEN)
    # A traced rate of zero runs the step-by-step path and must equal teacher forcing.
    ss0, w0 = forward(
        variables, SRC, SRC_LEN, TGT_IN, TGT_LEN, sampling_rate=jnp.float32(0), rngs=rngs
    )
    np.testing.assert_allclose(ss0, teacher, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(w0, w_teacher, rtol=1e-5, atol=1e-6)
    ss1, _ = forward(
        variables, SRC, SRC_LEN, TGT_IN, TGT_LEN, sampling_rate=jnp.float32(1), rngs=rngs
    )
    np.testing.assert_allclose(ss1[:, 0], teacher[:, 0], rtol=1e-5, atol=1e-5)  # first input is bos
    assert not np.allclose(ss1[0, 1:], teacher[0, 1:])
    # Dropout needs the rng stream and changes the logits.
    dropped = snn.Seq2Seq(SRC_V, TGT_V, embed_size=6, hidden_size=8, dropout=0.3)
    noisy, _ = _forward(dropped, deterministic=False)(
        variables, SRC, SRC_LEN, TGT_IN, TGT_LEN, rngs=rngs
    )
    assert not np.allclose(noisy, teacher)
    with pytest.raises(flax.errors.InvalidRngError):
        dropped.apply(variables, SRC, SRC_LEN, TGT_IN, TGT_LEN, deterministic=False)


def test_seq2seq_sampling_and_errors():
    model, variables = _model("general")
    run = _decode(model, max_length=7, strategy="sample", top_k=1)
    s = run(variables, SRC, SRC_LEN, key=jax.random.key(0))
    g = _decode(model, max_length=7)(variables, SRC, SRC_LEN)
    np.testing.assert_array_equal(s.tokens, g.tokens)
    with pytest.raises(ValueError, match="key"):
        model.apply(variables, SRC, SRC_LEN, max_length=5, strategy="sample", method="decode")
    with pytest.raises(ValueError, match="strategy"):
        model.apply(variables, SRC, SRC_LEN, max_length=5, strategy="viterbi", method="decode")
    with pytest.raises(ValueError, match="bridge"):
        snn.Seq2Seq(SRC_V, TGT_V, bridge="copy").init(KEY, SRC, SRC_LEN, TGT_IN)


# --------------------------------------------------------------------------- learning


def _reversal_data(rng, n, max_len, alphabet, exclude=frozenset(), min_len=1):
    """Right-padded strings over tokens 3..3+alphabet and their reversals (+ eos)."""
    src = np.zeros((n, max_len), np.int32)
    tgt_in = np.zeros((n, max_len + 1), np.int32)
    tgt_out = np.zeros((n, max_len + 1), np.int32)
    lengths = np.zeros((n,), np.int32)
    i = 0
    while i < n:
        s = rng.integers(3, 3 + alphabet, rng.integers(min_len, max_len + 1))
        if tuple(s) in exclude:
            continue
        m = len(s)
        src[i, :m], lengths[i] = s, m
        tgt_in[i, 0], tgt_in[i, 1 : m + 1] = BOS, s[::-1]
        tgt_out[i, :m], tgt_out[i, m] = s[::-1], EOS
        i += 1
    return src, lengths, tgt_in, tgt_out, lengths + 1


@pytest.mark.slow
def test_seq2seq_with_attention_learns_to_reverse_strings():
    """Reversal of strings of 1-15 symbols over 20 letters; >= 99% exact match held out."""
    import time

    max_len, alphabet, steps, batch = 15, 20, 300, 128
    rng = np.random.default_rng(0)
    test = _reversal_data(rng, 1000, max_len, alphabet, min_len=4)
    held_out = frozenset(tuple(r[:n]) for r, n in zip(test[0], test[1], strict=True))
    model = snn.Seq2Seq(
        3 + alphabet, 3 + alphabet, embed_size=32, hidden_size=64, attention="general"
    )
    params = jax.jit(model.init)(KEY, *(jnp.asarray(a) for a in test[:3]), jnp.asarray(test[4]))[
        "params"
    ]
    opt = optax.chain(
        optax.clip_by_global_norm(1.0), optax.adam(optax.cosine_decay_schedule(5e-3, steps))
    )
    state = opt.init(params)

    def loss_fn(params, src, src_len, tgt_in, tgt_out, tgt_len):
        logits, _ = model.apply({"params": params}, src, src_len, tgt_in, tgt_len)
        mask = jnp.arange(tgt_in.shape[1]) < tgt_len[:, None]
        ce = optax.softmax_cross_entropy_with_integer_labels(logits, tgt_out)
        return jnp.sum(ce * mask) / jnp.sum(mask)

    @functools.partial(jax.jit, compiler_options=TRAINING_COMPILE)  # 500 steps: optimise
    def train_step(params, state, batch):
        loss, grads = jax.value_and_grad(loss_fn)(params, *batch)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    @functools.partial(jax.jit, static_argnames="strategy")
    def exact_match(params, src, src_len, tgt_out, strategy="greedy"):
        out = model.apply(
            {"params": params},
            src,
            src_len,
            max_length=max_len + 1,
            strategy=strategy,
            method="decode",
        )
        tokens = out.tokens if strategy == "greedy" else out.tokens[:, 0]
        return jnp.mean(jnp.all(tokens == tgt_out, axis=-1))

    start = time.perf_counter()
    for _ in range(steps):
        data = _reversal_data(rng, batch, max_len, alphabet, exclude=held_out)
        params, state, loss = train_step(params, state, tuple(jnp.asarray(a) for a in data))
    seconds = time.perf_counter() - start
    src, src_len, _, tgt_out, _ = (jnp.asarray(a) for a in test)
    greedy = float(exact_match(params, src, src_len, tgt_out))
    beam = float(exact_match(params, src, src_len, tgt_out, strategy="beam"))
    print(
        f"\nreversal: {steps} steps in {seconds:.1f} s, loss {float(loss):.4f}, "
        f"held-out exact match greedy {greedy:.4f}, beam(4) {beam:.4f}"
    )
    assert greedy >= 0.99
    assert beam >= 0.99


@pytest.mark.parametrize("pooling", ["last", "mean", "max"])
def test_heads_take_an_empty_batch(pooling):
    net = seqjax.bidirectional(seqjax.recurrent(seqjax.lstm(4)))
    model = snn.SequenceClassifier(net, 3, pooling=pooling)
    variables = model.init(jax.random.key(0), jnp.ones((2, 5, 3)))
    empty, lengths = jnp.ones((0, 5, 3)), jnp.zeros((0,), jnp.int32)
    assert model.apply(variables, empty, lengths).shape == (0, 3)
    grads = jax.grad(lambda v: model.apply(v, empty, lengths).sum())(variables)
    assert all(bool(jnp.all(g == 0)) for g in jax.tree.leaves(grads))
    # No steps at all: pooling gives zeros, not an index error.
    assert model.apply(variables, jnp.ones((2, 0, 3))).shape == (2, 3)
    tagger = snn.Tagger(net, 2, vocab_size=7, embed_size=3)
    tv = tagger.init(jax.random.key(0), jnp.ones((2, 5), jnp.int32))
    assert tagger.apply(tv, jnp.ones((0, 5), jnp.int32)).shape == (0, 5, 2)


def test_modules_name_the_leaf_of_mismatched_params():
    model = snn.Recurrent(seqjax.recurrent(seqjax.lstm(8)))
    variables = model.init(jax.random.key(0), jnp.ones((2, 5, 4)))
    other = snn.Recurrent(seqjax.recurrent(seqjax.gru(8))).init(
        jax.random.key(0), jnp.ones((2, 5, 4))
    )
    with pytest.raises(ValueError, match=r"expected w_h of shape \(8, 32\), received \(8, 24\)"):
        model.apply(other, jnp.ones((2, 5, 4)))
    with pytest.raises(ValueError, match=r"4 features.*received xs of shape \(2, 5, 3\).*/rnn"):
        model.apply(variables, jnp.ones((2, 5, 3)))
    clf = snn.SequenceClassifier(seqjax.recurrent(seqjax.gru(8)), 2)
    v = clf.init(jax.random.key(0), jnp.ones((2, 5, 4)))
    small = snn.SequenceClassifier(seqjax.recurrent(seqjax.gru(6)), 2).init(
        jax.random.key(0), jnp.ones((2, 5, 4))
    )
    v["params"]["features"]["recurrent"]["rnn"] = small["params"]["features"]["recurrent"]["rnn"]
    with pytest.raises(ValueError, match=r"/features/recurrent/rnn"):
        clf.apply(v, jnp.ones((2, 5, 4)))
