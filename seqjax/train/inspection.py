"""What ``scripts/inspect.py --workdir DIR`` does: plots that show why a finished run's
model decides as it does.

Loads the run (:func:`seqjax.train.runs.load_run`) and writes PNG plots to
``DIR/plots/inspect/``: gate heat maps over time of the first recurrent layer on a test
example, per-step integrated-gradients attributions of a few test examples, the gradient
flow over time (:func:`seqjax.inspect.gradient_flow`), and attention maps for seq2seq runs;
the figures behind them go to ``DIR/plots/inspect/inspect.json``. ``--compare OTHER`` draws
another run's gradient flow in the same figure (an Elman RNN beside an LSTM on the adding
problem, say).
"""

from __future__ import annotations

import argparse
import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np

from seqjax import inspect as si
from seqjax.train import plots
from seqjax.train.runs import Run, load_run
from seqjax.train.tasks.base import build_cell

OUT = "inspect"  # under workdir/plots
FLOW_EXAMPLES = 64  # test examples averaged in the gradient-flow curve
SHARE_EXAMPLES = 200  # adding problem: test examples in the attribution-mass figure


def _first_layer(run: Run, stack_params):
    """``(cell, params)`` of the first recurrent layer (the forward one if bidirectional)."""
    m = run.config.model
    p = stack_params[0]
    if m.get("bidirectional", False):
        p = p[0]
    return build_cell(m), p


def _cell_title(run: Run) -> str:
    m = run.config.model
    return f"{m.cell} {m.hidden_size}"


def _gates_plot(run: Run, cell, params, xs, what: str) -> str | None:
    if cell.gates is None:
        return None
    acts = si.gates(cell, params, xs)
    name = f"{OUT}/gates.png"
    plots.gate_heatmaps(
        {k: np.asarray(v) for k, v in acts.items()},
        run.workdir,
        name,
        title=f"{_cell_title(run)} activations over {what}",
    )
    return name


def inspect_adding(run: Run, k: int) -> dict:
    task, variables = run.task, run.params
    params = variables["params"]
    cell, layer = _first_layer(run, params["features"]["recurrent"]["rnn"])
    test = task.splits["test"]
    xs = jnp.asarray(test["x"])
    files = [_gates_plot(run, cell, layer, xs[0], "a test sequence (marked steps: input 1)")]

    def predict(x):
        return task.model.apply(variables, x)[..., 0]

    predict = jax.jit(predict)
    n = min(SHARE_EXAMPLES, len(xs))
    marked = np.asarray(xs[:n, :, 1]) == 1
    # The uninformative input: every value at its mean 0.5, the markers kept.
    mean_base = xs[:n] * jnp.array([0.0, 1.0]) + jnp.array([0.5, 0.0])
    shares, completeness = {}, {}
    for label, base in (("mean_values_baseline", mean_base), ("zeros_baseline", None)):
        attr = np.asarray(si.integrated_gradients(predict, xs[:n], baseline=base))
        ref = jnp.zeros_like(xs[:n]) if base is None else base
        delta = np.asarray(predict(xs[:n]) - predict(ref))
        shares[label] = float((np.abs(attr) * marked).sum() / np.abs(attr).sum())
        completeness[label] = float(np.max(np.abs(attr.sum(-1) - delta) / np.abs(delta)))
        if label == "mean_values_baseline":
            shown = attr[:k]
    name = f"{OUT}/attributions.png"
    plots.attributions(
        shown,
        run.workdir,
        name,
        title="integrated gradients of the prediction (baseline: values at 0.5, markers kept)",
        marked=marked[:k],
    )
    files.append(name)
    return {
        "files": files,
        "marked_attribution_share": shares,
        "ig_completeness_max_relative_error": completeness,
    }


def flow_adding(run: Run):
    """``[n, t]`` gradient norms of the squared error at the last step (one layer only)."""
    if run.config.model.get("layers", 1) != 1:
        return None
    params = run.params["params"]
    cell, layer = _first_layer(run, params["features"]["recurrent"]["rnn"])
    test = run.task.splits["test"]
    xs, ys = jnp.asarray(test["x"][:FLOW_EXAMPLES]), jnp.asarray(test["y"][:FLOW_EXAMPLES])
    head = params["head"]

    def loss_fn(hs):
        pred = hs[..., -1, :] @ head["kernel"][:, 0] + head["bias"][0]
        return jnp.square(pred - ys)

    return si.gradient_flow(cell, layer, xs, loss_fn=loss_fn)


def _output_layer(model, hs):
    """A language model's output layer on its recurrent outputs (the model's own)."""
    return model._pure_logits()(hs)


