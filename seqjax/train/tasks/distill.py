r"""Knowledge distillation: a student task trained towards a finished run's model.

``--config.distill.teacher=DIR`` names a finished run (its ``summary.json`` and best
checkpoint are loaded; the teacher's architecture may differ from the student's, but not
its data: vocabularies and label sets must be the same).

* **Word level** (Hinton et al. 2015), for every task whose ``logits`` method gives
  ``(logits, targets, mask)`` (charlm, dates, addition, seq2seq, classify, tag):

  .. math::
      L = (1 - \alpha)\, \mathrm{CE}(y, s) + \alpha\, T^2\,
      \mathrm{KL}\big(\operatorname{softmax}(t / T) \,\Vert\, \operatorname{softmax}(s / T)\big),

  averaged over the valid steps, with :math:`s` the student's and :math:`t` the teacher's
  logits; :math:`T^2` keeps the soft term's gradients on the scale of the hard one's as
  :math:`T` grows. The teacher's logits are computed inside the jitted step from its
  parameters (never stored), under ``stop_gradient``.
* **Sequence level** (Kim and Rush 2016), for seq2seq tasks: the student trains on the
  teacher's beam-search outputs for the training sources instead of the references. They
  are generated once and cached as ``.npz`` (keyed by the SHA-256 of the teacher's
  checkpoint, the beam, and the sources), so a resumed or repeated run reuses them. With
  ``alpha > 0`` the word-level term is added on those outputs.

The summary gains ``"distill"``: both models' parameter counts, metrics (the teacher's from
its own summary, the student's on the same test split) and generation speed.
"""

from __future__ import annotations

import hashlib
import pathlib
import time
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from ml_collections import ConfigDict

from seqjax.train import losses
from seqjax.train.runs import Run, count_params, load_run
from seqjax.typing import Array

LEVELS = ("word", "sequence")
SPEED_REPEATS = 3  # timed runs of each generation benchmark (after one to compile)


def distillation_loss(
    student_logits: Array, teacher_logits: Array, mask: Array | None, temperature: float
) -> Array:
    r""":math:`T^2\,\mathrm{KL}(\operatorname{softmax}(t/T) \Vert \operatorname{softmax}(s/T))`
    averaged over the valid positions.

    Args:
      student_logits: ``[..., v]``.
      teacher_logits: ``[..., v]``, the same shape (no gradient flows into them).
      mask: ``bool[...]`` valid positions, or ``None`` for all.
      temperature: ``T > 0``.
    """
    if student_logits.shape != teacher_logits.shape:
        raise ValueError(
            f"student and teacher logits must have the same shape, received "
            f"{student_logits.shape} and {teacher_logits.shape}"
        )
    t = jnp.asarray(temperature, jnp.float32)
    log_q = jax.nn.log_softmax(student_logits.astype(jnp.float32) / t)
    log_p = jax.nn.log_softmax(jax.lax.stop_gradient(teacher_logits).astype(jnp.float32) / t)
    kl = jnp.sum(jnp.exp(log_p) * (log_p - log_q), axis=-1)
    if mask is None:
        mask = jnp.ones(kl.shape, bool)
    return t**2 * losses._masked_mean(kl, mask)


def _check(dc: ConfigDict) -> None:
    if dc.level not in LEVELS:
        raise ValueError(f"distill.level must be one of {LEVELS}, received {dc.level!r}")
    if not dc.temperature > 0:
        raise ValueError(f"distill.temperature must be > 0, received {dc.temperature!r}")
    if not 0.0 <= dc.alpha <= 1.0:
        raise ValueError(f"distill.alpha must lie in [0, 1], received {dc.alpha!r}")
    if dc.level == "word" and dc.alpha == 0.0:
        raise ValueError("distill.level='word' with alpha=0 would ignore the teacher")


