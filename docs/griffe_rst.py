"""A griffe extension: the docstrings' reST math and roles, as Markdown for mkdocstrings.

The docstrings are Google style with Sphinx markup (``.. math::`` blocks, ``:math:``,
``:class:``, ``:func:`` roles, double-backtick literals). This rewrites them, when the
API reference is built, into what ``pymdownx.arithmatex`` and Markdown render: ``$$`` blocks,
``$...$`` inline math and code spans. The source docstrings are not changed.
"""

from __future__ import annotations

import re

import griffe

_ROLE = re.compile(r":(?:class|func|meth|mod|data|attr|obj|exc):`~?([^`]+)`")
_MATH_ROLE = re.compile(r":math:`([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def _math_blocks(text: str) -> str:
    out, lines, i = [], text.splitlines(), 0
    while i < len(lines):
        line = lines[i]
        stripped = line.strip()
        if stripped.startswith(".. math::"):
            indent = line[: len(line) - len(line.lstrip())]
            body, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i].strip())
                i += 1
            while body and not body[-1]:
                body.pop()
            first = stripped[len(".. math::") :].strip()
            math = [first] if first else []
            math += [b for b in body if b]
            out += [indent + "$$", *(indent + m for m in math), indent + "$$", ""]
            continue
        if stripped.startswith(".. code-block::"):
            indent = line[: len(line) - len(line.lstrip())]
            lang = stripped.split("::", 1)[1].strip() or "python"
            body, i = [], i + 1
            while i < len(lines) and (not lines[i].strip() or lines[i].startswith(indent + " ")):
                body.append(lines[i])
                i += 1
            while body and not body[-1].strip():
                body.pop()
            width = min(len(b) - len(b.lstrip()) for b in body if b.strip())
            out += [indent + "```" + lang, *(indent + b[width:] for b in body), indent + "```", ""]
            continue
        out.append(line)
        i += 1
    return "\n".join(out)


def rst_to_markdown(text: str) -> str:
    """reST math blocks, math roles, cross-reference roles and literals as Markdown."""
    text = _math_blocks(text)
    text = _MATH_ROLE.sub(lambda m: f"${m.group(1)}$", text)
    text = _ROLE.sub(
        lambda m: f"`{m.group(1).split('.')[-1] if m.group(0).count('~') else m.group(1)}`", text
    )
    return _LITERAL.sub(lambda m: f"`{m.group(1)}`", text)


class RstMath(griffe.Extension):
    """Rewrites every docstring with :func:`rst_to_markdown` as it is loaded."""

    def on_instance(self, *, obj: griffe.Object, **kwargs) -> None:
        if obj.docstring is not None:
            obj.docstring.value = rst_to_markdown(obj.docstring.value)