def inspect_charlm(run: Run, k: int) -> dict:
    task, variables = run.task, run.params
    params = variables["params"]
    cell, layer = _first_layer(run, params["rnn"])
    text = task.texts["test"]
    ids = jnp.asarray(task.vocab.encode_array(text))
    table = params["embedding"]
    window = 64
    files = [_gates_plot(run, cell, layer, table[ids[:160]], "160 characters of test text")]
    seq = task.model.seq

    def logits_of(xs):
        _, hs = seq.apply(params["rnn"], xs)
        return task.model.apply(variables, hs, method=_output_layer)

    starts = np.arange(k) * (window + 7)
    inputs = jnp.stack([ids[s : s + window] for s in starts])
    targets = jnp.stack([ids[s + window] for s in starts])

    @jax.jit
    def log_prob_next(xs):
        logp = jax.nn.log_softmax(logits_of(xs)[..., -1, :])
        return jnp.take_along_axis(logp, targets[:, None], -1)[:, 0]

    attr = np.asarray(si.integrated_gradients(log_prob_next, table[inputs]))
    labels = [task.vocab.decode(np.asarray(row)) for row in inputs]
    want = [task.vocab.decode(np.asarray([t])) for t in targets]
    name = f"{OUT}/attributions.png"
    plots.attributions(
        attr,
        run.workdir,
        name,
        title="integrated gradients of log p(next character) "
        f"(next: {', '.join(map(repr, want))}; baseline: zero embeddings)",
        labels=labels,
    )
    files.append(name)
    return {"files": files}


def flow_charlm(run: Run):
    """``[n, t]`` gradient norms of the next character's loss after 128 characters."""
    if run.config.model.get("layers", 1) != 1:
        return None
    task, variables = run.task, run.params
    params = variables["params"]
    cell, layer = _first_layer(run, params["rnn"])
    ids = jnp.asarray(task.vocab.encode_array(task.texts["test"]))
    length = 128
    starts = np.arange(FLOW_EXAMPLES) * (len(ids) - length - 1) // FLOW_EXAMPLES
    xs = params["embedding"][jnp.stack([ids[s : s + length] for s in starts])]
    nxt = jnp.stack([ids[s + length] for s in starts])

    def loss_fn(hs):
        logits = task.model.apply(variables, hs[..., -1, :], method=_output_layer)
        return -jnp.take_along_axis(jax.nn.log_softmax(logits), nxt[:, None], -1)[:, 0]

    return si.gradient_flow(cell, layer, xs, loss_fn=loss_fn)


def inspect_seq2seq(run: Run, k: int) -> dict:
    task, variables = run.task, run.params
    params = variables["params"]
    test = task.splits["test"]
    cell, layer = _first_layer(run, params["encoder"]["recurrent"]["rnn"])
    src = jnp.asarray(test["src"][:k])
    lengths = jnp.asarray(test["src_lengths"][:k])
    table = params["encoder"]["embedding"]
    first = table[src[0, : int(lengths[0])]]
    files = [_gates_plot(run, cell, layer, first, f"the source {test['src_text'][0]!r}")]
    tokens, weights = task._decode(variables, src, lengths)
    if weights is not None:
        units = str.split if task.words else list
        for i in range(k):
            pred = task.tgt_vocab.decode(np.asarray(tokens[i]))
            name = f"{OUT}/attention_{i}.png"
            plots.attention_map(
                np.asarray(weights[i]),
                units(test["src_text"][i]),
                units(pred) + ["<eos>"],
                run.workdir,
                name,
                title=f"attention of the decoder: {test['src_text'][i]!r} -> {pred!r}",
            )
            files.append(name)
    return {"files": files}


FLOWS = {"adding": flow_adding, "charlm": flow_charlm}
INSPECTORS = {
    "adding": inspect_adding,
    "charlm": inspect_charlm,
    "dates": inspect_seq2seq,
    "addition": inspect_seq2seq,
    "seq2seq": inspect_seq2seq,
}


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(prog="scripts/inspect.py", description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", required=True, help="a finished run's workdir")
    parser.add_argument("--examples", type=int, default=3, help="test examples to plot")
    parser.add_argument("--compare", action="append", default=[], help="runs to overlay")
    args = parser.parse_args(argv)
    run = load_run(args.workdir)
    if run.config.task not in INSPECTORS:
        parser.error(f"no inspection for the {run.config.task!r} task; one of {sorted(INSPECTORS)}")
    result = INSPECTORS[run.config.task](run, args.examples)
    if run.config.task in FLOWS:
        curves = {}
        for r in [run, *map(load_run, args.compare)]:
            flow = FLOWS[r.config.task](r) if r.config.task in FLOWS else None
            if flow is None:
                continue
            metric = r.task.eval_metric
            label = f"{_cell_title(r)} (test {metric} {r.summary['eval'][metric]:.3g})"
            curves[label] = np.asarray(flow).mean(0)
        name = f"{OUT}/gradient_flow.png"
        plots.gradient_flow(
            curves,
            run.workdir,
            name,
            title=f"gradient flow over time ({run.config.task}; the loss at the last step)",
        )
        result["files"].append(name)
        result["gradient_flow"] = {
            label: {
                "first_step": float(c[0]),
                "last_step": float(c[-1]),
                "orders_of_magnitude": float(np.log10(c.max() / max(c.min(), 1e-30))),
            }
            for label, c in curves.items()
        }
    result["files"] = [f for f in result["files"] if f]
    out = pathlib.Path(args.workdir) / "plots" / OUT / "inspect.json"
    out.write_text(json.dumps(result, indent=2))
    print(json.dumps(result, indent=2))
    return result
