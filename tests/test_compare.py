"""``scripts/compare.py`` (``make compare``): matched budgets, and a table and a plot whose
every row comes from a run."""

from __future__ import annotations

import json
import pathlib
import re
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT))

import compare  # noqa: E402


def test_budgets_match_within_a_few_percent():
    config = compare.base_config("adding", 2, quick=True)
    budget = compare.param_count(compare.sized(config, "lstm", 32))
    counts: dict = {}
    for arch in ("gru", "simple_rnn", "transformer"):
        size, mlp, layers, params = compare.match_budget(config, arch, budget, counts)
        assert size % (4 if arch == "transformer" else compare.GRID) == 0
        assert (mlp > 0) == (arch == "transformer") and layers == 1
        assert abs(params - budget) / budget < 0.03, (arch, size, params, budget)
        assert params == compare.param_count(compare.sized(config, arch, size, mlp))


def test_a_cell_too_wide_for_one_layer_is_stacked_at_the_budget(monkeypatch):
    # minGRU has no recurrent matrix: on two input features one layer needs about 600
    # units for this budget; with the widest layer capped below it, it takes two layers
    config = compare.base_config("adding", 2, quick=True)
    budget = compare.param_count(compare.sized(config, "lstm", 32))
    one = compare.match_budget(config, "min_gru", budget, {})
    assert one.layers == 1 and one.size > 200
    monkeypatch.setattr(compare, "MAX_WIDTH", 64)
    two = compare.match_budget(config, "min_gru", budget, {})
    assert two.layers == 2 and two.size <= 64, two
    assert abs(two.params - budget) / budget < 0.03, (two, budget)
    assert two.params == compare.param_count(compare.sized(config, "min_gru", two.size, 0, 2))
    stacked = compare.sized(config, "min_gru", two.size, 0, 2)
    assert stacked.model.layers == 2 and config.model.layers == 1


@pytest.mark.slow  # trains two models end to end (about 20 s on an idle 2-core CPU)
def test_quick_comparison_writes_the_table_and_plot_from_the_runs(tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# x\n\nbefore\n\n<!-- compare:start -->\nold\n<!-- compare:end -->\nafter\n")
    png = tmp_path / "compare.png"
    # A row recorded earlier (another task, another session) stays in the table; a recorded
    # row of a task and architecture that runs again is replaced by the new run's.
    recorded = tmp_path / "compare.json"
    earlier = {
        "task": "copy",
        "arch": "gru",
        "model": "gru 9",
        "params": 1234,
        "step_ms": 1.5,
        "metric": 0.5,
        "steps": 7,
        "wall_time_s": 3.0,
        "date": "2026-01-01",
    }
    stale = {**earlier, "task": "adding", "arch": "lstm", "metric": 9.0}
    recorded.write_text(json.dumps([earlier, stale]))
    compare.main(
        [
            "--results",
            str(recorded),
            "--quick",
            "--tasks",
            "adding",
            "--archs",
            "lstm",
            "transformer",
            "--steps",
            "3",
            "--workdir",
            str(tmp_path / "runs"),
            "--readme",
            str(readme),
            "--plot",
            str(png),
        ]
    )
    text = readme.read_text()
    assert text.startswith("# x\n\nbefore\n") and text.endswith("after\n") and "old" not in text
    rows = [line for line in text.splitlines() if line.startswith("| adding |")]
    assert len(rows) == 2
    for line, arch in zip(rows, ("lstm", "transformer")):
        run = tmp_path / "runs" / "adding" / arch
        summary = json.loads((run / "summary.json").read_text())
        record = json.loads((run / "compare.json").read_text())
        cells = [c.strip() for c in line.strip("|").split("|")]
        assert cells[1] == arch
        assert cells[3] == f"{record['params']:,}"
        assert cells[4] == f"test MSE {summary['eval']['mse']:.3g}"
        assert cells[8] == str(summary["step"]) == "3"
        assert float(cells[5]) == pytest.approx(record["step_ms"], abs=0.06)
        assert record["step_ms"] > 0
    assert "transformer 8" in rows[1] or re.search(r"transformer \d+ x 2", rows[1])
    assert "| copy | gru | gru 9 | 1,234 | copy accuracy 50.00% | 1.5 |" in text
    assert text.index("| adding |") < text.index("| copy |")  # rows in task order
    kept = json.loads(recorded.read_text())
    assert [(r["task"], r["arch"]) for r in kept] == [
        ("adding", "lstm"),
        ("adding", "transformer"),
        ("copy", "gru"),
    ]
    assert kept[0]["metric"] != 9.0 and kept[0]["steps"] == 3
    assert png.stat().st_size > 1000 and png.read_bytes()[:4] == b"\x89PNG"


@pytest.mark.slow  # compiles and times four decodings
def test_generation_cost_reports_a_growing_cache_against_a_fixed_carry():
    config = compare.base_config("charlm", 2, quick=True)
    lstm = compare.generation_cost(compare.sized(config, "lstm", 16), context=16, new=4)
    tf = compare.generation_cost(compare.sized(config, "transformer", 16), context=16, new=4)
    longer = compare.generation_cost(compare.sized(config, "transformer", 16), context=48, new=4)
    assert lstm["state_bytes"] == 2 * 16 * 4  # h and c of one sequence, float32
    # the KV cache: keys and values of 2 layers, (context + new + 1) positions, 16 wide,
    # and the position (int32)
    assert tf["state_bytes"] == 2 * 2 * (16 + 4 + 1) * 16 * 4 + 4
    assert longer["state_bytes"] > tf["state_bytes"]
    assert lstm["ms_per_token"] >= 0 and tf["ms_per_token"] >= 0
