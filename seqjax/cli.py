"""Experiment configs on the command line: ``--config FILE`` and ``--config.FIELD=VALUE``.

A config file defines ``get_config()`` returning an ``ml_collections.ConfigDict`` with one
commented field per line (``config.model.cell = "lstm"  # lstm, gru or simple_rnn``).
:func:`parse_argv` loads it, applies the overrides and returns the config with the rest of
the command line (for absl); ``--help`` prints the fields with the comments of their lines,
read from the source of ``get_config`` and of the functions it calls (the comments are the
documentation, so there is no second copy of it).

Overrides parse by the type of the field's default: ``None`` (or ``none``) gives ``None``
for any field; bools take ``true/false``, ``yes/no``, ``1/0`` (``--config.FIELD`` alone
is ``true``, ``--noconfig.FIELD`` is ``false``); ints and floats their literals; strings
the text as it is; other fields (tuples, ``None`` defaults) a Python literal, or else the
text. An unknown field, a value that does not parse, or a missing file is one line naming
it (and the closest fields) and exit status 2.
"""

from __future__ import annotations

import ast
import difflib
import importlib.util
import inspect
import io
import pathlib
import sys
import textwrap
import tokenize
from collections.abc import Callable, Sequence
from typing import Any

from ml_collections import ConfigDict

__all__ = [
    "UsageError",
    "apply_overrides",
    "describe",
    "field_comments",
    "fields",
    "load",
    "parse_argv",
]


class UsageError(ValueError):
    """A command-line mistake, reported as one line."""


# --------------------------------------------------------------------------- loading


def _import_file(path: pathlib.Path):
    name = "_seqjax_config_" + "_".join(path.with_suffix("").parts[-2:]).replace("-", "_")
    spec = importlib.util.spec_from_file_location(name, path)
    if spec is None or spec.loader is None:
        raise UsageError(f"--config: {path} is not a Python file")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def load(spec: str) -> tuple[ConfigDict, Callable[..., ConfigDict]]:
    """``(config, get_config)`` from ``FILE`` or ``FILE:ARG`` (``get_config(ARG)``)."""
    path, _, arg = spec.partition(":")
    file = pathlib.Path(path)
    if not file.is_file():
        raise UsageError(f"--config: no config file {path!r}")
    get_config = getattr(_import_file(file), "get_config", None)
    if not callable(get_config):
        raise UsageError(f"--config: {path} defines no get_config()")
    config = get_config(arg) if arg else get_config()
    if not isinstance(config, ConfigDict):
        raise UsageError(f"--config: {path}'s get_config() returned {type(config).__name__}")
    return config, get_config


def fields(config: ConfigDict, prefix: str = "") -> dict[str, Any]:
    """Every field by dotted name, groups included (``model`` and ``model.cell``)."""
    out = {}
    for key, value in config.items():
        name = prefix + key
        out[name] = value
        if isinstance(value, ConfigDict):
            out.update(fields(value, name + "."))
    return out


# --------------------------------------------------------------------------- comments


def _line_comments(source: str) -> dict[str, str]:
    """``{"model.cell": comment}`` for lines ``NAME.model.cell = ...  # comment``."""
    out: dict[str, str] = {}
    line: list[tokenize.TokenInfo] = []
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        if tok.type not in (tokenize.NEWLINE, tokenize.ENDMARKER):
            line.append(tok)
            continue
        code = [t for t in line if t.type not in (tokenize.COMMENT, tokenize.NL)]
        comment = next((t.string for t in line if t.type == tokenize.COMMENT), None)
        line = []
        if comment is None or len(code) < 4:
            continue
        # NAME (. NAME)+ = ...: the path after the config variable's name.
        path, i = [], 1
        if code[0].type != tokenize.NAME:
            continue
        while i + 1 < len(code) and code[i].string == "." and code[i + 1].type == tokenize.NAME:
            path.append(code[i + 1].string)
            i += 2
        if path and i < len(code) and code[i].string == "=":
            out[".".join(path)] = comment.lstrip("#").strip()
    return out


def _within(fn: Any, roots: Sequence[pathlib.Path]) -> bool:
    try:
        file = pathlib.Path(inspect.getsourcefile(fn) or "").resolve()
    except TypeError:
        return False
    return any(root in file.parents for root in roots)


def field_comments(get_config: Callable[..., Any], roots: Sequence[pathlib.Path] = ()) -> dict:
    """The comment of each field's line in ``get_config`` and the functions it calls.

    Functions are followed by the names ``get_config``'s code uses (``base_config()``),
    within the files under ``roots`` (default: the config file's parent directory's parent,
    and the seqjax package); a field set in several keeps the comment nearest to
    ``get_config``, so a variant's comment on an override wins over the base's.
    """
    here = pathlib.Path(__file__).resolve().parent
    top = pathlib.Path(inspect.getsourcefile(get_config) or ".").resolve().parent.parent
    roots = tuple(roots) or (top, here)
    order, queue, seen = [], [get_config], set()
    while queue:
        fn = queue.pop(0)
        code = getattr(fn, "__code__", None)
        if code is None or code in seen:
            continue
        seen.add(code)
        order.append(fn)
        for name in code.co_names:
            value = getattr(fn, "__globals__", {}).get(name)
            if inspect.isfunction(value) and _within(value, roots):
                queue.append(value)
    comments: dict[str, str] = {}
    for fn in reversed(order):  # the farthest first: nearer comments overwrite
        try:
            comments.update(_line_comments(textwrap.dedent(inspect.getsource(fn))))
        except (OSError, TypeError, tokenize.TokenError, SyntaxError):
            continue
    return comments


