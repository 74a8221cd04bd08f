r"""Milliseconds per WGAN-GP critic step on the conv nets, with and without the penalty.

  python -m benchmarks.critic_step --arch=dcgan --rounds=3
  python -m benchmarks.critic_step --arch=resnet_sn --impls=custom_vjp,xla

One critic step is the gradient in D's parameters of

.. math:: E_q f(\tilde x) - E_p f(y) + \lambda\, E_{\hat x} (\lVert \nabla_{\hat x} f \rVert - 1)^2

on a batch of real and fake images (random here), and an SGD update, inside
a ``lax.scan`` of ``--reps`` steps as WGAN-GP runs it. The penalty
differentiates D's input gradient once more, so its cost shows whether the
second derivative of the convolutions runs on :mod:`vgrow_jax.conv`'s fast
forms. Each (impl, penalty) variant is compiled once and timed in
alternating rounds (min / median / max).
"""

import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp

from vgrow_jax import adversarial
from vgrow_jax import config as config_lib
from vgrow_jax import models

_ARCH = flags.DEFINE_enum('arch', 'dcgan', ['resnet_sn', 'dcgan'], 'Conv D.')
_WIDTH = flags.DEFINE_integer('width', 32, 'ndf.')
_SIZE = flags.DEFINE_integer('image_size', 32, 'Image side.')
_BATCH = flags.DEFINE_integer('batch', 64, 'Real and fake images per step (each).')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Alternating timing rounds.')
_REPS = flags.DEFINE_integer('reps', 4, 'Steps per timed scan.')
_IMPLS = flags.DEFINE_list('impls', ['custom_vjp'], 'model.conv_impl values: custom_vjp | xla.')
_GP_WEIGHT = 10.0


def _step_fn(arch, width, size, batch, reps, impl, penalty):
  cfg = config_lib.ModelConfig(arch=arch, d_width=width, sn_power_iterations=1, conv_impl=impl)
  _, d = models.build(cfg, (size, size, 1))
  key = jax.random.PRNGKey(0)
  params, state = d.init(key, jnp.zeros((2, size, size, 1)))
  real = jax.random.uniform(jax.random.PRNGKey(1), (batch, size, size, 1), minval=-1, maxval=1)
  fake = jax.random.uniform(jax.random.PRNGKey(2), (batch, size, size, 1), minval=-1, maxval=1)

  def loss(p, k):
    f = lambda x: d.eval_apply(p, state, x)
    out = jnp.mean(f(fake)) - jnp.mean(f(real))
    if penalty:
      out += _GP_WEIGHT * adversarial.interpolated_gradient_penalty(f, real, fake, k)
    return out

  @jax.jit
  def run(p):
    def body(p, i):
      g = jax.grad(loss)(p, jax.random.fold_in(key, i))
      return jax.tree.map(lambda a, b: a - 1e-4 * b, p, g), None
    return jax.lax.scan(body, p, jnp.arange(reps))[0]

  return run, params


def main(argv):
  del argv
  variants = {}
  for impl in _IMPLS.value:
    for penalty in (True, False):
      fn, p = _step_fn(_ARCH.value, _WIDTH.value, _SIZE.value, _BATCH.value, _REPS.value,
                       impl, penalty)
      jax.block_until_ready(fn(p))  # compile
      variants[(impl, penalty)] = (fn, p)
  times = {k: [] for k in variants}
  for _ in range(_ROUNDS.value):
    for k, (fn, p) in variants.items():
      t = time.perf_counter()
      jax.block_until_ready(fn(p))
      times[k].append(1e3 * (time.perf_counter() - t) / _REPS.value)
  print(f'{_ARCH.value} width {_WIDTH.value}, {_SIZE.value}x{_SIZE.value}x1, batch {_BATCH.value} '
        f'real + {_BATCH.value} fake, {_REPS.value} steps per scan, {_ROUNDS.value} rounds')
  for (impl, penalty), ts in times.items():
    print(f'{impl:10s} {"with" if penalty else "without"} penalty: ms/step min / median / max '
          f'{min(ts):.1f} / {statistics.median(ts):.1f} / {max(ts):.1f}')


if __name__ == '__main__':
  app.run(main)
