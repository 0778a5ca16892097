"""What the experiments on a user's files share: the train/validation/test parts of a
:class:`seqjax.data.Sequences` and its inputs as model-ready arrays."""

from __future__ import annotations

import numpy as np

from seqjax.train.tasks.base import check_examples, rows, take


def index_sequences(seqs, index: np.ndarray):
    """The sequences ``index`` of a :class:`seqjax.data.Sequences`."""
    pick = lambda a: None if a is None else a[index]  # noqa: E731
    words = None if seqs.words is None else [seqs.words[i] for i in index]
    return seqs._replace(
        x=pick(seqs.x),
        tokens=pick(seqs.tokens),
        words=words,
        lengths=seqs.lengths[index],
        y=seqs.y[index],
    )


def split_sequences(config, *, per_step: bool) -> dict:
    """``{"train", "val", "test"}`` parts of ``data.path`` (and ``data.test_path``).

    Without a test file a seeded ``data.test_fraction`` is held out for testing, then a
    seeded ``data.val_fraction`` of the rest for validation; both stratified by label when
    there is one label per sequence, so no row of one part is in another.
    """
    from seqjax.data import load_sequences, random_split, stratified_split

    d = config.data
    if not d.path:
        raise ValueError(f"the {config.task} task needs --config.data.path=FILE")
    load = dict(per_step=per_step, id_column=d.id_column, label_column=d.label_column)
    seqs = load_sequences(d.path, **load)

    def split(part, fraction, seed):
        n = len(part.lengths)
        if per_step:
            return random_split(n, fraction, seed)
        return stratified_split(part.y, fraction, seed)

    if d.test_path:
        test = load_sequences(d.test_path, **load)
        kinds = [k for k in ("x", "tokens", "words") if getattr(seqs, k) is not None]
        if getattr(test, kinds[0]) is None:
            raise ValueError(f"{d.test_path} does not hold {kinds[0]!r} inputs as {d.path} does")
        rest = seqs
    else:
        kept, held = split(seqs, d.test_fraction, config.seed)
        test, rest = index_sequences(seqs, held), index_sequences(seqs, kept)
    kept, held = split(rest, d.val_fraction, config.seed + 1)
    parts = {"train": index_sequences(rest, kept), "val": index_sequences(rest, held), "test": test}
    for name, part in parts.items():
        if len(part.lengths) == 0:
            raise ValueError(
                f"the {name} part of {d.path} is empty ({len(seqs.lengths)} sequences; "
                f"data.val_fraction = {d.val_fraction}, data.test_fraction = {d.test_fraction})"
            )
    check_examples(len(parts["train"].lengths), config.batch_size, str(d.path))
    return parts


class Inputs:
    """Model inputs of every part: standardised features (statistics of the training part,
    padding excluded), integer tokens, or words mapped to ids by a training-part vocabulary.

    Attributes:
      vocab_size: the embedding table's size, or ``None`` for features.
      arrays: ``{part: inputs}``, ``float32 [n, t, d]`` or ``int32 [n, t]``.
    """

    def __init__(self, parts: dict):
        from seqjax.data import FeatureScaler, WordVocab

        train = parts["train"]
        self.vocab = None
        if train.x is not None:
            scaler = FeatureScaler.fit(train.x, train.lengths)
            self.arrays = {k: scaler.transform(p.x, p.lengths) for k, p in parts.items()}
            self.vocab_size = None
        elif train.tokens is not None:
            self.arrays = {k: p.tokens.astype(np.int32) for k, p in parts.items()}
            self.vocab_size = int(max(a.max() for a in self.arrays.values())) + 1
        else:
            self.vocab = WordVocab(w for s in train.words for w in s)
            self.arrays = {}
            for k, p in parts.items():
                ids = np.zeros((len(p.words), p.y.shape[1]), np.int32)
                for row, words in zip(ids, p.words):
                    row[: len(words)] = self.vocab.encode_tokens(words)
                self.arrays[k] = ids
            self.vocab_size = len(self.vocab)
        self.max_length = max(a.shape[1] for a in self.arrays.values())

    def head_options(self, m) -> dict:
        """The embedding and dropout fields of a :mod:`seqjax.nn` head for these inputs."""
        embed = m.embed_size if self.vocab_size else None
        return {"vocab_size": self.vocab_size, "embed_size": embed, "dropout": m.dropout}


class FileTask:
    """What classify and tag share: ``self.model`` (a :mod:`seqjax.nn` head) over the parts
    ``self.data[part] = {"x", "lengths", "y"}``."""

    def _logits(self, params, batch, key=None):
        return self.model.apply(
            params,
            batch["x"],
            batch["lengths"],
            deterministic=key is None,
            rngs=None if key is None else {"dropout": key},
        )

    def init(self, key):
        b = take(self.data["train"], np.arange(2))
        return self.model.init(key, b["x"], b["lengths"])

    def train_batch(self, step, batch_size):
        return self.train_examples(rows(self.num_train, step, batch_size, self.config.seed))

    @property
    def num_train(self) -> int:
        """Training examples (what differentially private sampling draws from)."""
        return len(self.data["train"]["y"])

    def train_examples(self, index: np.ndarray) -> dict:
        """The training examples ``index``."""
        return take(self.data["train"], index)
