"""Trains a generative model: ``vgrow-train --config=... --workdir=...``.

The config file is an ml_collections file (default: VGrow-KL on the 5×5
grid); any field can be overridden, e.g.
``--config.training.num_outer_loops=800 --config.vgrow.divergence=js``.
Running again with the same workdir resumes from its latest checkpoint.
"""

import os
import sys

from absl import app
from absl import flags
import jax
from ml_collections import config_flags

from experiments import cli
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import train

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')
_CONFIG = config_flags.DEFINE_config_file(
    'config', _DEFAULT_CONFIG, 'Training configuration file.', lock_config=True)
_WORKDIR = flags.DEFINE_string('workdir', 'workdirs/default',
                               'Directory for checkpoints, metrics and figures.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    cfg = config_lib.Config.from_dict(_CONFIG.value.to_dict())
  except config_lib.ConfigError as e:
    sys.exit(f'vgrow-train: {e}')
  cli.setup_logging()
  cli.log.info('JAX process %d/%d, devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    result = train.train_and_evaluate(cfg, _WORKDIR.value)
  except (data_lib.DataError, FloatingPointError, FileNotFoundError, ValueError) as e:
    sys.exit(f'vgrow-train: {e}')
  print(result['summary'], flush=True)


def run():
  app.run(main)


if __name__ == '__main__':
  run()
