"""Runs training jobs in a process that has several (virtual) devices; used by sharding_test.py.

  XLA_FLAGS=--xla_force_host_platform_device_count=8 python tests/sharded_runs.py JOBS.json OUT.json

JOBS.json: ``[{"config": Config.to_dict(), "workdir": "..."}, ...]``. Each job
is trained with :func:`vgrow_jax.train.train_and_evaluate`; OUT.json gets the
device count and the one-line errors of a few bad mesh settings, for the test
to assert on.
"""

import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

import jax  # pylint: disable=g-import-not-at-top
import jax.numpy as jnp  # pylint: disable=g-import-not-at-top

from vgrow_jax import config as config_lib  # pylint: disable=g-import-not-at-top
from vgrow_jax import sharding  # pylint: disable=g-import-not-at-top
from vgrow_jax import train  # pylint: disable=g-import-not-at-top
from vgrow_jax import vgrow  # pylint: disable=g-import-not-at-top


def _error(fn) -> str:
  try:
    fn()
  except ValueError as e:
    return f'{type(e).__name__}: {e}'
  return 'no error'


def main(jobs_path: str, out_path: str) -> None:
  with open(jobs_path) as f:
    jobs = json.load(f)
  for job in jobs:
    train.train_and_evaluate(config_lib.Config.from_dict(job['config']), job['workdir'])
  base = config_lib.Config.from_dict(jobs[0]['config'])

  def mesh_of(data, batch):
    methods = {'vgrow': vgrow.HParams(batch_size=batch)}
    mesh = config_lib.MeshConfig(data)
    return lambda: sharding.make_mesh(config_lib.Config(methods=methods, mesh=mesh))

  def shard_odd_batch():
    with sharding.use(sharding.make_mesh(base)):
      jax.jit(sharding.shard_batch)(jnp.zeros((12, 2)))

  def draws(key):
    return {'normal': jax.random.normal(key, (64, 3)),
            'choice': jax.random.choice(key, 64, (16,), replace=False),
            'permutation': jax.random.permutation(key, 64)}

  key = jax.random.PRNGKey(3)
  plain = jax.jit(draws)(key)
  with sharding.use(sharding.make_mesh(base)):
    split = jax.jit(lambda k: sharding.shard_batch(draws(k)))(key)

  out = {
      'device_count': jax.device_count(),
      'threefry_partitionable': jax.config.jax_threefry_partitionable,
      'random_equal': {k: bool((plain[k] == split[k]).all()) for k in plain},
      'random_split_over': [str(split[k].sharding.spec) for k in sorted(split)],
      'errors': {
          'mesh.data=-1, batch 12': _error(mesh_of(-1, 12)),
          'mesh.data=16': _error(mesh_of(16, 16)),
          'shard_batch of 12': _error(shard_odd_batch),
      },
  }
  with open(out_path, 'w') as f:
    json.dump(out, f)


if __name__ == '__main__':
  main(*sys.argv[1:])
