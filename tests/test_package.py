"""Packaging promises: what ``import seqjax`` loads, and the public names."""

from __future__ import annotations

import subprocess
import sys

import seqjax


def test_import_seqjax_loads_only_the_pure_levels():
    code = (
        "import sys, seqjax; "
        "heavy = [m for m in ('flax', 'torch', 'optax', 'orbax', 'seqjax.nn', 'seqjax.train') "
        "if m in sys.modules]; "
        "assert not heavy, heavy"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_public_names_are_exported():
    for name in seqjax.__all__:
        assert hasattr(seqjax, name), name
    for name in (
        "lstm",
        "gru",
        "simple_rnn",
        "recurrent",
        "scan",
        "stack",
        "bidirectional",
        "Seq",
        "Cell",
        "interop",
    ):
        assert name in seqjax.__all__
    assert callable(seqjax.interop.from_torch) and callable(seqjax.interop.from_flax)
