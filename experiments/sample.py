"""Writes samples from a workdir's latest checkpoint:
``vgrow-sample --workdir=W --num=2500 --out=samples.npz``.

The npz holds ``samples`` [num, ...], the latents ``z`` [num, nz] and, with
``--sample_metropolis``, ``acceptance`` [num]: each chain's fraction of moves accepted.
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
_SAMPLING = cli.define_sampling_flags()
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint (outer loop) to use; default latest.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cli.setup_logging()
  try:
    _, method, state = train.restore(_WORKDIR.value, _STEP.value,
                                    **_SAMPLING.overrides())
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'vgrow-sample: {e}')
  z = jax.random.normal(jax.random.PRNGKey(_SEED.value), (_NUM.value, method.latent_dim))
  try:
    # train.generate traces on all --num latents first, so a --num the method
    # cannot give (more than a generator-free run's particles) fails before sampling.
    samples, stats = train.generate(method, state, z, aux=True)
  except ValueError as e:
    sys.exit(f'vgrow-sample: {e}')
  np.savez(_OUT.value, samples=samples, z=np.asarray(z), **stats)
  accepted = (f"; {stats['acceptance'].mean():.3f} of the Metropolis moves accepted"
              if 'acceptance' in stats else '')
  print(f'wrote {samples.shape[0]} samples of shape {samples.shape[1:]} from outer loop '
        f'{int(state.step)} to {_OUT.value}{accepted}')


def run():
  app.run(main)


if __name__ == '__main__':
  run()
