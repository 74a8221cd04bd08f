"""Writes samples from a workdir's latest checkpoint:
``vgrow-sample --workdir=W --num=2500 --out=samples.npz``.

The npz holds ``samples`` [num, ...] and the latents ``z`` [num, nz].
"""

import sys

from absl import app
from absl import flags
import jax
import numpy as np

from experiments import cli
from vgrow_jax import train

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.', required=True)
_NUM = flags.DEFINE_integer('num', 2500, 'How many samples.', lower_bound=1)
_OUT = flags.DEFINE_string('out', 'samples.npz', 'Output .npz path.')
_SEED = flags.DEFINE_integer('seed', 0, 'Seed of the latents.')
_FLOW = flags.DEFINE_integer('sample_flow_steps', None, 'VGrow: move G(z) this many flow '
                             'steps along the final D (default: the run\'s setting).',
                             lower_bound=0)
_DSTEPS = flags.DEFINE_integer('sample_d_steps', None, 'VGrow, with sample_flow_steps: re-fit '
                               'D on the training data with this many logistic steps before '
                               'each flow step (default: the run\'s vgrow.sample_d_steps, '
                               '0 = along the final D).', lower_bound=0)
_ETA = flags.DEFINE_float('sample_step_size', None, 'VGrow, with sample_flow_steps: η of those '
                          'steps (default: the run\'s vgrow.sample_step_size, else its step_size).')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint (outer loop) to use; default latest.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cli.setup_logging()
  try:
    _, method, state = train.restore(_WORKDIR.value, _STEP.value,
                                    sample_flow_steps=_FLOW.value,
                                    sample_d_steps=_DSTEPS.value,
                                    sample_step_size=_ETA.value)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'vgrow-sample: {e}')
  z = jax.random.normal(jax.random.PRNGKey(_SEED.value), (_NUM.value, method.latent_dim))
  samples = train.generate(method, state, z)
  np.savez(_OUT.value, samples=samples, z=np.asarray(z))
  print(f'wrote {samples.shape[0]} samples of shape {samples.shape[1:]} from outer loop '
        f'{int(state.step)} to {_OUT.value}')


def run():
  app.run(main)


if __name__ == '__main__':
  run()
