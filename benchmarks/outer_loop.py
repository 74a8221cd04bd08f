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
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import numpy as np

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import vgrow

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
          d_optimizer=config_lib.OptimizerConfig(name='rmsprop', learning_rate=1e-4))})
  method = vgrow.make(cfg, dataset)
  state = method.init(jax.random.PRNGKey(0))
  step = jax.jit(method.step, donate_argnums=0)

  t0 = time.perf_counter()
  state, _ = step(state, dataset.arrays)
  jax.block_until_ready(state)
  print(f'compile_and_first_loop_seconds {time.perf_counter() - t0:.3f}')
  times = []
  for _ in range(_LOOPS.value):
    t0 = time.perf_counter()
    state, _ = step(state, dataset.arrays)
    jax.block_until_ready(state)
    times.append(time.perf_counter() - t0)
  print(f'device {jax.devices()[0].device_kind} loops {len(times)} '
        f'times {" ".join(f"{t:.3f}" for t in times)}')
  print(f'seconds_per_outer_loop {statistics.median(times):.4f}')


if __name__ == '__main__':
  app.run(main)
