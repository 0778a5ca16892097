"""Labelled sequences from the user's own files: ``.npz``, long-form CSV, CoNLL text, TSV pairs.

:func:`load_sequences` reads one file into a :class:`Sequences`: right-padded features
(``x``) or integer tokens (``tokens``) or token strings (``words``), their lengths, and the
labels exactly as the file holds them (one per sequence, or one per step). Mapping labels
to class ids is :class:`seqjax.data.Labels`' job, so a test file is encoded with the
classes of its training file. :func:`load_pairs` reads ``source<TAB>target`` lines for
string transduction.

Every problem with a file is a ``ValueError`` (``FileNotFoundError`` for a missing file)
that names the file and the array, column or line, what was expected and what was found,
so it surfaces before any training step.
"""

from __future__ import annotations

import math
import os
import pathlib
import zipfile
from typing import NamedTuple

import numpy as np

from seqjax.data._csv import existing_file, parse_float, read_rows, read_text_lines

__all__ = ["SEQUENCE_SUFFIXES", "Sequences", "load_pairs", "load_sequences"]

SEQUENCE_SUFFIXES: tuple[str, ...] = (".npz", ".csv", ".conll", ".txt", ".tsv")
"""File suffixes :func:`load_sequences` reads (CoNLL ones: ``.conll``, ``.txt``, ``.tsv``)."""

_CONLL_SUFFIXES = (".conll", ".txt", ".tsv")
_FLOAT32_MAX = float(np.finfo(np.float32).max)


class Sequences(NamedTuple):
    """Labelled sequences read by :func:`load_sequences`; exactly one of x, tokens, words is set."""

    x: np.ndarray | None  # float32 [n, t, d], zeros past each length (features)
    tokens: np.ndarray | None  # int32 [n, t], 0 past each length (integer tokens, .npz)
    words: list[list[str]] | None  # the token strings of each sequence (CoNLL files)
    lengths: np.ndarray  # int32 [n], each in [1, t]
    y: np.ndarray  # labels as read: [n], or [n, t] per step (0 or "" past each length)
    path: str  # the file it came from, for messages

    @property
    def per_step(self) -> bool:
        """Whether there is one label per step (``y: [n, t]``) rather than per sequence."""
        return self.y.ndim == 2

    def valid_y(self) -> np.ndarray:
        """The labels of real steps only: ``y`` itself ``[n]``, or ``y`` at valid steps, flat.

        Fit :class:`seqjax.data.Labels` on this, so per-step filler never becomes a class.
        """
        if not self.per_step:
            return self.y
        return self.y[np.arange(self.y.shape[1]) < self.lengths[:, None]]


def load_sequences(
    path: str | os.PathLike,
    *,
    per_step: bool = False,
    id_column: str = "id",
    label_column: str = "label",
) -> Sequences:
    """Reads labelled sequences from a file; the format follows the suffix.

    ``.npz`` (``numpy.savez``): an array ``x`` (real ``[n, t, d]``, right-padded) or
    ``tokens`` (integers ``>= 0``, ``[n, t]``), not both; optional ``lengths`` (integers
    ``[n]`` in ``[1, t]``, default ``t``); and ``y``: ``[n]`` when ``per_step`` is false,
    ``[n, t]`` when true. Labels may be integers or strings (floats only when every value
    is a whole number; they are read as int64). Features must be finite on valid steps;
    what lies past each length is ignored and set to 0 (labels: 0, or ``""`` for strings).
    Other arrays in the file are ignored.

    ``.csv`` in long form: a header row, then one row per step. Column ``id_column`` names
    the sequence, ``label_column`` holds its label, and every other column is a numeric
    feature. Sequences come in the order their id first appears, their steps in file order
    (rows of one id need not be adjacent). With ``per_step`` false the label must be the
    same on every row of a sequence. Labels that all read as integers become int64,
    otherwise they stay strings. Every row must have as many fields as the header.
    Blank rows at the end of the file are ignored; a blank row anywhere else is an error
    naming its line.

    CoNLL-style text (``.conll``, ``.txt``, ``.tsv``; only with ``per_step=True``):
    ``token<TAB>tag`` lines, sentences separated by one or more blank (or whitespace-only)
    lines; a ``-DOCSTART-`` line also separates. Tokens and tags are stripped of
    surrounding spaces and stay strings; ``y`` is then a str array with ``""`` past each
    length.

    Args:
        path: the file.
        per_step: one label per step (tagging) instead of one per sequence.
        id_column: the CSV column naming each sequence.
        label_column: the CSV column holding the labels.

    Returns:
        A :class:`Sequences`.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: for an unknown suffix (the supported ones are listed), a missing or
            badly shaped array (the arrays present are listed), a missing CSV column (the
            columns present are listed), lengths outside ``[1, t]`` (the first bad index),
            ragged, non-numeric, NaN or infinite features (the sequence and step, or the
            line and column), a malformed CoNLL line, or a file without sequences.
    """
    path = existing_file(path, "sequence file")
    suffix = path.suffix.lower()
    if suffix == ".npz":
        return _load_npz(path, bool(per_step))
    if suffix == ".csv":
        return _load_long_csv(path, bool(per_step), id_column, label_column)
    if suffix in _CONLL_SUFFIXES:
        if not per_step:
            raise ValueError(
                f"{path}: a {suffix} file is read as CoNLL-style token<TAB>tag lines, one "
                "label per step; pass per_step=True (one label per sequence needs .npz or "
                ".csv)"
            )
        return _load_conll(path)
    raise ValueError(
        f"{path}: unknown file type {path.suffix!r}; supported: {', '.join(SEQUENCE_SUFFIXES)} "
        f"(CoNLL text {', '.join(_CONLL_SUFFIXES)} for per-step labels only)"
    )


