"""MkDocs hooks: each notebook of examples/ rendered, executed, into its page.

A page holding ``<!-- notebook: examples/NAME.py -->`` gets the notebook in its place:
markdown cells as Markdown, code cells as code, each followed by what it printed and the
figures it drew (PNG, embedded as data URIs, so the site has no generated files to track).
The notebooks are Jupytext percent scripts (``# %%`` cells); executing them here, in one
namespace per notebook, is what Jupyter would do, without a kernel or nbconvert.
"""

from __future__ import annotations

import base64
import contextlib
import io
import re
from pathlib import Path

_MARKER = re.compile(r"<!-- notebook: (\S+) -->")
_CELL = re.compile(r"^# %%(.*)$", re.MULTILINE)


def _cells(text: str) -> list[tuple[str, str]]:
    parts = _CELL.split(text)
    return list(zip(parts[1::2], parts[2::2]))


def _markdown(body: str) -> str:
    return "\n".join(line[2:] if line.startswith("# ") else line.lstrip("#") for line in
                     body.strip("\n").splitlines())  # fmt: skip


def render(path: Path) -> str:
    """The notebook at ``path`` as Markdown with its outputs (it is executed)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    namespace: dict = {"__name__": "__main__", "__file__": str(path)}
    out: list[str] = []
    show, plt.show = plt.show, lambda *args, **kwargs: None
    try:
        for header, body in _cells(path.read_text()):
            if "[markdown]" in header:
                out.append(_markdown(body))
                continue
            code = body.strip("\n")
            if not code.strip():
                continue
            out.append(f"```python\n{code}\n```")
            printed = io.StringIO()
            with contextlib.redirect_stdout(printed):
                exec(compile(code + "\n", str(path), "exec"), namespace)
            if printed.getvalue().strip():
                out.append(f"```text\n{printed.getvalue().rstrip()}\n```")
            for num in plt.get_fignums():
                png = io.BytesIO()
                plt.figure(num).savefig(png, format="png", dpi=80)
                data = base64.b64encode(png.getvalue()).decode()
                out.append(f'<img alt="figure" src="data:image/png;base64,{data}">')
            plt.close("all")
    finally:
        plt.show = show
    return "\n\n".join(out) + "\n"


def on_page_markdown(markdown: str, page, config, files) -> str:
    root = Path(config["config_file_path"]).parent
    return _MARKER.sub(lambda m: render(root / m.group(1)), markdown)
