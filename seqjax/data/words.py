"""A word vocabulary: :mod:`seqjax.data.vocab`'s ids, padding and decoding over
whitespace-separated words (or any given tokens) instead of characters."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from seqjax.data.vocab import CharVocab

__all__ = ["WordVocab"]


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
