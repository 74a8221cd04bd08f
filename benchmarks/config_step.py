r"""Seconds per compiled step of any config's method, conv pairs against the MLP pair.

  python -m benchmarks.config_step --specs=sngan,sngan:dcgan \
      --specs=vgrow:jeffreys,vgrow:jeffreys,dcgan --rounds=3

Each ``--specs`` entry is an argument of ``experiments/configs/mnist.py``
(``[METHOD[:VARIANT]][,ARCH]``; ';' also separates entries, so that an entry
may hold a comma). For each, the method is built from that config on the
offline MNIST digits exactly as ``vgrow-train`` builds it, its ``step`` (one
outer loop: for a GAN-type method ``g_steps_per_loop`` = 20 generator
iterations with their D steps, for VGrow T moves with U D steps each and L
passes of the G fit) is compiled once, and then all specs are timed in
alternating rounds (min / median / max seconds per step). Training data are
the real digits; nothing is written.
"""

import statistics
import time

from absl import app
from absl import flags
import jax

from experiments.configs import mnist
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib

_SPECS = flags.DEFINE_multi_string(
    'specs', ['sngan;sngan,dcgan', 'vgrow:jeffreys;vgrow:jeffreys,dcgan'],
    "mnist.py arguments, ';'-separated (repeatable).")
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Alternating timing rounds.')
_STEPS = flags.DEFINE_integer('steps', 2, 'Steps per timing (median reported per step).')


def _build(spec: str):
  cfg = config_lib.Config.from_dict(mnist.get_config(spec).to_dict())
  dataset = data_lib.load(cfg.data)
  method = method_lib.get(cfg.method)(cfg, dataset)
  # Under jit, as the trainer inits it: every leaf its own buffer (donated below).
  state = jax.jit(method.init)(jax.random.PRNGKey(0))
  step = jax.jit(method.step, donate_argnums=0)
  t0 = time.perf_counter()
  state, _ = step(state, dataset.arrays)
  jax.block_until_ready(state)
  return cfg, dataset, step, [state], time.perf_counter() - t0


def main(argv):
  del argv
  specs = [s for entry in _SPECS.value for s in entry.split(';') if s]
  built = {s: _build(s) for s in specs}
  times = {s: [] for s in specs}
  for _ in range(_ROUNDS.value):
    for s in specs:
      _, dataset, step, holder, _ = built[s]
      state = holder[0]
      t0 = time.perf_counter()
      for _ in range(_STEPS.value):
        state, _ = step(state, dataset.arrays)
      jax.block_until_ready(state)
      times[s].append((time.perf_counter() - t0) / _STEPS.value)
      holder[0] = state
  print(f'{"spec":28s} {"method":8s} {"arch":9s} {"compile s":>9s} '
        f'{"s/step min":>10s} {"median":>8s} {"max":>8s}')
  for s in specs:
    cfg, _, _, _, compile_s = built[s]
    ts = times[s]
    print(f'{s:28s} {cfg.method:8s} {cfg.model.arch:9s} {compile_s:9.1f} {min(ts):10.3f} '
          f'{statistics.median(ts):8.3f} {max(ts):8.3f}')


if __name__ == '__main__':
  app.run(main)
