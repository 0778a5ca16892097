"""Orbax checkpoints in ``workdir/checkpoints``, written asynchronously, verified on restore;
the last few and the best are kept.

Orbax writes each checkpoint to a temporary directory and renames it when complete, so a
run killed while saving leaves the previous checkpoints intact. With ``async_save`` (the
trainer's default, ``config.async_checkpoints``) :meth:`Checkpoints.save` returns once the
state is copied off the devices; Orbax writes the files on its own threads while training
goes on, and a worker thread of ours then hashes them and records the digest. The next
save, a restore, :meth:`Checkpoints.wait` and :meth:`Checkpoints.close` wait for the write
in flight, so a run ends only once its last checkpoint is complete; a process killed during
a write leaves a checkpoint without a recorded digest, which a restart passes over. On top
of that, every
checkpoint's files are hashed (SHA-256) once written, and the digest is stored with the
checkpoint's validation metrics and the run's elapsed time in ``workdir/checkpoints.json``
(replaced atomically). A restore checks the digest first: a corrupt, truncated, deleted or
unreadable checkpoint is reported in one line and the run falls back to the newest intact
one (or refuses, with ``strict=True``). Retention is applied here, by step, over every
checkpoint on disk (also those of an earlier process): the ``keep`` latest, plus the steps
the trainer names (the best on validation).
"""

from __future__ import annotations

import hashlib
import json
import os
import pathlib
import sys
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from typing import Any

import jax
import orbax.checkpoint as ocp


class CheckpointError(RuntimeError):
    """No intact checkpoint could be restored where one was required."""


def directory_digest(path: pathlib.Path) -> str:
    """SHA-256 over the relative names and contents of every file under ``path``."""
    h = hashlib.sha256()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        h.update(str(file.relative_to(path)).encode() + b"\0")
        with file.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        h.update(b"\0")
    return h.hexdigest()


def _shapes(tree) -> dict[str, tuple]:
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return {jax.tree_util.keystr(path): tuple(leaf.shape) for path, leaf in leaves}