# ---------------------------------------------------------------------------------- npz


def _load_npz(path: pathlib.Path, per_step: bool) -> Sequences:
    if path.stat().st_size == 0:
        raise ValueError(f"{path} is empty; expected an .npz archive (numpy.savez)")
    try:
        archive = np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise ValueError(f"{path} is not a readable .npz archive: {e}") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise ValueError(
            f"{path} holds a single array (a .npy file), not an .npz archive of named arrays; "
            "save with numpy.savez(path, x=..., y=...)"
        )
    with archive:
        names = sorted(archive.files)

        def get(name):
            try:
                return archive[name]
            except ValueError as e:  # object arrays need pickle, which we do not load
                raise ValueError(
                    f"{path}: array {name!r} cannot be read without pickle ({e}); save "
                    "numbers or fixed-width strings (np.str_), not Python objects"
                ) from None

        has_x, has_tokens = "x" in names, "tokens" in names
        if has_x == has_tokens:
            found = "both" if has_x else "neither"
            raise ValueError(
                f"{path}: expected exactly one of the arrays 'x' (features [n, t, d]) or "
                f"'tokens' (integers [n, t]), found {found}; arrays in the file: {names}"
            )
        if "y" not in names:
            raise ValueError(f"{path}: no array 'y' (the labels); arrays in the file: {names}")
        data = get("x" if has_x else "tokens")
        y = get("y")
        lengths = get("lengths") if "lengths" in names else None
    if data.shape[:1] == (0,):
        raise ValueError(f"{path}: holds no sequences ({'x' if has_x else 'tokens'} is empty)")
    if has_x:
        if data.ndim != 3 or not _is_real(data):
            raise ValueError(
                f"{path}: 'x' must be real numbers [n, t, d], got {data.dtype} with shape "
                f"{data.shape} (for one feature per step, add a trailing axis of size 1)"
            )
    elif data.ndim != 2 or not np.issubdtype(data.dtype, np.integer):
        raise ValueError(
            f"{path}: 'tokens' must be integers [n, t], got {data.dtype} with shape {data.shape}"
        )
    n, t = data.shape[:2]
    if t == 0:
        raise ValueError(f"{path}: sequences have 0 steps (shape {data.shape})")
    lengths = _npz_lengths(path, lengths, n, t)
    valid = np.arange(t) < lengths[:, None]  # [n, t]
    y = _npz_labels(path, y, n, t, per_step, valid)
    x = tokens = None
    if has_x:
        x = _finite_features(path, data, valid)
    else:
        bad = np.argwhere(valid & (data < 0))
        if len(bad):
            i, s = bad[0]
            raise ValueError(
                f"{path}: 'tokens' must be >= 0 on valid steps; sequence {i}, step {s} holds "
                f"{data[i, s]}"
            )
        tokens = np.where(valid, data, 0).astype(np.int32)
    return Sequences(x, tokens, None, lengths, y, str(path))


def _is_real(a: np.ndarray) -> bool:
    return np.issubdtype(a.dtype, np.integer) or np.issubdtype(a.dtype, np.floating)


