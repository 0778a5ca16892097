"""Runs one experiment: ``python scripts/train.py --config configs/NAME.py --workdir DIR``.

Override any field with ``--config.FIELD=VALUE`` (for example ``--config.num_steps=100``);
``--help`` lists the fields with their defaults and meaning. Multi-host: start the same
command on every host with ``--distributed`` (which calls ``jax.distributed.initialize()``,
reading the coordinator from the environment, e.g. on Cloud TPU or SLURM); the batch is
then split across all hosts' devices.
"""

import pathlib
import sys

sys.path.insert(0, str(pathlib.Path(__file__).resolve().parents[1]))  # for configs/

from absl import app, flags, logging  # noqa: E402

from seqjax import cli  # noqa: E402

_CONFIG = flags.DEFINE_string("config", "configs/default.py", "Experiment config file.")
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for checkpoints, logs, plots.")
_DISTRIBUTED = flags.DEFINE_bool("distributed", False, "Call jax.distributed.initialize().")
flags.mark_flag_as_required("workdir")


def main(argv, config):
    del argv
    logging.set_verbosity(logging.WARNING)  # jax and orbax log every checkpoint at INFO
    import jax

    from seqjax.train import print_summary, train_and_evaluate

    if _DISTRIBUTED.value:
        jax.distributed.initialize()
    print_summary(train_and_evaluate(config, _WORKDIR.value))


if __name__ == "__main__":
    usage = f"{__doc__}\nflags:\n{flags.FLAGS.main_module_help()}\n"
    config, argv = cli.parse_argv(sys.argv, default=_CONFIG.default, usage=usage)
    app.run(lambda argv: main(argv, config), argv=argv)
