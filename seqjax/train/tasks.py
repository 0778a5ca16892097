"""The experiments: data, model, loss, evaluation and report of each ``config.task``.

Each task implements :class:`seqjax.train.loop.Task`. Training batches are a pure function
of the step (rows drawn with a generator seeded by ``(seed, step)``, or data generated from
that seed), so resuming from a checkpoint replays exactly the same batches.
"""

from __future__ import annotations

import math
import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

import seqjax
from seqjax.train import losses, plots

EVAL_BATCH = 500


def make_task(config: ConfigDict):
    """The task object named by ``config.task``."""
    tasks = {
        "dates": DatesTask,
        "addition": AdditionTask,
        "adding": AddingTask,
        "copy": CopyTask,
        "charlm": CharLMTask,
        "forecast": ForecastTask,
    }
    if config.task not in tasks:
        raise ValueError(f"config.task must be one of {sorted(tasks)}, received {config.task!r}")
    return tasks[config.task](config)


def _rows(n: int, step: int, batch_size: int, seed: int) -> np.ndarray:
    """Row indices of ``step``'s batch: uniform draws from a generator seeded by the step."""
    return np.random.default_rng([seed, step]).integers(0, n, batch_size)


def _step_seed(seed: int, step: int) -> int:
    """The seed of ``step``'s freshly generated batch: a pure function of the step."""
    return int(np.random.default_rng([seed, step]).integers(2**31))


TEST_SEED = 10**6  # generated test sets are seeded with seed + TEST_SEED


def _take(data: dict, rows: np.ndarray) -> dict:
    return {k: v[rows] for k, v in data.items() if isinstance(v, np.ndarray)}


def _chunks(data: dict, size: int):
    """``(batch, n)``: the array values of ``data`` in consecutive batches of ``size`` rows
    (the last one smaller), with ``n`` its number of rows, so that batch means weighted
    by ``n`` average over exactly the examples."""
    from seqjax.data import batches

    for batch in batches(data, size, drop_remainder=False):
        yield batch, len(next(iter(batch.values())))


def _cell(m: ConfigDict) -> seqjax.Cell:
    cells = {"lstm": seqjax.lstm, "gru": seqjax.gru, "simple_rnn": seqjax.simple_rnn}
    if m.cell not in cells:
        raise ValueError(f"config.model.cell must be one of {sorted(cells)}, received {m.cell!r}")
    if m.cell == "lstm" and m.get("chrono_t_max"):
        return seqjax.lstm(m.hidden_size, chrono_t_max=m.chrono_t_max)
    return cells[m.cell](m.hidden_size)


def _stack(m: ConfigDict) -> seqjax.Seq:
    layer = seqjax.recurrent(_cell(m), remat=m.get("remat", None))
    return seqjax.stack(*[layer] * m.get("layers", 1), dropout=m.get("dropout", 0.0))


# --------------------------------------------------------------------------- seq2seq


