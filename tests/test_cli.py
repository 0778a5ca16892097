"""The command line of scripts/train.py: --help, override errors, value parsing."""

from __future__ import annotations

import pathlib
import re
import subprocess
import sys

import pytest

from seqjax import cli

ROOT = pathlib.Path(__file__).resolve().parents[1]
TRAIN = ROOT / "scripts" / "train.py"


def _train(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(TRAIN), *args],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=ROOT,
    )


def _comments(path: pathlib.Path) -> dict[str, str]:
    """``config.FIELD = ...  # comment`` lines, read with a regex (a second reading)."""
    pattern = re.compile(r"^\s*\w+\.([\w.]+)\s*=.*?#\s*(.*)$")
    return {m[1]: m[2].strip() for m in map(pattern.match, path.read_text().splitlines()) if m}


def test_help_lists_the_config_fields_with_their_comments():
    out = _train("--help", f"--config={ROOT / 'configs' / 'adding.py'}")
    assert out.returncode == 0, out.stderr
    config, _ = cli.load(str(ROOT / "configs" / "adding.py"))
    base = _comments(ROOT / "seqjax" / "train" / "config.py")
    own = _comments(ROOT / "configs" / "adding.py")
    for name in cli.fields(config):
        line = next(
            (x for x in out.stdout.splitlines() if x.split()[:1] in ([name], [name + ":"])), None
        )
        assert line is not None, f"{name} missing from --help"
        comment = own.get(name, base.get(name))
        if comment:
            assert line.endswith("# " + comment), line
    assert "--workdir" in out.stdout and "Traceback" not in out.stderr


def test_help_needs_no_workdir_and_describes_the_default_config():
    out = _train("-h")
    assert out.returncode == 0, out.stderr
    assert "config fields of configs/default.py" in out.stdout
    assert re.search(r"^  num_steps = \d+ +# ", out.stdout, re.M)


@pytest.mark.parametrize(
    "arg, message",
    [
        ("--config.num_step=3", r"unknown config field 'num_step'; closest: num_steps"),
        ("--config.model.hiden_size=3", r"'model.hiden_size'; closest: model.hidden_size"),
        (
            "--config.num_steps=many",
            r"--config.num_steps: expected an int or None, received 'many'",
        ),
        ("--config.progress_bar=maybe", r"expected a bool \(true or false\)"),
        ("--config=configs/none_such.py", r"no config file 'configs/none_such.py'"),
    ],
)
def test_override_errors_are_one_line(tmp_path, arg, message):
    out = _train(f"--workdir={tmp_path}", arg)
    assert out.returncode != 0
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and re.search(message, lines[0]), out.stderr
    assert not any(tmp_path.iterdir())  # nothing trained


def _parse(*args: str, default: str = "configs/dates.py"):
    config, rest = cli.parse_argv(["train.py", *args], default=str(ROOT / default))
    return config, rest


def test_none_bools_and_ints_parse_as_the_comments_promise():
    config, rest = _parse(
        "--config.model.attention=None",  # "bahdanau, dot, general, concat, or None"
        "--config.model.bidirectional=false",
        "--config.progress_bar=0",
        "--config.tensorboard",  # a bare bool flag is true
        "--noconfig.model.bidirectional",
        "--config.num_steps=1_000",
        "--config.batch_size",
        "32",
        "--config.seed",
        "-3",
        "--config.learning_rate=1",
        "--workdir=w",
    )
    assert config.model.attention is None
    assert config.model.bidirectional is False and config.progress_bar is False
    assert config.tensorboard is True
    assert (config.num_steps, config.batch_size, config.seed) == (1000, 32, -3)
    assert isinstance(config.learning_rate, float) and config.learning_rate == 1.0
    assert rest == ["train.py", "--workdir=w"]
    config, _ = _parse("--config.num_steps=2e3", "--config.model.cell=gru")
    assert config.num_steps == 2000 and config.model.cell == "gru"
    with pytest.raises(AttributeError):  # locked, as ml_collections' config flags lock it
        config.new_field = 1


def test_a_variants_comment_wins_over_the_base(tmp_path, monkeypatch):
    pkg = tmp_path / "cfgs"
    pkg.mkdir()
    (pkg / "__init__.py").write_text("")
    (pkg / "base.py").write_text(
        "from ml_collections import ConfigDict\n\n\n"
        "def base():\n"
        "    c = ConfigDict()\n"
        "    c.size = 3  # units\n"
        "    c.mode = 'a'  # a or b\n"
        "    c.sub = ConfigDict()  # a group\n"
        "    c.sub.rate = (\n"
        "        0.5  # spans lines\n"
        "    )\n"
        "    return c\n"
    )
    (pkg / "variant.py").write_text(
        "from cfgs.base import base\n\n\n"
        "def get_config():\n"
        "    config = base()\n"
        "    config.size = 5  # units, more of them\n"
        "    config.mode = 'b'\n"
        "    return config\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    config, get_config = cli.load(str(pkg / "variant.py"))
    comments = cli.field_comments(get_config, roots=[tmp_path])
    assert comments == {
        "size": "units, more of them",
        "mode": "a or b",
        "sub": "a group",
        "sub.rate": "spans lines",
    }
    text = cli.describe(str(pkg / "variant.py"))
    assert re.search(r"^  mode = 'b' +# a or b$", text, re.M)
