"""The results as markdown (the tables ``make bench`` prints) and the JSON's machine block.

Every section's rows come in as the JSON holds them; the one-line texts of a speed row and
a parallel-scan row are also what the sections print to stderr while they run.
"""

from __future__ import annotations

import json
import os
import platform
import statistics

import jax
import numpy as np


def ms(x: float | None) -> str:
    return "-" if x is None else f"{x:.1f}" if x >= 10 else f"{x:.2f}"


def _shape_text(s: dict) -> str:
    return f"{s['batch']}/{s['time']}/{s['input']}/{s['hidden']}"


def row_text(row: dict, peers, plain: bool) -> str:
    """A speed row as a line of the speed table."""
    t = row["times"]
    names = ["seqjax", *(["seqjax-plain"] if plain else []), *peers]
    cols = [row["cell"], _shape_text(row["shape"]), row["mode"]]
    cols += [ms(t[n]["median_ms"]) for n in names]
    cols += [f"{row['ratios'][n]:.2f}x" for n in names[1:]]
    cols.append("-" if row["best_peer_ratio"] is None else f"{row['best_peer_ratio']:.2f}x")
    cols.append(" / ".join(f"{t[n]['first_call_ms'] / 1e3:.2f}" for n in names))
    cols.append(" / ".join(f"{t[n]['cores_used']:.1f}" for n in names))
    cols.append(" / ".join(f"{t[n]['faults_per_call']:.0f}" for n in names))
    return "| " + " | ".join(cols) + " |"


def parallel_text(row: dict) -> str:
    """A parallel-scan speed row as a line of its table."""
    t = row["times"]
    seq, par = t["sequential"], t["parallel"]
    cols = [row["cell"], _shape_text(row["shape"]), row["mode"]]
    cols += [ms(seq["median_ms"]), ms(par["median_ms"])]
    cols += [f"{row['speedup']:.2f}x", f"{seq['cores_used']:.1f} / {par['cores_used']:.1f}"]
    return "| " + " | ".join(cols) + " |"


def markdown(result: dict) -> str:
    """The whole report: the speed table, then each section the run has."""
    peers = result["config"]["peers"]
    plain = result["config"]["plain"]
    names = ["seqjax", *(["seqjax-plain"] if plain else []), *peers]
    head = ["cell", "b/t/d/h", "pass", *(f"{n} ms" for n in names)]
    head += [f"{n}/seqjax" for n in names[1:]]
    head += ["best peer/seqjax", "first call s (" + " / ".join(names) + ")"]
    head.append("cores (" + " / ".join(names) + ")")
    head.append("page faults a call (" + " / ".join(names) + ")")
    lines = [f"Machine: {result['machine']['summary']}"]
    if result["config"].get("keep_freed_memory"):
        lines.append(
            "Allocator: freed memory kept for reuse (seqjax.kernels.cpu.keep_freed_memory)"
        )
    lines.append("")
    lines += ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += [row_text(r, peers, plain) for r in result["speed"]]
    padded = [r for r in result["speed"] if r.get("lengths") is not None]
    if padded:
        lines += _padded_text(padded, result["config"]["lengths_seed"])
    if result.get("memory"):
        lines += _memory_markdown(result["memory"], result.get("long_run"))
    if result.get("trainer"):
        lines += _trainer_text(result["trainer"])
    if result.get("parallel"):
        lines += _parallel_markdown(result["parallel"])
    if result.get("profile"):
        lines += ["", "Where the seqjax time goes (XLA's CPU profiler), per case:", "", "```"]
        for row in result["profile"]:
            lines += [*_profile_text(row), ""]
        lines[-1] = "```"
    return "\n".join(lines)


