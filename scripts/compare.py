"""Every architecture at a matched parameter budget on four tasks: one README table.

``python scripts/compare.py`` (``make compare``) trains each architecture (every cell of
``seqjax.CELLS`` and the Transformer) on the adding problem, the copy task, the character
LM and dates, each sized so that its parameter count matches the LSTM's at the task's
config (within a few percent; the counts are printed), into ``runs/compare/TASK/ARCH``.
It then rewrites the table between the README's ``compare`` markers and plots each task's
test metric against the training time (``docs/compare.png``). Every figure of the table
comes from a run: the metric from its ``summary.json``, the train-step time from its
``metrics.jsonl``, the parameter count from its model, and, for the character LM, the
generation cost per token measured after a long context (``--context`` tokens, 2048 by
default): a recurrent model carries a fixed-size state, the Transformer a KV cache that
holds every position.

``--tasks``, ``--archs`` and ``--steps`` choose a part; ``--quick`` shrinks every task
(short sequences, small data, a small budget) so that the whole pipeline runs in moments;
``--table-only`` rewrites the table and plot from the runs already on disk. Every
finished run's row is also recorded in ``docs/compare.json`` (``--results``), replacing
the row of the same task and architecture, and the table is written from all the rows
recorded there: runs of one task at a time, in different sessions, make one table.
"""

from __future__ import annotations

import argparse
import copy
import importlib
import json
import math
import pathlib
import platform
import shutil
import sys
import time
from typing import NamedTuple

ROOT = pathlib.Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

TASKS = ("adding", "copy", "charlm", "dates")
REFERENCE = "lstm"  # the budget is this cell's parameter count at each task's config
GRID = 1  # the step of recurrent sizes; the Transformer's model size steps by its heads
# The widest recurrent layer a run may have. A cell without a recurrent matrix has few
# parameters per unit on narrow inputs (minGRU on the adding problem's two features would
# need 9,600 units for the LSTM's budget), so beyond this width it is stacked instead: the
# fewest layers (up to MAX_LAYERS) at which the matched width fits.
MAX_WIDTH = 2048
MAX_LAYERS = 4
START, END = "<!-- compare:start -->", "<!-- compare:end -->"

# task -> (metric key in summary["eval"], its label, "min" or "max": which is better)
METRICS = {
    "adding": ("mse", "test MSE", "min"),
    "copy": ("copy_accuracy", "copy accuracy", "max"),
    "charlm": ("bits_per_char", "bits/char", "min"),
    "dates": ("exact_match", "exact match", "max"),
}

# --quick: every task shrunk so that a run takes seconds (the pipeline, not the results)
QUICK = {
    "adding": {"data.length": 20, "data.n_val": 64, "data.n_test": 64},
    "copy": {"data.delay": 8, "data.copy_length": 3, "data.n_val": 32, "data.n_test": 32},
    "charlm": {
        "data.max_chars": 20_000,
        "data.seq_len": 32,
        "data.eval_chars": 1_000,
        "data.sample_chars": 16,
        "model.embed_size": 16,
    },
    "dates": {"data.n_train": 600, "data.n_test": 64, "model.embed_size": 16},
}
QUICK_SIZE = 32  # the reference's size in --quick


def all_archs() -> list[str]:
    import seqjax

    return [*seqjax.CELLS, "transformer"]


