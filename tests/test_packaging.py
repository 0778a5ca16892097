"""The sdist and the wheel a user would install: built, installed into a fresh venv, imported.

How this stays offline and under a minute: the sdist is built by setuptools' own PEP 517
hooks (the backend ``pyproject.toml`` names, already in our venv: no build isolation, no
download) from a copy of the tracked files, and the wheel is built from the *unpacked
sdist*, so a file missing from the sdist fails here. The wheel goes into a fresh venv
(``--without-pip``; our pip installs into it with ``--python``, ``--no-index --no-deps``).
Its dependencies (jax, flax: hundreds of MB from the registry) are not installed again:
a ``.pth`` file appends our venv's site-packages *after* the fresh venv's own, so the
dependencies resolve there while ``seqjax`` itself can only come from the wheel (our
editable install's finder is not loaded through a ``.pth`` path line). The test checks
that it did, then that the declared dependencies are the ones the imports need.
"""

from __future__ import annotations

import email
import os
import shutil
import subprocess
import sys
import sysconfig
import tarfile
import venv
import zipfile
from pathlib import Path

import pytest

import seqjax

ROOT = Path(__file__).resolve().parents[1]

_BUILD = (
    "import sys; from setuptools import build_meta as b; "
    "print(getattr(b, sys.argv[1])(sys.argv[2]))"
)


def _hook(hook: str, src: Path, out: Path) -> Path:
    name = subprocess.run(
        [sys.executable, "-c", _BUILD, hook, str(out)],
        cwd=src,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()[-1]
    return out / name


def _tracked_copy(dest: Path) -> Path:
    files = subprocess.run(
        ["git", "ls-files", "-co", "--exclude-standard"],
        cwd=ROOT,
        check=True,
        capture_output=True,
        text=True,
    ).stdout.split()
    for f in files:
        if (ROOT / f).is_file():
            (dest / f).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(ROOT / f, dest / f)
    return dest


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if shutil.which("git") is None or not (ROOT / ".git").exists():
        pytest.skip("needs a git checkout to know the tracked files")
    tmp = tmp_path_factory.mktemp("packaging")
    src = _tracked_copy(tmp / "src")
    (tmp / "dist").mkdir()
    sdist = _hook("build_sdist", src, tmp / "dist")
    with tarfile.open(sdist) as tar:
        tar.extractall(tmp / "unpacked", filter="data")
    (unpacked,) = (tmp / "unpacked").iterdir()
    wheel = _hook("build_wheel", unpacked, tmp / "dist")
    return tmp, sdist, wheel


def test_wheel_holds_the_packages_py_typed_and_the_version(built):
    _, sdist, wheel = built
    names = zipfile.ZipFile(wheel).namelist()
    for path in ("seqjax/__init__.py", "seqjax/py.typed", "seqjax/nn/__init__.py"):
        assert path in names
    assert "seqjax/nnx/__init__.py" in names and not any(n.startswith("tests/") for n in names)
    # the CPU kernel, compiled from the sdist's C++ source
    assert any(n.startswith("seqjax/kernels/_recurrent") and n.endswith(".so") for n in names)
    with tarfile.open(sdist) as tar:
        files = {n.split("/", 1)[1] for n in tar.getnames() if "/" in n}
    assert {"setup.py", "seqjax/kernels/csrc/recurrent.cc"} <= files
    assert f"seqjax-{seqjax.__version__}" in sdist.name
    assert f"seqjax-{seqjax.__version__}-" in wheel.name


def test_core_dependencies_are_what_the_imports_need(built):
    _, _, wheel = built
    with zipfile.ZipFile(wheel) as z:
        meta_name = next(n for n in z.namelist() if n.endswith(".dist-info/METADATA"))
        meta = email.message_from_bytes(z.read(meta_name))
    requires = meta.get_all("Requires-Dist")
    core = {r.split(">")[0].split("=")[0].split("[")[0].strip() for r in requires if ";" not in r}
    assert core == {"jax", "numpy", "flax"}
    extras = set(meta.get_all("Provides-Extra"))
    assert {"train", "test", "docs", "dev"} <= extras
    train = [r for r in requires if 'extra == "train"' in r]
    assert any(r.startswith("absl-py") for r in train)  # scripts/train.py's flags
    assert not any(r.startswith("chex") for r in requires)  # nothing imports it


def test_wheel_installs_into_a_fresh_venv_and_imports(built):
    tmp, _, wheel = built
    env = tmp / "venv"
    venv.create(env, with_pip=False)
    py = env / "bin" / "python"
    site = subprocess.run(
        [str(py), "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "_deps_from_the_test_venv.pth").write_text(sysconfig.get_paths()["purelib"])
    pip = [sys.executable, "-m", "pip", "--python", str(py), "install", "-q"]
    subprocess.run([*pip, "--no-index", "--no-deps", str(wheel)], check=True)
    code = (
        "import seqjax, seqjax.nn, seqjax.nnx, importlib.metadata as m; "
        "from seqjax.kernels import cpu; "
        "print(seqjax.__file__); print(m.version('seqjax')); print(seqjax.__version__); "
        "print(cpu.available())"
    )
    clean = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # no source tree
    out = subprocess.run(
        [str(py), "-c", code], check=True, capture_output=True, text=True, cwd=tmp, env=clean
    ).stdout.split()
    assert out[0].startswith(site), out  # the wheel's copy, not the source tree
    assert out[1] == out[2] == seqjax.__version__
    assert out[3] == "True"  # the wheel's compiled CPU kernel loads
