# %% [markdown]
# # A tour of the functional API
#
# Cells are pure functions over parameter pytrees; `seqjax.recurrent` runs them over whole
# sequences; attention is pure too. This notebook (a Jupytext percent script: open it in
# Jupyter with Jupytext, or run it as `python examples/tour.py`) plots the gates of an LSTM
# and the weights of an attention over a padded memory.

# %%
import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt

import seqjax

key = jax.random.key(0)
cell = seqjax.lstm(8, forget_bias=1.0)
params = cell.init(key, 2)
print(jax.tree.map(jnp.shape, params))

# %% [markdown]
# One step, then a whole padded batch. Outputs past each length are zeros and the carry is
# the one after each sequence's last valid step.

# %%
t = 40
steps = jnp.arange(t)
xs = jnp.stack([jnp.sin(steps / 4.0), jnp.cos(steps / 7.0)], -1)[None].repeat(2, 0)
lengths = jnp.array([40, 25])
carry, ys = seqjax.scan(cell, params, xs, lengths=lengths)
print(ys.shape, bool(jnp.all(ys[1, 25:] == 0)))

# %% [markdown]
# ## The gates
#
# The LSTM's pre-activations are $z_t = x_t W_i + h_{t-1} W_h + b$, split in the order
# i, f, g, o (PyTorch's and cuDNN's). Running the cell step by step, we recompute them from
# the carry before each step to plot the input, forget and output gates.


# %%
def gates(params, carry, x):
    z = x @ params["w_i"] + carry.h @ params["w_h"] + params["b"]
    i, f, _, o = jnp.split(z, 4, axis=-1)
    new, _ = cell.apply(params, carry, x)
    return new, jax.nn.sigmoid(jnp.stack([i, f, o]))


_, g = jax.lax.scan(lambda c, x: gates(params, c, x), cell.initial_carry(params, ()), xs[0])
fig, axes = plt.subplots(1, 3, figsize=(10, 2.5), sharey=True)
for ax, name, values in zip(axes, ["input", "forget", "output"], jnp.moveaxis(g, 1, 0)):
    ax.imshow(values.T, aspect="auto", vmin=0, vmax=1, cmap="viridis")
    ax.set_title(f"{name} gate")
    ax.set_xlabel("step")
axes[0].set_ylabel("unit")
plt.tight_layout()
plt.show()

# %% [markdown]
# ## Attention over a padded memory
#
# Bahdanau's additive score. Weights are zero at padded memory positions and sum to one
# over the valid ones.

# %%
att = seqjax.bahdanau(16)
values = jax.random.normal(jax.random.key(1), (2, 12, 6))
queries = jax.random.normal(jax.random.key(2), (2, 5, 8))
att_params = att.init(jax.random.key(3), 8, 6)
memory = seqjax.attention_memory(att, att_params, values, lengths=jnp.array([12, 7]))
context, weights = seqjax.attend(att, att_params, queries, memory)
print(context.shape, weights.shape, jnp.round(weights.sum(-1), 5))

fig, axes = plt.subplots(1, 2, figsize=(8, 2.5))
for ax, w, n in zip(axes, weights, [12, 7]):
    ax.imshow(w, aspect="auto", cmap="magma")
    ax.set_title(f"memory length {n}")
    ax.set_xlabel("memory position")
axes[0].set_ylabel("query")
plt.tight_layout()
plt.show()
