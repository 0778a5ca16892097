"""The notebooks in examples/ (Jupytext percent scripts) run top to bottom as scripts.

Each runs in its own process with a non-interactive Matplotlib backend, as a reader
running `python examples/NAME.py` would; their own asserts check what they show.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = sorted((ROOT / "examples").glob("*.py"))


def test_there_are_notebooks():
    assert len(EXAMPLES) >= 3
    for path in EXAMPLES:
        assert path.read_text().startswith("# %% [markdown]"), path.name


@pytest.mark.parametrize("path", EXAMPLES, ids=[p.stem for p in EXAMPLES])
def test_example_runs(path, tmp_path):
    env = dict(os.environ, MPLBACKEND="Agg", PYTHONPATH=str(ROOT))
    out = subprocess.run(
        [sys.executable, str(path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert out.returncode == 0, out.stdout[-2000:] + out.stderr[-4000:]