def _padded_text(padded: list[dict], seed: int) -> list[str]:
    seconds = sum(r["case_s"] for r in padded if r["mode"].startswith("train"))
    return [
        "",
        "padded: right-padded batch, lengths uniform in [t/2, t] (seed "
        f"{seed}, the same for all), outputs times the mask "
        "steps < lengths; seqjax lengths=, torch pack_padded_sequence / pad_packed_sequence, "
        f"Flax nn.RNN seq_lengths=. These rows took {seconds:.0f} s of the run; mean length: "
        + ", ".join(
            dict.fromkeys(
                f"t={r['shape']['time']} (batch {r['shape']['batch']}): "
                f"{statistics.mean(r['lengths']):.1f}"
                for r in padded
            )
        )
        + ".",
    ]


def _memory_markdown(mem: list[dict], run: dict | None) -> list[str]:
    m0 = mem[0]
    lines = [
        "",
        f"LSTM train step memory (batch {m0['batch']}, input {m0['input']}, "
        f"hidden {m0['hidden']}), MiB from the compiled memory analysis "
        "(temporaries + arguments + outputs):",
        "",
    ]
    times = sorted({r["time"] for r in mem})
    labels = list(dict.fromkeys(r["variant"] for r in mem))
    head = " | ".join(f"t={t}" for t in times)
    lines.append(f"| remat | {head} | growth t={times[0]}->{times[-1]} |")
    lines.append("|" + "---|" * (len(times) + 2))
    for label in labels:
        by_t = {r["time"]: r for r in mem if r["variant"] == label}
        cells = [f"{by_t[t]['total_bytes'] / 2**20:.1f}" for t in times]
        growth = by_t[times[-1]]["total_bytes"] / by_t[times[0]]["total_bytes"]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {growth:.1f}x |")
    if run:
        lines += [
            "",
            f"Ran the t={run['time']} train step with remat={run['remat']!r}: "
            f"{run['run_ms'] / 1e3:.1f} s per step (first call {run['first_call_ms'] / 1e3:.1f}"
            f" s), process peak RSS {run['process_max_rss_bytes'] / 2**30:.2f} GiB.",
        ]
    return lines


def _trainer_text(row: dict) -> list[str]:
    lines = [
        "",
        f"Trainer ({row['task']}, batch {row['batch_size']}, {row['steps']} steps, "
        f"{len(row['rounds']['trainer_examples_per_s'])} rounds in turn, medians): "
        f"train_and_evaluate {row['trainer_examples_per_s']:.0f} examples/s, a bare loop of "
        f"the same jitted step on the same batches {row['bare_examples_per_s']:.0f}: "
        f"ratio {row['ratio']:.3f} (target >= 0.95; rounds "
        + ", ".join(
            f"{t / b:.2f}"
            for t, b in zip(
                row["rounds"]["trainer_examples_per_s"], row["rounds"]["bare_examples_per_s"]
            )
        )
        + "). Step time float32 "
        f"{row['step_ms']['float32']:.2f} ms, bfloat16 {row['step_ms']['bfloat16']:.2f} ms "
        f"({row['bf16_over_f32']:.2f}x).",
        "",
        f"DP-SGD step (per-example gradients, clipping, noise) "
        f"{row['dp_step_ms']['private']:.2f} ms against the ordinary step "
        f"{row['dp_step_ms']['plain']:.2f} ms: {row['dp_over_plain']:.2f}x.",
        "",
        "| checkpoint of | sync: loop blocked ms | async: loop blocked ms |",
        "|---|---|---|",
    ]
    for label, t in row["checkpoint_blocked_ms"].items():
        lines.append(f"| {label} | {t['sync']:.1f} | {t['async']:.1f} |")
    return lines


