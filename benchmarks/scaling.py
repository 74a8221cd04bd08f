r"""B4: data-parallel scaling of the VGrow outer loop (docs/benchmarks.md).

  python -m benchmarks.scaling --devices=1,2,4,8 --arch=mlp --width=256 \
    --per_device_batch=64 --pool=4 --loops=5
  # on CPU, 8 virtual devices (correctness only, see below):
  XLA_FLAGS=--xla_force_host_platform_device_count=8 python -m benchmarks.scaling ...

For each n in ``--devices`` it runs the trainer's compiled step
(:func:`vgrow_jax.sharding.jit_step`) on a mesh of the first n devices with
a global batch of ``per_device_batch × n`` (weak scaling: the work per
device stays fixed) and reports the median seconds per outer loop
(compilation excluded), particles per second, per-device particles per
second, and the data-parallel efficiency

  efficiency(n) = (per-device throughput at n devices) / (throughput at 1 device).

It then checks correctness: ``--check_loops`` outer loops at one global
batch (``per_device_batch × max n``) on 1 and on max n devices, and prints
the largest parameter difference.

On CPU the "devices" that ``--xla_force_host_platform_device_count`` makes
share the same cores, so the timings say nothing about scaling: a CPU run
proves only that n devices compute what one does. Efficiency figures need
real accelerators (n GPUs or TPU cores).
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import numpy as np

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import sharding
from vgrow_jax import vgrow

_DEVICES = flags.DEFINE_list('devices', ['1', '2', '4', '8'], 'Device counts to measure.')
_ARCH = flags.DEFINE_enum('arch', 'mlp', ['mlp', 'resnet_sn'], 'Networks.')
_WIDTH = flags.DEFINE_integer('width', 256, 'MLP width or ngf = ndf (resnet_sn).')
_DEPTH = flags.DEFINE_integer('depth', 3, 'MLP hidden layers.')
_DATA_DIM = flags.DEFINE_integer('data_dim', 2, 'Vector dimension (mlp); images are 32×32×1.')
_LATENT = flags.DEFINE_integer('latent_dim', 128, 'nz.')
_PER_DEVICE_BATCH = flags.DEFINE_integer('per_device_batch', 64, 'Batch size per device.')
_POOL = flags.DEFINE_integer('pool', 4, 'nPool: pool = pool × batch particles.')
_T = flags.DEFINE_integer('particle_steps', 5, 'T.')
_L = flags.DEFINE_integer('g_passes', 1, 'L.')
_LOOPS = flags.DEFINE_integer('loops', 5, 'Timed outer loops (after the compiling one).')
_CHECK_LOOPS = flags.DEFINE_integer('check_loops', 2, 'Outer loops of the 1-vs-n check.')


def _config(batch: int, devices: int) -> config_lib.Config:
  image = _ARCH.value == 'resnet_sn'
  return config_lib.Config(
      model=config_lib.ModelConfig(arch=_ARCH.value, latent_dim=_LATENT.value,
                                   g_width=_WIDTH.value, d_width=_WIDTH.value,
                                   g_depth=_DEPTH.value, d_depth=_DEPTH.value),
      methods={'vgrow': vgrow.HParams(
          batch_size=batch, pool_batches=_POOL.value, particle_steps=_T.value, d_steps=1,
          g_passes=_L.value, step_size=0.5, clip=(-1.0, 1.0) if image else None,
          g_optimizer=config_lib.OptimizerConfig(name='rmsprop', learning_rate=1e-4),
          d_optimizer=config_lib.OptimizerConfig(name='rmsprop', learning_rate=1e-4))},
      mesh=config_lib.MeshConfig(data=devices))


def _dataset() -> data_lib.Dataset:
  shape = (32, 32, 1) if _ARCH.value == 'resnet_sn' else (_DATA_DIM.value,)
  x = np.random.default_rng(0).uniform(-1, 1, size=(1024,) + shape)
  return data_lib.from_array(x.astype(np.float32), name='random')


def _run(cfg: config_lib.Config, dataset: data_lib.Dataset, loops: int):
  """``(state, compile_and_first_loop_seconds, [seconds per loop])``."""
  mesh = sharding.make_mesh(cfg)
  method = vgrow.make(cfg, dataset)
  with sharding.use(mesh):
    data_arrays, data_shardings = sharding.shard_data(mesh, dataset.arrays)
    step = sharding.jit_step(method.step, mesh, data_shardings)
    state = sharding.init_state(method.init, mesh, seed=0)
    times = []
    for _ in range(loops + 1):
      t0 = time.perf_counter()
      state, _ = step(state, data_arrays)
      jax.block_until_ready(state)
      times.append(time.perf_counter() - t0)
  return state, times[0], times[1:]


def main(argv):
  del argv
  counts = sorted(int(n) for n in _DEVICES.value)
  dataset = _dataset()
  print(f'platform {jax.devices()[0].platform} ({jax.devices()[0].device_kind}), '
        f'{jax.device_count()} devices; arch {_ARCH.value}, per-device batch '
        f'{_PER_DEVICE_BATCH.value}, pool {_POOL.value} batches, T {_T.value}, L {_L.value}')
  print('devices  global_batch  compile_s  s_per_loop  particles_per_s  per_device  efficiency')
  base = None
  for n in counts:
    batch = _PER_DEVICE_BATCH.value * n
    _, compile_s, times = _run(_config(batch, n), dataset, _LOOPS.value)
    per_loop = statistics.median(times)
    rate = batch * _POOL.value / per_loop
    base = base or rate / n
    print(f'{n:7d}  {batch:12d}  {compile_s:9.2f}  {per_loop:10.4f}  {rate:15.0f}  '
          f'{rate / n:10.0f}  {rate / n / base:10.3f}')

  # Correctness: one global batch, 1 device vs the most devices.
  batch = _PER_DEVICE_BATCH.value * counts[-1]
  one, _, _ = _run(_config(batch, 1), dataset, _CHECK_LOOPS.value - 1)
  many, _, _ = _run(_config(batch, counts[-1]), dataset, _CHECK_LOOPS.value - 1)
  diff = max(float(np.max(np.abs(np.asarray(a) - np.asarray(b))))
             for a, b in zip(jax.tree.leaves(one), jax.tree.leaves(many)))
  print(f'max |params on {counts[-1]} devices - params on 1| after {_CHECK_LOOPS.value} '
        f'outer loops at global batch {batch}: {diff:.3g}')
  if jax.devices()[0].platform == 'cpu':
    print('CPU: the virtual devices share the same cores; the timings above are not scaling '
          'figures, only the correctness line is.')


if __name__ == '__main__':
  app.run(main)