class Checkpoints:
    """Saves, verifies and restores a train-state pytree by step.

    Args:
      workdir: the experiment's directory; checkpoints go to ``workdir/checkpoints``, their
        digests and metrics to ``workdir/checkpoints.json``.
      keep: how many of the latest checkpoints :meth:`prune` keeps.
      async_save: :meth:`save` returns before the files are written (training goes on);
        without, it returns once the checkpoint is written and its digest recorded.

    In a run of several processes every process calls every method (Orbax's saves are
    collective); only process 0 writes ``checkpoints.json``.
    """

    def __init__(self, workdir: str | pathlib.Path, *, keep: int, async_save: bool = False):
        if isinstance(keep, bool) or int(keep) < 1:
            raise ValueError(f"keep_checkpoints must be >= 1, received {keep!r}")
        self.keep = int(keep)
        self.async_save = bool(async_save)
        self.primary = jax.process_index() == 0
        self.directory = (pathlib.Path(workdir) / "checkpoints").absolute()
        self.index_path = pathlib.Path(workdir).absolute() / "checkpoints.json"
        options = ocp.CheckpointManagerOptions(
            enable_async_checkpointing=self.async_save, cleanup_tmp_directories=True, create=True
        )
        # One worker, so that digests, index writes and deletions happen in the order asked.
        self._worker = ThreadPoolExecutor(1, thread_name_prefix="seqjax-checkpoints")
        self._pending: list[Future] = []
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_handlers=ocp.StandardCheckpointHandler()
        )
        self.index: dict[int, dict] = {}
        if self.index_path.exists():
            try:
                self.index = {int(k): v for k, v in json.loads(self.index_path.read_text()).items()}
            except (ValueError, AttributeError):
                print(
                    f"seqjax: {self.index_path} is unreadable; no checkpoint can be verified",
                    file=sys.stderr,
                )

    def latest_step(self) -> int | None:
        self.wait()
        return self.manager.latest_step()

    def all_steps(self) -> list[int]:
        self.wait()
        return sorted(self.manager.all_steps())

    def record(self, step: int) -> dict:
        """What was stored with ``step``: ``sha256``, ``val`` metrics, ``wall_time_s``."""
        self.wait()
        return self.index.get(step, {})

    def _write_index(self) -> None:
        if not self.primary:
            return
        tmp = self.index_path.with_suffix(".json.tmp")
        tmp.write_text(json.dumps({str(k): v for k, v in sorted(self.index.items())}, indent=1))
        os.replace(tmp, self.index_path)

    def _submit(self, fn: Callable, *args: Any) -> None:
        self._pending.append(self._worker.submit(fn, *args))

    def wait(self) -> None:
        """Waits for the writes, digests and deletions in flight; raises their errors."""
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def save(self, step: int, state: Any, **record: Any) -> None:
        """Writes ``state`` as ``step``, then its digest and ``record`` (metrics, times).

        With ``async_save`` this returns once the state is copied off the devices; the files
        and the digest follow in the background (see :meth:`wait`).
        """
        self.wait()  # one write at a time: the previous one is long done by now, as a rule
        self.manager.save(step, args=ocp.args.StandardSave(state), force=True)
        self._submit(self._finish_save, step, record)
        if not self.async_save:
            self.wait()

    def _finish_save(self, step: int, record: dict) -> None:
        self.manager.wait_until_finished()
        if self.primary:
            digest = directory_digest(self.directory / str(step))
            self.index[step] = {"sha256": digest, **record}
            self._write_index()

    def problem(self, step: int) -> str | None:
        """Why ``step`` cannot be trusted (no digest, a changed digest), or ``None``."""
        self.wait()
        path = self.directory / str(step)
        if not path.is_dir():
            return "its directory is missing"
        want = self.record(step).get("sha256")
        if want is None:
            return "it has no recorded digest (written by an older seqjax or cut short)"
        if directory_digest(path) != want:
            return "its files differ from the digest written with it (corrupt or truncated)"
        return None

    def check_shapes(self, like: Any, step: int) -> None:
        """Raises a ValueError naming every parameter whose shape differs from ``like``'s."""
        try:
            saved = self.manager.item_metadata(step).tree
            saved_params = saved["params"] if isinstance(saved, dict) else saved.params
        except Exception:  # noqa: BLE001 - unreadable metadata shows up as a failed restore
            return
        like_params = like["params"] if isinstance(like, dict) else like.params
        old, new = _shapes(saved_params), _shapes(like_params)
        diffs = [
            f"  params{k}: checkpoint {old.get(k, 'absent')}, this config {new.get(k, 'absent')}"
            for k in sorted(set(old) | set(new))
            if old.get(k) != new.get(k)
        ]
        if diffs:
            shown = diffs[:8] + ([f"  ... and {len(diffs) - 8} more"] if len(diffs) > 8 else [])
            raise ValueError(
                f"the checkpoint at step {step} in {self.directory} was saved by a model of other "
                f"shapes than this config builds ({len(diffs)} parameters differ):\n"
                + "\n".join(shown)
                + "\nuse another --workdir, or --config.resume=fresh to discard this run"
            )

    def restore(self, like: Any, step: int | None = None) -> Any:
        """The state saved at ``step`` (default: the latest), shaped and sharded like ``like``."""
        self.wait()
        step = self.latest_step() if step is None else step
        self.check_shapes(like, step)
        target = jax.tree.map(ocp.utils.to_shape_dtype_struct, like)
        return self.manager.restore(step, args=ocp.args.StandardRestore(target))

    def restore_intact(self, like: Any, *, strict: bool = False) -> tuple[Any, int] | None:
        """``(state, step)`` of the newest checkpoint that verifies and restores, or ``None``
        when there is no checkpoint at all.

        Each one passed over is reported in one line on stderr. Raises:
          CheckpointError: with ``strict``, at the first checkpoint that does not verify or
            restore; without, when checkpoints exist but none is intact.
          ValueError: when the checkpoints hold parameters of other shapes (a changed
            config), which no fallback can mend.
        """
        steps, unusable = self.all_steps(), []
        for step in reversed(steps):
            why = self.problem(step)
            if why is None:
                self.check_shapes(like, step)
                try:
                    state = self.restore(like, step)
                except Exception as e:  # noqa: BLE001 - any failure to read is reported below
                    why = f"it cannot be read ({type(e).__name__}: {str(e).splitlines()[0][:200]})"
                else:
                    self._set_aside(unusable)
                    return state, step
            line = f"seqjax: checkpoint step {step} in {self.directory} is not usable: {why}"
            if strict:
                raise CheckpointError(line + " (--config.resume=strict: not falling back)")
            print(line + "; trying the previous one", file=sys.stderr)
            unusable.append(step)
        if steps:
            raise CheckpointError(
                f"none of the checkpoints {steps} in {self.directory} is intact; use another "
                "--workdir or --config.resume=fresh to start again"
            )
        return None

    def _set_aside(self, steps: list[int]) -> None:
        """Moves unusable checkpoints to ``workdir/checkpoints.unusable`` (kept for a look,
        out of the way of the steps the resumed run writes again)."""
        if not steps:
            return
        aside = self.directory.with_name("checkpoints.unusable")
        aside.mkdir(exist_ok=True)
        for step in steps:
            path = self.directory / str(step)
            if path.exists():
                os.replace(path, aside / f"{step}.{os.getpid()}")
            self.index.pop(step, None)
        self._write_index()
        self.manager.reload()
        print(f"seqjax: set aside steps {sorted(steps)} in {aside}", file=sys.stderr)

    def prune(self, also_keep: Iterable[int | None] = ()) -> None:
        """Deletes every checkpoint but the ``keep`` latest and the steps ``also_keep``
        (after the write in flight, on the worker: training does not wait for it)."""
        self._submit(self._prune, [s for s in also_keep if s is not None])

    def _prune(self, also_keep: list[int]) -> None:
        steps = sorted(self.manager.all_steps())
        kept = set(steps[-self.keep :]) | set(also_keep)
        for step in steps:
            if step not in kept:
                self.manager.delete(step)
        self.index = {k: v for k, v in self.index.items() if k in kept}
        self._write_index()

    def close(self) -> None:
        """Waits for the checkpoint in flight, then releases Orbax's threads."""
        try:
            self.wait()
        finally:
            self._worker.shutdown(wait=True)
            self.manager.close()
