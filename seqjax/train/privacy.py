r"""Differentially private training: DP-SGD (Abadi et al. 2016) with Poisson sampling.

Each step samples every training example independently with probability :math:`q`
(``sampling_rate = batch_size / n``), computes one gradient per example (``jax.vmap`` of
the gradient, through the fused fast paths), clips each to norm ``C = clip_norm``, sums
them, adds Gaussian noise :math:`\mathcal{N}(0, \sigma^2 C^2 I)` with
:math:`\sigma` = ``noise_multiplier``, and divides by the expected batch size :math:`qn`:

.. math::
    \tilde g = \frac{1}{q n}\Big(\sum_{i \in B} g_i \min\big(1, C / \lVert g_i \rVert\big)
    + \mathcal{N}(0, \sigma^2 C^2 I)\Big)

The privacy spent is computed by Google's ``dp-accounting`` (the accountant behind
TensorFlow Privacy and JAX Privacy, maintained with them) for the composed
Poisson-subsampled Gaussian mechanism: Renyi DP (``"rdp"``, Mironov 2017) or privacy loss
distributions (``"pld"``, tighter). It is a small pure-Python dependency, where
``jax-privacy`` would bring its own training loop and model wrappers that seqjax has.

The sampled batch varies in size; to keep one compiled step it is laid out in a fixed
physical batch of ``ceil(qn + 6 sqrt(qn))`` rows with a per-row weight (1 sampled, 0
padding). A draw larger than that (probability below 1e-9 per step) keeps its first rows;
the summary counts such steps (``truncated_steps``, zero in every run so far).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax
from ml_collections import ConfigDict

from seqjax.typing import Array, Params, PRNGKey

WEIGHT = "dp_weight"  # the batch entry that marks sampled rows (1) and padding (0)
ACCOUNTANTS = ("rdp", "pld")


def check_privacy_config(p: ConfigDict) -> None:
    """Raises ``ValueError`` naming the first bad field of ``config.privacy``."""
    if not p.clip_norm > 0:
        raise ValueError(f"privacy.clip_norm must be > 0, received {p.clip_norm!r}")
    if p.target_epsilon < 0:
        raise ValueError(f"privacy.target_epsilon must be >= 0, received {p.target_epsilon!r}")
    if not p.target_epsilon and not p.noise_multiplier > 0:
        raise ValueError(
            f"privacy.noise_multiplier must be > 0 (or set target_epsilon), received "
            f"{p.noise_multiplier!r}"
        )
    if not 0 < p.delta < 1:
        raise ValueError(f"privacy.delta must lie in (0, 1), received {p.delta!r}")
    if p.accountant not in ACCOUNTANTS:
        raise ValueError(
            f"privacy.accountant must be one of {ACCOUNTANTS}, received {p.accountant!r}"
        )


# --------------------------------------------------------------------------- accounting


def _event(noise_multiplier: float, sampling_rate: float, steps: int):
    import dp_accounting

    step = dp_accounting.PoissonSampledDpEvent(
        sampling_rate, dp_accounting.GaussianDpEvent(noise_multiplier)
    )
    return dp_accounting.SelfComposedDpEvent(step, steps)


def _accountant(name: str):
    import dp_accounting

    if name == "rdp":
        return dp_accounting.rdp.RdpAccountant()
    return dp_accounting.pld.PLDAccountant()


def epsilon(
    noise_multiplier: float, sampling_rate: float, steps: int, delta: float, accountant: str
) -> float:
    """The epsilon spent by ``steps`` Poisson-sampled Gaussian steps at ``delta``."""
    acc = _accountant(accountant)
    acc.compose(_event(noise_multiplier, sampling_rate, steps))
    return float(acc.get_epsilon(delta))


def noise_for_epsilon(
    target_epsilon: float, sampling_rate: float, steps: int, delta: float, accountant: str
) -> float:
    """The smallest noise multiplier whose ``steps`` steps spend at most ``target_epsilon``."""
    import dp_accounting

    return float(
        dp_accounting.calibrate_dp_mechanism(
            lambda: _accountant(accountant),
            lambda sigma: _event(sigma, sampling_rate, steps),
            target_epsilon,
            delta,
            bracket_interval=dp_accounting.LowerEndpointAndGuess(1e-2, 1.0),
        )
    )


# --------------------------------------------------------------------------- sampling


def physical_batch(expected: float, multiple: int = 1) -> int:
    """Rows of the fixed batch that holds a Poisson draw of mean ``expected``."""
    rows = math.ceil(expected + 6 * math.sqrt(expected)) + 1
    return -(-rows // multiple) * multiple


class PoissonSampler:
    """Step ``s``'s Poisson sample of ``n`` examples: a pure function of ``(seed, s)``.

    Args:
      n: training examples.
      sampling_rate: the probability ``q`` that an example is in a step's batch.
      rows: the physical batch size (:func:`physical_batch`).
      seed: the run's seed.
    """

    def __init__(self, n: int, sampling_rate: float, rows: int, seed: int):
        self.n, self.q, self.rows, self.seed = n, sampling_rate, rows, seed

    def chosen(self, step: int) -> np.ndarray:
        """The indices that step ``step`` samples, before any truncation."""
        rng = np.random.default_rng([self.seed, step, 0xD9])
        return np.flatnonzero(rng.random(self.n) < self.q)

    def indices(self, step: int) -> tuple[np.ndarray, np.ndarray]:
        """``(index, weight)``: ``rows`` example indices and their weights (0: padding)."""
        chosen = self.chosen(step)[: self.rows]
        index = np.zeros(self.rows, np.int64)
        index[: len(chosen)] = chosen
        weight = np.zeros(self.rows, np.float32)
        weight[: len(chosen)] = 1.0
        return index, weight


# --------------------------------------------------------------------------- gradients


def per_example_grads(
    loss_fn: Callable[..., tuple[Array, dict]], params: Params, batch: dict, key: PRNGKey | None
) -> tuple[Array, dict, Params]:
    """``(losses [n], aux of [n] arrays, grads with a leading [n] axis)``: each row of
    ``batch`` as a batch of one, through ``jax.vmap`` of the gradient."""
    n = len(next(iter(jax.tree.leaves(batch))))
    keys = None if key is None else jax.random.split(key, n)

    def one(example, k):
        single = jax.tree.map(lambda a: a[None], example)
        (loss, aux), grads = jax.value_and_grad(loss_fn, has_aux=True)(params, single, k)
        return loss, aux, grads

    return jax.vmap(one)(batch, keys)


def private_value_and_grad(
    loss_fn: Callable[..., tuple[Array, dict]],
    *,
    clip_norm: float,
    noise_multiplier: float,
    expected_batch: float,
) -> Callable[[Params, dict, PRNGKey], tuple[tuple[Array, dict], Params]]:
    """A ``jax.value_and_grad(loss_fn, has_aux=True)`` for DP-SGD.

    The batch carries ``batch["dp_weight"]`` (1 for sampled rows, 0 for padding); the
    returned gradient is the clipped, summed and noised one over ``expected_batch``, the
    loss and aux are means over the sampled rows, and aux gains ``clipped_fraction``
    (rows whose gradient norm exceeded ``clip_norm``) and ``sampled`` (rows in the batch).
    """

    def value_and_grad(params: Params, batch: dict, key: PRNGKey) -> tuple[tuple, Params]:
        weight = batch[WEIGHT]
        examples = {k: v for k, v in batch.items() if k != WEIGHT}
        k_loss, k_noise = jax.random.split(key)
        losses, aux, grads = per_example_grads(loss_fn, params, examples, k_loss)
        norms = jax.vmap(optax.tree.norm)(grads)
        scale = weight * jnp.minimum(1.0, clip_norm / jnp.maximum(norms, 1e-12))
        leaves, treedef = jax.tree.flatten(grads)
        noise_keys = jax.random.split(k_noise, len(leaves))
        noised = [
            (
                jnp.tensordot(scale, g.astype(jnp.float32), axes=1)
                + noise_multiplier * clip_norm * jax.random.normal(k, g.shape[1:], jnp.float32)
            ).astype(g.dtype)
            / expected_batch
            for g, k in zip(leaves, noise_keys)
        ]
        sampled = jnp.sum(weight)

        def mean(v: Array) -> Array:
            return jnp.sum(weight * v) / jnp.maximum(sampled, 1.0)

        metrics = {k: mean(v) for k, v in aux.items()}
        metrics["clipped_fraction"] = mean((norms > clip_norm).astype(jnp.float32))
        metrics["sampled"] = sampled
        return (mean(losses), metrics), jax.tree.unflatten(treedef, noised)

    return value_and_grad


# --------------------------------------------------------------------------- the run


class Privacy:
    """What a private run needs besides the step: the sampler and the accounting.

    Args:
      config: the run's config (``privacy``, ``batch_size``, ``num_steps``, ``seed``).
      task: a task with a finite training set: ``num_train`` and ``train_examples(index)``.
      devices: the number of devices (the physical batch is a multiple of it).
    """

    def __init__(self, config: ConfigDict, task: Any, devices: int = 1):
        p = config.privacy
        check_privacy_config(p)
        if not hasattr(task, "num_train") or not hasattr(task, "train_examples"):
            raise ValueError(
                f"privacy needs a task with a finite training set (num_train and "
                f"train_examples(index)); {type(task).__name__} draws fresh examples per step"
            )
        n = int(task.num_train)
        if config.batch_size >= n:
            raise ValueError(
                f"privacy samples batches of expected size batch_size ({config.batch_size}) "
                f"from {n} training examples; batch_size must be smaller"
            )
        self.config, self.task = p, task
        self.sampling_rate = config.batch_size / n
        self.steps = config.num_steps
        if p.target_epsilon:
            self.noise_multiplier = noise_for_epsilon(
                p.target_epsilon, self.sampling_rate, self.steps, p.delta, p.accountant
            )
        else:
            self.noise_multiplier = float(p.noise_multiplier)
        self.expected_batch = float(config.batch_size)
        rows = physical_batch(self.expected_batch, devices)
        self.sampler = PoissonSampler(n, self.sampling_rate, rows, config.seed)

    def value_and_grad(self, loss_fn: Callable) -> Callable:
        return private_value_and_grad(
            loss_fn,
            clip_norm=float(self.config.clip_norm),
            noise_multiplier=self.noise_multiplier,
            expected_batch=self.expected_batch,
        )

    def train_batch(self, step: int) -> dict[str, np.ndarray]:
        """Step ``step``'s Poisson sample in the physical batch, with its weights."""
        index, weight = self.sampler.indices(step)
        return {**self.task.train_examples(index), WEIGHT: weight}

    def summary(self, steps: int) -> dict[str, Any]:
        """The summary's ``"privacy"`` entry for ``steps`` steps taken."""
        p = self.config
        return {
            "epsilon": epsilon(
                self.noise_multiplier, self.sampling_rate, steps, p.delta, p.accountant
            ),
            "delta": float(p.delta),
            "noise_multiplier": self.noise_multiplier,
            "clip_norm": float(p.clip_norm),
            "sampling_rate": self.sampling_rate,
            "steps": steps,
            "accountant": f"dp-accounting {p.accountant}",
            "physical_batch": self.sampler.rows,
            "truncated_steps": sum(
                len(self.sampler.chosen(s)) > self.sampler.rows for s in range(steps)
            ),
        }
