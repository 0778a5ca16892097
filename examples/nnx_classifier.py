# %% [markdown]
# # A classifier on your array data, with Flax NNX
#
# Sequences as a padded float array `x: [n, t, d]` with `lengths: [n]` and labels
# `y: [n]` (the layout of `configs/classify.py`'s `.npz` files), a GRU classifier from
# `seqjax.nnx`, and a training loop with `nnx.jit` and `nnx.Optimizer`.

# %%
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax
from flax import nnx

import seqjax
import seqjax.nnx as sx

rng = np.random.default_rng(0)
n, t, d = 512, 24, 2
lengths = rng.integers(8, t + 1, size=n)
x = rng.normal(size=(n, t, d)).astype(np.float32)
x[np.arange(t)[None, :] >= lengths[:, None]] = 0.0  # right padding
# the label: is the mean of the first feature over the valid steps positive?
y = (x[..., 0].sum(1) / lengths > 0).astype(np.int32)
train, test = slice(0, 384), slice(384, n)

# %%
model = sx.SequenceClassifier(
    seqjax.recurrent(seqjax.gru(32)), 2, input_size=d, pooling="mean", rngs=nnx.Rngs(0)
)
optimizer = nnx.Optimizer(model, optax.adam(3e-3), wrt=nnx.Param)


def loss_fn(model, x, lengths, y):
    logits = model(x, lengths)
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@nnx.jit
def train_step(model, optimizer, x, lengths, y):
    loss, grads = nnx.value_and_grad(loss_fn)(model, x, lengths, y)
    optimizer.update(model, grads)
    return loss


@nnx.jit
def accuracy(model, x, lengths, y):
    return jnp.mean(jnp.argmax(model(x, lengths), -1) == y)


losses = []
for _step in range(120):
    idx = rng.integers(0, 384, size=64)
    losses.append(float(train_step(model, optimizer, x[idx], lengths[idx], y[idx])))
model.eval()
acc = float(accuracy(model, x[test], lengths[test], y[test]))
print(f"test accuracy {acc:.3f}")
assert acc > 0.8

plt.figure(figsize=(5, 2.5))
plt.plot(losses)
plt.xlabel("step")
plt.ylabel("training loss")
plt.tight_layout()
plt.show()

# %% [markdown]
# The trained parameters are the same pytree as the linen `seqjax.nn.SequenceClassifier`'s:

# %%
linen = seqjax.nn.SequenceClassifier(seqjax.recurrent(seqjax.gru(32)), 2, pooling="mean")
same = linen.apply({"params": model.params()}, x[test], lengths[test])
print(bool(jnp.allclose(same, model(x[test], lengths[test]), atol=1e-6)))
