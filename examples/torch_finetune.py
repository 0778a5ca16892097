# %% [markdown]
# # A PyTorch LSTM, imported and fine-tuned in JAX
#
# `seqjax.interop.from_torch` turns a `torch.nn.LSTM` into a seqjax sequence function and
# its parameter pytree; the outputs equal PyTorch's. We then fine-tune the imported
# weights with Optax on a small regression task: predict the running mean of the input.

# %%
import jax
import jax.numpy as jnp
import numpy as np
import optax
import torch

import seqjax

torch.manual_seed(0)
module = torch.nn.LSTM(input_size=1, hidden_size=16, num_layers=2, batch_first=True)
seq, params = seqjax.interop.from_torch(module)

xs = np.random.default_rng(0).normal(size=(32, 20, 1)).astype(np.float32)
with torch.no_grad():
    torch_ys = module(torch.tensor(xs))[0].numpy()
_, ys = seq.apply(params, jnp.asarray(xs))
print("max |seqjax - torch|:", float(np.max(np.abs(np.asarray(ys) - torch_ys))))

# %% [markdown]
# Fine-tuning: a linear readout on top of the imported LSTM, both trained.

# %%
targets = np.cumsum(xs, axis=1) / np.arange(1, 21)[None, :, None]
model = {"lstm": params, "readout": {"w": jnp.zeros((16, 1)), "b": jnp.zeros(1)}}


def loss_fn(model, x, y):
    _, h = seq.apply(model["lstm"], x)
    pred = h @ model["readout"]["w"] + model["readout"]["b"]
    return jnp.mean((pred - y) ** 2)


optimizer = optax.adam(1e-2)
opt_state = optimizer.init(model)


@jax.jit
def train_step(model, opt_state, x, y):
    loss, grads = jax.value_and_grad(loss_fn)(model, x, y)
    updates, opt_state = optimizer.update(grads, opt_state, model)
    return optax.apply_updates(model, updates), opt_state, loss


x, y = jnp.asarray(xs), jnp.asarray(targets)
first = float(loss_fn(model, x, y))
for _step in range(150):
    model, opt_state, loss = train_step(model, opt_state, x, y)
print(f"loss {first:.4f} -> {float(loss):.4f}")
assert float(loss) < 0.5 * first

# %% [markdown]
# The fine-tuned weights are still a plain pytree with the same structure as the import:
# they can be saved, compared with the originals, or loaded into `seqjax.nnx.Recurrent`.

# %%
delta = jax.tree.map(lambda a, b: float(jnp.max(jnp.abs(a - b))), model["lstm"], params)
print(delta)
