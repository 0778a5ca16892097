"""The benchmark's quick mode runs and reports what it promises (so it never rots)."""

from __future__ import annotations

import importlib.util
import json
import pathlib
import statistics

import pytest

pytest.importorskip("torch")
pytest.importorskip("flax")

BENCH = pathlib.Path(__file__).resolve().parents[1] / "scripts" / "bench.py"


@pytest.fixture(scope="module")
def bench():
    spec = importlib.util.spec_from_file_location("seqjax_bench", BENCH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def quick_run(bench, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "bench.json"
    result = bench.main(["--quick", "--out", str(out)])
    return bench, result, out


def test_quick_json_structure(quick_run):
    bench, result, out = quick_run
    saved = json.loads(out.read_text())
    assert saved["config"]["quick"] is True
    assert saved["config"]["keep_freed_memory"] is False  # glibc's defaults unless asked
    assert set(saved) >= {"machine", "config", "speed", "memory"}
    assert saved["machine"]["versions"]["jax"]
    rows = saved["speed"]
    assert {(r["cell"], r["mode"]) for r in rows} == {
        (c, m) for c in bench.CELLS for m in ("train", "forward")
    }
    for row in rows:
        assert set(row["times"]) == {"seqjax", "torch", "flax"}
        for t in row["times"].values():
            assert t["median_ms"] > 0 and t["first_call_ms"] > 0
            assert len(t["samples_ms"]) == saved["config"]["repeats"]
            # each call's page faults and system time (getrusage), for what limits a row
            assert len(t["samples_faults"]) == len(t["samples_sys_ms"]) == len(t["samples_ms"])
            assert min(t["samples_faults"]) >= 0 and min(t["samples_sys_ms"]) >= 0
            assert t["faults_per_call"] == statistics.median(t["samples_faults"])
        for peer in ("torch", "flax"):
            want = row["times"][peer]["median_ms"] / row["times"]["seqjax"]["median_ms"]
            assert row["ratios"][peer] == pytest.approx(want)
        assert row["best_peer_ratio"] == pytest.approx(min(row["ratios"].values()))


def test_quick_memory_section(quick_run):
    _, result, _ = quick_run
    mem = result["memory"]
    assert {r["remat"] for r in mem} == {None, "sqrt"}
    assert {r["variant"] for r in mem} == {"none", "sqrt"}
    for r in mem:
        assert r["total_bytes"] > 0 and r["temp_bytes"] >= 0
    # Without remat the stored activations grow with time.
    none = sorted((r["time"], r["temp_bytes"]) for r in mem if r["variant"] == "none")
    assert none[-1][1] > none[0][1]


def test_quick_markdown(quick_run, capsys):
    bench, result, _ = quick_run
    text = bench.markdown(result)
    lines = text.splitlines()
    header = next(line for line in lines if line.startswith("| cell"))
    assert "seqjax ms" in header and "torch ms" in header and "flax ms" in header
    assert "cores (seqjax / torch / flax)" in header
    assert "page faults a call (seqjax / torch / flax)" in header
    table = [line for line in lines if line.startswith("| lstm") or line.startswith("| gru")]
    assert len(table) == 4
    assert "remat" in text and "growth" in text


def test_quick_parallel_section(quick_run):
    """A run has the parallel scan of each linear cell (every one by default, two with
    --quick) against its sequential scan, train and forward, and their train-step memory
    with and without remat."""
    bench, result, out = quick_run
    saved = json.loads(out.read_text())["parallel"]
    assert [(r["cell"], r["mode"]) for r in saved["speed"]] == [
        (c, m) for c in bench.QUICK_PARALLEL_CELLS for m in ("train", "forward")
    ]
    for row in saved["speed"]:
        seq, par = row["times"]["sequential"], row["times"]["parallel"]
        assert row["speedup"] == pytest.approx(seq["median_ms"] / par["median_ms"])
    mem = {(r["cell"], r["scan"], r["remat"]): r for r in saved["memory"]}
    assert len(mem) == 4 * len(bench.QUICK_PARALLEL_CELLS)
    assert set(bench.QUICK_PARALLEL_CELLS) < set(bench.PARALLEL_CELLS)
    for cell in bench.QUICK_PARALLEL_CELLS:
        assert all(r["time"] == bench.QUICK_PARALLEL_MEMORY_TIME for r in saved["memory"])
        # Chunked remat stores less than every step's activations.
        seq = mem[(cell, "sequential", None)]["temp_bytes"]
        assert mem[(cell, "sequential", "sqrt")]["temp_bytes"] < seq
    text = bench.markdown(result)
    assert "Parallel (associative) scan" in text and "| lru | 2/32/8/16 | train |" in text


def test_only_parallel_flag(bench):
    args = bench.parse_args(["--only-parallel"])
    assert args.no_speed and args.no_memory and not args.no_parallel and not args.profile


def test_parse_args_defaults(bench):
    args = bench.parse_args([])
    assert args.repeats >= 7 and not args.quick
    assert args.cells == list(bench.CELLS)
    with pytest.raises(SystemExit):
        bench.parse_args(["--cells", "transformer"])


def test_quick_profile(bench, tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--quick", "--cells", "simple_rnn", "--profile", "--no-memory", "--no-parallel"]
    argv += ["--no-trainer", "--out", str(out)]
    result = bench.main(argv)
    saved = json.loads(out.read_text())
    for row in saved["speed"]:
        for t in row["times"].values():
            assert isinstance(t["cores_used"], float) and t["cores_used"] > 0
    assert [(p["cell"], p["mode"]) for p in saved["profile"]] == [
        ("simple_rnn", "train"),
        ("simple_rnn", "forward"),
    ]
    for row in saved["profile"]:
        prof = row["seqjax"]
        cats = prof["categories"]
        assert set(cats) == set(bench.CATEGORIES)
        assert all(c["ms"] >= 0 for c in cats.values())
        # the recurrence: the CPU kernel's one call, or XLA's matmuls without it
        kernel = cats["CPU kernel (whole layer)"]["ms"]
        assert kernel + cats["matmuls per-step"]["ms"] + cats["matmuls block/whole"]["ms"] > 0
        assert prof["wall_ms"] > 0 and prof["per_step_us"] > 0 and prof["top_ops"]
        assert row["torch_top_ops"]
    assert "Where the seqjax time goes" in bench.markdown(result)


def test_padded_lengths(bench):
    lengths = bench.padded_lengths((64, 128, 128, 256))
    assert lengths.shape == (64,) and lengths.dtype.kind == "i"
    assert lengths.min() >= 64 and lengths.max() <= 128 and len(set(lengths)) > 1
    assert (lengths == bench.padded_lengths((64, 128, 128, 256))).all()  # fixed seed


def test_quick_lengths(bench, tmp_path):
    out = tmp_path / "bench.json"
    argv = ["--quick", "--cells", "lstm", "--lengths", "--no-memory", "--no-parallel"]
    argv += ["--no-trainer", "--out", str(out)]
    result = bench.main(argv)
    saved = json.loads(out.read_text())
    assert saved["config"]["lengths"] is True
    rows = saved["speed"]
    assert [r["mode"] for r in rows] == ["train", "forward", "train, padded", "forward, padded"]
    assert rows[0]["lengths"] is None and rows[1]["lengths"] is None
    (b, t, _, _) = bench.QUICK_SHAPES[0]
    for row in rows[2:]:
        assert row["lengths"] == [int(n) for n in bench.padded_lengths(bench.QUICK_SHAPES[0])]
        assert len(row["lengths"]) == b and all(t // 2 <= n <= t for n in row["lengths"])
        assert set(row["times"]) == {"seqjax", "torch", "flax"}
        for times in row["times"].values():
            assert times["median_ms"] > 0 and times["first_call_ms"] > 0
        assert row["case_s"] > 0
    text = bench.markdown(result)
    assert "| lstm | 4/16/8/16 | train, padded |" in text
    assert "| lstm | 4/16/8/16 | forward, padded |" in text
    assert "lengths uniform in [t/2, t]" in text


def test_quick_trainer_section(quick_run):
    bench, result, out = quick_run
    row = json.loads(out.read_text())["trainer"]
    assert row["trainer_examples_per_s"] > 0 and row["bare_examples_per_s"] > 0
    assert row["ratio"] == pytest.approx(row["trainer_examples_per_s"] / row["bare_examples_per_s"])
    rounds = row["rounds"]  # the medians of rounds timed in turn (one in --quick)
    assert len(rounds["trainer_examples_per_s"]) == len(rounds["bare_examples_per_s"]) == 1
    assert row["trainer_examples_per_s"] == rounds["trainer_examples_per_s"][0]
    assert set(row["step_ms"]) == {"float32", "bfloat16"} and min(row["step_ms"].values()) > 0
    for modes in row["checkpoint_blocked_ms"].values():
        assert set(modes) == {"sync", "async"} and min(modes.values()) > 0
    assert set(row["dp_step_ms"]) == {"plain", "private"} and min(row["dp_step_ms"].values()) > 0
    assert row["dp_over_plain"] == pytest.approx(
        row["dp_step_ms"]["private"] / row["dp_step_ms"]["plain"]
    )
    assert "Trainer (dates" in bench.markdown(result) and "DP-SGD step" in bench.markdown(result)