class _Seq2SeqTask:
    """Character seq2seq with attention: teacher-forced cross-entropy, greedy decoding."""

    eval_metric = "exact_match"
    eval_mode = "max"

    def __init__(self, config: ConfigDict, train, test, src_vocab, tgt_vocab):
        from seqjax.nn import Seq2Seq

        self.config = config
        self.train, self.test = train, test
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        m = config.model
        self.model = Seq2Seq(
            src_vocab=len(src_vocab),
            tgt_vocab=len(tgt_vocab),
            embed_size=m.embed_size,
            hidden_size=m.hidden_size,
            cell=m.cell if m.cell != "simple_rnn" else "rnn",
            encoder_layers=m.encoder_layers,
            bidirectional=m.bidirectional,
            attention=m.attention,
            dropout=m.dropout,
            pad_id=src_vocab.PAD,
            bos_id=tgt_vocab.BOS,
            eos_id=tgt_vocab.EOS,
        )
        self.max_length = test["tgt"].shape[1]
        self._decode = jax.jit(self._decode_fn)
        self._eval_loss = jax.jit(self._loss_fn)

    def _tgt_in(self, tgt):
        bos = jnp.full(tgt.shape[:-1] + (1,), self.tgt_vocab.BOS, tgt.dtype)
        return jnp.concatenate([bos, tgt[..., :-1]], axis=-1)

    def init(self, key):
        b = _take(self.train, np.arange(2))
        return self.model.init(
            key, b["src"], b["src_lengths"], self._tgt_in(b["tgt"]), b["tgt_lengths"]
        )

    def _loss_fn(self, params, batch, key):
        tgt = batch["tgt"]
        logits, _ = self.model.apply(
            params,
            batch["src"],
            batch["src_lengths"],
            self._tgt_in(tgt),
            batch["tgt_lengths"],
            deterministic=key is None,
            rngs=None if key is None else {"dropout": key},
        )
        mask = losses.length_mask(batch["tgt_lengths"], tgt.shape[-1])
        loss = losses.sequence_cross_entropy(logits, tgt, mask)
        return loss, {"token_accuracy": losses.masked_accuracy(logits, tgt, mask)}

    def loss(self, params, batch, key):
        return self._loss_fn(params, batch, key)

    def train_batch(self, step, batch_size):
        rows = _rows(len(self.train["src"]), step, batch_size, self.config.seed)
        return _take(self.train, rows)

    def _decode_fn(self, params, src, src_lengths):
        out = self.model.apply(
            params, src, src_lengths, max_length=self.max_length, method="decode"
        )
        return out.tokens, out.aux

    def evaluate(self, params):
        right = loss = acc = 0.0
        total = 0
        for batch, n in _chunks(self.test, EVAL_BATCH):
            tokens, _ = self._decode(params, batch["src"], batch["src_lengths"])
            same = np.all(np.asarray(tokens) == batch["tgt"], axis=-1)
            right += same.sum()
            batch_loss, aux = self._eval_loss(params, batch, None)
            loss += float(batch_loss) * n
            acc += float(aux["token_accuracy"]) * n
            total += n
        return {"exact_match": right / total, "loss": loss / total, "token_accuracy": acc / total}

    def report(self, params, workdir: pathlib.Path) -> dict[str, Any]:
        k = self.config.data.n_examples
        sample = {key: v[:k] for key, v in self.test.items() if isinstance(v, np.ndarray)}
        tokens, weights = self._decode(params, sample["src"], sample["src_lengths"])
        tokens, weights = np.asarray(tokens), None if weights is None else np.asarray(weights)
        lines = []
        for i in range(k):
            src, truth = self.test["src_text"][i], self.test["tgt_text"][i]
            pred = self.tgt_vocab.decode(tokens[i])
            mark = "ok" if pred == truth else f"WRONG, want {truth!r}"
            lines.append(f"{src!r} -> {pred!r} ({mark})")
            if weights is not None and i < 3:
                shown = list(pred) + ["<eos>"]
                plots.attention_map(weights[i], list(src), shown, workdir, f"attention_{i}.png")
        return {"examples": lines}


class DatesTask(_Seq2SeqTask):
    """Human-written dates in many formats to ISO dates, on unseen calendar dates."""

    def __init__(self, config):
        from seqjax.data import make_dates

        d = config.data
        super().__init__(config, *make_dates(d.n_train, d.n_test, seed=config.seed))


class AdditionTask(_Seq2SeqTask):
    """``"123+45"`` to ``"168"`` (the task of Flax's seq2seq example), unseen problems."""

    def __init__(self, config):
        from seqjax.data import make_addition

        d = config.data
        data = make_addition(d.n_train, d.n_test, max_digits=d.max_digits, seed=config.seed)
        super().__init__(config, *data)


# --------------------------------------------------------------------------- adding


class AddingTask:
    """The adding problem (Hochreiter and Schmidhuber 1997): regression from the last state."""

    eval_metric = "mse"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import make_adding
        from seqjax.nn import SequenceClassifier

        self.config = config
        self._make = make_adding
        self.test = make_adding(
            config.data.n_test, config.data.length, seed=TEST_SEED + config.seed
        )
        self.model = SequenceClassifier(_stack(config.model), num_classes=1, pooling="last")
        self._eval = jax.jit(self._mse)

    def _mse(self, params, x, y):
        return losses.masked_mse(self.model.apply(params, x)[..., 0], y)

    def init(self, key):
        return self.model.init(key, self.test["x"][:2])

    def loss(self, params, batch, key):
        return self._mse(params, batch["x"], batch["y"]), {}

    def train_batch(self, step, batch_size):
        seed = _step_seed(self.config.seed, step)
        return self._make(batch_size, self.config.data.length, seed=seed)

    def evaluate(self, params):
        mse = [float(self._eval(params, b["x"], b["y"])) * n for b, n in _chunks(self.test, 1000)]
        return {"mse": sum(mse) / len(self.test["y"])}

    def report(self, params, workdir):
        baseline = float(np.mean((self.test["y"] - self.test["y"].mean()) ** 2))
        return {"baselines": {"predict_the_mean_mse": baseline}}


