"""The README's API tour runs as written."""

from __future__ import annotations

import pathlib
import re

README = pathlib.Path(__file__).resolve().parents[1] / "README.md"


def _python_blocks():
    return re.findall(r"```python\n(.*?)```", README.read_text(), flags=re.S)


def test_readme_custom_task_trains(tmp_path, monkeypatch):
    (block,) = [b for b in _python_blocks() if "train_and_evaluate(" in b]
    monkeypatch.chdir(tmp_path)
    namespace: dict = {}
    exec(compile(block, "README.md", "exec"), namespace)
    summary = namespace["summary"]
    assert summary["task"] == "sign_of_sum" and summary["step"] == 300
    assert summary["val"]["accuracy"] > 0.85 and summary["eval"]["accuracy"] > 0.85
    assert (tmp_path / "runs" / "sign_of_sum" / "summary.json").exists()


def test_readme_tour_runs():
    blocks = _python_blocks()
    assert len(blocks) >= 3
    namespace: dict = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    assert namespace["ys"].shape == (8, 50, 128)
    # The interop example reuses the tour's xs.
    exec(compile(blocks[1], "README.md", "exec"), namespace)
    assert namespace["ys"].shape == (8, 50, 128)
    assert namespace["h_n"].shape == (4, 8, 64)
    # The Flax models example runs on its own.
    models: dict = {}
    exec(compile(blocks[2], "README.md", "exec"), models)
    assert models["logits"].shape == (4, 6, 12) and models["weights"].shape == (4, 6, 9)
    assert models["beams"].tokens.shape == (4, 3, 6)
