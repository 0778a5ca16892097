"""Vocabularies: characters or whole tokens to integer ids and back.

Ids ``0, 1, 2`` are the special tokens ``PAD``, ``BOS`` and ``EOS``; the characters follow
in sorted (code point) order, so a vocabulary built from the same characters always gives
the same ids. :class:`CharVocab` adds an ``UNK`` id for characters it has not seen, for
open text such as a language-model corpus. :class:`seqjax.data.WordVocab` does the same for
whole words (a tagging corpus, whitespace tokens of transduction pairs).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

import numpy as np

from seqjax.data._checks import check_int

__all__ = ["CharVocab", "Vocab"]


class Vocab:
    """A closed character vocabulary: ``PAD=0, BOS=1, EOS=2``, then the characters, sorted.

    Example:
        >>> v = Vocab("0123456789-")
        >>> v.encode("2009-06-25")[:3]
        [5, 3, 13]
        >>> v.decode(v.encode("2009-06-25") + [Vocab.EOS, Vocab.PAD])
        '2009-06-25'

    Attributes:
        chars: the characters, sorted; character ``chars[i]`` has id ``i + n_special``.
        n_special: number of special ids before the first character.
    """

    PAD = 0
    BOS = 1
    EOS = 2
    SPECIALS: tuple[str, ...] = ("<pad>", "<bos>", "<eos>")

    def __init__(self, chars: Iterable[str]):
        """Builds the vocabulary.

        Args:
            chars: single characters, in any order, duplicates allowed (a string works too).

        Raises:
            TypeError: if ``chars`` is not iterable or holds something other than a
                one-character string.
        """
        try:
            items = list(chars)
        except TypeError:
            raise TypeError(
                f"chars must be an iterable of one-character strings, got {type(chars).__name__}"
            ) from None
        for c in items:
            if not isinstance(c, str) or len(c) != 1:
                raise TypeError(f"chars must hold one-character strings, got {c!r}")
        self.chars: tuple[str, ...] = tuple(sorted(set(items)))
        self.n_special = len(self.SPECIALS)
        self._index = {c: i + self.n_special for i, c in enumerate(self.chars)}
        # Sorted code points let encode_array look characters up with one searchsorted.
        self._codepoints = np.array([ord(c) for c in self.chars], dtype=np.int64)

    def __len__(self) -> int:
        return self.n_special + len(self.chars)

    def __eq__(self, other) -> bool:
        return type(other) is type(self) and other.chars == self.chars

    def __hash__(self) -> int:
        return hash((type(self).__name__, self.chars))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({''.join(self.chars)!r})"

    def _unknown(self, char: str, position: int) -> int:
        raise ValueError(
            f"character {char!r} (U+{ord(char):04X}) at position {position} is not in the "
            f"vocabulary; known characters: {''.join(self.chars)!r}"
        )

    def encode(self, text: str) -> list[int]:
        """Encodes ``text`` one id per character, without BOS or EOS.

        Args:
            text: the string to encode.

        Returns:
            A list of ``len(text)`` ids.

        Raises:
            TypeError: if ``text`` is not a string.
            ValueError: naming the first character not in the vocabulary (:class:`Vocab`
                only; :class:`CharVocab` maps it to ``UNK``).
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        index = self._index
        return [index[c] if c in index else self._unknown(c, i) for i, c in enumerate(text)]

    def encode_array(self, text: str) -> np.ndarray:
        """Encodes a long text at NumPy speed; the same ids as :meth:`encode`.

        Args:
            text: the string to encode.

        Returns:
            ``int32 [len(text)]`` ids.
        """
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        cps = np.frombuffer(text.encode("utf-32-le"), dtype="<u4").astype(np.int64)
        pos = np.searchsorted(self._codepoints, cps)
        pos_c = np.minimum(pos, max(len(self.chars) - 1, 0))
        known = self._codepoints[pos_c] == cps if len(self.chars) else np.zeros(cps.shape, bool)
        ids = (pos + self.n_special).astype(np.int32)
        if not known.all():
            bad = np.flatnonzero(~known)
            ids[bad] = self._unknown(text[bad[0]], int(bad[0]))
        return ids

    def decode(self, ids: Iterable[int]) -> str:
        """Decodes ids to text: stops at the first ``EOS``, skips ``PAD`` and ``BOS``.

        Args:
            ids: integer ids (a list, or a 1-D array).

        Returns:
            The decoded string.

        Raises:
            ValueError: if an id is outside ``[0, len(self))``.
        """
        seq = np.asarray(list(ids) if not isinstance(ids, np.ndarray) else ids)
        if seq.size == 0:
            return ""
        if seq.ndim != 1 or not np.issubdtype(seq.dtype, np.integer):
            raise TypeError(
                f"ids must be a 1-D sequence of integers, got shape {seq.shape} dtype {seq.dtype}"
            )
        out = []
        n = len(self)
        for i in seq.tolist():
            if i == self.EOS:
                break
            if not 0 <= i < n:
                raise ValueError(f"id {i} is outside this vocabulary's range [0, {n})")
            if i >= self.n_special:
                out.append(self.chars[i - self.n_special])
            else:
                out.append(self._special_text(i))
        return "".join(out)

    def _special_text(self, i: int) -> str:
        return ""  # PAD and BOS decode to nothing.

    def encode_batch(
        self, texts: Sequence[str], add_eos: bool = False, *, max_len: int | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Encodes several texts into one zero-padded (``PAD``) array.

        Args:
            texts: the strings.
            add_eos: append ``EOS`` to each sequence (counted in its length).
            max_len: pad to this width instead of the longest sequence.

        Returns:
            ``(ids, lengths)``: ``int32 [n, width]`` ids padded with ``PAD`` on the right,
            and ``int32 [n]`` lengths (including ``EOS`` when added).

        Raises:
            TypeError: if ``texts`` is a single string or holds non-strings.
            ValueError: if a sequence is longer than ``max_len``.
        """
        if isinstance(texts, str):
            raise TypeError("texts must be a sequence of strings, got a single str")
        encoded = [self.encode(t) + ([self.EOS] if add_eos else []) for t in texts]
        lengths = np.array([len(e) for e in encoded], dtype=np.int32)
        longest = int(lengths.max()) if len(encoded) else 0
        if max_len is None:
            width = longest
        else:
            width = check_int("max_len", max_len, 0)
            if longest > width:
                raise ValueError(
                    f"a sequence has length {longest} (EOS included: {bool(add_eos)}), "
                    f"longer than max_len={width}"
                )
        ids = np.full((len(encoded), width), self.PAD, dtype=np.int32)
        for row, e in zip(ids, encoded):
            row[: len(e)] = e
        return ids, lengths

    def decode_batch(self, ids: np.ndarray) -> list[str]:
        """Decodes each row of ``ids: [n, t]`` with :meth:`decode`."""
        ids = np.asarray(ids)
        if ids.ndim != 2:
            raise ValueError(f"ids must be 2-D [n, t], got shape {ids.shape}")
        return [self.decode(row) for row in ids]


class CharVocab(Vocab):
    """An open vocabulary: :class:`Vocab` plus ``UNK=3`` for characters it does not know.

    Characters outside the given set (for a language model: outside the training split)
    encode to ``UNK`` instead of raising, and ``UNK`` decodes to U+FFFD. A model then
    predicts the class "some unseen character", which keeps held-out bits per character
    finite; :class:`seqjax.data.NGramModel` scores unseen characters the same way.
    """

    UNK = 3
    SPECIALS = ("<pad>", "<bos>", "<eos>", "<unk>")
    UNK_TEXT = "\N{REPLACEMENT CHARACTER}"

    @classmethod
    def from_text(cls, text: str) -> CharVocab:
        """The vocabulary of the characters that occur in ``text``."""
        if not isinstance(text, str):
            raise TypeError(f"text must be a str, got {type(text).__name__}")
        return cls(set(text))

    def _unknown(self, char: str, position: int) -> int:
        return self.UNK

    def _special_text(self, i: int) -> str:
        return self.UNK_TEXT if i == self.UNK else ""


def encode_pairs(
    src_text: list[str],
    tgt_text: list[str],
    src_vocab: Vocab,
    tgt_vocab: Vocab,
    widths: tuple[int, int],
) -> dict:
    """A seq2seq dataset: sources padded to ``widths[0]``, targets plus EOS to ``widths[1]``.

    Returns:
        ``src, src_lengths, tgt, tgt_lengths`` (int32 arrays) and the texts ``src_text``,
        ``tgt_text``.
    """
    src, src_lengths = src_vocab.encode_batch(src_text, max_len=widths[0])
    tgt, tgt_lengths = tgt_vocab.encode_batch(tgt_text, add_eos=True, max_len=widths[1])
    return {
        "src": src,
        "src_lengths": src_lengths,
        "tgt": tgt,
        "tgt_lengths": tgt_lengths,
        "src_text": src_text,
        "tgt_text": tgt_text,
    }