# --------------------------------------------------------------------------- copy


class CopyTask:
    """Copy memory (Arjovsky et al. 2016): per-step cross-entropy in nats."""

    eval_metric = "loss"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import COPY_VOCAB, make_copy
        from seqjax.nn import Tagger

        self.config = config
        self._make = make_copy
        d = config.data
        self.test = make_copy(d.n_test, delay=d.delay, seed=TEST_SEED + config.seed)
        m = config.model
        self.model = Tagger(
            _stack(m), num_tags=COPY_VOCAB, vocab_size=COPY_VOCAB, embed_size=m.embed_size
        )
        self._eval = jax.jit(self._metrics)

    def _metrics(self, params, x, y):
        logits = self.model.apply(params, x)
        mask = jnp.ones(y.shape, bool)
        tail = mask.at[..., : -self.config.data.copy_length].set(False)
        return {
            "loss": losses.sequence_cross_entropy(logits, y, mask),
            "copy_accuracy": losses.masked_accuracy(logits, y, tail),
        }

    def init(self, key):
        return self.model.init(key, self.test["x"][:2])

    def loss(self, params, batch, key):
        m = self._metrics(params, batch["x"], batch["y"])
        return m["loss"], {"copy_accuracy": m["copy_accuracy"]}

    def train_batch(self, step, batch_size):
        seed = _step_seed(self.config.seed, step)
        return self._make(batch_size, delay=self.config.data.delay, seed=seed)

    def evaluate(self, params):
        out = {"loss": 0.0, "copy_accuracy": 0.0}
        for b, n in _chunks(self.test, 500):
            m = self._eval(params, b["x"], b["y"])
            for k in out:
                out[k] += float(m[k]) * n
        return {k: v / len(self.test["x"]) for k, v in out.items()}

    def report(self, params, workdir):
        from seqjax.data import memoryless_baseline

        return {"baselines": {"memoryless_nats": memoryless_baseline(self.config.data.delay)}}


# --------------------------------------------------------------------------- charlm


class CharLMTask:
    """Character language model; bits per character beside a count-based n-gram model."""

    eval_metric = "bits_per_char"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import CharVocab, default_corpus, load_text, split_text
        from seqjax.nn import LanguageModel

        self.config = config
        d, m = config.data, config.model
        text = load_text(d.path) if d.path else default_corpus(d.max_chars)
        self.train_text, self.valid_text, self.test_text = split_text(text)
        self.vocab = CharVocab.from_text(self.train_text)
        self.train_ids = self.vocab.encode_array(self.train_text)
        self.eval_text = self.test_text[: d.eval_chars]
        self.model = LanguageModel(
            len(self.vocab),
            m.embed_size,
            _stack(m),
            tie_embeddings=m.tie_embeddings,
            dropout=m.dropout,
        )
        self.stateful = self.model.clone(return_carry=True)
        self._eval_chunk = jax.jit(self._chunk_nats)

    def init(self, key):
        return self.model.init(key, jnp.zeros((2, 8), jnp.int32))

    def loss(self, params, batch, key):
        logits = self.model.apply(
            params,
            batch["x"],
            deterministic=key is None,
            rngs=None if key is None else {"dropout": key},
        )
        mask = jnp.ones(batch["y"].shape, bool)
        nats = losses.sequence_cross_entropy(logits, batch["y"], mask)
        return nats, {"bits_per_char": losses.bits_per_char(nats)}

    def train_batch(self, step, batch_size):
        seq_len = self.config.data.seq_len
        rng = np.random.default_rng([self.config.seed, step])
        starts = rng.integers(0, len(self.train_ids) - seq_len - 1, batch_size)
        windows = np.stack([self.train_ids[s : s + seq_len + 1] for s in starts])
        return {"x": windows[:, :-1], "y": windows[:, 1:]}

    def _chunk_nats(self, params, carry, x, y):
        carry, logits = self.stateful.apply(params, x, carry)
        nats = jax.nn.log_softmax(logits.astype(jnp.float32))
        return carry, -jnp.sum(jnp.take_along_axis(nats, y[..., None], -1))

    def evaluate(self, params):
        """Bits per character of the held-out text, read as parallel streams that carry
        their state from chunk to chunk (every character but the first of each stream)."""
        ids = self.vocab.encode_array(self.eval_text)
        streams, seq_len = 16, self.config.data.seq_len
        per = (len(ids) - 1) // streams
        x_all = ids[: streams * per].reshape(streams, per)
        y_all = ids[1 : streams * per + 1].reshape(streams, per)
        carry, total, count = None, 0.0, 0
        for start in range(0, per - seq_len + 1, seq_len):
            x, y = x_all[:, start : start + seq_len], y_all[:, start : start + seq_len]
            carry, nats = self._eval_chunk(params, carry, x, y)
            total += float(nats)
            count += y.size
        return {"bits_per_char": total / count / math.log(2)}

    def report(self, params, workdir):
        from seqjax.data import NGramModel

        orders = range(1, self.config.data.max_ngram_order + 1)
        valid = {
            n: NGramModel(n).fit(self.train_text).bits_per_char(self.valid_text) for n in orders
        }
        best = min(valid, key=valid.get)
        ngram = NGramModel(best).fit(self.train_text).bits_per_char(self.eval_text)
        prompt = self.vocab.encode_array(self.eval_text[:64])[None]
        out = self.model.apply(
            params,
            prompt,
            jax.random.PRNGKey(self.config.seed),
            max_length=self.config.data.sample_chars,
            temperature=0.8,
            method="generate",
        )
        sample = self.eval_text[:64] + self.vocab.decode(np.asarray(out.tokens)[0])
        return {
            "baselines": {f"ngram_order{best}_bits_per_char": ngram},
            "examples": sample.splitlines(),
        }


