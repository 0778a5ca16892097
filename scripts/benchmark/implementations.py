"""The recurrent layers under test, as ready-to-time train steps and forward passes.

Each builder returns two thunks, ``(train, forward)``: the train step (forward and backward
of a sum loss, gradients with respect to the parameters and the inputs) and the forward
pass, in float32 on batch-major inputs, each blocking until its result is ready. With
``lengths``, both run on a right-padded batch and multiply their outputs by the mask
``steps < lengths``.
"""

from __future__ import annotations

import contextlib

import jax
import jax.numpy as jnp
import numpy as np

CELLS = ("lstm", "gru", "simple_rnn")  # names of seqjax.CELLS
IMPLS = ("seqjax", "torch", "flax")
LENGTHS_SEED = 1  # --lengths: the padded batch's lengths, the same for all implementations


def shape_dict(shape) -> dict:
    """``(batch, time, input, hidden)`` as the JSON rows spell it."""
    return dict(zip(("batch", "time", "input", "hidden"), shape))


def kernels_disabled():
    """``seqjax.kernels.disabled``, or a context that does nothing without fast paths."""
    try:
        from seqjax.kernels import disabled
    except ImportError:  # a checkout without fast paths
        return contextlib.nullcontext
    return disabled


def padded_lengths(shape, seed: int = LENGTHS_SEED) -> np.ndarray:
    """``int32[batch]`` lengths drawn uniformly from ``[t/2, t]`` (both ends included)."""
    b, t = shape[:2]
    return np.random.default_rng(seed).integers(t // 2, t, size=b, endpoint=True).astype(np.int32)


def inputs(b: int, t: int, d: int) -> jax.Array:
    """``float32[b, t, d]`` standard normal inputs, from a fixed seed."""
    return jnp.asarray(np.random.default_rng(0).standard_normal((b, t, d), np.float32))


def _masked(ys, lengths):
    """Outputs times the mask ``steps < lengths``: zero past each length (for Flax, where the
    outputs there are unspecified; in all three, so that the work compared is the same)."""
    return ys * (jnp.arange(ys.shape[1]) < lengths[:, None])[..., None]


def seqjax_layer(cell: str, hidden: int, *, plain: bool = False, **layer_kw):
    """``seqjax.recurrent(CELLS[cell](hidden), **layer_kw)`` and its forward and sum loss.

    Args:
      plain: run with the fast paths off (``seqjax.kernels.disabled``).
      layer_kw: ``recurrent``'s options (``unroll``, ``remat``, ``parallel``).

    Returns:
      ``(layer, forward, loss)``; ``forward(params, xs, *lengths)`` gives the outputs (masked
      when a ``lengths`` array follows), ``loss`` their sum.
    """
    import seqjax

    disabled = kernels_disabled()
    layer = seqjax.recurrent(seqjax.CELLS[cell](hidden), **layer_kw)

    def forward(p, x, *lens):
        with disabled(plain):
            if not lens:
                return layer.apply(p, x)[1]
            return _masked(layer.apply(p, x, lengths=lens[0])[1], lens[0])

    def loss(p, x, *lens):
        return forward(p, x, *lens).sum()

    return layer, forward, loss


def seqjax_fns(cell: str, shape, *, plain: bool = False, lengths=None, **layer_kw):
    """Train step and forward pass; with ``lengths``, on the right-padded batch (masked)."""
    b, t, d, h = shape
    layer, forward, loss = seqjax_layer(cell, h, plain=plain, **layer_kw)
    params = layer.init(jax.random.key(0), d)
    return _jax_pair(forward, loss, params, inputs(b, t, d), lengths)


def flax_fns(cell: str, shape, lengths=None):
    """Flax's train step and forward pass; with ``lengths``, ``seq_lengths=`` (masked)."""
    import flax.linen as nn

    b, t, d, h = shape
    make = {"lstm": nn.OptimizedLSTMCell, "gru": nn.GRUCell, "simple_rnn": nn.SimpleCell}[cell]
    model = nn.RNN(make(features=h))
    xs = inputs(b, t, d)
    variables = model.init(jax.random.key(0), xs)

    def forward(v, x, *lens):
        if not lens:
            return model.apply(v, x)
        return _masked(model.apply(v, x, seq_lengths=lens[0]), lens[0])

    def loss(v, x, *lens):
        return forward(v, x, *lens).sum()

    return _jax_pair(forward, loss, variables, xs, lengths)


def _jax_pair(forward, loss, params, xs, lengths=None):
    """Jitted train step (gradients for params and inputs) and forward pass, ready to time.

    ``lengths`` (when given) is passed as an argument, as data, not baked in as a constant.
    """
    fwd = jax.jit(forward)
    grad = jax.jit(jax.grad(loss, argnums=(0, 1)))
    extra = () if lengths is None else (jnp.asarray(lengths, jnp.int32),)
    return (
        lambda: jax.block_until_ready(grad(params, xs, *extra)),
        lambda: jax.block_until_ready(fwd(params, xs, *extra)),
    )


def torch_fns(cell: str, shape, device: str, lengths=None):
    """torch's train step and forward pass; with ``lengths``, through ``pack_padded_sequence``
    and ``pad_packed_sequence`` (outputs masked, as in the JAX implementations)."""
    import torch
    from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

    b, t, d, h = shape
    make = {"lstm": torch.nn.LSTM, "gru": torch.nn.GRU, "simple_rnn": torch.nn.RNN}[cell]
    torch.manual_seed(0)
    model = make(d, h, batch_first=True).to(device)
    xs = torch.randn(b, t, d, device=device, requires_grad=True)
    sync = torch.cuda.synchronize if device == "cuda" else (lambda: None)
    if lengths is not None:
        lengths_cpu = torch.as_tensor(np.asarray(lengths), dtype=torch.int64)  # on the CPU
        mask = (torch.arange(t)[None, :] < lengths_cpu[:, None]).to(device)[..., None]

    def run(x):
        if lengths is None:
            return model(x)[0]
        packed = pack_padded_sequence(x, lengths_cpu, batch_first=True, enforce_sorted=False)
        ys, _ = pad_packed_sequence(model(packed)[0], batch_first=True, total_length=t)
        return ys * mask

    def train():
        model.zero_grad(set_to_none=True)
        xs.grad = None
        run(xs).sum().backward()
        sync()

    def forward():
        with torch.inference_mode():
            run(xs)
        sync()

    return train, forward
