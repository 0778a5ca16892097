"""scripts/inspect.py on tiny finished runs: the PNGs exist, are readable, and say something."""

from __future__ import annotations

import json
import pathlib
import subprocess
import sys

import numpy as np
import pytest
from test_train import small_config

from seqjax.train import train_and_evaluate

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _inspect(workdir, *extra):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "inspect.py"), "--workdir", str(workdir), *extra],
        capture_output=True,
        text=True,
        cwd=ROOT,
        timeout=600,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    return json.loads((pathlib.Path(workdir) / "plots" / "inspect" / "inspect.json").read_text())


def _check_png(path, min_bytes=8_000):
    import matplotlib.image

    assert path.stat().st_size > min_bytes, path
    image = matplotlib.image.imread(path)
    assert image.shape[0] > 200 and image.shape[1] > 300
    assert np.std(image[..., :3]) > 0.05  # not a blank canvas


@pytest.mark.slow
def test_inspect_writes_gates_attributions_and_gradient_flow_of_two_adding_runs(tmp_path):
    lstm, rnn = tmp_path / "lstm", tmp_path / "rnn"
    train_and_evaluate(small_config("adding"), lstm)
    train_and_evaluate(small_config("adding", **{"model.cell": "simple_rnn"}), rnn)
    result = _inspect(lstm, "--compare", str(rnn))
    plots = lstm / "plots" / "inspect"
    for name in ("gates.png", "attributions.png", "gradient_flow.png"):
        _check_png(plots / name)
    assert sorted(result["files"]) == sorted(
        f"inspect/{n}" for n in ("gates.png", "attributions.png", "gradient_flow.png")
    )
    assert len(result["gradient_flow"]) == 2  # the LSTM and the Elman RNN in one figure
    assert all(0 <= s <= 1 for s in result["marked_attribution_share"].values())


@pytest.mark.slow
def test_inspect_of_a_seq2seq_run_draws_attention_maps(tmp_path):
    train_and_evaluate(small_config("dates"), tmp_path)
    result = _inspect(tmp_path, "--examples", "2")
    assert "inspect/attention_1.png" in result["files"]
    _check_png(tmp_path / "plots" / "inspect" / "attention_0.png", min_bytes=4_000)
    _check_png(tmp_path / "plots" / "inspect" / "gates.png")


def test_inspect_refuses_a_directory_without_a_finished_run(tmp_path):
    out = subprocess.run(
        [sys.executable, str(ROOT / "scripts" / "inspect.py"), "--workdir", str(tmp_path)],
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    assert out.returncode != 0 and "not a finished run" in out.stderr
