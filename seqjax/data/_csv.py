"""Reading delimited text files row by row, with one rule for blank rows and line numbers."""

from __future__ import annotations

import csv
import pathlib

__all__: list[str] = []


def existing_file(path, what: str) -> pathlib.Path:
    """``path`` as a Path, or FileNotFoundError naming it and what was expected there."""
    path = pathlib.Path(path)
    if not path.is_file():
        found = "a directory" if path.is_dir() else "nothing"
        raise FileNotFoundError(f"no {what} at {path} (found {found})")
    return path


def read_text_lines(path: pathlib.Path) -> list[str]:
    """The lines of a UTF-8 text file (a leading byte-order mark dropped), without newlines."""
    try:
        text = path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    return text.splitlines()


def is_blank(row: list[str]) -> bool:
    return not any(cell.strip() for cell in row)


def read_rows(path: pathlib.Path, delimiter: str = ",") -> list[tuple[int, list[str]]]:
    """``(line, row)`` for every row of a CSV file, the line being where the row starts.

    Blank rows (no fields, or only empty or whitespace fields) at the end of the file are
    dropped; a blank row before the last non-blank one is a ``ValueError`` naming its
    line, since silently skipping it could hide a missing value or a broken export.
    """
    try:
        with path.open(newline="", encoding="utf-8-sig") as f:
            reader = csv.reader(f, delimiter=delimiter)
            rows, line = [], 1
            for row in reader:
                rows.append((line, row))
                line = reader.line_num + 1
    except UnicodeDecodeError as e:
        raise ValueError(f"{path} is not UTF-8 text ({e.reason} at byte {e.start})") from None
    except csv.Error as e:
        raise ValueError(f"{path} is not readable as CSV: {e}") from None
    while rows and is_blank(rows[-1][1]):
        rows.pop()
    for line, row in rows:
        if is_blank(row):
            raise ValueError(
                f"line {line} of {path} is blank; expected a row of values (remove blank "
                "rows, or fill in the missing values)"
            )
    return rows


def parse_float(cell: str) -> float | None:
    try:
        return float(cell)
    except ValueError:
        return None
