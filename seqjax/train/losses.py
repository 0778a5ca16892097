"""Masked losses and metrics over padded sequences.

Shapes: ``logits: [b, t, v]``, ``targets: int[b, t]``, ``mask: bool[b, t]`` (True on real
steps). Means are over real steps only.
"""

from __future__ import annotations

import jax.numpy as jnp
import optax

from seqjax._util import length_mask as _length_mask
from seqjax.typing import Array


def length_mask(lengths: Array, t: int) -> Array:
    """``bool[b, t]``: True at steps before each length."""
    return _length_mask(lengths, t)


def _masked_mean(values: Array, mask: Array) -> Array:
    mask = mask.astype(values.dtype)
    return jnp.sum(values * mask) / jnp.maximum(jnp.sum(mask), 1.0)


def sequence_cross_entropy(logits: Array, targets: Array, mask: Array) -> Array:
    """Mean cross-entropy in nats per real step."""
    losses = optax.softmax_cross_entropy_with_integer_labels(logits.astype(jnp.float32), targets)
    return _masked_mean(losses, mask)


def masked_accuracy(logits: Array, targets: Array, mask: Array) -> Array:
    """Fraction of real steps whose arg-max prediction is the target."""
    return _masked_mean((jnp.argmax(logits, -1) == targets).astype(jnp.float32), mask)


def exact_match(predictions: Array, targets: Array, mask: Array) -> Array:
    """Fraction of sequences whose every real step is right."""
    wrong = jnp.any((predictions != targets) & mask, axis=-1)
    return jnp.mean(1.0 - wrong.astype(jnp.float32))


def masked_mse(predictions: Array, targets: Array, mask: Array | None = None) -> Array:
    """Mean squared error, over real steps when ``mask`` is given."""
    err = jnp.square(predictions.astype(jnp.float32) - targets)
    return jnp.mean(err) if mask is None else _masked_mean(err, mask)


def bits_per_char(nats_per_step: Array) -> Array:
    """Cross-entropy in nats per character as bits per character."""
    return nats_per_step / jnp.log(2.0)
