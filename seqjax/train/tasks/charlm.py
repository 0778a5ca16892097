"""Character language model; bits per character beside a count-based n-gram model."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.train import losses
from seqjax.train.tasks.base import (
    Accumulator,
    arch,
    build_model,
    build_seq,
    check_split,
    describe_model,
)

EVAL_STREAMS = 16  # parallel streams of held-out text, each carrying its state


class CharLMTask:
    """Contiguous train, validation and test parts of one text (``seqjax.data.split_text``)."""

    name = "charlm"
    eval_metric = "bits_per_char"
    eval_mode = "min"

    def __init__(self, config):
        from seqjax.data import CharVocab, default_corpus, load_text, split_text
        from seqjax.nn import LanguageModel, TransformerLM

        self.config = config
        d, m = config.data, config.model
        text = load_text(d.path) if d.path else default_corpus(d.max_chars)
        where = d.path or "the default corpus"
        try:
            self.train_text, valid, test = split_text(text, d.val_fraction, d.test_fraction)
        except ValueError as e:
            raise ValueError(f"{where} ({len(text)} characters) cannot be split: {e}") from None
        if len(self.train_text) < d.seq_len + 1:
            raise ValueError(
                f"the training part of {where} holds {len(self.train_text)} characters; "
                f"data.seq_len = {d.seq_len} needs at least {d.seq_len + 1} (give a longer "
                "text or lower --config.data.seq_len)"
            )
        self.texts = {"val": valid[: d.eval_chars], "test": test[: d.eval_chars]}
        for name, part in self.texts.items():
            if len(part) < 2:
                raise ValueError(
                    f"the {name} part of {where} holds {len(part)} characters of {len(text)}; "
                    "it needs at least 2 (give a longer text or raise data.val_fraction / "
                    "data.test_fraction)"
                )
        self.vocab = CharVocab.from_text(self.train_text)
        self.train_ids = self.vocab.encode_array(self.train_text)
        self.model = build_model(
            m,
            rnn=lambda: LanguageModel(
                len(self.vocab),
                m.embed_size,
                build_seq(m),
                tie_embeddings=m.tie_embeddings,
                dropout=m.dropout,
            ),
            transformer=lambda c: TransformerLM(len(self.vocab), c),
            max_length=d.seq_len,
        )
        # Held-out text is read in chunks that carry state: a recurrent model its carry,
        # the Transformer the previous tokens, up to its max_length positions; its chunks are
        # half a window, so each character sees between half and a whole window of context.
        self.window = None if arch(m) == "rnn" else self.model.config.max_length
        self.eval_len = d.seq_len if self.window is None else max(self.window // 2, 1)
        self.stateful = self.model.clone(return_carry=True)
        self._eval_chunk = jax.jit(self._chunk_nats)

    def init(self, key):
        return self.model.init(key, jnp.zeros((2, 8), jnp.int32))

    def logits(self, params, batch, key):
        """``(logits: [b, t, v], targets: int[b, t], mask: bool[b, t])``: next-character
        logits of a window, the characters they predict and the valid steps (all)."""
        logits = self.model.apply(
            params,
            batch["x"],
            deterministic=key is None,
            rngs=None if key is None else {"dropout": key},
        )
        return logits, batch["y"], jnp.ones(batch["y"].shape, bool)

    def loss(self, params, batch, key):
        logits, _, mask = self.logits(params, batch, key)
        nats = losses.sequence_cross_entropy(logits, batch["y"], mask)
        return nats, {"bits_per_char": losses.bits_per_char(nats)}

    def train_batch(self, step, batch_size):
        from seqjax.data import lm_batches

        windows = lm_batches(
            self.train_ids,
            batch_size,
            self.config.data.seq_len,
            self.config.seed,
            start=step,
            num_batches=1,
        )
        return next(windows)

    def _chunk_nats(self, params, carry, x, y, mask):
        carry, logits = self.stateful.apply(params, x, carry)
        logp = jax.nn.log_softmax(logits.astype(jnp.float32))
        nats = -jnp.take_along_axis(logp, y[..., None], -1)[..., 0]
        return carry, jnp.sum(nats * mask)

    def evaluate(self, params, split):
        """Bits per character of every next character of the split's text, read as
        parallel streams that carry their state from chunk to chunk."""
        from seqjax.data import lm_eval_batches

        ids = self.vocab.encode_array(self.texts[check_split(split)])
        carry, acc = None, Accumulator()
        for b in lm_eval_batches(ids, EVAL_STREAMS, self.eval_len):
            carry, nats = self._eval_chunk(params, carry, b["x"], b["y"], b["mask"])
            acc.add("bits_per_char", float(nats) / math.log(2), b["mask"].sum())
        return acc.means()

    def report(self, params, workdir):
        from seqjax.data import fit_best_ngram

        d = self.config.data
        ngram, _ = fit_best_ngram(self.train_text, self.texts["val"], d.max_ngram_order)
        test = self.texts["test"]
        shown, length = 64, d.sample_chars
        if self.window is not None:  # a Transformer samples within its positions
            shown = min(shown, max(self.window // 2, 1))
            length = min(length, self.window - shown + 1)
        prompt = self.vocab.encode_array(test[:shown])[None]
        out = self.model.apply(
            params,
            prompt,
            jax.random.PRNGKey(self.config.seed),
            max_length=length,
            temperature=0.8,
            method="generate",
        )
        sample = test[:shown] + self.vocab.decode(np.asarray(out.tokens)[0])
        return {
            "baselines": {f"ngram_order{ngram.order}_bits_per_char": ngram.bits_per_char(test)},
            "examples": sample.splitlines(),
        }

    @staticmethod
    def readme_row(s):
        base = s["baselines"]
        (key,) = [k for k in base if k.startswith("ngram")]
        order = key.split("_")[1].removeprefix("order")
        return (
            describe_model(s["config"]["model"]),
            f"test {s['eval']['bits_per_char']:.3f} bits/char",
            f"{order}-gram: {base[key]:.3f} bits/char",
        )
