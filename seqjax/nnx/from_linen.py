"""``from_linen(module, params)``: the NNX twin of a :mod:`seqjax.nn` linen module.

Both APIs share one parameter layout, so moving a model from linen to NNX is choosing the
NNX class that matches the linen one and handing it the linen module's fields and its
``variables["params"]``; this module holds that one table.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from flax import nnx

from seqjax import nn as linen
from seqjax.nnx import modules
from seqjax.typing import Params

# linen class -> (NNX class, the linen fields passed positionally, in order)
_TWINS: dict[type, tuple[type, tuple[str, ...]]] = {
    linen.SequenceClassifier: (modules.SequenceClassifier, ("seq", "num_classes")),
    linen.Tagger: (modules.Tagger, ("seq", "num_tags")),
    linen.Forecaster: (modules.Forecaster, ("seq", "features")),
    linen.LanguageModel: (modules.LanguageModel, ("vocab_size", "embed_size", "seq")),
    linen.Seq2Seq: (modules.Seq2Seq, ("src_vocab", "tgt_vocab")),
}


def _fields(module: Any) -> dict[str, Any]:
    return {
        f.name: getattr(module, f.name)
        for f in dataclasses.fields(module)
        if f.name not in ("parent", "name")
    }


def has_twin(module: Any) -> bool:
    """Whether :func:`from_linen` has an NNX module for ``module``."""
    return isinstance(module, linen.Recurrent) or type(module) in _TWINS


def from_linen(
    module: Any,
    params: Params,
    *,
    rngs: nnx.Rngs | None = None,
    deterministic: bool = False,
) -> nnx.Module:
    """The :mod:`seqjax.nnx` module equal to a :mod:`seqjax.nn` linen module, holding
    ``params`` (the linen module's ``variables["params"]``).

    Args:
      module: a :class:`seqjax.nn.Recurrent`, :class:`~seqjax.nn.SequenceClassifier`,
        :class:`~seqjax.nn.Tagger`, :class:`~seqjax.nn.Forecaster`,
        :class:`~seqjax.nn.LanguageModel` or :class:`~seqjax.nn.Seq2Seq`.
      params: its parameter pytree (no copy is made).
      rngs: ``nnx.Rngs`` whose ``dropout`` stream feeds dropout (and scheduled sampling).
      deterministic: start in evaluation mode (no dropout).

    Returns:
      The NNX module, whose outputs equal ``module.apply({"params": params}, ...)`` in
      evaluation mode and whose ``params()`` is ``params``.
    """
    fields = _fields(module) if dataclasses.is_dataclass(module) else None
    mode = {"rngs": rngs, "deterministic": deterministic}
    if isinstance(module, linen.Recurrent):
        assert fields is not None
        seq = fields.pop("seq")
        return modules.Recurrent.from_params(
            seq, params["rnn"], initial_carry=params.get("initial_carry"), **fields, **mode
        )
    twin = _TWINS.get(type(module))
    if twin is None or fields is None:
        known = sorted(c.__name__ for c in (linen.Recurrent, *_TWINS))
        raise TypeError(
            f"from_linen takes a seqjax.nn module ({', '.join(known)}), received "
            f"{type(module).__name__}"
        )
    cls, positional = twin
    args = [fields.pop(name) for name in positional]
    return cls(*args, params=params, **fields, **mode)