def _npz_lengths(path, lengths, n: int, t: int) -> np.ndarray:
    if lengths is None:
        return np.full(n, t, np.int32)
    if lengths.shape != (n,) or not np.issubdtype(lengths.dtype, np.integer):
        raise ValueError(
            f"{path}: 'lengths' must be integers [n] = [{n}], got {lengths.dtype} with "
            f"shape {lengths.shape}"
        )
    bad = np.flatnonzero((lengths < 1) | (lengths > t))
    if len(bad):
        i = int(bad[0])
        raise ValueError(
            f"{path}: 'lengths' must lie in [1, t] = [1, {t}]; index {i} holds {lengths[i]} "
            f"({len(bad)} out of range)"
        )
    return lengths.astype(np.int32)


def _npz_labels(path, y: np.ndarray, n: int, t: int, per_step: bool, valid) -> np.ndarray:
    want = (n, t) if per_step else (n,)
    if y.shape != want:
        layout = "[n, t], one label per step" if per_step else "[n], one label per sequence"
        hint = " (pass per_step=True for per-step labels)" if y.shape == (n, t) else ""
        raise ValueError(f"{path}: 'y' must be {layout} = {list(want)}, got shape {y.shape}{hint}")
    if np.issubdtype(y.dtype, np.floating):
        check = y[valid] if per_step else y
        whole = np.isfinite(check) & (check == np.round(check))
        if not whole.all():
            value = check[~whole][0]
            raise ValueError(
                f"{path}: 'y' must hold class labels (integers or strings); found {value} "
                "(for regression targets this task is the wrong one)"
            )
        y = np.where(np.isfinite(y), y, 0).astype(np.int64)
    elif not (np.issubdtype(y.dtype, np.integer) or y.dtype.kind in "USb"):
        raise ValueError(f"{path}: 'y' must hold integers or strings, got dtype {y.dtype}")
    if y.dtype.kind == "S":
        y = y.astype(str)
    if per_step:
        y = np.where(valid, y, "" if y.dtype.kind == "U" else 0).astype(y.dtype)
    return y


def _finite_features(path, data: np.ndarray, valid: np.ndarray) -> np.ndarray:
    with np.errstate(over="ignore"):  # values beyond float32's range become inf, reported below
        x = data.astype(np.float32)
    finite = np.isfinite(x).all(axis=-1) | ~valid  # [n, t]
    if not finite.all():
        i, s = np.argwhere(~finite)[0]
        j = int(np.flatnonzero(~np.isfinite(x[i, s]))[0])
        raise ValueError(
            f"{path}: 'x' must be finite on valid steps; sequence {i}, step {s}, feature "
            f"{j} holds {data[i, s, j]} (float32 range: |x| < 3.4e38)"
        )
    return np.where(valid[..., None], x, np.float32(0))


# ---------------------------------------------------------------------------------- csv


def _load_long_csv(path: pathlib.Path, per_step: bool, id_column, label_column) -> Sequences:
    rows = read_rows(path)
    if not rows:
        raise ValueError(f"{path} is empty; expected a header row and one row per step")
    header_line, header = rows[0]
    names = [c.strip() for c in header]
    for column, field in ((id_column, "id_column"), (label_column, "label_column")):
        if column not in names:
            raise ValueError(
                f"{path}: no column {column!r} ({field}) in the header on line {header_line}; "
                f"columns: {names}"
            )
    if id_column == label_column:
        raise ValueError(f"{path}: id_column and label_column are both {id_column!r}")
    dupes = sorted({c for c in names if names.count(c) > 1})
    if dupes:
        raise ValueError(f"{path}: the header repeats the column names {dupes}")
    i_id, i_label = names.index(id_column), names.index(label_column)
    features = [j for j in range(len(names)) if j not in (i_id, i_label)]
    if not features:
        raise ValueError(
            f"{path}: no feature columns; expected numeric columns besides {id_column!r} and "
            f"{label_column!r}, columns: {names}"
        )
    if len(rows) == 1:
        raise ValueError(f"{path} holds a header but no rows, so no sequences")
    steps: dict[str, list[list[float]]] = {}
    labels: dict[str, list[str]] = {}
    first_line: dict[str, int] = {}
    for line, row in rows[1:]:
        if len(row) != len(names):
            raise ValueError(
                f"line {line} of {path} has {len(row)} fields; expected {len(names)} as in "
                f"the header {names}"
            )
        key, label = row[i_id].strip(), row[i_label].strip()
        for value, column in ((key, id_column), (label, label_column)):
            if not value:
                raise ValueError(f"line {line} of {path}: column {column!r} is empty")
        values = []
        for j in features:
            v = parse_float(row[j].strip())
            if v is None or not math.isfinite(v) or abs(v) > _FLOAT32_MAX:
                raise ValueError(
                    f"line {line} of {path}: column {names[j]!r} holds {row[j]!r}; expected a "
                    "finite number (features are float32; fill missing values first)"
                )
            values.append(v)
        if key not in steps:
            steps[key], labels[key], first_line[key] = [], [], line
        elif not per_step and label != labels[key][0]:
            raise ValueError(
                f"line {line} of {path}: sequence {key!r} has label {label!r}, but its first "
                f"row (line {first_line[key]}) has {labels[key][0]!r}; with one label per "
                f"sequence, {label_column!r} must be constant within each {id_column!r}"
            )
        steps[key].append(values)
        labels[key].append(label)
    lengths = np.array([len(s) for s in steps.values()], np.int32)
    n, t, d = len(steps), int(lengths.max()), len(features)
    x = np.zeros((n, t, d), np.float32)
    for i, s in enumerate(steps.values()):
        x[i, : len(s)] = s
    flat = [v for ls in labels.values() for v in ls]
    as_int = all(_is_int(v) for v in flat)
    if per_step:
        y = np.zeros((n, t), np.int64) if as_int else np.full((n, t), "", dtype=object)
        for i, ls in enumerate(labels.values()):
            y[i, : len(ls)] = [int(v) for v in ls] if as_int else ls
        y = y if as_int else y.astype(str)
    else:
        first = [ls[0] for ls in labels.values()]
        y = np.array([int(v) for v in first], np.int64) if as_int else np.array(first, str)
    return Sequences(x, None, None, lengths, y, str(path))


