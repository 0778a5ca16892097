"""String transduction with an attention seq2seq model: the shared task of dates, addition
and ``configs/seq2seq.py`` (source/target pairs from a TSV file).

Teacher-forced cross-entropy for training; greedy decoding for exact match and the
character error rate; BLEU (``sacrebleu``) where the targets are words.
"""

from __future__ import annotations

import pathlib
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from seqjax.train import losses, plots
from seqjax.train.tasks.base import (
    Accumulator,
    arrays,
    build_model,
    check_examples,
    check_split,
    chunks,
    describe_model,
    rows,
    take,
)


class Seq2SeqTask:
    """Character seq2seq with attention: teacher-forced cross-entropy, greedy decoding.

    Args:
      config: the experiment's config (``model``: cell, embed_size, hidden_size,
        encoder_layers, bidirectional, attention, dropout; ``data.n_examples``).
      train, val, test: datasets from :func:`seqjax.data.vocab.encode_pairs`.
      src_vocab, tgt_vocab: their vocabularies.
      bleu: also report corpus BLEU (``sacrebleu``) of the decoded strings.
      words: the units are whitespace-separated words, not characters (attention maps).
    """

    name = "seq2seq"
    eval_metric = "exact_match"
    eval_mode = "max"

    def __init__(
        self, config: ConfigDict, train, val, test, src_vocab, tgt_vocab, *, bleu=False, words=False
    ):
        from seqjax.nn import Seq2Seq, TransformerSeq2Seq

        self.name = config.task or self.name
        self.config = config
        self.train, self.splits = train, {"val": val, "test": test}
        self.src_vocab, self.tgt_vocab = src_vocab, tgt_vocab
        self.bleu = bleu
        self.words = words
        check_examples(len(train["src"]), config.batch_size, f"the {self.name} task")
        m = config.model
        if m.get("parallel", False):
            raise ValueError(
                f"config.model.parallel = True does not apply to the {self.name} task: its "
                "Seq2Seq model decodes one token at a time (the parallel scan serves the "
                "adding, copy, charlm, forecast, classify and tag experiments)"
            )
        ids = dict(pad_id=src_vocab.PAD, bos_id=tgt_vocab.BOS, eos_id=tgt_vocab.EOS)
        self.max_length = max(d["tgt"].shape[1] for d in (train, val, test))
        self.model = build_model(
            m,
            rnn=lambda: Seq2Seq(
                src_vocab=len(src_vocab),
                tgt_vocab=len(tgt_vocab),
                embed_size=m.embed_size,
                hidden_size=m.hidden_size,
                cell=m.cell,
                encoder_layers=m.encoder_layers,
                bidirectional=m.bidirectional,
                attention=m.attention,
                dropout=m.dropout,
                **ids,
            ),
            transformer=lambda c: TransformerSeq2Seq(len(src_vocab), len(tgt_vocab), c, **ids),
            max_length=max(d[k].shape[1] for d in (train, val, test) for k in ("src", "tgt")),
        )
        self._decode = jax.jit(self._decode_fn)
        self._eval_sums = jax.jit(self._sums_fn)

    def _tgt_in(self, tgt):
        bos = jnp.full(tgt.shape[:-1] + (1,), self.tgt_vocab.BOS, tgt.dtype)
        return jnp.concatenate([bos, tgt[..., :-1]], axis=-1)

    def init(self, key):
        b = take(self.train, np.arange(2))
        return self.model.init(
            key, b["src"], b["src_lengths"], self._tgt_in(b["tgt"]), b["tgt_lengths"]
        )

    def logits(self, params, batch, key):
        """``(logits: [b, t, v], targets: int[b, t], mask: bool[b, t])``: teacher-forced
        next-token logits, what they predict and the valid steps."""
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
        return logits, tgt, losses.length_mask(batch["tgt_lengths"], tgt.shape[-1])

    def loss(self, params, batch, key):
        logits, _, mask = self.logits(params, batch, key)
        loss = losses.sequence_cross_entropy(logits, batch["tgt"], mask)
        return loss, {"token_accuracy": losses.masked_accuracy(logits, batch["tgt"], mask)}

    def _sums_fn(self, params, batch):
        logits, _, mask = self.logits(params, batch, None)
        tgt, tokens = batch["tgt"], mask.sum()
        nats = losses.sequence_cross_entropy(logits, tgt, mask)
        right = losses.masked_accuracy(logits, tgt, mask)
        return {"loss": (nats * tokens, tokens), "token_accuracy": (right * tokens, tokens)}

    def train_batch(self, step, batch_size):
        index = rows(len(self.train["src"]), step, batch_size, self.config.seed)
        return take(arrays(self.train), index)

    def _decode_fn(self, params, src, src_lengths):
        out = self.model.apply(
            params, src, src_lengths, max_length=self.max_length, method="decode"
        )
        return out.tokens, out.aux

    def _pad(self, tgt: np.ndarray) -> np.ndarray:
        return np.pad(tgt, ((0, 0), (0, self.max_length - tgt.shape[1])))

    def evaluate(self, params, split):
        from seqjax.data import character_error_rate

        data = self.splits[check_split(split)]
        acc = Accumulator()
        predicted: list[str] = []
        for batch, n in chunks(data):
            tokens, _ = self._decode(params, batch["src"], batch["src_lengths"])
            tokens = np.asarray(tokens)
            same = np.all(tokens == self._pad(batch["tgt"]), axis=-1)
            acc.add("exact_match", same.sum(), n)
            acc.add_sums(self._eval_sums(params, batch))
            predicted += self.tgt_vocab.decode_batch(tokens)
        metrics = acc.means()
        metrics["cer"] = character_error_rate(predicted, data["tgt_text"])
        if self.bleu:
            import sacrebleu

            metrics["bleu"] = sacrebleu.corpus_bleu(predicted, [data["tgt_text"]]).score
        return metrics

    def baselines(self) -> dict[str, float]:
        return {}

    def report(self, params, workdir: pathlib.Path) -> dict[str, Any]:
        test = self.splits["test"]
        # The first evaluation batch of the test split, whose shapes evaluate() compiled.
        first, n = next(chunks(test))
        k = min(self.config.data.n_examples, n)
        tokens, weights = self._decode(params, first["src"], first["src_lengths"])
        tokens, weights = np.asarray(tokens), None if weights is None else np.asarray(weights)
        lines = []
        units = str.split if self.words else list
        for i in range(k):
            src, truth = test["src_text"][i], test["tgt_text"][i]
            pred = self.tgt_vocab.decode(tokens[i])
            mark = "ok" if pred == truth else f"WRONG, want {truth!r}"
            lines.append(f"{src!r} -> {pred!r} ({mark})")
            if weights is not None and i < 3:
                shown = units(pred) + ["<eos>"]
                plots.attention_map(weights[i], units(src), shown, workdir, f"attention_{i}.png")
        return {"examples": lines, "baselines": self.baselines()}

    @staticmethod
    def readme_row(s: dict) -> tuple[str, str, str]:
        m, ev = s["config"]["model"], s["eval"]
        enc = f"bi-{m['cell']}" if m["bidirectional"] else m["cell"]
        what = f"{enc} encoder, {m['cell']} {m['hidden_size']} decoder, {m['attention']} attention"
        if m.get("arch", "rnn") == "transformer":
            what = f"encoder-decoder {describe_model(m)}"
        metric = f"exact match {ev['exact_match']:.2%}, CER {ev['cer']:.4f}"
        if "bleu" in ev:
            metric += f", BLEU {ev['bleu']:.1f}"
        base = s.get("baselines", {})
        baseline = (
            f"nearest training source: exact match {base['nearest_exact_match']:.2%}, "
            f"CER {base['nearest_cer']:.4f}"
            if "nearest_exact_match" in base
            else "-"
        )
        return what, metric, baseline