def _state(obj: Any) -> Any:
    """Comparable contents of a vocabulary or label set."""
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    if hasattr(obj, "__dict__"):
        return {k: _state(v) for k, v in vars(obj).items() if not k.startswith("_")}
    if isinstance(obj, dict):
        return {k: _state(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_state(v) for v in obj]
    return obj


def _check_same_data(student: Any, teacher: Run) -> None:
    if type(student).__name__ != type(teacher.task).__name__:
        raise ValueError(
            f"the teacher in {teacher.workdir} was trained on {teacher.config.task!r}, the "
            f"student on {getattr(student, 'name', type(student).__name__)!r}: distillation "
            "needs the same task"
        )
    for attr in ("vocab", "src_vocab", "tgt_vocab", "labels"):
        a, b = getattr(student, attr, None), getattr(teacher.task, attr, None)
        if a is not None and b is not None and _state(a) != _state(b):
            raise ValueError(
                f"the teacher in {teacher.workdir} has another {attr} than the student "
                f"({len(b)} against {len(a)} entries): train both on the same data"
            )


def _seconds(fn) -> float:
    """Best wall time of ``fn()`` (blocked until ready) over a few runs after a warm-up."""
    jax.block_until_ready(fn())
    best = float("inf")
    for _ in range(SPEED_REPEATS):
        start = time.perf_counter()
        jax.block_until_ready(fn())
        best = min(best, time.perf_counter() - start)
    return best


def generation_speed(task: Any, params: Any) -> dict[str, float]:
    """How fast a trained model generates: greedy decoding of the test sources (seq2seq,
    sequences and tokens per second) or sampling 16 streams of 256 characters (charlm);
    otherwise test examples per second of evaluation."""
    if hasattr(task, "_decode") and "src" in task.splits["test"]:
        test = task.splits["test"]
        n = min(len(test["src"]), 500)
        src, lengths = test["src"][:n], test["src_lengths"][:n]
        seconds = _seconds(lambda: task._decode(params, src, lengths)[0])
        tokens = np.asarray(task._decode(params, src, lengths)[0])
        emitted = int((tokens != task.tgt_vocab.PAD).sum())
        return {"sequences_per_s": n / seconds, "tokens_per_s": emitted / seconds}
    if hasattr(task, "model") and hasattr(task.model, "generate"):
        streams, chars = 16, 256
        prompt = jnp.asarray(task.vocab.encode_array(task.texts["test"][:16]))[None]
        prompt = jnp.repeat(prompt, streams, axis=0)
        gen = jax.jit(
            lambda p, k: (
                task.model.apply(
                    p, prompt, k, max_length=chars, temperature=1.0, method="generate"
                ).tokens
            )
        )
        seconds = _seconds(lambda: gen(params, jax.random.PRNGKey(0)))
        return {"chars_per_s": streams * chars / seconds}
    start = time.perf_counter()
    task.evaluate(params, "test")
    return {"evaluate_test_s": time.perf_counter() - start}


class DistillTask:
    """A student task whose loss also follows a teacher (word or sequence level).

    Args:
      student: the task to train (any built-in task with a ``logits`` method).
      config: the experiment config; ``config.distill``: ``teacher`` (a finished run's
        workdir), ``temperature``, ``alpha`` (weight of the soft term), ``level``
        (``"word"`` or ``"sequence"``), ``beam_size`` and ``cache_dir`` (where sequence-level
        outputs are cached; empty: ``TEACHER/distill``).
      teacher: an already loaded run (default: ``load_run(config.distill.teacher)``).
    """

    def __init__(self, student: Any, config: ConfigDict, teacher: Run | None = None):
        dc = config.distill
        _check(dc)
        if not hasattr(student, "logits"):
            raise ValueError(
                f"the {getattr(student, 'name', type(student).__name__)} task has no logits "
                "(its outputs are not distributions): it cannot be distilled"
            )
        self.student, self.config = student, config
        self.name = student.name
        self.eval_metric, self.eval_mode = student.eval_metric, student.eval_mode
        self.temperature, self.alpha, self.level = float(dc.temperature), float(dc.alpha), dc.level
        self.teacher = teacher if teacher is not None else load_run(dc.teacher)
        _check_same_data(student, self.teacher)
        self._teacher_params = jax.device_put(self.teacher.params)
        self.sequence_cache: dict[str, Any] = {}
        if self.level == "sequence":
            self._use_teacher_outputs(dc)

    # ------------------------------------------------------------------ sequence level

    def _cache_path(self, dc: ConfigDict) -> pathlib.Path:
        train = self.student.train
        h = hashlib.sha256()
        h.update(self.teacher.digest.encode())
        h.update(f"beam={dc.beam_size};max_length={self.student.max_length}".encode())
        h.update(np.ascontiguousarray(train["src"]).tobytes())
        h.update(np.ascontiguousarray(train["src_lengths"]).tobytes())
        root = pathlib.Path(dc.cache_dir) if dc.cache_dir else self.teacher.workdir / "distill"
        return root / f"teacher_beam_{h.hexdigest()[:20]}.npz"

    def _beam_outputs(self, dc: ConfigDict) -> tuple[np.ndarray, np.ndarray]:
        teacher, student = self.teacher.task, self.student
        decode = jax.jit(
            lambda p, s, n: teacher.model.apply(
                p,
                s,
                n,
                max_length=student.max_length,
                strategy="beam",
                beam_size=int(dc.beam_size),
                method="decode",
            )
        )
        from seqjax.train.tasks.base import chunks

        tokens, lengths = [], []
        for batch, _ in chunks({k: student.train[k] for k in ("src", "src_lengths")}):
            out = decode(self._teacher_params, batch["src"], batch["src_lengths"])
            tokens.append(np.asarray(out.tokens[..., 0, :]))
            lengths.append(np.asarray(out.lengths[..., 0]))
        return np.concatenate(tokens).astype(np.int32), np.concatenate(lengths).astype(np.int32)

    def _use_teacher_outputs(self, dc: ConfigDict) -> None:
        student = self.student
        if not hasattr(student, "max_length") or "src" not in getattr(student, "train", {}):
            raise ValueError(
                f"distill.level='sequence' needs a seq2seq task, received {self.name!r}"
            )
        path = self._cache_path(dc)
        reused = path.is_file()
        start = time.perf_counter()
        if reused:
            with np.load(path) as f:
                tokens, lengths = f["tgt"], f["tgt_lengths"]
        else:
            tokens, lengths = self._beam_outputs(dc)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.stem + ".tmp.npz")
            np.savez(tmp, tgt=tokens, tgt_lengths=lengths)
            tmp.replace(path)
        refs = student.train["tgt"]
        width = student.max_length
        refs = np.pad(refs, ((0, 0), (0, width - refs.shape[1])))
        same = np.all(tokens == refs, axis=-1)
        student.train = {**student.train, "tgt": tokens, "tgt_lengths": lengths}
        self.sequence_cache = {
            "path": str(path),
            "reused": reused,
            "seconds": time.perf_counter() - start,
            "teacher_outputs_equal_references": float(same.mean()),
        }

    # ------------------------------------------------------------------ the Task protocol

    def init(self, key):
        return self.student.init(key)

    def train_batch(self, step, batch_size):
        return self.student.train_batch(step, batch_size)

    def evaluate(self, params, split):
        return self.student.evaluate(params, split)

    def loss(self, params, batch, key):
        logits, targets, mask = self.student.logits(params, batch, key)
        full = jnp.ones(targets.shape, bool) if mask is None else mask
        hard = losses.sequence_cross_entropy(logits, targets, full)
        aux = {"hard_loss": hard, "accuracy": losses.masked_accuracy(logits, targets, full)}
        if self.alpha == 0.0:
            return hard, aux
        t_logits, _, _ = self.teacher.task.logits(self._teacher_params, batch, None)
        soft = distillation_loss(logits, t_logits, full, self.temperature)
        aux["soft_loss"] = soft
        return (1.0 - self.alpha) * hard + self.alpha * soft, aux

    def report(self, params, workdir):
        extras = dict(self.student.report(params, workdir))
        teacher = self.teacher
        extras["distill"] = {
            "teacher": str(teacher.workdir),
            "level": self.level,
            "temperature": self.temperature,
            "alpha": self.alpha,
            "teacher_model": dict(teacher.config.model),
            "teacher_params": count_params(teacher.params),
            "student_params": count_params(params),
            "teacher_metrics": teacher.summary.get("eval", {}),
            "student_metrics": self.student.evaluate(params, "test"),
            "teacher_speed": generation_speed(teacher.task, teacher.params),
            "student_speed": generation_speed(self.student, params),
            **({"sequence_cache": self.sequence_cache} if self.sequence_cache else {}),
        }
        return extras

    def __getattr__(self, name):
        # Task-specific extras (readme_row, vocabularies, splits) are the student's.
        if name == "student":
            raise AttributeError(name)
        return getattr(self.student, name)


def maybe_distill(task: Any, config: ConfigDict) -> Any:
    """``task`` wrapped in a :class:`DistillTask` when ``config.distill.teacher`` is set."""
    dc = config.get("distill")
    if dc is None or not dc.get("teacher"):
        return task
    return DistillTask(task, config)
