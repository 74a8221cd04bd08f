"""Trains a generative model: ``vgrow-train --config=... --workdir=...``.

The config file is an ml_collections file (default: VGrow-KL on the 5×5
grid); any field can be overridden, e.g.
``--config.training.num_outer_loops=800 --config.methods.vgrow.divergence=js``.
Running again with the same workdir resumes from its latest checkpoint.
SIGTERM or Ctrl-C stops after the current outer loop with a checkpoint saved
(exit status 0); a second one aborts.

Several devices: the run is data-parallel over ``--config.mesh.data`` devices
(default all). Several processes (hosts): start one per host with
``--num_processes=P --process_id=i --coordinator_address=host0:port``, or
``--distributed`` where JAX detects the cluster (Cloud TPU, SLURM, Open MPI,
Kubernetes); every process runs the same command and process 0 writes the
logs and files.
"""

import os
import sys

from absl import app
from absl import flags
import jax

from experiments import cli
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import sharding
from vgrow_jax import train

_DEFAULT_CONFIG = os.path.join(os.path.dirname(__file__), 'configs', 'default.py')
_CONFIG = cli.define_config_flag('vgrow-train', _DEFAULT_CONFIG)
_WORKDIR = flags.DEFINE_string('workdir', 'workdirs/default',
                               'Directory for checkpoints, metrics and figures.')
_NUM_PROCESSES = flags.DEFINE_integer('num_processes', 1, 'Processes in a multi-process job.',
                                      lower_bound=1)
_PROCESS_ID = flags.DEFINE_integer('process_id', 0, 'This process, in [0, num_processes).',
                                   lower_bound=0)
_COORDINATOR = flags.DEFINE_string(
    'coordinator_address', '', "'host:port' of process 0 (default: $JAX_COORDINATOR_ADDRESS "
    'or cluster auto-detection).')
_DISTRIBUTED = flags.DEFINE_boolean(
    'distributed', False, 'Start jax.distributed with cluster auto-detection.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  try:
    cfg = config_lib.Config.from_dict(_CONFIG.value.to_dict())
    sharding.initialize(coordinator_address=_COORDINATOR.value,
                        num_processes=_NUM_PROCESSES.value, process_id=_PROCESS_ID.value,
                        auto=_DISTRIBUTED.value)
  except ValueError as e:  # ConfigError included
    sys.exit(f'vgrow-train: {e}')
  cli.setup_logging()
  cli.log.info('JAX process %d/%d, devices: %s', jax.process_index(), jax.process_count(),
               jax.devices())
  try:
    result = train.train_and_evaluate(cfg, _WORKDIR.value)
  except (data_lib.DataError, FloatingPointError, FileNotFoundError, ValueError,
          train.WatchStop) as e:
    sys.exit(f'vgrow-train: {e}')
  if sharding.is_main_process():
    print(result['summary'], flush=True)


def run():
  app.run(main)


if __name__ == '__main__':
  run()
