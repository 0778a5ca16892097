"""The Makefile installs what each target needs into one .venv, with two stamps."""

from __future__ import annotations

import os
import pathlib
import shutil
import subprocess

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]

# A stand-in for python: `-m venv DIR` makes DIR/bin/python (itself), `-m pip ...` logs.
FAKE_PYTHON = """#!/bin/sh
if [ "$1 $2" = "-m venv" ]; then
  mkdir -p "$3/bin" && cp "$0" "$3/bin/python" && chmod +x "$3/bin/python"
elif [ "$1 $2" = "-m pip" ]; then
  echo "$@" >> "$(dirname "$0")/../../pip.log"
fi
"""


@pytest.fixture
def project(tmp_path):
    if shutil.which("make") is None:
        pytest.skip("make is not installed")
    shutil.copy(ROOT / "Makefile", tmp_path / "Makefile")
    (tmp_path / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    fake = tmp_path / "fake-python"
    fake.write_text(FAKE_PYTHON)
    fake.chmod(0o755)
    return tmp_path


def _make(project, *args):
    """The extras that ``make ARGS`` installs (``pip install -e SPEC`` calls)."""
    cmd = ["make", "-s", *args, f"PYTHON={project / 'fake-python'}"]
    subprocess.run(cmd, cwd=project, check=True, capture_output=True)
    log = project / "pip.log"
    lines = log.read_text().splitlines() if log.exists() else []
    log.unlink(missing_ok=True)
    return [x.split(" -e ")[1] for x in lines if " -e " in x]


def test_train_installs_only_the_train_extra_and_test_adds_the_rest(project):
    assert _make(project, "venv-train") == [".[train]"]
    assert _make(project, "venv-train") == []  # up to date
    assert _make(project, "venv") == [".[train,test,dev]"]  # train-only does not do for tests
    assert _make(project, "venv") == []
    assert _make(project, "venv-train") == []  # the full install covers training
    # A changed pyproject.toml reinstalls each set once, when a target needs it.
    for stamp in (".installed-train", ".installed-all"):
        os.utime(project / ".venv" / stamp, (1, 1))
    assert _make(project, "venv-train") == [".[train]"]
    assert _make(project, "venv") == [".[train,test,dev]"]


def test_make_train_and_proof_need_no_test_extras(project):
    for target in ("train", "proof", "compare"):
        plan = subprocess.run(
            ["make", "-n", target], cwd=project, capture_output=True, text=True, check=True
        ).stdout
        assert "-e '.[train]'" in plan and "test,dev" not in plan, plan
