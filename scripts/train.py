"""Runs one experiment: ``python scripts/train.py --config configs/NAME.py --workdir DIR``.

Override any field with ``--config.FIELD=VALUE`` (for example ``--config.num_steps=100``);
``--help`` lists the fields with their defaults and meaning.

Several processes (hosts): start the same command on every one with ``--distributed``.
With ``--coordinator=HOST:PORT --num_processes=N --process_id=I`` those are passed to
``jax.distributed.initialize``; without them it reads the environment (Cloud TPU pod
slices, SLURM). The global batch is split across every process's devices; process 0
writes the workdir's logs and summary, and all of them write the checkpoints together, so
the workdir must be one directory that every process sees. On CPU devices the processes
talk through JAX's gloo collectives. See the README's "Running on several hosts".
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # for configs/

from absl import app, flags, logging  # noqa: E402

from seqjax import cli  # noqa: E402

_CONFIG = flags.DEFINE_string("config", "configs/default.py", "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, plots.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize().")
_COORDINATOR = flags.DEFINE_string(
    "coordinator", None, "With --distributed: HOST:PORT of process 0 (default: environment)."
)
_NUM_PROCESSES = flags.DEFINE_integer(
    "num_processes", None, "With --distributed: how many processes (default: environment)."
)
_PROCESS_ID = flags.DEFINE_integer(
    "process_id", None, "With --distributed: this process's index (default: environment)."
)
flags.mark_flag_as_required("workdir")


def main(argv, config):
    del argv
    logging.set_verbosity(logging.WARNING)  # jax and orbax log every checkpoint at INFO
    import jax

    from seqjax.train import print_summary, train_and_evaluate

    given = {
        "coordinator_address": _COORDINATOR.value,
        "num_processes": _NUM_PROCESSES.value,
        "process_id": _PROCESS_ID.value,
    }
    if _DISTRIBUTED.value:
        # CPU devices of several processes need a collectives implementation (GPUs and TPUs
        # bring their own); this setting touches nothing else.
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(**{k: v for k, v in given.items() if v is not None})
    elif any(v is not None for v in given.values()):
        raise app.UsageError("--coordinator, --num_processes and --process_id need --distributed")
    print_summary(train_and_evaluate(config, _WORKDIR.value))


if __name__ == "__main__":
    usage = f"{__doc__}\nflags:\n{flags.FLAGS.main_module_help()}\n"
    config, argv = cli.parse_argv(sys.argv, default=_CONFIG.default, usage=usage)
    app.run(lambda argv: main(argv, config), argv=argv)
