"""seqjax.nnx: NNX shells equal the pure functions and the linen modules, and work with NNX's
transforms (jit, grad, Optimizer, split/merge, vmap) and with Orbax."""

from __future__ import annotations

import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import seqjax
import seqjax.nn as snn
import seqjax.nnx as sx
from tests.conftest import randomize

TOL = dict(rtol=1e-5, atol=1e-6)


def _seq():
    return seqjax.stack(
        seqjax.bidirectional(seqjax.recurrent(seqjax.lstm(5))), seqjax.recurrent(seqjax.gru(4))
    )


def _small():
    """One GRU layer in a stack (tuple params): cheap to compile for the transform tests."""
    return seqjax.stack(seqjax.recurrent(seqjax.gru(4)))


def _data(b=3, t=6, d=3, seed=1):
    xs = jax.random.normal(jax.random.key(seed), (b, t, d))
    return xs, jnp.array([6, 2, 0])[:b]


def test_import_nnx_and_seqjax_stays_light():
    code = (
        "import sys, seqjax; assert 'flax' not in sys.modules and 'seqjax.nnx' not in sys.modules;"
        " import seqjax.nnx; assert 'flax.nnx' in sys.modules"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_recurrent_equals_the_pure_sequence_and_round_trips_params():
    seq = _seq()
    xs, lengths = _data()
    params = randomize(seq.init(jax.random.key(0), 3))
    resets = jnp.zeros(xs.shape[:2], bool).at[:, 3].set(True)
    layer = sx.Recurrent.from_params(seq, params, return_carry=True)
    got = layer(xs, lengths=lengths, resets=resets)
    want = seq.apply(params, xs, lengths=lengths, resets=resets)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), got, want)
    back = layer.params()
    assert jax.tree.structure(back) == jax.tree.structure(params)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), back, params)


def test_recurrent_from_torch_matches_torch():
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    module = torch.nn.LSTM(3, 4, num_layers=2, bidirectional=True, batch_first=True)
    seq, params = seqjax.interop.from_torch(module)
    xs, _ = _data()
    layer = sx.Recurrent.from_params(seq, params)
    with torch.no_grad():
        want = module(torch.tensor(np.array(xs)))[0].numpy()
    np.testing.assert_allclose(layer(xs), want, rtol=1e-4, atol=1e-5)


def test_recurrent_with_learned_initial_carry_equals_linen():
    seq = _seq()
    xs, lengths = _data()
    linen = snn.Recurrent(seq, learn_initial_carry=True, return_carry=True)
    variables = randomize(linen.init(jax.random.key(0), xs))
    p = variables["params"]
    layer = sx.Recurrent.from_params(
        seq, p["rnn"], initial_carry=p["initial_carry"], return_carry=True
    )
    got, want = layer(xs, lengths=lengths), linen.apply(variables, xs, lengths=lengths)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)
    fresh = sx.Recurrent(seq, 3, rngs=nnx.Rngs(0), learn_initial_carry=True)
    assert len(jax.tree.leaves(nnx.state(fresh, nnx.Param))) == len(jax.tree.leaves(p))


def _linen_pair(linen, nnx_cls, args, inputs, **kwargs):
    variables = randomize(linen.init(jax.random.key(0), *inputs))
    model = nnx_cls.from_params(*args, variables["params"], **kwargs)
    return variables, model


@pytest.mark.parametrize("pooling", ["last", "mean"])
def test_classifier_equals_linen(pooling):
    seq = _seq()
    xs, lengths = _data()
    linen = snn.SequenceClassifier(seq, 4, pooling=pooling)
    variables, model = _linen_pair(linen, sx.SequenceClassifier, (seq, 4), (xs, lengths),
                                   pooling=pooling)  # fmt: skip
    np.testing.assert_allclose(model(xs, lengths), linen.apply(variables, xs, lengths), **TOL)
    fresh = sx.SequenceClassifier(seq, 4, input_size=3, pooling=pooling, rngs=nnx.Rngs(0))
    shapes = jax.tree.map(jnp.shape, fresh.params())
    assert shapes == jax.tree.map(jnp.shape, variables["params"])


def test_token_tagger_equals_linen():
    seq = _seq()
    tokens = jax.random.randint(jax.random.key(2), (3, 6), 0, 11)
    lengths = jnp.array([6, 4, 1])
    linen = snn.Tagger(seq, 5, vocab_size=11, embed_size=3)
    variables, model = _linen_pair(
        linen, sx.Tagger, (seq, 5), (tokens, lengths), vocab_size=11, embed_size=3
    )
    np.testing.assert_allclose(
        model(tokens, lengths), linen.apply(variables, tokens, lengths), **TOL
    )


@pytest.mark.parametrize("horizon", [None, 3])
def test_forecaster_equals_linen(horizon):
    seq = _seq()
    xs, lengths = _data()
    linen = snn.Forecaster(seq, 2, horizon=horizon)
    variables, model = _linen_pair(linen, sx.Forecaster, (seq, 2), (xs, lengths), horizon=horizon)
    np.testing.assert_allclose(model(xs, lengths), linen.apply(variables, xs, lengths), **TOL)
    fresh = sx.Forecaster(seq, 2, input_size=3, horizon=horizon, rngs=nnx.Rngs(0))
    assert fresh(xs, lengths).shape == (3, horizon or 6, 2)