def split_train(train: dict, fraction: float, seed: int) -> tuple[dict, dict]:
    """``(train, val)``: a seeded random ``fraction`` of the training pairs held out."""
    from seqjax.data import random_split

    kept, held = random_split(len(train["src"]), fraction, seed)
    return take(train, kept), take(train, held)


class DatesTask(Seq2SeqTask):
    """Human-written dates in many formats to ISO dates, tested on unseen calendar dates."""

    name = "dates"

    def __init__(self, config):
        from seqjax.data import make_dates

        d = config.data
        train, test, src, tgt = make_dates(d.n_train, d.n_test, seed=config.seed)
        super().__init__(config, *split_train(train, d.val_fraction, config.seed), test, src, tgt)


class AdditionTask(Seq2SeqTask):
    """``"123+45"`` to ``"168"`` (the task of Flax's seq2seq example), unseen problems."""

    name = "addition"

    def __init__(self, config):
        from seqjax.data import make_addition

        d = config.data
        train, test, src, tgt = make_addition(
            d.n_train, d.n_test, max_digits=d.max_digits, seed=config.seed
        )
        super().__init__(config, *split_train(train, d.val_fraction, config.seed), test, src, tgt)


class TransductionTask(Seq2SeqTask):
    """``configs/seq2seq.py``: pairs from ``data.path`` (TSV), the test part from
    ``data.test_path`` or a seeded ``data.test_fraction`` of the pairs; the validation part
    a seeded ``data.val_fraction`` of the rest. ``data.tokens``: ``"chars"`` or
    ``"words"``. Vocabularies come from the training part only (unseen units are UNK).
    The baseline answers each test source with the target of the nearest training source
    (edit distance), on the same split.
    """

    name = "seq2seq"

    def __init__(self, config):
        from seqjax.data import CharVocab, WordVocab, load_pairs, random_split
        from seqjax.data.vocab import encode_pairs

        d = config.data
        if d.tokens not in ("chars", "words"):
            raise ValueError(f'data.tokens must be "chars" or "words", received {d.tokens!r}')
        if not d.path:
            raise ValueError("the seq2seq task needs --config.data.path=FILE.tsv")
        src, tgt = load_pairs(d.path)
        if d.test_path:
            test_src, test_tgt = load_pairs(d.test_path)
        else:
            kept, held = random_split(len(src), d.test_fraction, config.seed)
            test_src, test_tgt = [src[i] for i in held], [tgt[i] for i in held]
            src, tgt = [src[i] for i in kept], [tgt[i] for i in kept]
        kept, held = random_split(len(src), d.val_fraction, config.seed + 1)
        parts = {
            "train": ([src[i] for i in kept], [tgt[i] for i in kept]),
            "val": ([src[i] for i in held], [tgt[i] for i in held]),
            "test": (test_src, test_tgt),
        }
        for name, (s, _) in parts.items():
            if not s:
                raise ValueError(
                    f"the {name} part of {d.path} is empty ({len(src)} pairs; data.val_fraction "
                    f"= {d.val_fraction}, data.test_fraction = {d.test_fraction})"
                )
        make = WordVocab.from_texts if d.tokens == "words" else lambda t: CharVocab("".join(t))
        src_vocab, tgt_vocab = make(parts["train"][0]), make(parts["train"][1])
        data = {}
        for name, (s, t) in parts.items():
            widths = (
                max(len(src_vocab.encode(x)) for x in s),
                max(len(tgt_vocab.encode(x)) for x in t) + 1,
            )
            data[name] = encode_pairs(s, t, src_vocab, tgt_vocab, widths)
        self._nearest_inputs = parts["train"]
        super().__init__(
            config,
            data["train"],
            data["val"],
            data["test"],
            src_vocab,
            tgt_vocab,
            bleu=d.tokens == "words" or d.bleu,
            words=d.tokens == "words",
        )

    def baselines(self):
        from seqjax.data import character_error_rate, nearest_neighbour_targets

        test = self.splits["test"]
        train_src, train_tgt = self._nearest_inputs
        guess = nearest_neighbour_targets(train_src, train_tgt, test["src_text"])
        right = np.mean([g == t for g, t in zip(guess, test["tgt_text"])])
        out = {
            "nearest_exact_match": float(right),
            "nearest_cer": character_error_rate(guess, test["tgt_text"]),
        }
        if self.bleu:
            import sacrebleu

            out["nearest_bleu"] = sacrebleu.corpus_bleu(guess, [test["tgt_text"]]).score
        return out