def _parallel_markdown(section: dict) -> list[str]:
    lines = [
        "",
        "Parallel (associative) scan against the same cell's sequential scan "
        "(sequential / parallel: above 1 the parallel scan is faster):",
        "",
        "| cell | b/t/d/h | pass | sequential ms | parallel ms | speed-up | cores (seq / par) |",
        "|---|---|---|---|---|---|---|",
    ]
    lines += [parallel_text(r) for r in section["speed"]]
    mem = section["memory"]
    if mem:
        m0 = mem[0]
        lines += [
            "",
            f"Their train step memory at t={m0['time']} (batch {m0['batch']}, input "
            f"{m0['input']}, hidden {m0['hidden']}), MiB from the compiled memory analysis:",
            "",
            "| cell | sequential | sequential, remat sqrt | parallel | parallel, remat |",
            "|---|---|---|---|---|",
        ]
        order = [("sequential", None), ("sequential", "sqrt"), ("parallel", None)]
        order.append(("parallel", "sqrt"))
        for cell in dict.fromkeys(r["cell"] for r in mem):
            by = {
                (r["scan"], r["remat"]): r["total_bytes"] / 2**20 for r in mem if r["cell"] == cell
            }
            lines.append(f"| {cell} | " + " | ".join(f"{by[k]:.1f}" for k in order) + " |")
    return lines


def _profile_text(row: dict) -> list[str]:
    s, p = row["shape"], row["seqjax"]
    lines = [
        f"{row['cell']} {_shape_text(s)} {row['mode']}: "
        f"seqjax {ms(p['wall_ms'])} ms per call ({ms(p['traced_wall_ms'])} ms traced), "
        f"XLA ops {ms(p['op_ms'])} ms per call summed over threads "
        f"({p['calls_traced']} calls traced)",
        f"  {'category':<40} {'ms/call':>8} {'%':>6} {'calls':>7}",
    ]
    for name, c in p["categories"].items():
        lines.append(f"  {name:<40} {c['ms']:8.2f} {c['percent']:6.1f} {c['calls']:7.0f}")
    lines.append(f"  {'thread-pool waits (inside matmuls)':<40} {p['pool_wait_ms']:8.2f}")
    lines.append(
        f"  ops that run once per step: {p['per_step_us']:.1f} us per step (t={s['time']})"
    )
    lines.append(f"  {'top ops':<40} {'ms/call':>8} {'%':>6} {'calls':>7} {'us/call':>8}  category")
    for r in p["top_ops"]:
        lines.append(
            f"  {r['name']:<40} {r['ms']:8.2f} {r['percent']:6.1f} {r['calls']:7.0f} "
            f"{r['us_per_call']:8.1f}  {r['category']}"
        )
    if "torch_top_ops" in row:
        lines.append(f"  {'torch top ops, self CPU':<40} {'ms/call':>8} {'calls':>14}  name")
        for r in row["torch_top_ops"]:
            lines.append(f"  {'':<40} {r['self_ms']:8.2f} {r['calls']:14.0f}  {r['name']}")
    return lines


def machine_info(torch_device: str) -> dict:
    """The JSON's ``"machine"``: CPU, cores, backends and versions, and a one-line summary."""
    import flax
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if "model name" in line)
    except (OSError, StopIteration):
        pass
    gpu = torch.cuda.get_device_name(0) if torch_device == "cuda" else None
    jax_dev = str(jax.devices()[0].device_kind)
    summary = f"{cpu}, {os.cpu_count()} cores; jax on {jax.default_backend()} ({jax_dev})"
    summary += f", torch on {torch_device}" + (f" ({gpu})" if gpu else "")
    return {
        "summary": summary,
        "cpu": cpu,
        "cores": os.cpu_count(),
        "jax_backend": jax.default_backend(),
        "jax_device": jax_dev,
        "torch_device": torch_device,
        "gpu": gpu,
        "versions": {
            "python": platform.python_version(),
            "jax": jax.__version__,
            "flax": flax.__version__,
            "torch": torch.__version__,
            "numpy": np.__version__,
        },
    }


def save(result: dict, path: str) -> None:
    """Writes the results as JSON (indent 1)."""
    with open(path, "w") as f:
        json.dump(result, f, indent=1)
