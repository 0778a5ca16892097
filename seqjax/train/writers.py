"""Metrics as JSON lines (``workdir/metrics.jsonl``) and TensorBoard event files."""

from __future__ import annotations

import json
import math
import pathlib
from collections.abc import Mapping


def _plain(value):
    value = float(value)
    return value if math.isfinite(value) else str(value)


class MetricWriter:
    """Appends ``{"step", "split", **metrics}`` lines; on resume drops lines past the step."""

    def __init__(self, workdir: str | pathlib.Path, resume_step: int = 0, tensorboard: bool = True):
        self.path = pathlib.Path(workdir) / "metrics.jsonl"
        if self.path.exists():
            kept = [
                line
                for line in self.path.read_text().splitlines()
                if line.strip() and json.loads(line)["step"] <= resume_step
            ]
            self.path.write_text("".join(line + "\n" for line in kept))
        self._file = self.path.open("a")
        self._tb = None
        if tensorboard:
            from tensorboardX import SummaryWriter

            self._tb = SummaryWriter(str(pathlib.Path(workdir) / "tensorboard"))

    def write(self, step: int, split: str, metrics: Mapping[str, float]) -> None:
        record = {"step": int(step), "split": split, **{k: _plain(v) for k, v in metrics.items()}}
        self._file.write(json.dumps(record) + "\n")
        self._file.flush()
        if self._tb is not None:
            for name, value in metrics.items():
                self._tb.add_scalar(f"{split}/{name}", float(value), int(step))

    def flush(self) -> None:
        """Makes every point written so far durable (called with each checkpoint)."""
        self._file.flush()
        if self._tb is not None:
            self._tb.flush()

    def rewrite_tensorboard(self, records, after: int) -> None:
        """Writes the TensorBoard points of ``records`` past step ``after`` again (those a
        killed process may not have flushed)."""
        if self._tb is None:
            return
        for r in records:
            if r["step"] > after:
                for name, value in r.items():
                    if name not in ("step", "split"):
                        self._tb.add_scalar(f"{r['split']}/{name}", float(value), int(r["step"]))
        self._tb.flush()

    def close(self) -> None:
        self._file.close()
        if self._tb is not None:
            self._tb.close()


def read_metrics(workdir: str | pathlib.Path) -> list[dict]:
    """The records of ``workdir/metrics.jsonl``."""
    path = pathlib.Path(workdir) / "metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]