def base_config(task: str, steps: int | None, quick: bool):
    config = importlib.import_module(f"configs.{task}").get_config()
    config.progress_bar = False
    config.tensorboard = False
    if quick:
        config.update_from_flattened_dict(QUICK[task])
        config.batch_size = 16
        config.model.hidden_size = QUICK_SIZE
        config.log_every = 1
    if steps is not None:
        config.num_steps = steps
        config.eval_every = min(config.eval_every, steps)
        config.log_every = min(config.log_every, max(steps // 10, 1))
        config.warmup_steps = min(config.warmup_steps, max(steps // 10, 1))
    return config


class Match(NamedTuple):
    size: int  # hidden units, or the Transformer's model size
    mlp: int  # the Transformer's MLP width (0 for a recurrent model)
    layers: int  # stacked recurrent layers (the config's value for the Transformer, unused)
    params: int


def sized(config, arch: str, size: int, mlp: int = 0, layers: int | None = None):
    """``config`` with architecture ``arch`` at ``size`` (hidden units, or the
    Transformer's model size, with ``mlp`` hidden units in its MLPs; 0: four times), a
    recurrent model with ``layers`` stacked layers (None: the config's)."""
    config = copy.deepcopy(config)
    m = config.model
    if arch == "transformer":
        m.arch = "transformer"
        m.transformer.model_size = size
        m.transformer.mlp_size = mlp
    else:
        m.arch = "rnn"
        m.cell = arch
        m.hidden_size = size
        if layers is not None and layers != m.get("layers", 1):
            if "layers" not in m:
                raise ValueError(f"task {config.task!r} has no config.model.layers to stack")
            m.layers = layers
        if arch != "lstm" and m.get("chrono_t_max"):
            m.chrono_t_max = 0.0  # the chrono initialisation is the LSTM's
    return config


def param_count(config) -> int:
    """Parameters of the task's model, by abstract evaluation of its ``init``."""
    import jax
    import numpy as np

    from seqjax.train.tasks import make_task

    task = make_task(config)
    shapes = jax.eval_shape(task.init, jax.random.PRNGKey(0))
    return int(sum(np.prod(s.shape) for s in jax.tree.leaves(shapes)))


def _nearest(count, budget: int, grid: int) -> int:
    """The size on ``grid`` whose ``count(size)`` is nearest ``budget``. A model's parameter
    count is a quadratic in its size (the recurrent or attention matrices, then the linear
    terms), so three counts give the curve; the sizes around its root are checked."""
    xs = [16 * grid, 32 * grid, 64 * grid]
    ys = [count(x) for x in xs]
    # Lagrange form of the quadratic through the three points, as a x^2 + b x + c
    (x0, x1, x2), (y0, y1, y2) = xs, ys
    a = y0 / ((x0 - x1) * (x0 - x2)) + y1 / ((x1 - x0) * (x1 - x2)) + y2 / ((x2 - x0) * (x2 - x1))
    b = (
        -y0 * (x1 + x2) / ((x0 - x1) * (x0 - x2))
        - y1 * (x0 + x2) / ((x1 - x0) * (x1 - x2))
        - y2 * (x0 + x1) / ((x2 - x0) * (x2 - x1))
    )
    c = y0 - a * x0**2 - b * x0
    if abs(a) > 1e-12:
        root = (-b + math.sqrt(max(b * b - 4 * a * (c - budget), 0.0))) / (2 * a)
    else:
        root = (budget - c) / b
    centre = max(grid, int(round(root / grid)) * grid)
    candidates = [s for s in (centre - grid, centre, centre + grid) if s >= grid]
    return min(candidates, key=lambda s: abs(count(s) - budget))


def match_budget(config, arch: str, budget: int, counts: dict) -> Match:
    """The size of ``arch`` whose parameter count is closest to ``budget``. A recurrent
    cell takes one layer unless that would be wider than ``MAX_WIDTH``, then the fewest
    layers at which it fits. The Transformer's model size steps by its number of heads,
    too coarse for a small budget, so its MLP width (in which the count is linear) then
    closes the gap."""

    config_layers = config.model.get("layers", 1)

    def count(size: int, mlp: int = 0, layers: int = config_layers) -> int:
        key = (arch, size, mlp, layers)
        if key not in counts:
            counts[key] = param_count(sized(config, arch, size, mlp, layers))
        return counts[key]

    if arch != "transformer":
        layers = config_layers
        while True:
            best = _nearest(lambda s, n=layers: count(s, 0, n), budget, GRID)
            if best <= MAX_WIDTH or "layers" not in config.model or layers >= MAX_LAYERS:
                return Match(best, 0, layers, count(best, 0, layers))
            layers += 1
    best = _nearest(count, budget, config.model.transformer.heads)
    low, high = count(best, best), count(best, 4 * best)
    per_unit = (high - low) / (3 * best)
    mlp = max(1, int(round(best + (budget - low) / per_unit)))
    return Match(best, mlp, config_layers, count(best, mlp))


def step_ms(run_dir: pathlib.Path, batch_size: int) -> float:
    """Median train-step time from ``metrics.jsonl`` (the first window, which compiles the
    step, left out when there are others)."""
    import numpy as np

    from seqjax.train.writers import read_metrics

    rates = [r["examples_per_s"] for r in read_metrics(run_dir) if r["split"] == "train"]
    rates = rates[1:] or rates
    return float(np.median([1000.0 * batch_size / r for r in rates]))


def generation_cost(config, context: int, new: int, repeats: int = 5) -> dict:
    """Milliseconds per generated token after ``context`` tokens (the mean over the next
    ``new``), and the bytes of the state a step reads (a recurrent carry, or the
    Transformer's KV cache of ``context + new`` positions). The decoding is timed for
    ``new`` tokens and for one, both after the same prefill, each the fastest of
    ``repeats`` runs; their difference over ``new - 1`` is per token (``new`` in the
    hundreds, so that a recurrent step of microseconds stands out of the prefill's
    noise). The model is the run's
    architecture with fresh parameters (the cost of a step does not depend on their
    values), the Transformer's with room for the long context (its trained positions end
    at the training window)."""
    import dataclasses

    import jax
    import numpy as np

    from seqjax.nn import TransformerLM
    from seqjax.train.tasks import make_task

    task = make_task(config)
    model = task.model
    key = jax.random.PRNGKey(0)
    if isinstance(model, TransformerLM):
        cfg = dataclasses.replace(model.config, max_length=context + new + 1)
        model = TransformerLM(model.vocab_size, cfg)
    params = model.init(key, np.zeros((1, 8), np.int32))
    if isinstance(model, TransformerLM):
        state = model.apply(params, (1,), method="initial_cache")
    else:
        state = model.apply(params, method=lambda m: m.seq.initial_carry(m.rnn, (1,)))
    nbytes = int(sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(state)))
    prompt = np.random.default_rng(0).integers(0, model.vocab_size, (1, context + 1))
    times = {}
    for n in (1, new):
        run = jax.jit(
            lambda p, x, n=n: model.apply(p, x, key, max_length=n, method="generate").tokens
        )
        jax.block_until_ready(run(params, prompt))  # compile
        samples = []
        for _ in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(run(params, prompt))
            samples.append(time.perf_counter() - t0)
        times[n] = min(samples)
    per_token = max(times[new] - times[1], 0.0) / (new - 1) * 1000.0
    return {"ms_per_token": per_token, "state_bytes": nbytes, "context": context, "new": new}


def run_one(task: str, arch: str, config, workdir: pathlib.Path, args, budget: int, counts):
    from seqjax.train import print_summary, train_and_evaluate

    size, mlp, layers, params = match_budget(config, arch, budget, counts)
    run_dir = workdir / task / arch
    print(
        f"== {task} / {arch}: size {size}"
        + (f", mlp {mlp}" if mlp else "")
        + (f", {layers} layers" if layers > 1 else "")
        + f", {params} "
        "parameters "
        f"({100.0 * (params - budget) / budget:+.1f}% of the budget {budget})",
        flush=True,
    )
    if run_dir.exists():  # a fresh run each time: no resume from another size
        shutil.rmtree(run_dir)
    run_config = sized(config, arch, size, mlp, layers)
    summary = train_and_evaluate(run_config, run_dir)
    print_summary(summary)
    record = {
        "task": task,
        "arch": arch,
        "size": size,
        "mlp_size": mlp,
        "layers": layers,
        "params": params,
        "budget": budget,
        "step_ms": step_ms(run_dir, run_config.batch_size),
    }
    if task == "charlm":
        record["generation"] = generation_cost(run_config, args.context, args.new_tokens)
    (run_dir / "compare.json").write_text(json.dumps(record, indent=2))
    return record


def regenerate(results: pathlib.Path, workdir: pathlib.Path, archs, args) -> list[dict]:
    """The generation cost of the recorded character-LM rows of ``archs`` measured again
    (it needs the architecture and its size, not the trained parameters), written back to
    ``results`` and to the run's ``compare.json`` where the run is still on disk."""
    if not results.exists():
        raise SystemExit(f"--generation-only: no recorded rows in {results}")
    rows = json.loads(results.read_text())
    config = base_config("charlm", None, args.quick)
    for row in rows:
        if row["task"] != "charlm" or row["arch"] not in archs:
            continue
        run_config = sized(config, row["arch"], row["size"], row["mlp_size"], row.get("layers"))
        row["generation"] = generation_cost(run_config, args.context, args.new_tokens)
        print(f"== charlm / {row['arch']}: {row['generation']}", flush=True)
        record = workdir / "charlm" / row["arch"] / "compare.json"
        if record.exists():
            on_disk = json.loads(record.read_text())
            record.write_text(json.dumps({**on_disk, "generation": row["generation"]}, indent=2))
    results.write_text(json.dumps(rows, indent=1) + "\n")
    return rows


# --------------------------------------------------------------------------- table, plot


def _metric(task: str, value: float) -> str:
    label = METRICS[task][1]
    if task == "adding":
        return f"{label} {value:.3g}"
    if task == "charlm":
        return f"{value:.3f} {label}"
    return f"{label} {value:.2%}"


def collect(workdir: pathlib.Path, tasks, archs) -> list[dict]:
    """One row per finished run: its ``compare.json`` and what the table shows of its
    ``summary.json`` (the model, the test metric, the steps and the wall time)."""
    from seqjax.train.tasks.base import describe_model

    rows = []
    for task in tasks:
        for arch in archs:
            run_dir = workdir / task / arch
            if (run_dir / "compare.json").exists() and (run_dir / "summary.json").exists():
                row = json.loads((run_dir / "compare.json").read_text())
                summary = json.loads((run_dir / "summary.json").read_text())
                row.update(
                    model=describe_model(summary["config"]["model"]),
                    metric=summary["eval"][METRICS[task][0]],
                    steps=summary["step"],
                    wall_time_s=summary["wall_time_s"],
                )
                row.setdefault(
                    "date",
                    time.strftime(
                        "%Y-%m-%d", time.gmtime((run_dir / "summary.json").stat().st_mtime)
                    ),
                )
                rows.append(row)
    return rows


def merge(results: pathlib.Path, rows: list[dict]) -> list[dict]:
    """The rows recorded in ``results`` (a JSON list kept in the repository, so that the
    table outlives the run directories) with ``rows`` replacing those of the same task
    and architecture; written back, and returned in task order, then as they came."""
    old = json.loads(results.read_text()) if results.exists() else []
    fresh = {(r["task"], r["arch"]) for r in rows}
    merged = [r for r in old if (r["task"], r["arch"]) not in fresh] + rows
    order = {task: i for i, task in enumerate(TASKS)}
    merged.sort(key=lambda r: order[r["task"]])  # stable: archs keep their order
    results.parent.mkdir(parents=True, exist_ok=True)
    results.write_text(json.dumps(merged, indent=1) + "\n")
    return merged


def table(rows: list[dict], context: int, new: int) -> str:
    lines = [
        START,
        f"Measured by `make compare` ({platform.machine()}, {platform.system()}, CPU only); "
        "each row is one run (`runs/compare/TASK/ARCH`: `summary.json`, `metrics.jsonl`, "
        "`compare.json`), recorded in `docs/compare.json` on the date shown. Sizes are "
        "chosen so that the parameter counts match the LSTM's at each task's config (a cell "
        f"that would need more than {MAX_WIDTH:,} units in one layer is stacked instead). "
        f"Generation: ms per token after a context of {context} tokens (the mean over the "
        f"next {new}), and the state a step reads (the recurrent carry, or the "
        "Transformer's KV cache).",
        "",
        "| task | architecture | model | parameters | test metric | train step (ms) "
        "| generation (ms/token) | generation state | steps | wall time (s) | date |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gen = r.get("generation")
        gen_ms = f"{gen['ms_per_token']:.3g}" if gen else "-"
        gen_state = f"{gen['state_bytes'] / 1024:.1f} KiB" if gen else "-"
        lines.append(
            f"| {r['task']} | {r['arch']} | {r['model']} "
            f"| {r['params']:,} | {_metric(r['task'], r['metric'])} | {r['step_ms']:.1f} "
            f"| {gen_ms} | {gen_state} | {r['steps']} | {r['wall_time_s']:.0f} "
            f"| {r.get('date', '-')} |"
        )
    lines.append(END)
    return "\n".join(lines)


def write_readme(text: str, readme: pathlib.Path) -> None:
    body = readme.read_text()
    if START in body:
        head, rest = body.split(START, 1)
        body = head + text + rest.split(END, 1)[1]
    else:
        body = body.rstrip() + "\n\n## Architectures compared\n\n" + text + "\n"
    readme.write_text(body)


def plot(rows: list[dict], path: pathlib.Path) -> None:
    """Each task's test metric against the run's training time, one point per architecture."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    tasks = list(dict.fromkeys(r["task"] for r in rows))
    fig, axes = plt.subplots(1, max(len(tasks), 1), figsize=(4.5 * max(len(tasks), 1), 3.6))
    axes = [axes] if len(tasks) <= 1 else list(axes)
    for ax, task in zip(axes, tasks):
        _, label, mode = METRICS[task]
        for r in (r for r in rows if r["task"] == task):
            x, y = r["wall_time_s"], r["metric"]
            ax.scatter([x], [y])
            ax.annotate(r["arch"], (x, y), textcoords="offset points", xytext=(4, 3), fontsize=8)
        ax.set_xscale("log")
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())  # no crowded labels
        if task == "adding":
            ax.set_yscale("log")
        ax.set_title(f"{task} ({'lower' if mode == 'min' else 'higher'} is better)")
        ax.set_xlabel("training wall time (s)")
        ax.set_ylabel(label)
        ax.grid(alpha=0.3)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tasks", nargs="+", choices=TASKS, default=list(TASKS))
    parser.add_argument(
        "--archs", nargs="+", default=None, help="default: seqjax.CELLS and transformer"
    )
    parser.add_argument("--steps", type=int, default=None, help="training steps of every run")
    parser.add_argument("--quick", action="store_true", help="tiny tasks: the pipeline only")
    parser.add_argument("--context", type=int, default=None, help="tokens before generation")
    parser.add_argument("--new-tokens", type=int, default=None, help="tokens timed")
    parser.add_argument("--workdir", default=str(ROOT / "runs" / "compare"))
    parser.add_argument("--readme", default=str(ROOT / "README.md"))
    parser.add_argument("--plot", default=str(ROOT / "docs" / "compare.png"))
    parser.add_argument(
        "--results",
        default=str(ROOT / "docs" / "compare.json"),
        help="the recorded rows, updated with the finished runs under --workdir",
    )
    parser.add_argument("--table-only", action="store_true")
    parser.add_argument(
        "--generation-only",
        action="store_true",
        help="measure the generation cost of the recorded charlm rows again; no training",
    )
    args = parser.parse_args(argv)
    archs = args.archs or all_archs()
    known = all_archs()
    unknown = [a for a in archs if a not in known]
    if unknown:
        parser.error(f"unknown --archs {unknown}; choose from {known}")
    args.context = args.context or (64 if args.quick else 2048)
    args.new_tokens = args.new_tokens or (8 if args.quick else 512)
    workdir = pathlib.Path(args.workdir)
    if args.generation_only:
        regenerate(pathlib.Path(args.results), workdir, archs, args)
    elif not args.table_only:
        for task in args.tasks:
            config = base_config(task, args.steps, args.quick)
            counts: dict = {}
            ref = config.model.hidden_size
            budget = param_count(sized(config, REFERENCE, ref))
            print(f"# {task}: budget {budget} parameters ({REFERENCE} {ref})", flush=True)
            for arch in archs:
                run_one(task, arch, config, workdir, args, budget, counts)
    rows = merge(pathlib.Path(args.results), collect(workdir, args.tasks, archs))
    if not rows:
        raise SystemExit(f"no finished runs under {workdir} and none in {args.results}")
    text = table(rows, args.context, args.new_tokens)
    write_readme(text, pathlib.Path(args.readme))
    plot(rows, pathlib.Path(args.plot))
    print(text)


if __name__ == "__main__":
    main()
