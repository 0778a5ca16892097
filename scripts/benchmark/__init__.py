"""The pieces of ``scripts/bench.py``, one module a section.

``implementations`` builds the models under test (seqjax, torch, Flax linen), ``timing``
times them in interleaved rounds; ``speed``, ``memory``, ``parallel``, ``trainer`` and
``profile`` are the benchmark's sections, ``report`` turns their rows into markdown and
describes the machine. ``scripts/bench.py`` is the command line over them.
"""