# --------------------------------------------------------------------------- forecast


class ForecastTask:
    """One-step forecasting of a univariate series from windows of its past.

    The model sees each window relative to its last value and predicts the change from it
    (so a trend that leaves the training range does not leave the model's input range).
    """

    eval_metric = "mse"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import default_series, load_csv_series, prepare_series
        from seqjax.nn import Forecaster

        self.config = config
        d = config.data
        series = load_csv_series(d.path, d.column) if d.path else default_series()
        self.data = prepare_series(series, d.window)
        self.model = Forecaster(_stack(config.model), features=1, horizon=1)
        self._predict = jax.jit(self._forward)

    def _forward(self, params, x):
        """Scaled one-step forecasts ``[b]`` from scaled windows ``x: [b, w, 1]``."""
        last = x[:, -1, 0]
        return last + self.model.apply(params, x - x[:, -1:])[..., 0, 0]

    def init(self, key):
        return self.model.init(key, self.data.train["x"][:2])

    def loss(self, params, batch, key):
        return losses.masked_mse(self._forward(params, batch["x"]), batch["y"][..., 0]), {}

    def train_batch(self, step, batch_size):
        rows = _rows(len(self.data.train["x"]), step, batch_size, self.config.seed)
        return _take(self.data.train, rows)

    def _test_forecast(self, params) -> tuple[np.ndarray, np.ndarray]:
        """``(forecast, truth)`` on the held-out tail, in the series' own units."""
        test = self.data.test
        scaled = np.concatenate(
            [np.asarray(self._predict(params, b["x"])) for b, _ in _chunks(test, 1000)]
        )
        inverse = self.data.scaler.inverse
        return inverse(scaled), inverse(test["y"][:, 0])

    def evaluate(self, params):
        pred, truth = self._test_forecast(params)
        return {
            "mse": float(np.mean((pred - truth) ** 2)),
            "mae": float(np.mean(np.abs(pred - truth))),
        }

    def report(self, params, workdir):
        from seqjax.data import series_baselines

        pred, truth = self._test_forecast(params)
        naive = self.data.scaler.inverse(self.data.test["x"][:, -1, 0])
        shown = slice(0, 300)
        plots.forecast(truth[shown], {"seqjax": pred[shown], "naive": naive[shown]}, workdir)
        base = series_baselines(self.data, p=self.config.data.ar_order)
        flat = {f"{name}_{k}": float(v) for name, m in base.items() for k, v in m.items()}
        return {"baselines": flat}
