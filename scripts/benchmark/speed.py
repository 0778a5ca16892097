"""The speed section: seqjax against its peers, train step and forward pass, per cell and
shape (and, with ``--lengths``, the same on a right-padded batch)."""

from __future__ import annotations

import sys
import time

from benchmark.implementations import flax_fns, padded_lengths, seqjax_fns, shape_dict, torch_fns
from benchmark.report import row_text
from benchmark.timing import bench_case

SHAPES = ((64, 128, 128, 256), (16, 512, 64, 128))  # (batch, time, input, hidden)
QUICK_SHAPES = ((4, 16, 8, 16),)


def run_speed(args, shapes, torch_device: str) -> list[dict]:
    """Speed rows per cell and shape: train and forward, then (``--lengths``) the same on a
    right-padded batch, modes ``"train, padded"`` and ``"forward, padded"``."""
    rows = []
    for cell in args.cells:
        for shape in shapes:
            for padded in (False, True) if args.lengths else (False,):
                lengths = padded_lengths(shape) if padded else None
                rows += _speed_rows(args, cell, shape, torch_device, lengths)
    return rows


def _speed_rows(args, cell: str, shape, torch_device: str, lengths) -> list[dict]:
    start = time.perf_counter()
    kw = {"unroll": args.unroll, "lengths": lengths}
    fns = {"seqjax": seqjax_fns(cell, shape, plain=False, **kw)}
    if args.plain:
        fns["seqjax-plain"] = seqjax_fns(cell, shape, plain=True, **kw)
    if "torch" in args.peers:
        fns["torch"] = torch_fns(cell, shape, torch_device, lengths)
    if "flax" in args.peers:
        fns["flax"] = flax_fns(cell, shape, lengths)
    rows = []
    for i, mode in enumerate(("train", "forward")):
        res = bench_case({k: v[i] for k, v in fns.items()}, args.repeats, args.warmup)
        ours = res["seqjax"]["median_ms"]
        ratios = {k: v["median_ms"] / ours for k, v in res.items() if k != "seqjax"}
        peers = [ratios[p] for p in args.peers]
        rows.append(
            {
                "cell": cell,
                "shape": shape_dict(shape),
                "mode": mode if lengths is None else f"{mode}, padded",
                "lengths": None if lengths is None else [int(n) for n in lengths],
                "times": res,
                "ratios": ratios,  # peer median / seqjax median
                "best_peer_ratio": min(peers) if peers else None,
            }
        )
        print(f"  {row_text(rows[-1], args.peers, args.plain)}", file=sys.stderr)
    for row in rows:  # wall time of the case: setup, compilation, both modes' rounds
        row["case_s"] = time.perf_counter() - start
    return rows
