"""The Optax optimizer of an experiment, built from its config."""

from __future__ import annotations

import optax
from ml_collections import ConfigDict


def make_optimizer(config: ConfigDict) -> optax.GradientTransformation:
    """``clip_by_global_norm`` then AdamW on a linear warm-up and cosine decay schedule.

    Config fields: ``learning_rate`` (peak), ``warmup_steps``, ``num_steps`` (the decay
    horizon), ``final_lr_fraction`` (the end of the cosine as a fraction of the peak),
    ``weight_decay``, ``grad_clip`` (global norm; 0 disables clipping).
    """
    schedule = optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=config.learning_rate,
        warmup_steps=config.warmup_steps,
        decay_steps=max(config.num_steps, config.warmup_steps + 1),
        end_value=config.learning_rate * config.final_lr_fraction,
    )
    parts = [optax.clip_by_global_norm(config.grad_clip)] if config.grad_clip > 0 else []
    parts.append(optax.adamw(schedule, weight_decay=config.weight_decay))
    return optax.chain(*parts)
