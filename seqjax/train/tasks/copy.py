"""Copy memory (Arjovsky et al. 2016): per-step cross-entropy in nats."""

from __future__ import annotations

import jax
import jax.numpy as jnp

from seqjax.train import losses
from seqjax.train.tasks.base import (
    TEST_SEED,
    VAL_SEED,
    Accumulator,
    build_model,
    build_seq,
    check_split,
    chunks,
    describe_model,
    step_seed,
)


class CopyTask:
    """Remember ``data.copy_length`` symbols over ``data.delay`` blanks, then write them."""

    name = "copy"
    eval_metric = "loss"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import COPY_VOCAB
        from seqjax.nn import Tagger, TransformerLM

        self.config = config
        d = config.data
        self.splits = {
            "val": self._make(d.n_val, VAL_SEED + config.seed),
            "test": self._make(d.n_test, TEST_SEED + config.seed),
        }
        m = config.model
        self.model = build_model(
            m,
            rnn=lambda: Tagger(
                build_seq(m), num_tags=COPY_VOCAB, vocab_size=COPY_VOCAB, embed_size=m.embed_size
            ),
            # a causal reader: the logits at each position over the same symbols
            transformer=lambda c: TransformerLM(COPY_VOCAB, c),
            max_length=self.splits["test"]["x"].shape[-1],
        )
        self._eval = jax.jit(self._metrics)

    def _make(self, n, seed):
        from seqjax.data import make_copy

        d = self.config.data
        return make_copy(n, delay=d.delay, copy_length=d.copy_length, seed=seed)

    def _metrics(self, params, x, y):
        logits = self.model.apply(params, x)
        mask = jnp.ones(y.shape, bool)
        tail = mask.at[..., : -self.config.data.copy_length].set(False)
        return {
            "loss": losses.sequence_cross_entropy(logits, y, mask),
            "copy_accuracy": losses.masked_accuracy(logits, y, tail),
        }

    def init(self, key):
        return self.model.init(key, self.splits["test"]["x"][:2])

    def loss(self, params, batch, key):
        m = self._metrics(params, batch["x"], batch["y"])
        return m["loss"], {"copy_accuracy": m["copy_accuracy"]}

    def train_batch(self, step, batch_size):
        return self._make(batch_size, step_seed(self.config.seed, step))

    def evaluate(self, params, split):
        acc = Accumulator()
        for b, n in chunks(self.splits[check_split(split)]):
            for k, v in self._eval(params, b["x"], b["y"]).items():
                acc.add(k, float(v) * n, n)  # every sequence has the same number of steps
        return acc.means()

    def report(self, params, workdir):
        from seqjax.data import memoryless_baseline

        d = self.config.data
        nats = memoryless_baseline(d.delay, copy_length=d.copy_length)
        return {"baselines": {"memoryless_nats": nats}}

    @staticmethod
    def readme_row(s):
        ev, base = s["eval"], s["baselines"]
        return (
            describe_model(s["config"]["model"]),
            f"test {ev['loss']:.4f} nats/step, copy accuracy {ev['copy_accuracy']:.1%}",
            f"memoryless: {base['memoryless_nats']:.4f} nats/step",
        )