def test_language_model_equals_linen_and_generates():
    seq = _seq()
    tokens = jax.random.randint(jax.random.key(2), (2, 5), 0, 9)
    linen = snn.LanguageModel(9, 6, seq, tie_embeddings=True)
    variables, model = _linen_pair(
        linen, sx.LanguageModel, (9, 6, seq), (tokens,), tie_embeddings=True
    )
    np.testing.assert_allclose(model(tokens), linen.apply(variables, tokens), **TOL)
    key = jax.random.key(3)
    got = model.generate(tokens, key, max_length=4)
    want = linen.apply(variables, tokens, key, max_length=4, method="generate")
    np.testing.assert_array_equal(got.tokens, want.tokens)


def test_seq2seq_equals_linen_teacher_forced_and_decoded():
    src = jax.random.randint(jax.random.key(2), (2, 5), 3, 12)
    src_lengths = jnp.array([5, 3])
    tgt = jax.random.randint(jax.random.key(4), (2, 4), 3, 12)
    fields = dict(embed_size=6, hidden_size=6, attention="bahdanau")
    linen = snn.Seq2Seq(12, 12, **fields)
    variables, model = _linen_pair(linen, sx.Seq2Seq, (12, 12), (src, src_lengths, tgt), **fields)
    got, want = model(src, src_lengths, tgt), linen.apply(variables, src, src_lengths, tgt)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)
    for kw in (
        dict(strategy="greedy"),
        dict(strategy="beam", beam_size=3),
    ):
        out = model.decode(src, src_lengths, max_length=4, **kw)
        ref = linen.apply(variables, src, src_lengths, max_length=4, method="decode", **kw)
        np.testing.assert_array_equal(out.tokens, ref.tokens)


def test_dropout_draws_from_rngs_and_eval_turns_it_off():
    seq = _small()
    xs, lengths = _data()
    model = sx.SequenceClassifier(seq, 4, input_size=3, dropout=0.5, rngs=nnx.Rngs(0))
    a, b = model(xs, lengths), model(xs, lengths)
    assert not np.allclose(a, b)  # a fresh key per call
    model.eval()
    np.testing.assert_array_equal(model(xs, lengths), model(xs, lengths, deterministic=True))
    model.train()
    assert not np.allclose(model(xs, lengths), model(xs, lengths, deterministic=True))
    bare = sx.SequenceClassifier.from_params(seq, 4, model.params(), dropout=0.5)
    with pytest.raises(ValueError, match="rngs"):
        bare(xs, lengths)
    np.testing.assert_array_equal(
        bare(xs, lengths, deterministic=True), model(xs, lengths, deterministic=True)
    )


def _loss(model, xs, lengths, y):
    return optax.softmax_cross_entropy_with_integer_labels(model(xs, lengths), y).mean()


def test_grad_equals_the_pure_gradient_and_jit_training_learns():
    seq = _small()
    xs, lengths = _data()
    y = jnp.array([0, 1, 2])
    model = sx.SequenceClassifier(seq, 4, input_size=3, rngs=nnx.Rngs(0))
    linen = snn.SequenceClassifier(seq, 4)
    grads = nnx.grad(_loss)(model, xs, lengths, y)
    want = jax.grad(lambda p: _loss(lambda x, L: linen.apply({"params": p}, x, L), xs, lengths, y))(
        model.params()
    )
    got = sx.SequenceClassifier.from_params(seq, 4, _pure(grads)).params()
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, **TOL), got, want)

    optimizer = nnx.Optimizer(model, optax.adam(0.05), wrt=nnx.Param)

    @nnx.jit
    def train_step(model, optimizer, xs, lengths, y):
        loss, grads = nnx.value_and_grad(_loss)(model, xs, lengths, y)
        optimizer.update(model, grads)
        return loss

    losses = [float(train_step(model, optimizer, xs, lengths, y)) for _ in range(25)]
    assert losses[-1] < 0.5 * losses[0]
    np.testing.assert_allclose(nnx.jit(_loss)(model, xs, lengths, y), _loss(model, xs, lengths, y),
                               rtol=1e-5)  # fmt: skip


def _pure(state):
    """The classifier's linen-layout pytree from an nnx.State of its params."""
    p = nnx.to_pure_dict(state)
    rnn = p["features"]["recurrent"]["rnn"]

    def tuples(x):  # nnx.State keys tuple entries by position; the pure level uses tuples
        if isinstance(x, dict) and x and all(isinstance(k, int) for k in x):
            return tuple(tuples(x[k]) for k in sorted(x))
        if isinstance(x, dict):
            return {k: tuples(v) for k, v in x.items()}
        return x

    p["features"]["recurrent"]["rnn"] = tuples(rnn)
    return p


