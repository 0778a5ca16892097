"""The input pipeline: the batches of the next steps, built on a background thread and
placed on the devices ahead of use.

A task's training batch is a pure function of the step (``task.train_batch(step,
batch_size)``), so the pipeline is a thread that runs ``make(step)`` for the steps in
order and hands the results over through a queue of ``depth`` slots: while the devices run
step ``s``, the host already builds (and starts copying) the batches of ``s + 1`` to
``s + depth``. Resume stays exact because a resumed run asks for the same steps and gets
the same batches; nothing about the order depends on timing.

Why a thread and not Grain: every built-in task, the file-based ones included, holds its
data in host memory and builds a batch by one fancy-index (or one generator call) of a few
hundred microseconds at most, so one thread keeps ahead of any step we train (see
``docs/training.md`` for the measurement). Grain's worth (worker processes for decoding,
file sharding, checkpointable iterator state) would serve datasets that do not fit in
memory or need per-example decoding; a batch that is a pure function of the step needs no
iterator state to checkpoint, the step is that state.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable, Iterator
from typing import Any

_DONE = object()


class _Failure:
    """An exception raised while building the batch of ``step``, re-raised at that step."""

    def __init__(self, step: int, error: BaseException):
        self.step, self.error = step, error


class Prefetcher:
    """``make(step)`` for ``step`` in ``range(start, stop)``, up to ``depth`` steps ahead.

    Iterating yields ``(step, batch)`` in order. An exception raised by ``make`` is raised
    by the iteration at the step that raised it (not earlier), so a run fails where an
    unprefetched run would. ``depth=0`` builds each batch when it is asked for, on the
    calling thread. :meth:`close` (also on leaving a ``with`` block) stops the thread.

    Args:
      make: ``make(step) -> batch``; called from the background thread.
      start, stop: the steps, as in ``range``.
      depth: how many batches are built ahead of the one in use.
    """

    def __init__(self, make: Callable[[int], Any], start: int, stop: int, *, depth: int = 2):
        if isinstance(depth, bool) or not isinstance(depth, int) or depth < 0:
            raise ValueError(f"data.prefetch must be an int >= 0, received {depth!r}")
        self.make, self.start, self.stop, self.depth = make, start, stop, depth
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        if depth > 0:
            self._queue: queue.Queue = queue.Queue(maxsize=depth)
            self._thread = threading.Thread(target=self._run, name="seqjax-prefetch", daemon=True)
            self._thread.start()

    def _put(self, item: Any) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(item, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def _run(self) -> None:
        for step in range(self.start, self.stop):
            if self._stop.is_set():
                return
            try:
                item = (step, self.make(step))
            except BaseException as e:  # noqa: BLE001 - handed to the consumer, raised there
                self._put(_Failure(step, e))
                return
            if not self._put(item):
                return
        self._put(_DONE)

    def __iter__(self) -> Iterator[tuple[int, Any]]:
        if self._thread is None:
            for step in range(self.start, self.stop):
                yield step, self.make(step)
            return
        while True:
            item = self._queue.get()
            if item is _DONE:
                return
            if isinstance(item, _Failure):
                raise item.error
            yield item

    def close(self) -> None:
        """Stops the background thread (the batches it built ahead are dropped)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def __enter__(self) -> Prefetcher:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
