"""``configs/classify.py``: one label per sequence, from a user's ``.npz`` or CSV file.

Accuracy, macro F1 and loss; a confusion matrix of the test part; beside a logistic
regression on pooled features (or token counts) of exactly the same split.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import optax

from seqjax.train import plots
from seqjax.train.tasks.base import (
    Accumulator,
    build_model,
    build_seq,
    check_split,
    chunks,
    describe_model,
)
from seqjax.train.tasks.files import FileTask, Inputs, split_sequences


class ClassifyTask(FileTask):
    """A :class:`seqjax.nn.SequenceClassifier` over the configured recurrent layers."""

    name = "classify"
    eval_metric = "accuracy"
    eval_mode = "max"

    def __init__(self, config):
        from seqjax.data import Labels
        from seqjax.nn import SequenceClassifier, TransformerClassifier

        self.config = config
        d, m = config.data, config.model
        self.parts = split_sequences(config, per_step=False)
        self.labels = Labels.fit(self.parts["train"].y)
        if len(self.labels) < 2:
            raise ValueError(
                f"the training part of {d.path} holds a single class "
                f"({self.labels.classes.tolist()}); classification needs at least 2"
            )
        self.inputs = Inputs(self.parts)
        self.data = {
            k: {
                "x": self.inputs.arrays[k],
                "lengths": p.lengths.astype(np.int32),
                "y": self.labels.encode(p.y, what=f"{k} labels of {d.test_path or d.path}"),
            }
            for k, p in self.parts.items()
        }
        k = len(self.labels)
        self.model = build_model(
            m,
            rnn=lambda: SequenceClassifier(
                build_seq(m), num_classes=k, pooling=m.pooling, **self.inputs.head_options(m)
            ),
            transformer=lambda c: TransformerClassifier(
                k, c, pooling=m.pooling, vocab_size=self.inputs.vocab_size
            ),
            max_length=self.inputs.max_length,
        )
        self._eval = jax.jit(self._logits)

    def logits(self, params, batch, key):
        """``(logits: [b, c], labels: int[b], None)``: one class distribution per sequence
        (no steps to mask)."""
        return self._logits(params, batch, key), batch["y"], None

    def loss(self, params, batch, key):
        logits = self._logits(params, batch, key).astype(jnp.float32)
        loss = optax.softmax_cross_entropy_with_integer_labels(logits, batch["y"]).mean()
        return loss, {"accuracy": jnp.mean(jnp.argmax(logits, -1) == batch["y"])}

    def predict(self, params, split) -> tuple[np.ndarray, float]:
        """``(predicted class ids, summed cross-entropy)`` of every sequence of ``split``."""
        preds, nats = [], 0.0
        for b, _ in chunks(self.data[split]):
            logits = jnp.asarray(self._eval(params, b), jnp.float32)
            nats += float(optax.softmax_cross_entropy_with_integer_labels(logits, b["y"]).sum())
            preds.append(np.asarray(jnp.argmax(logits, -1)))
        return np.concatenate(preds), nats

    def evaluate(self, params, split):
        y = self.data[check_split(split)]["y"]
        pred, nats = self.predict(params, split)
        acc = Accumulator()
        acc.add("loss", nats, len(y))
        return {**acc.means(), **classification_metrics(y, pred)}

    def report(self, params, workdir):
        from sklearn.metrics import confusion_matrix

        y = self.data["test"]["y"]
        pred, _ = self.predict(params, "test")
        k = len(self.labels)
        counts = confusion_matrix(y, pred, labels=np.arange(k))
        plots.confusion_matrix(counts, self.labels.classes.tolist(), workdir)
        guess = self.baseline_predictions()
        base = classification_metrics(y, guess)
        name = "logistic_regression" if self.inputs.vocab_size is None else "bag_of_tokens_lr"
        return {
            "baselines": {f"{name}_{key}": v for key, v in base.items()},
            "classes": self.labels.classes.tolist(),
            "sizes": {key: len(v["y"]) for key, v in self.data.items()},
        }

    def baseline_predictions(self) -> np.ndarray:
        """A logistic regression on pooled features (token counts for tokens), fitted on
        the training part, predicting the test part."""
        from seqjax.data import bag_of_tokens_logistic_regression, pooled_logistic_regression

        tr, te = self.data["train"], self.data["test"]
        args = (tr["x"], tr["lengths"], tr["y"], te["x"], te["lengths"])
        if self.inputs.vocab_size is None:
            return pooled_logistic_regression(*args, seed=self.config.seed)
        return bag_of_tokens_logistic_regression(
            *args, self.inputs.vocab_size, seed=self.config.seed
        )

    @staticmethod
    def readme_row(s):
        ev, base = s["eval"], s["baselines"]
        (prefix,) = [k.removesuffix("_accuracy") for k in base if k.endswith("_accuracy")]
        name = (
            "logistic regression on pooled features"
            if prefix.startswith("logistic")
            else ("logistic regression on token counts")
        )
        return (
            describe_model(s["config"]["model"]),
            f"test accuracy {ev['accuracy']:.2%}, macro F1 {ev['macro_f1']:.3f}",
            f"{name}: accuracy {base[prefix + '_accuracy']:.2%}, "
            f"macro F1 {base[prefix + '_macro_f1']:.3f}",
        )


def classification_metrics(y: np.ndarray, pred: np.ndarray) -> dict[str, float]:
    """Accuracy and macro F1 (scikit-learn, over the classes in ``y`` or ``pred``)."""
    from sklearn.metrics import f1_score

    return {
        "accuracy": float(np.mean(pred == y)),
        "macro_f1": float(f1_score(y, pred, average="macro", zero_division=0)),
    }
