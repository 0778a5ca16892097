"""PNG plots in ``workdir/plots``: learning curves, attention maps, forecasts, and the
inspection plots of ``scripts/inspect.py`` (gate heat maps, attributions, gradient flow)."""

from __future__ import annotations

import pathlib
from collections.abc import Sequence

import numpy as np


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _out(workdir, name) -> pathlib.Path:
    path = pathlib.Path(workdir) / "plots" / name  # name may hold a folder: "inspect/x.png"
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def learning_curves(records: Sequence[dict], workdir, *, eval_metric: str) -> pathlib.Path:
    """Training loss and the evaluation metric against the step."""
    plt = _pyplot()
    fig, (ax_loss, ax_eval) = plt.subplots(1, 2, figsize=(10, 4))
    for split, style in (("train", "-"), ("val", "o-")):
        rows = [r for r in records if r["split"] == split and isinstance(r.get("loss"), float)]
        if rows:
            ax_loss.plot([r["step"] for r in rows], [r["loss"] for r in rows], style, label=split)
    ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="loss")
    ax_loss.legend()
    rows = [r for r in records if r["split"] == "val" and isinstance(r.get(eval_metric), float)]
    ax_eval.plot([r["step"] for r in rows], [r[eval_metric] for r in rows], "o-")
    ax_eval.set(xlabel="step", ylabel=eval_metric, title=f"validation {eval_metric}")
    fig.tight_layout()
    path = _out(workdir, "learning_curves.png")
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def attention_map(
    weights: np.ndarray,
    source: Sequence[str],
    target: Sequence[str],
    workdir,
    name: str,
    title: str = "attention weights",
) -> pathlib.Path:
    """``weights: [target steps, source steps]`` as a heat map with the characters as ticks."""
    plt = _pyplot()
    weights = np.asarray(weights)[: len(target), : len(source)]
    fig, ax = plt.subplots(figsize=(max(5, 0.3 * len(source) + 3), max(3, 0.3 * len(target) + 1.5)))
    image = ax.imshow(weights, cmap="viridis", aspect="auto", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="attention weight")
    ax.set_xticks(range(len(source)), list(source))
    ax.set_yticks(range(len(target)), list(target))
    ax.set(xlabel="source", ylabel="output", title=title)
    fig.tight_layout()
    path = _out(workdir, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def forecast(truth: np.ndarray, curves: dict[str, np.ndarray], workdir, name="forecast.png"):
    """The held-out truth and each model's one-step forecasts."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(10, 4))
    ax.plot(truth, "k-", lw=1.5, label="truth")
    for label, values in curves.items():
        ax.plot(values, lw=1, label=label)
    ax.set(xlabel="test step", ylabel="value", title="one-step forecasts on the held-out tail")
    ax.legend()
    fig.tight_layout()
    path = _out(workdir, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def confusion_matrix(
    counts: np.ndarray, labels: Sequence[str], workdir, name="confusion_matrix.png"
) -> pathlib.Path:
    """``counts: [true class, predicted class]`` as a heat map with the counts written in,
    rows normalised to fractions of each true class for the colours."""
    plt = _pyplot()
    counts = np.asarray(counts)
    k = len(labels)
    fig, ax = plt.subplots(figsize=(max(4, 0.45 * k + 2.5), max(3.5, 0.45 * k + 2)))
    fractions = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    image = ax.imshow(fractions, cmap="Blues", vmin=0.0, vmax=1.0)
    fig.colorbar(image, ax=ax, label="fraction of the true class")
    if k <= 30:
        for i in range(k):
            for j in range(k):
                color = "white" if fractions[i, j] > 0.5 else "black"
                ax.text(j, i, str(counts[i, j]), ha="center", va="center", color=color, fontsize=8)
    ax.set_xticks(range(k), [str(c) for c in labels], rotation=90 if k > 10 else 0)
    ax.set_yticks(range(k), [str(c) for c in labels])
    ax.set(xlabel="predicted", ylabel="true", title="test confusion matrix")
    fig.tight_layout()
    path = _out(workdir, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def gate_heatmaps(
    activations: dict[str, np.ndarray], workdir, name: str, *, title: str, max_units: int = 64
) -> pathlib.Path:
    """``activations: {gate: [t, h]}`` (one sequence) as one heat map per gate, units over
    time, each with its colour bar (sigmoid gates on [0, 1], the rest centred on 0)."""
    plt = _pyplot()
    names = list(activations)
    fig, axes = plt.subplots(len(names), 1, figsize=(10, 1.9 * len(names) + 0.8), squeeze=False)
    for ax, gate in zip(axes[:, 0], names):
        a = np.asarray(activations[gate], np.float64)[:, :max_units].T  # [h, t]
        if a.size and a.min() >= 0.0 and a.max() <= 1.0:
            image = ax.imshow(a, aspect="auto", cmap="viridis", vmin=0.0, vmax=1.0)
        else:
            bound = float(np.abs(a).max()) if a.size else 1.0
            image = ax.imshow(a, aspect="auto", cmap="RdBu_r", vmin=-bound, vmax=bound)
        fig.colorbar(image, ax=ax, label=gate, pad=0.01)
        ax.set(ylabel=f"{gate}: unit", title=f"{gate}")
    axes[-1, 0].set_xlabel("step")
    fig.suptitle(title)
    fig.tight_layout()
    path = _out(workdir, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def attributions(
    scores: np.ndarray,
    workdir,
    name: str,
    *,
    title: str,
    labels: Sequence[Sequence[str]] | None = None,
    marked: np.ndarray | None = None,
) -> pathlib.Path:
    """``scores: [k, t]``: per-step attributions of ``k`` examples, one bar chart each,
    coloured by sign; ``labels[i]`` names example ``i``'s steps (characters), ``marked``
    (``bool [k, t]``) outlines the steps that matter by construction."""
    plt = _pyplot()
    scores = np.asarray(scores, np.float64)
    k, t = scores.shape
    fig, axes = plt.subplots(k, 1, figsize=(max(8, 0.12 * t + 3), 2.0 * k + 0.8), squeeze=False)
    for i, ax in enumerate(axes[:, 0]):
        colors = np.where(scores[i] >= 0, "tab:red", "tab:blue")
        edge = None if marked is None else np.where(marked[i], "black", "none")
        ax.bar(np.arange(t), scores[i], color=colors, edgecolor=edge, linewidth=1.5)
        ax.axhline(0.0, color="grey", lw=0.5)
        if labels is not None and t <= 80:
            ax.set_xticks(range(t), [repr(c)[1:-1] for c in labels[i]], fontsize=7)
        ax.set(ylabel="attribution", title=f"example {i}")
    axes[-1, 0].set_xlabel("step" + (" (outlined: marked steps)" if marked is not None else ""))
    fig.suptitle(title)
    fig.tight_layout()
    path = _out(workdir, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path


def gradient_flow(curves: dict[str, np.ndarray], workdir, name: str, *, title: str) -> pathlib.Path:
    """``curves: {label: [t]}``: gradient norms with respect to each step's carry, on a
    log scale (vanishing gradients fall towards the left)."""
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for label, values in curves.items():
        ax.semilogy(np.arange(len(values)), np.asarray(values), lw=1.5, label=label)
    ax.set(
        xlabel="step t",
        ylabel=r"$\|\partial L / \partial c_t\|$ (mean over examples)",
        title=title,
    )
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    path = _out(workdir, name)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return path
