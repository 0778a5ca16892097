"""What every experiment shares: the :class:`Task` protocol, the evaluation accumulator,
the model builder, and batches that are a pure function of the step.

A task owns its data (train, validation and test parts), its model and its metrics. The
trainer asks it for a training batch per step, evaluates it on ``"val"`` to rank
checkpoints, and on ``"test"`` once, at the end, with the best-validation parameters.
"""

from __future__ import annotations

import pathlib
from collections.abc import Callable, Iterator
from typing import Any, Protocol, runtime_checkable

import numpy as np
from ml_collections import ConfigDict

import seqjax
from seqjax.typing import Array, Params, PRNGKey

SPLITS = ("val", "test")
EVAL_BATCH = 500  # examples per evaluation batch (the last batch may be smaller)
VAL_SEED = 2 * 10**6  # generated validation sets are seeded with seed + VAL_SEED
TEST_SEED = 10**6  # generated test sets are seeded with seed + TEST_SEED


@runtime_checkable
class Task(Protocol):
    """What an experiment gives the trainer; bring your own to ``train_and_evaluate``.

    Attributes:
      name: the experiment's name, in the summary and the progress bar.
      eval_metric: the metric that ranks checkpoints on the validation split.
      eval_mode: ``"max"`` or ``"min"``: whether a larger ``eval_metric`` is better.
    """

    name: str
    eval_metric: str
    eval_mode: str

    def init(self, key: PRNGKey) -> Params:
        """The model's initial parameters."""

    def loss(self, params: Params, batch: dict, key: PRNGKey) -> tuple[Array, dict]:
        """Training loss (stochastic parts fed by ``key``) and extra metrics; traced by jit."""

    def train_batch(self, step: int, batch_size: int) -> dict[str, np.ndarray]:
        """The global training batch of ``step``: a pure function of the step, so that a
        resumed run sees the batches an uninterrupted one would."""

    def evaluate(self, params: Params, split: str) -> dict[str, float]:
        """Metrics on ``split``: ``"val"`` (checkpoint ranking) or ``"test"`` (once, at the end)."""

    def report(self, params: Params, workdir: pathlib.Path) -> dict[str, Any]:
        """Plots in ``workdir/plots`` and the summary's extras (``baselines``, ``examples``),
        given the best-validation parameters."""


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, received {split!r}")
    return split


class Accumulator:
    """Exact means over evaluation batches: per metric, a sum and a count.

    ``add(name, total, count)`` adds a batch's sum of ``count`` values (examples, tokens or
    characters); ``means()`` divides. A metric that is a batch mean is added as
    ``add(name, mean * n, n)``.
    """

    def __init__(self):
        self.sums: dict[str, float] = {}
        self.counts: dict[str, float] = {}

    def add(self, name: str, total, count) -> None:
        self.sums[name] = self.sums.get(name, 0.0) + float(total)
        self.counts[name] = self.counts.get(name, 0.0) + float(count)

    def add_sums(self, sums: dict[str, tuple]) -> None:
        """``sums``: ``{name: (total, count)}``, for example from a jitted metric function."""
        for name, (total, count) in sums.items():
            self.add(name, total, count)

    def means(self) -> dict[str, float]:
        return {k: self.sums[k] / max(self.counts[k], 1.0) for k in self.sums}


def rows(n: int, step: int, batch_size: int, seed: int) -> np.ndarray:
    """Row indices of ``step``'s batch: uniform draws from a generator seeded by the step."""
    return np.random.default_rng([seed, step]).integers(0, n, batch_size)


def step_seed(seed: int, step: int) -> int:
    """The seed of ``step``'s freshly generated batch: a pure function of the step."""
    return int(np.random.default_rng([seed, step]).integers(2**31))


def take(data: dict, index: np.ndarray) -> dict:
    """The rows ``index`` of every array value (and list value) of ``data``."""
    out = {}
    for k, v in data.items():
        if isinstance(v, np.ndarray):
            out[k] = v[index]
        elif isinstance(v, list):
            out[k] = [v[i] for i in index]
    return out


def arrays(data: dict) -> dict[str, np.ndarray]:
    return {k: v for k, v in data.items() if isinstance(v, np.ndarray)}


def chunks(data: dict, size: int = EVAL_BATCH) -> Iterator[tuple[dict, int]]:
    """``(batch, n)``: the array values of ``data`` in consecutive batches of ``size`` rows
    (the last one smaller), with ``n`` its number of rows."""
    from seqjax.data import batches

    for batch in batches(arrays(data), size, drop_remainder=False):
        yield batch, len(next(iter(batch.values())))


def check_examples(n: int, batch_size: int, what: str) -> None:
    """Fail before training when a finite training set is smaller than one batch."""
    if n < batch_size:
        raise ValueError(
            f"{what} holds {n} training examples, fewer than batch_size = {batch_size}; "
            "lower --config.batch_size or give more data"
        )


CHRONO_CELLS = ("lstm", "min_gru", "min_lstm")  # the cells with a chrono initialisation


def build_cell(m: ConfigDict) -> seqjax.Cell:
    """The cell named by ``config.model.cell`` (a name of :data:`seqjax.CELLS`)."""
    options = {}
    if m.get("chrono_t_max"):
        if m.cell not in CHRONO_CELLS:
            raise ValueError(
                f"model.chrono_t_max applies to the {', '.join(CHRONO_CELLS)} cells, not {m.cell!r}"
            )
        options["chrono_t_max"] = m.chrono_t_max
    try:
        return seqjax.cell_by_name(m.cell, m.hidden_size, **options)
    except ValueError as e:
        raise ValueError(f"config.model.{e}") from None


