"""Makes docs/images/gradient_flow_adding.png: ``python docs/images/make_gradient_flow.py 600``."""
# ruff: noqa: E402, E501, E731, B023

import json
import sys
import time

sys.path.insert(0, str(__import__("pathlib").Path(__file__).resolve().parents[2]))
import jax
import jax.numpy as jnp
import numpy as np
import optax

import seqjax
from seqjax import inspect
from seqjax.data import make_adding
from seqjax.train import plots

L, H, STEPS = 50, 32, int(sys.argv[1])
out = {}
curves = {}
for name, cell in (("lstm", seqjax.lstm(H)), ("simple_rnn", seqjax.simple_rnn(H))):
    t0 = time.time()
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    params = {
        "rnn": cell.init(k1, 2),
        "w": jax.random.normal(k2, (H,)) / np.sqrt(H),
        "b": jnp.zeros(()),
    }

    def predict(p, xs):
        _, ys = seqjax.scan(cell, p["rnn"], xs)
        return ys[..., -1, :] @ p["w"] + p["b"]

    tx = optax.chain(optax.clip_by_global_norm(1.0), optax.adam(3e-3))

    @jax.jit
    def update(p, o, x, y):
        loss, g = jax.value_and_grad(lambda p: jnp.mean((predict(p, x) - y) ** 2))(p)
        u, o = tx.update(g, o, p)
        return optax.apply_updates(p, u), o, loss

    opt = tx.init(params)
    for s in range(STEPS):
        b = make_adding(64, L, seed=s + 1)
        params, opt, _ = update(params, opt, b["x"], b["y"])
    test = make_adding(256, L, seed=10**6)
    mse = float(jnp.mean((predict(params, test["x"]) - test["y"]) ** 2))
    x, y = jnp.asarray(test["x"]), jnp.asarray(test["y"])
    flow = np.asarray(
        inspect.gradient_flow(
            cell,
            params["rnn"],
            x[:64],
            loss_fn=lambda hs: jnp.square(hs[..., -1, :] @ params["w"] + params["b"] - y[:64]),
        )
    ).mean(0)
    fn = jax.jit(lambda xs: predict(params, xs))
    base = x * jnp.array([0.0, 1.0]) + jnp.array([0.5, 0.0])
    attr = np.abs(np.asarray(inspect.integrated_gradients(fn, x, baseline=base)))
    share = float((attr * (test["x"][..., 1] == 1)).sum() / attr.sum())
    label = f"{name} {H} (trained {STEPS} steps, test MSE {mse:.3g})"
    curves[label] = flow
    out[name] = {
        "mse": mse,
        "flow_first": float(flow[0]),
        "flow_last": float(flow[-1]),
        "orders_of_magnitude": float(np.log10(flow.max() / flow.min())),
        "marked_share": share,
        "seconds": time.time() - t0,
    }
    print(name, out[name], flush=True)
plots.gradient_flow(
    curves,
    "/tmp/gradient_flow_fig",
    "gradient_flow_adding.png",
    title=f"gradient flow on the adding problem (T = {L}; loss at the last step)",
)
json.dump(out, open("/tmp/gradient_flow_fig/flow.json", "w"), indent=1)