def describe(spec: str) -> str:
    """The config's fields, one per line: ``name = default  # comment``."""
    config, get_config = load(spec)
    comments = field_comments(get_config)
    rows = [
        (name, "" if isinstance(value, ConfigDict) else repr(value), comments.get(name, ""))
        for name, value in fields(config).items()
    ]
    width = max((len(n) + len(v) + 3 for n, v, _ in rows), default=0)
    lines = []
    for name, value, comment in rows:
        left = f"{name} = {value}" if value else f"{name}:"
        lines.append(f"  {left:<{width}}  # {comment}" if comment else f"  {left}")
    return "\n".join(lines)


# --------------------------------------------------------------------------- overrides

_TRUE, _FALSE = ("true", "t", "yes", "y", "1", "on"), ("false", "f", "no", "n", "0", "off")


def _parse(name: str, text: str, kind: type | None) -> Any:
    if text in ("None", "none"):
        return None
    try:
        if kind is bool:
            if text.lower() in _TRUE + _FALSE:
                return text.lower() in _TRUE
            raise ValueError
        if kind is int:
            try:
                return int(text)
            except ValueError:
                number = float(text)  # 1e3
                if not number.is_integer():
                    raise
                return int(number)
        if kind is float:
            return float(text)
        if kind is str:
            return text
    except ValueError:
        want = {bool: "a bool (true or false)", int: "an int", float: "a number"}[kind]
        raise UsageError(f"--config.{name}: expected {want} or None, received {text!r}") from None
    try:
        value = ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text  # a plain string for a field without a typed default
    if kind in (tuple, list) and isinstance(value, (tuple, list)):
        return kind(value)
    return value


def apply_overrides(config: ConfigDict, overrides: Sequence[tuple[str, str | None]]) -> None:
    """Sets ``config``'s fields from ``(dotted name, text)`` pairs; ``text=None`` is a bare
    ``--config.FIELD`` (true for a bool field)."""
    known = fields(config)
    for name, text in overrides:
        if name not in known:
            close = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
            hint = f"; closest: {', '.join(close)}" if close else "; --help lists the fields"
            raise UsageError(f"unknown config field {name!r}{hint}")
        parent, _, key = name.rpartition(".")
        holder = config
        for part in parent.split(".") if parent else ():
            holder = holder[part]
        if isinstance(holder[key], ConfigDict):
            raise UsageError(
                f"--config.{name} is a group of fields; set one, e.g. --config.{name}.FIELD"
            )
        kind = holder.get_type(key)
        kind = None if kind is type(None) else kind
        if text is None:
            if kind is not bool:
                raise UsageError(f"--config.{name} needs a value (--config.{name}=VALUE)")
            value = True
        else:
            value = _parse(name, text, kind)
        try:
            holder[key] = value
        except TypeError as e:
            raise UsageError(f"--config.{name}: {e}") from None


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _split(argv: Sequence[str], flag: str) -> tuple[str | None, list, list[str], bool]:
    """``(config spec, overrides, the other args, help?)`` from a command line."""
    spec, overrides, rest, wants_help = None, [], [argv[0]], False
    args = list(argv[1:])
    while args:
        arg = args.pop(0)
        if arg == "--":
            rest += [arg, *args]
            break
        body = arg.lstrip("-")
        if arg.startswith("-") and body in ("help", "h", "helpshort", "helpfull", "?"):
            wants_help = True
        elif arg.startswith("-") and (body == flag or body.startswith(flag + "=")):
            if "=" in body:
                spec = body.partition("=")[2]
            elif args:
                spec = args.pop(0)
            else:
                raise UsageError(f"--{flag} needs a file (--{flag}=configs/NAME.py)")
            rest.append(f"--{flag}={spec}")
        elif arg.startswith("-") and body.startswith(flag + "."):
            name, eq, text = body[len(flag) + 1 :].partition("=")
            if not eq and args and (not args[0].startswith("-") or _is_number(args[0])):
                text, eq = args.pop(0), "="
            overrides.append((name, text if eq else None))
        elif arg.startswith("-") and body.startswith("no" + flag + "."):
            overrides.append((body[len(flag) + 3 :], "false"))
        else:
            rest.append(arg)
    return spec, overrides, rest, wants_help


def parse_argv(
    argv: Sequence[str], *, default: str, flag: str = "config", usage: str = ""
) -> tuple[ConfigDict, list[str]]:
    """The config from ``--config`` (default ``default``) with its ``--config.FIELD``
    overrides applied and locked (no new fields), and the remaining arguments.

    ``--help`` prints ``usage`` and the config's fields with their comments and exits 0;
    a usage error prints one line and exits 2.
    """
    prog = pathlib.Path(argv[0]).name if argv else "train.py"
    try:
        spec, overrides, rest, wants_help = _split(argv, flag)
        spec = spec or default
        if wants_help:
            print(usage.rstrip() + "\n" if usage else "", end="")
            print(f"\nconfig fields of {spec} (override with --{flag}.FIELD=VALUE):")
            print(describe(spec))
            raise SystemExit(0)
        config, _ = load(spec)
        apply_overrides(config, overrides)
    except UsageError as e:
        print(f"{prog}: error: {e}", file=sys.stderr)
        raise SystemExit(2) from None
    config.lock()
    return config, rest
