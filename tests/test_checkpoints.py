"""Checkpoints that survive crashes: real processes killed with SIGKILL (while writing a
checkpoint and between checkpoints), checkpoints corrupted by overwritten bytes, truncated
and deleted; each run restarts from the newest intact checkpoint and ends bitwise equal to
an uninterrupted run. Also: a finished run is not trained again, a changed model is named,
retention and wall time span processes."""

from __future__ import annotations

import json
import os
import pathlib
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from test_train import small_config  # noqa: E402

from seqjax.train import train_and_evaluate  # noqa: E402
from seqjax.train.checkpoints import CheckpointError, Checkpoints  # noqa: E402

OVERRIDES = dict(num_steps=8, eval_every=2, keep_checkpoints=2, tensorboard=False)

_CHILD = """
import os, signal, sys
sys.path.insert(0, {root!r}); sys.path.insert(0, {tests!r})
from test_train import small_config
from seqjax.train import checkpoints, tasks, train_and_evaluate
mode, arg = {mode!r}, {arg!r}
if mode == "kill_after_checkpoint":  # SIGKILL between checkpoints, once `arg` is complete
    # (written, digested and retention applied, on the checkpoint worker); the trainer has
    # gone on training meanwhile, with batches prefetched, and cannot have saved the next
    # one, which waits for this worker.
    original = checkpoints.Checkpoints._prune
    def prune(self, also_keep):
        original(self, also_keep)
        if arg in self.index:
            os.kill(os.getpid(), signal.SIGKILL)
    checkpoints.Checkpoints._prune = prune
elif mode == "kill_in_save":  # SIGKILL after Orbax wrote step `arg`, before its digest
    # (on the checkpoint worker, while the training loop goes on)
    original = checkpoints.directory_digest
    def digest(path):
        if path.name == str(arg):
            os.kill(os.getpid(), signal.SIGKILL)
        return original(path)
    checkpoints.directory_digest = digest
elif mode == "kill_in_write":  # SIGKILL while Orbax writes step `arg` in the background
    original_finish = checkpoints.Checkpoints._finish_save
    def finish_save(self, step, record):
        if step == arg:
            os.kill(os.getpid(), signal.SIGKILL)
        original_finish(self, step, record)
    checkpoints.Checkpoints._finish_save = finish_save
elif mode == "kill_after":  # SIGKILL from a timer, whatever the run is doing
    import threading
    threading.Timer(arg, lambda: os.kill(os.getpid(), signal.SIGKILL)).start()
overrides = {overrides!r}
train_and_evaluate(small_config("adding", **overrides), {workdir!r})
"""


def child_code(workdir, mode="none", arg=None, **overrides) -> str:
    return _CHILD.format(
        root=str(ROOT),
        tests=str(ROOT / "tests"),
        mode=mode,
        arg=arg,
        overrides={**OVERRIDES, **overrides},
        workdir=str(workdir),
    )


def run_child(workdir, mode="none", arg=None, **overrides):
    code = child_code(workdir, mode, arg, **overrides)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300)


def final_params(workdir, step=8):
    ckpt = Checkpoints(workdir, keep=2)
    restored = ckpt.manager.restore(step)
    ckpt.close()
    return jax.tree.leaves(restored["params"])


def assert_same(a, b):
    for x, y in zip(final_params(a), final_params(b)):
        np.testing.assert_array_equal(x, y)


@pytest.fixture(scope="module")
def straight(tmp_path_factory):
    """The reference: uninterrupted, without prefetching, checkpoints written synchronously
    (the runs it is compared with prefetch and write asynchronously, the defaults)."""
    workdir = tmp_path_factory.mktemp("straight")
    plain = {"data.prefetch": 0, "async_checkpoints": False}
    train_and_evaluate(small_config("adding", **OVERRIDES, **plain), workdir)
    return workdir


def reported_saved(workdir) -> list[int]:
    return sorted(int(k) for k in json.loads((workdir / "checkpoints.json").read_text()))


def test_killed_between_checkpoints_resumes_exactly(tmp_path, straight):
    out = run_child(tmp_path, "kill_after_checkpoint", 6)
    assert out.returncode == -signal.SIGKILL
    assert reported_saved(tmp_path) == [4, 6]
    resumed = train_and_evaluate(small_config("adding", **OVERRIDES), tmp_path)
    assert resumed["step"] == 8
    assert_same(straight, tmp_path)


@pytest.mark.parametrize("mode", ["kill_in_write", "kill_in_save"])
def test_killed_while_writing_a_checkpoint_falls_back_to_the_last_verified(
    tmp_path, straight, mode
):
    out = run_child(tmp_path, mode, 6)
    assert out.returncode == -signal.SIGKILL
    assert reported_saved(tmp_path) == [2, 4]  # 6 was never reported saved
    result = run_child(tmp_path)  # resumes in a process of its own
    assert result.returncode == 0, result.stderr[-2000:]
    if mode == "kill_in_save":  # Orbax had completed step 6, its digest was not written
        assert "checkpoint step 6" in result.stderr and "no recorded digest" in result.stderr
    assert_same(straight, tmp_path)


