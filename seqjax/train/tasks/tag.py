"""``configs/tag.py``: one label per step, from a user's ``.npz`` or CoNLL-style file.

Token accuracy and loss; for BIO tags also entity-level precision, recall and F1
(``seqeval``, the CoNLL-2000 evaluation's rules); beside a most-frequent-tag baseline
(each token's most frequent training tag) on exactly the same split.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from seqjax.train import losses
from seqjax.train.tasks.base import (
    Accumulator,
    build_model,
    build_seq,
    check_split,
    chunks,
    describe_model,
)
from seqjax.train.tasks.files import FileTask, Inputs, split_sequences


def is_bio(tags) -> bool:
    """Whether every tag is ``O`` or ``B-``/``I-`` followed by a type."""
    return all(t == "O" or (t[:2] in ("B-", "I-") and len(t) > 2) for t in map(str, tags))


class TagTask(FileTask):
    """A :class:`seqjax.nn.Tagger` over the configured recurrent layers."""

    name = "tag"
    eval_metric = "token_accuracy"
    eval_mode = "max"

    def __init__(self, config):
        from seqjax.data import Labels
        from seqjax.nn import Tagger, TransformerTagger

        self.config = config
        d, m = config.data, config.model
        self.parts = split_sequences(config, per_step=True)
        train = self.parts["train"]
        self.labels = Labels.fit(_valid(train.y, train.lengths))
        self.bio = is_bio(self.labels.classes)
        if self.bio:
            self.eval_metric = "entity_f1"
        self.inputs = Inputs(self.parts)
        self.data = {}
        for k, p in self.parts.items():
            y = np.zeros(p.y.shape, np.int32)
            valid = np.arange(p.y.shape[1]) < p.lengths[:, None]
            y[valid] = self.labels.encode(p.y[valid], what=f"{k} tags of {d.test_path or d.path}")
            self.data[k] = {
                "x": self.inputs.arrays[k],
                "lengths": p.lengths.astype(np.int32),
                "y": y,
            }
        k = len(self.labels)
        self.model = build_model(
            m,
            rnn=lambda: Tagger(build_seq(m), num_tags=k, **self.inputs.head_options(m)),
            transformer=lambda c: TransformerTagger(k, c, vocab_size=self.inputs.vocab_size),
            max_length=self.inputs.max_length,
        )
        self._eval = jax.jit(self._logits)

    def logits(self, params, batch, key):
        """``(logits: [b, t, c], tags: int[b, t], mask: bool[b, t])``: tag logits, the
        tags and the valid steps."""
        mask = losses.length_mask(batch["lengths"], batch["y"].shape[-1])
        return self._logits(params, batch, key), batch["y"], mask

    def loss(self, params, batch, key):
        logits, _, mask = self.logits(params, batch, key)
        loss = losses.sequence_cross_entropy(logits, batch["y"], mask)
        return loss, {"token_accuracy": losses.masked_accuracy(logits, batch["y"], mask)}

    def predict(self, params, split) -> tuple[list[np.ndarray], float]:
        """``(predicted tag ids of each sequence's valid steps, summed cross-entropy)``."""
        preds, nats = [], 0.0
        for b, _ in chunks(self.data[split]):
            logits = jnp.asarray(self._eval(params, b), jnp.float32)
            mask = losses.length_mask(b["lengths"], b["y"].shape[-1])
            nats += float(losses.sequence_cross_entropy(logits, b["y"], mask) * mask.sum())
            ids = np.asarray(jnp.argmax(logits, -1))
            preds += [row[:n] for row, n in zip(ids, b["lengths"])]
        return preds, nats

    def evaluate(self, params, split):
        data = self.data[check_split(split)]
        preds, nats = self.predict(params, split)
        truth = [row[:n] for row, n in zip(data["y"], data["lengths"])]
        acc = Accumulator()
        acc.add("loss", nats, data["lengths"].sum())
        return {**acc.means(), **self.tag_metrics(truth, preds)}

    def tag_metrics(self, truth: list, preds: list) -> dict[str, float]:
        """Token accuracy, and entity precision / recall / F1 for BIO tags (seqeval)."""
        right = sum(int(np.sum(t == p)) for t, p in zip(truth, preds))
        out = {"token_accuracy": right / max(sum(len(t) for t in truth), 1)}
        if self.bio:
            from seqeval.metrics import f1_score, precision_score, recall_score

            names = lambda rows: [self.labels.decode(r).tolist() for r in rows]  # noqa: E731
            t, p = names(truth), names(preds)
            out["entity_precision"] = float(precision_score(t, p, zero_division=0))
            out["entity_recall"] = float(recall_score(t, p, zero_division=0))
            out["entity_f1"] = float(f1_score(t, p, zero_division=0))
        return out

    def report(self, params, workdir):
        from seqjax.data import most_frequent_tag

        train, test = self.data["train"], self.data["test"]
        tokens = lambda d: [row[:n].tolist() for row, n in zip(d["x"], d["lengths"])]  # noqa: E731
        truth = [row[:n] for row, n in zip(test["y"], test["lengths"])]
        if self.inputs.vocab_size is None:  # features: no token identity; the majority tag
            majority = np.bincount(
                np.concatenate([r[:n] for r, n in zip(train["y"], train["lengths"])])
            )
            guess = [np.full(len(t), majority.argmax()) for t in truth]
            name = "majority_tag"
        else:
            train_tags = [row[:n].tolist() for row, n in zip(train["y"], train["lengths"])]
            guess = [
                np.asarray(g) for g in most_frequent_tag(tokens(train), train_tags, tokens(test))
            ]
            name = "most_frequent_tag"
        base = self.tag_metrics(truth, guess)
        examples = []
        preds, _ = self.predict(params, "test")
        for i in range(min(self.config.data.n_examples, len(preds))):
            words = self.parts["test"].words
            shown = words[i] if words is not None else [str(v) for v in tokens(test)[i]]
            pred, want = self.labels.decode(preds[i]), self.labels.decode(truth[i])
            examples.append(
                " ".join(w if p == "O" else f"{w}/{p}" for w, p in zip(shown, pred))
                + ("" if (pred == want).all() else "  (WRONG somewhere)")
            )
        return {
            "baselines": {f"{name}_{k}": v for k, v in base.items()},
            "tags": self.labels.classes.tolist(),
            "examples": examples,
        }

    @staticmethod
    def readme_row(s):
        ev, base = s["eval"], s["baselines"]
        (prefix,) = [
            k.removesuffix("_token_accuracy") for k in base if k.endswith("_token_accuracy")
        ]
        metric = f"token accuracy {ev['token_accuracy']:.2%}"
        baseline = (
            f"{prefix.replace('_', '-')}: token accuracy {base[prefix + '_token_accuracy']:.2%}"
        )
        if "entity_f1" in ev:
            metric += f", entity F1 {ev['entity_f1']:.3f}"
            baseline += f", entity F1 {base[prefix + '_entity_f1']:.3f}"
        return describe_model(s["config"]["model"]), metric, baseline


def _valid(y: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    return y[np.arange(y.shape[1]) < lengths[:, None]]