def test_split_merge_round_trips():
    seq = _small()
    xs, lengths = _data()
    model = sx.Tagger(seq, 3, input_size=3, rngs=nnx.Rngs(0))
    graphdef, state = nnx.split(model)
    again = nnx.merge(graphdef, state)
    np.testing.assert_array_equal(again(xs, lengths), model(xs, lengths))


def test_vmap_ensemble_equals_a_loop_over_members():
    seq = seqjax.recurrent(seqjax.gru(4))
    xs, lengths = _data()

    @nnx.vmap(in_axes=0, out_axes=0)
    def make(key):
        return sx.SequenceClassifier(seq, 2, input_size=3, rngs=nnx.Rngs(params=key))

    ensemble = make(jax.random.split(jax.random.key(0), 4))
    out = nnx.vmap(lambda m, x, L: m(x, L), in_axes=(0, None, None))(ensemble, xs, lengths)
    assert out.shape == (4, 3, 2)
    graphdef, state = nnx.split(ensemble)
    for i in range(4):
        member = nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state))
        np.testing.assert_allclose(out[i], member(xs, lengths), **TOL)
    assert not np.allclose(out[0], out[1])


def test_orbax_saves_and_restores_nnx_state_bitwise(tmp_path):
    ocp = pytest.importorskip("orbax.checkpoint")
    seq = _seq()
    xs, lengths = _data()
    model = sx.SequenceClassifier(seq, 4, input_size=3, rngs=nnx.Rngs(0))
    graphdef, state, _ = nnx.split(model, nnx.Param, ...)  # the rng streams stay out
    with ocp.StandardCheckpointer() as ckpt:
        ckpt.save(tmp_path / "state", state)
        ckpt.wait_until_finished()
    abstract = nnx.eval_shape(lambda: sx.SequenceClassifier(seq, 4, input_size=3, rngs=nnx.Rngs(1)))
    _, abstract_state, _ = nnx.split(abstract, nnx.Param, ...)
    with ocp.StandardCheckpointer() as ckpt:
        restored = ckpt.restore(tmp_path / "state", abstract_state)
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a, b), restored, state)
    other = sx.SequenceClassifier(seq, 4, input_size=3, rngs=nnx.Rngs(1))
    nnx.update(other, restored)
    np.testing.assert_array_equal(other(xs, lengths), model(xs, lengths))


def test_dropout_ensemble_under_vmap_equals_each_member_alone():
    seq = seqjax.recurrent(seqjax.gru(4))
    xs, lengths = _data()

    @nnx.vmap(in_axes=0, out_axes=0)
    def make(key):
        return sx.SequenceClassifier(seq, 2, input_size=3, dropout=0.5, rngs=nnx.Rngs(key))

    ensemble = make(jax.random.split(jax.random.key(0), 3))
    graphdef, state = nnx.split(ensemble)  # every member's params and rng streams
    members = [nnx.merge(graphdef, jax.tree.map(lambda a, i=i: a[i], state)) for i in range(3)]
    out = nnx.vmap(lambda m, x, L: m(x, L), in_axes=(0, None, None))(ensemble, xs, lengths)
    for i, member in enumerate(members):
        np.testing.assert_allclose(out[i], member(xs, lengths), **TOL)  # the same masks
        member.eval()
        assert not np.allclose(out[i], member(xs, lengths))  # dropout was on
    again = nnx.vmap(lambda m, x, L: m(x, L), in_axes=(0, None, None))(ensemble, xs, lengths)
    assert not np.allclose(out, again)  # the streams moved on


@pytest.mark.parametrize(
    "linen, inputs",
    [
        (snn.Recurrent(_small(), learn_initial_carry=True), "features"),
        (snn.SequenceClassifier(_small(), 3, pooling="mean"), "features"),
        (snn.Tagger(_small(), 3, vocab_size=11, embed_size=3), "tokens"),
        (snn.Forecaster(_small(), 2, horizon=2), "features"),
        (snn.LanguageModel(11, 3, _small()), "tokens"),
    ],
)
def test_from_linen_gives_the_equal_nnx_module(linen, inputs):
    xs, lengths = _data()
    if inputs == "tokens":
        xs = jax.random.randint(jax.random.key(2), xs.shape[:2], 0, 11)
    args = (xs,) if isinstance(linen, snn.LanguageModel) else (xs, lengths)
    if isinstance(linen, snn.Recurrent):
        args = (xs, None)
    variables = randomize(linen.init(jax.random.key(0), *args))
    model = sx.from_linen(linen, variables["params"], deterministic=True)
    np.testing.assert_allclose(model(*args), linen.apply(variables, *args), **TOL)
    if not isinstance(linen, snn.Recurrent):
        jax.tree.map(np.testing.assert_array_equal, model.params(), variables["params"])


def test_from_linen_rejects_other_modules():
    import flax.linen

    with pytest.raises(TypeError, match="from_linen takes a seqjax.nn module .* received Dense"):
        sx.from_linen(flax.linen.Dense(3), {})