def build_seq(m: ConfigDict) -> seqjax.Seq:
    """``config.model.layers`` stacked recurrent layers of the configured cell
    (bidirectional when ``config.model.bidirectional``), dropout between them; each runs
    as an associative scan over time when ``config.model.parallel`` (a cell linear in its
    carry: min_gru, min_lstm, lru, rg_lru)."""
    cell, parallel = build_cell(m), bool(m.get("parallel", False))
    try:
        layer = seqjax.recurrent(cell, remat=m.get("remat", None), parallel=parallel)
    except ValueError as e:
        if not parallel:
            raise
        raise ValueError(f"config.model.parallel = True: {e}") from None
    if m.get("bidirectional", False):
        layer = seqjax.bidirectional(layer)
    return seqjax.stack(*[layer] * m.get("layers", 1), dropout=m.get("dropout", 0.0))


APIS = ("linen", "nnx")


def with_api(m: ConfigDict, module: Any) -> Any:
    """The task's model for ``config.model.api``: the :mod:`seqjax.nn` linen ``module``
    itself (``"linen"``), or :class:`NnxModel` over it (``"nnx"``)."""
    api = m.get("api", "linen")
    if api not in APIS:
        raise ValueError(f"config.model.api must be one of {APIS}, received {api!r}")
    if api == "linen":
        return module
    from seqjax.nnx.from_linen import has_twin

    if not has_twin(module):
        raise ValueError(
            f"config.model.api = 'nnx' has no NNX twin of {type(module).__name__} (the "
            "recurrent models have one); use config.model.api = 'linen'"
        )
    return NnxModel(module)


class NnxModel:
    """A :mod:`seqjax.nnx` model behind the ``init`` / ``apply`` / ``clone`` calls that the
    tasks make of a linen module, so that every task trains either API with one code path.

    ``init`` is the linen module's (one parameter layout, so the same key gives the same
    initial parameters in both APIs); ``apply`` merges the parameter pytree into the NNX
    twin (:func:`seqjax.nnx.from_linen`) and calls it, inside the jitted step, so the NNX
    module computes every forward and backward pass; dropout draws from an ``nnx.Rngs``
    seeded by the step's key. Checkpoints hold the same pytree for both APIs, so a run
    resumes exactly and its parameters load into either.
    """

    def __init__(self, module: Any):
        self.module = module

    def init(self, key: PRNGKey, *args: Any, **kwargs: Any) -> Params:
        return self.module.init(key, *args, **kwargs)

    def clone(self, **fields: Any) -> NnxModel:
        return NnxModel(self.module.clone(**fields))

    def apply(
        self,
        variables: Params,
        *args: Any,
        method: str | None = None,
        rngs: dict | None = None,
        deterministic: bool = True,
        **kwargs: Any,
    ) -> Any:
        from flax import nnx

        from seqjax.nnx import from_linen

        key = None if rngs is None else rngs.get("dropout")
        model = from_linen(
            self.module,
            variables["params"],
            rngs=None if key is None else nnx.Rngs(dropout=key),
            deterministic=deterministic,
        )
        fn = model if method is None else getattr(model, method)
        return fn(*args, **kwargs)


ARCHS = ("rnn", "transformer")


def transformer_config(m: ConfigDict, max_length: int):
    """The :class:`seqjax.nn.TransformerConfig` of ``config.model.transformer``; its
    ``max_length`` is the task's longest sequence unless the config sets one."""
    from seqjax.nn import TransformerConfig

    t = m.transformer
    try:
        return TransformerConfig(
            model_size=t.model_size,
            num_layers=t.layers,
            num_heads=t.heads,
            mlp_size=t.mlp_size or None,
            max_length=t.max_length or max_length,
            positions=t.positions,
            dropout=t.dropout,
        )
    except ValueError as e:
        raise ValueError(f"config.model.transformer: {e}") from None


def arch(m: ConfigDict) -> str:
    """``config.model.arch``, checked (``"rnn"`` when the config has no such field)."""
    name = m.get("arch", "rnn")
    if name not in ARCHS:
        raise ValueError(f"config.model.arch must be one of {ARCHS}, received {name!r}")
    return name


def build_model(
    m: ConfigDict, *, rnn: Callable[[], Any], transformer: Callable[[Any], Any], max_length: int
) -> Any:
    """The task's model for ``config.model.arch``: ``rnn()`` (which reads
    ``config.model.cell`` and its fields), or ``transformer(TransformerConfig)`` for
    sequences of at most ``max_length`` positions; for ``config.model.api``
    (:func:`with_api`)."""
    module = rnn() if arch(m) == "rnn" else transformer(transformer_config(m, max_length))
    return with_api(m, module)


def describe_model(m: dict) -> str:
    """``"bi-lstm 128 x 2"`` or ``"transformer 128 x 2, 4 heads"``: the README's short name
    of a model config."""
    if m.get("arch", "rnn") == "transformer":
        t = m["transformer"]
        return f"transformer {t['model_size']} x {t['layers']}, {t['heads']} heads"
    cell = f"bi-{m['cell']}" if m.get("bidirectional") else m["cell"]
    layers = m.get("layers", 1)
    return f"{cell} {m['hidden_size']}" + (f" x {layers}" if layers > 1 else "")