def _is_int(text: str) -> bool:
    try:
        int(text)
    except ValueError:
        return False
    return True


# -------------------------------------------------------------------------------- conll


def _load_conll(path: pathlib.Path) -> Sequences:
    sentences: list[tuple[list[str], list[str]]] = []
    words: list[str] = []
    tags: list[str] = []
    for line_no, line in enumerate(read_text_lines(path), start=1):
        if not line.strip() or line.split("\t", 1)[0].strip() == "-DOCSTART-":
            if words:
                sentences.append((words, tags))
                words, tags = [], []
            continue
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(
                f"line {line_no} of {path}: expected 'token<TAB>tag' (exactly one TAB), found "
                f"{len(fields) - 1} TABs in {line!r}"
            )
        word, tag = fields[0].strip(), fields[1].strip()
        if not word or not tag:
            raise ValueError(
                f"line {line_no} of {path}: empty {'token' if not word else 'tag'} in {line!r}"
            )
        words.append(word)
        tags.append(tag)
    if words:
        sentences.append((words, tags))
    if not sentences:
        raise ValueError(
            f"{path} holds no sentences; expected token<TAB>tag lines with a blank line "
            "between sentences"
        )
    lengths = np.array([len(w) for w, _ in sentences], np.int32)
    y = np.full((len(sentences), int(lengths.max())), "", dtype=object)
    for i, (_, ts) in enumerate(sentences):
        y[i, : len(ts)] = ts
    return Sequences(None, None, [w for w, _ in sentences], lengths, y.astype(str), str(path))


# -------------------------------------------------------------------------------- pairs


def load_pairs(path: str | os.PathLike) -> tuple[list[str], list[str]]:
    """Reads ``source<TAB>target`` lines (string transduction data).

    Each line holds exactly one TAB; source and target are kept exactly as written
    (spaces included) and must not be empty. Blank lines at the end of the file are
    ignored; a blank line anywhere else is an error naming its line.

    Args:
        path: the text file (any suffix; ``.tsv`` by convention).

    Returns:
        ``(sources, targets)``, two lists of strings of the same length, in file order.

    Raises:
        FileNotFoundError: if there is no file at ``path``.
        ValueError: naming the line, for a line without exactly one TAB, an empty source
            or target, or a blank line; or if the file holds no pairs.
    """
    path = existing_file(path, "pairs file")
    lines = read_text_lines(path)
    while lines and not lines[-1].strip():
        lines.pop()
    sources, targets = [], []
    for line_no, line in enumerate(lines, start=1):
        if not line.strip():
            raise ValueError(f"line {line_no} of {path} is blank; expected 'source<TAB>target'")
        fields = line.split("\t")
        if len(fields) != 2:
            raise ValueError(
                f"line {line_no} of {path}: expected 'source<TAB>target' (exactly one TAB), "
                f"found {len(fields) - 1} TABs in {line!r}"
            )
        if not fields[0] or not fields[1]:
            side = "source" if not fields[0] else "target"
            raise ValueError(f"line {line_no} of {path}: empty {side} in {line!r}")
        sources.append(fields[0])
        targets.append(fields[1])
    if not sources:
        raise ValueError(f"{path} holds no pairs; expected 'source<TAB>target' lines")
    return sources, targets
