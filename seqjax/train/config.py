"""The trainer's config fields, shared by every experiment in ``configs/``."""

from __future__ import annotations

from ml_collections import ConfigDict


def base_config() -> ConfigDict:
    """Trainer defaults; an experiment's ``get_config()`` starts here and overrides."""
    config = ConfigDict()
    config.task = ""  # the experiment: a name of seqjax.train.tasks.TASKS
    config.seed = 0  # seeds the parameters, the data order and dropout
    config.num_steps = 1000  # optimizer steps in all (also the cosine decay horizon)
    config.batch_size = 64  # global batch, split across devices
    config.learning_rate = 3e-3  # peak learning rate of AdamW
    config.warmup_steps = 100  # linear warm-up from 0 to the peak
    config.final_lr_fraction = 0.02  # the cosine decays to this fraction of the peak
    config.weight_decay = 0.0  # AdamW's decoupled weight decay
    config.grad_clip = 1.0  # clip_by_global_norm before AdamW; 0 disables
    config.log_every = 50  # steps between training-metric lines
    config.eval_every = 500  # steps between validation evaluations (each saves a checkpoint)
    config.patience = 0  # stop after this many evaluations without improvement; 0: never
    config.keep_checkpoints = 2  # the latest checkpoints kept, besides the best on validation
    config.async_checkpoints = True  # write checkpoints while training goes on (Orbax async)
    config.dtype = "float32"  # compute dtype of the model: float32, or bfloat16 (float32 params)
    config.resume = "auto"  # auto, strict (no fallback past a bad checkpoint) or fresh (start over)
    config.progress_bar = True  # a tqdm bar on stderr
    config.tensorboard = True  # TensorBoard event files in workdir/tensorboard
    config.distill = ConfigDict()  # knowledge distillation (seqjax.train.tasks.distill)
    config.distill.teacher = ""  # a finished run's workdir, the teacher; empty: no distillation
    config.distill.level = "word"  # word (Hinton et al. 2015) or sequence (Kim and Rush 2016)
    config.distill.temperature = 2.0  # temperature T of the soft targets (KL scaled by T^2)
    config.distill.alpha = 0.5  # weight of the soft term; the hard loss gets 1 - alpha
    config.distill.beam_size = 4  # beam of the teacher's outputs at the sequence level
    config.distill.cache_dir = ""  # where those outputs are cached; empty: TEACHER/distill
    config.privacy = ConfigDict()  # DP-SGD (seqjax.train.privacy)
    config.privacy.enabled = False  # train with DP-SGD: per-example clipping, noise, Poisson
    config.privacy.clip_norm = 1.0  # C: every per-example gradient is clipped to this L2 norm
    config.privacy.noise_multiplier = 1.0  # sigma: noise std sigma * C; unused with target
    config.privacy.target_epsilon = 0.0  # > 0: the smallest noise that meets this epsilon
    config.privacy.delta = 1e-5  # the delta of the (epsilon, delta) guarantee
    config.privacy.accountant = "rdp"  # rdp (Renyi DP) or pld (privacy loss distributions)
    config.model = ConfigDict()  # the experiment's model fields, and:
    config.model.api = "linen"  # linen (seqjax.nn) or nnx (seqjax.nnx): the same params
    config.model.arch = "rnn"  # rnn (config.model.cell and its fields) or transformer
    config.model.parallel = False  # associative scan over time (cells linear in their carry)
    config.model.chrono_t_max = 0.0  # chrono init for lstm, min_gru, min_lstm (0: off)
    config.model.transformer = ConfigDict()  # the fields of arch = transformer
    config.model.transformer.layers = 2  # blocks in the encoder and in the decoder
    config.model.transformer.heads = 4  # attention heads
    config.model.transformer.model_size = 128  # width of each position (divisible by heads)
    config.model.transformer.mlp_size = 0  # hidden units of each block's MLP; 0: 4 * model_size
    config.model.transformer.dropout = 0.0  # on embeddings, attention weights and sublayers
    config.model.transformer.positions = "sinusoidal"  # sinusoidal or learned
    config.model.transformer.max_length = 0  # most positions; 0: the task's longest sequence
    config.data = ConfigDict()  # the experiment's data fields
    config.data.prefetch = 2  # training batches built and placed on the devices ahead of use
    return config
