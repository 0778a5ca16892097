"""`make docs`'s build: strict (a warning or a broken reference fails), offline, from the
docstrings, with the notebooks executed into their pages (about 20 s, most of it the
notebooks); and the reST-to-Markdown rewriting of the API reference's docstrings."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "docs"))


def test_rst_math_and_roles_become_markdown():
    griffe_rst = pytest.importorskip("griffe_rst")
    text = "See :class:`~seqjax.Seq` and :func:`seqjax.scan`, ``xs``.\n\n.. math::\n    a = b\n"
    got = griffe_rst.rst_to_markdown(text)
    assert "`Seq`" in got and "`seqjax.scan`" in got and "`xs`" in got
    assert "$$\na = b\n$$" in got and ".. math::" not in got
    assert griffe_rst.rst_to_markdown(":math:`h_t`") == "$h_t$"


def test_docs_build_strict(tmp_path):
    mkdocs = Path(sys.executable).with_name("mkdocs")
    if not mkdocs.exists() and shutil.which("mkdocs") is None:
        pytest.skip("mkdocs is in the docs extra")
    env = dict(os.environ, NO_MKDOCS_2_WARNING="1")
    cmd = [str(mkdocs if mkdocs.exists() else "mkdocs"), "build", "--strict"]
    out = subprocess.run(
        [*cmd, "--site-dir", str(tmp_path / "site")],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
    )
    assert out.returncode == 0, out.stdout + out.stderr
    site = tmp_path / "site"
    api = (site / "api" / "seqjax" / "index.html").read_text()
    assert 'id="seqjax.cells.lstm"' in api and 'class="arithmatex"' in api
    assert ".. math::" not in api
    # equations render from the vendored KaTeX: nothing is fetched when the site is read
    assert (site / "katex" / "katex.min.js").exists() and "katex/katex.min.js" in api
    assert "https://" not in "".join(
        line for line in api.splitlines() if "<script" in line and "src=" in line
    )
    nnx = (site / "api" / "nnx" / "index.html").read_text()
    assert 'id="seqjax.nnx.modules.Recurrent"' in nnx
    tour = (site / "examples" / "tour" / "index.html").read_text()
    assert "attention_memory" in tour  # the notebook's source, its output and its plots
    assert "(2, 40, 8) True" in tour and tour.count("data:image/png;base64,") == 2
    assert (
        "max |seqjax - torch|" in (site / "examples" / "torch_finetune" / "index.html").read_text()
    )
