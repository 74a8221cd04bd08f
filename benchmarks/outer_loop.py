r"""B1: seconds per VGrow outer loop in vgrow_jax (docs/benchmarks.md).

  python -m benchmarks.outer_loop --arch=resnet_sn --width=32 --channels=1 \
    --image_size=32 --batch=64 --pool=4 --particle_steps=5 --d_steps=1 \
    --g_passes=1 --loops=3 --divergence=kl
  python -m benchmarks.outer_loop --arch=mlp --data_dim=2 --width=256

Runs the same compute as the official PyTorch loop (pool of pool × batch
particles from G in eval mode; T particle moves, each after U logistic D
steps on a real and a pool batch, clamped to [−1, 1] for images; L passes of
MSE fitting of G over the pool in minibatches) with the official optimiser
(RMSprop 1e-4) on random data. The last line printed is
``seconds_per_outer_loop <median>``; the first loop, which compiles, is
reported on its own line and excluded.

``--devices=N`` splits the pool and every batch over N host devices (the
trainer's ``--config.mesh.data=N``), the same global batch; the script sets
XLA's host device count itself, so no ``XLA_FLAGS`` are needed.
"""

import os
import sys

# XLA reads its flags once, when jax starts: the host device count must be in
# XLA_FLAGS before jax is imported (a later flag overrides an earlier one).
_N = next((a.split('=', 1)[1] for a in sys.argv if a.startswith('--devices=')), '1')
os.environ['XLA_FLAGS'] = (os.environ.get('XLA_FLAGS', '')
                           + f' --xla_force_host_platform_device_count={_N}')

import statistics  # pylint: disable=g-import-not-at-top,wrong-import-position
import time  # pylint: disable=g-import-not-at-top,wrong-import-position

from absl import app  # pylint: disable=g-import-not-at-top,wrong-import-position
from absl import flags  # pylint: disable=g-import-not-at-top,wrong-import-position
import jax  # pylint: disable=g-import-not-at-top,wrong-import-position
import numpy as np  # pylint: disable=g-import-not-at-top,wrong-import-position

from vgrow_jax import config as config_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from vgrow_jax import data as data_lib  # pylint: disable=g-import-not-at-top,wrong-import-position
from vgrow_jax import sharding  # pylint: disable=g-import-not-at-top,wrong-import-position
from vgrow_jax import vgrow  # pylint: disable=g-import-not-at-top,wrong-import-position

_ARCH = flags.DEFINE_enum('arch', 'resnet_sn', ['resnet_sn', 'mlp'], 'Networks.')
_WIDTH = flags.DEFINE_integer('width', 32, 'ngf = ndf (resnet_sn) or MLP width.')
_DEPTH = flags.DEFINE_integer('depth', 3, 'MLP hidden layers.')
_CHANNELS = flags.DEFINE_integer('channels', 1, 'Image channels.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 32, 'Image side (resnet_sn needs 32).')
_DATA_DIM = flags.DEFINE_integer('data_dim', 2, 'Vector dimension (mlp).')
_LATENT = flags.DEFINE_integer('latent_dim', 128, 'nz.')
_BATCH = flags.DEFINE_integer('batch', 64, 'Batch size.')
_POOL = flags.DEFINE_integer('pool', 4, 'nPool: pool = pool × batch particles.')
_T = flags.DEFINE_integer('particle_steps', 5, 'T.')
_U = flags.DEFINE_integer('d_steps', 1, 'U.')
_L = flags.DEFINE_integer('g_passes', 1, 'L.')
_LOOPS = flags.DEFINE_integer('loops', 3, 'Timed outer loops (after the compiling one).')
_DIV = flags.DEFINE_string('divergence', 'kl', 'kl | js | logd | jeffreys.')
_SN = flags.DEFINE_integer('sn_power_iterations', 5, 'Power iterations (official: 5).')
_NUM_DATA = flags.DEFINE_integer('num_data', 1024, 'Random training examples.')
_DEVICES = flags.DEFINE_integer('devices', 1, 'Host devices the batches are split over.')


def main(argv):
  del argv
  if _ARCH.value == 'resnet_sn':
    shape = (_IMAGE_SIZE.value, _IMAGE_SIZE.value, _CHANNELS.value)
    clip = (-1.0, 1.0)
  else:
    shape = (_DATA_DIM.value,)
    clip = None
  x = np.random.default_rng(0).uniform(-1, 1, size=(_NUM_DATA.value,) + shape)
  dataset = data_lib.from_array(x.astype(np.float32), name='random')
  cfg = config_lib.Config(
      model=config_lib.ModelConfig(
          arch=_ARCH.value, latent_dim=_LATENT.value, g_width=_WIDTH.value,
          d_width=_WIDTH.value, g_depth=_DEPTH.value, d_depth=_DEPTH.value,
          sn_power_iterations=_SN.value),
      methods={'vgrow': vgrow.HParams(
          divergence=_DIV.value, batch_size=_BATCH.value, pool_batches=_POOL.value,
          particle_steps=_T.value, d_steps=_U.value, g_passes=_L.value, step_size=0.5,
          clip=clip,
          g_optimizer=config_lib.OptimizerConfig(name='rmsprop', learning_rate=1e-4),
          d_optimizer=config_lib.OptimizerConfig(name='rmsprop', learning_rate=1e-4))},
      mesh=config_lib.MeshConfig(data=_DEVICES.value))
  method = vgrow.make(cfg, dataset)
  mesh = sharding.make_mesh(cfg)
  with sharding.use(mesh):
    data_arrays, data_shardings = sharding.shard_data(mesh, dataset.arrays)
    step = sharding.jit_step(method.step, mesh, data_shardings)
    state = sharding.init_state(method.init, mesh, seed=0)

    t0 = time.perf_counter()
    state, _ = step(state, data_arrays)
    jax.block_until_ready(state)
    print(f'compile_and_first_loop_seconds {time.perf_counter() - t0:.3f}')
    times = []
    for _ in range(_LOOPS.value):
      t0 = time.perf_counter()
      state, _ = step(state, data_arrays)
      jax.block_until_ready(state)
      times.append(time.perf_counter() - t0)
  print(f'device {jax.devices()[0].device_kind} x {_DEVICES.value} loops {len(times)} '
        f'times {" ".join(f"{t:.3f}" for t in times)}')
  print(f'seconds_per_outer_loop {statistics.median(times):.4f}')


if __name__ == '__main__':
  app.run(main)
