"""Source/target string pairs from a TSV file, and a word vocabulary for word tokens.

Characters are the default unit of :mod:`seqjax.data.vocab`; :class:`WordVocab` gives the
same ids, padding and decoding over whitespace-separated words instead.
"""

from __future__ import annotations

import os
import pathlib
from collections.abc import Iterable, Sequence

import numpy as np

from seqjax.data.vocab import CharVocab

__all__ = ["WordVocab", "load_pairs"]


def load_pairs(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Reads ``source<TAB>target`` lines (UTF-8); blank lines are skipped.

    Returns:
        ``(sources, targets)``, in file order.

    Raises:
        FileNotFoundError: if there is no such file.
        ValueError: naming the line, when it does not hold exactly one TAB, or its source
            or target is empty; or when the file holds no pairs.
    """
    path = pathlib.Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no TSV file of source/target pairs at {path}")
    sources, targets = [], []
    with path.open(encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            fields = line.split("\t")
            if len(fields) != 2:
                raise ValueError(
                    f"line {number} of {path} has {len(fields) - 1} TABs; expected "
                    f"'source<TAB>target', found {line[:80]!r}"
                )
            src, tgt = (s.strip() for s in fields)
            if not src or not tgt:
                side = "source" if not src else "target"
                raise ValueError(f"line {number} of {path} has an empty {side}: {line[:80]!r}")
            sources.append(src)
            targets.append(tgt)
    if not sources:
        raise ValueError(f"{path} holds no 'source<TAB>target' pairs")
    return sources, targets


class WordVocab(CharVocab):
    """An open vocabulary of whitespace-separated words: ``PAD, BOS, EOS, UNK``, then the
    words, sorted. A text is encoded one id per word and decodes with single spaces.

    Example:
        >>> v = WordVocab.from_texts(["forty two", "two"])
        >>> v.decode(v.encode("two forty"))
        'two forty'
    """

    UNK_TEXT = "<unk>"

    def __init__(self, words: Iterable[str]):
        items = set(words)
        for w in items:
            if not isinstance(w, str) or not w or w != w.strip() or len(w.split()) != 1:
                raise TypeError(f"words must be non-empty strings without spaces, got {w!r}")
        self.chars = tuple(sorted(items))  # the words; named as in Vocab, whose methods read it
        self.n_special = len(self.SPECIALS)
        self._index = {w: i + self.n_special for i, w in enumerate(self.chars)}

    @classmethod
    def from_texts(cls, texts: Sequence[str]) -> WordVocab:
        """The vocabulary of the words that occur in ``texts``."""
        return cls(w for t in texts for w in t.split())

    def __repr__(self) -> str:
        return f"WordVocab({len(self.chars)} words)"

    def encode_tokens(self, tokens: Sequence[str]) -> list[int]:
        """One id per token; unknown tokens are ``UNK``."""
        return [self._index.get(w, self.UNK) for w in tokens]

    def encode(self, text: str) -> list[int]:
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return self.encode_tokens(text.split())

    def encode_array(self, text: str) -> np.ndarray:
        return np.asarray(self.encode(text), dtype=np.int32)

    def decode(self, ids: Iterable[int]) -> str:
        words = []
        for i in np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids).tolist():
            if i == self.EOS:
                break
            if not 0 <= i < len(self):
                raise ValueError(f"id {i} is outside this vocabulary's range [0, {len(self)})")
            if i >= self.n_special:
                words.append(self.chars[i - self.n_special])
            elif i == self.UNK:
                words.append(self.UNK_TEXT)
        return " ".join(words)