def test_killed_at_a_random_moment_of_frequent_checkpoints(tmp_path):
    """The parent kills the child with SIGKILL once it has checkpointed 10 steps, at a
    random moment of its checkpoint-every-step loop (mid-write more often than not)."""
    import random
    import time

    overrides = {**OVERRIDES, "num_steps": 30, "eval_every": 1}
    reference = tmp_path / "reference"
    train_and_evaluate(small_config("adding", **overrides), reference)
    work = tmp_path / "killed"
    code = child_code(work, **overrides)
    child = subprocess.Popen([sys.executable, "-c", code], stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while time.time() < deadline and child.poll() is None:
        index = work / "checkpoints.json"
        try:
            if index.exists() and max(map(int, json.loads(index.read_text()))) >= 10:
                break
        except ValueError:  # read while replaced; try again
            pass
        time.sleep(0.02)
    time.sleep(random.Random(0).uniform(0.0, 0.3))
    child.send_signal(signal.SIGKILL)
    assert child.wait(timeout=60) == -signal.SIGKILL
    saved = reported_saved(work)
    assert 10 <= max(saved) < 30
    resumed = train_and_evaluate(small_config("adding", **overrides), work)
    assert resumed["step"] == 30
    records = [json.loads(line) for line in (work / "metrics.jsonl").read_text().splitlines()]
    assert max(saved) in {r["step"] for r in records}
    for x, y in zip(final_params(reference, 30), final_params(work, 30)):
        np.testing.assert_array_equal(x, y)


def _largest_file(step_dir: pathlib.Path) -> pathlib.Path:
    return max((p for p in step_dir.rglob("*") if p.is_file()), key=lambda p: p.stat().st_size)


def _damage(workdir, how):
    step_dir = workdir / "checkpoints" / "6"
    if how == "deleted":
        import shutil

        shutil.rmtree(step_dir)
        return
    target = _largest_file(step_dir)
    data = bytearray(target.read_bytes())
    if how == "overwritten":
        n = min(4096, len(data))
        data[:n] = os.urandom(n)
    else:  # truncated
        data = data[: len(data) // 2]
    target.write_bytes(bytes(data))


@pytest.mark.parametrize("how", ["overwritten", "truncated", "deleted"])
def test_a_damaged_latest_checkpoint_is_reported_and_skipped(tmp_path, straight, how, capfd):
    out = run_child(tmp_path, "kill_after_checkpoint", 6)
    assert out.returncode == -signal.SIGKILL
    _damage(tmp_path, how)
    strict = small_config("adding", **{**OVERRIDES, "resume": "strict"})
    if how != "deleted":
        with pytest.raises(CheckpointError, match="step 6 .* not usable"):
            train_and_evaluate(strict, tmp_path)
    resumed = train_and_evaluate(small_config("adding", **OVERRIDES), tmp_path)
    assert resumed["step"] == 8
    err = capfd.readouterr().err
    if how != "deleted":
        lines = [x for x in err.splitlines() if "checkpoint step 6" in x]
        assert len(lines) == 1 and "differ from the digest" in lines[0]
    assert_same(straight, tmp_path)


def test_a_finished_run_is_not_trained_again(tmp_path, capfd):
    config = small_config("adding", **OVERRIDES)
    first = train_and_evaluate(config, tmp_path)
    metrics = (tmp_path / "metrics.jsonl").read_text()
    again = train_and_evaluate(config, tmp_path)
    assert "already finished at step 8" in capfd.readouterr().err
    assert again["eval"] == first["eval"] and again["wall_time_s"] == first["wall_time_s"]
    assert (tmp_path / "metrics.jsonl").read_text() == metrics
    fresh = train_and_evaluate(small_config("adding", **{**OVERRIDES, "resume": "fresh"}), tmp_path)
    assert fresh["step"] == 8 and fresh["wall_time_s"] != first["wall_time_s"]


def test_wall_time_and_retention_span_processes(tmp_path):
    out = run_child(tmp_path, "kill_after_checkpoint", 6, keep_checkpoints=1)
    assert out.returncode == -signal.SIGKILL
    before = json.loads((tmp_path / "checkpoints.json").read_text())["6"]["wall_time_s"]
    summary = train_and_evaluate(
        small_config("adding", **{**OVERRIDES, "keep_checkpoints": 1}), tmp_path
    )
    assert summary["wall_time_s"] > before > 0
    best = summary["val"]["step"]
    assert Checkpoints(tmp_path, keep=1).all_steps() == sorted({best, 8})


def test_a_changed_model_is_named_in_a_few_lines(tmp_path):
    train_and_evaluate(small_config("adding", **OVERRIDES), tmp_path)
    changed = small_config("adding", **{**OVERRIDES, "num_steps": 12, "model.hidden_size": 6})
    with pytest.raises(ValueError) as info:
        train_and_evaluate(changed, tmp_path)
    message = str(info.value)
    assert "other shapes" in message and len(message.splitlines()) <= 12
    assert "(8, 32)" in message and "(6, 24)" in message
