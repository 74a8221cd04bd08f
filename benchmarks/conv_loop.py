r"""B1 phases: seconds and GFLOP/s of each phase of a VGrow outer loop, per conv implementation.

  python -m benchmarks.conv_loop --arch=resnet_sn --width=32 --rounds=5
  python -m benchmarks.conv_loop --arch=dcgan --impls=custom_vjp,xla

Times the phases of one outer loop at B1's shapes (docs/benchmarks.md) with
the nets of vgrow_jax.models, each phase as a ``lax.scan`` of its steps
(they run inside compiled loops in VGrow), all compiled in one process and
timed in alternating rounds (min / median / max):

* ``pool``: G in eval mode on the pool (pool × batch latents), once;
* ``d_step``: one logistic D step on a real and a pool batch (2·batch
  images, RMSprop), T·U of them per loop;
* ``field``: the field ∇ₓd on the whole pool and one clipped move, T per loop;
* ``g_step``: one least-squares G step on a minibatch, L·pool per loop;

beside this CPU's peak: a 1280×256×256 matmul and the widest 3×3 conv
forward, inside a scan. FLOPs are by formula (2 × multiply-adds of every
conv and dense layer: forward ×1, field ×2, training step ×3) and by XLA's
``cost_analysis`` of one step. The formula counts the nets' plain layer order
(as the official code runs them); the fused resampling convolutions of
:mod:`vgrow_jax.conv` do fewer multiply-adds, so GFLOP/s here is the rate of
that same work, comparable across implementations and with PyTorch.
``--impls`` compares ``model.conv_impl`` values: ``custom_vjp`` (the
library's convolutions, the default on CPU) and ``xla`` (``nn.Conv`` and XLA's
autodiff). The last line is ``loop_seconds <impl> <sum of phases>``.
"""

import dataclasses
import functools
import statistics
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import optax

from vgrow_jax import config as config_lib
from vgrow_jax import conv as conv_lib
from vgrow_jax import models
from vgrow_jax import optim

_ARCH = flags.DEFINE_enum('arch', 'resnet_sn', ['resnet_sn', 'dcgan'], 'Conv pair.')
_WIDTH = flags.DEFINE_integer('width', 32, 'ngf = ndf.')
_CHANNELS = flags.DEFINE_integer('channels', 1, 'Image channels.')
_SIZE = flags.DEFINE_integer('image_size', 32, 'Image side (resnet_sn needs 32).')
_LATENT = flags.DEFINE_integer('latent_dim', 128, 'nz.')
_BATCH = flags.DEFINE_integer('batch', 64, 'Batch size.')
_POOL = flags.DEFINE_integer('pool', 4, 'nPool: pool = pool × batch particles.')
_T = flags.DEFINE_integer('particle_steps', 5, 'T.')
_U = flags.DEFINE_integer('d_steps', 1, 'U.')
_L = flags.DEFINE_integer('g_passes', 1, 'L.')
_ROUNDS = flags.DEFINE_integer('rounds', 3, 'Alternating timing rounds.')
_REPS = flags.DEFINE_integer('reps', 4, 'Steps per timed scan.')
_IMPLS = flags.DEFINE_list('impls', ['custom_vjp'], 'model.conv_impl values: custom_vjp | xla.')

def _macs(fn, *args):
  """Multiply-adds of every conv and dot in fn(*args), from its jaxpr (sub-jaxprs included)."""
  total = 0
  for eqn in _all_eqns(jax.make_jaxpr(fn)(*args).jaxpr):
    total += _eqn_macs(eqn)
  return total


def _all_eqns(jaxpr):
  for eqn in jaxpr.eqns:
    yield eqn
    for v in eqn.params.values():
      for sub in v if isinstance(v, (list, tuple)) else [v]:
        inner = getattr(sub, 'jaxpr', sub)
        if hasattr(inner, 'eqns'):
          yield from _all_eqns(inner)


def _eqn_macs(eqn):
  name = eqn.primitive.name
  if name == 'conv_general_dilated':
    out = eqn.outvars[0].aval.shape
    k = eqn.invars[1].aval.shape  # HWIO
    return int(jnp.prod(jnp.array(out))) * k[0] * k[1] * k[2]
  if name == 'dot_general':
    (lc, _), _ = eqn.params['dimension_numbers']
    lhs = eqn.invars[0].aval.shape
    out = eqn.outvars[0].aval.shape
    contract = 1
    for d in lc:
      contract *= lhs[d]
    return int(jnp.prod(jnp.array(out))) * contract
  return 0


def _phases(arch, width, channels, size, nz, batch, pool, reps, conv_impl):
  """name -> (fn, args, flops by formula per step, steps per call)."""
  shape = (size, size, channels)
  cfg = config_lib.ModelConfig(arch=arch, latent_dim=nz, g_width=width, d_width=width,
                               d_spectral_norm=arch == 'dcgan', conv_impl=conv_impl)
  g, d = models.build(cfg, shape)
  tx = optim.make(config_lib.OptimizerConfig(name='rmsprop', learning_rate=1e-4))
  key = jax.random.PRNGKey(0)
  gp, gs = g.init(key, jnp.zeros((2, nz)))
  dp, ds = d.init(key, jnp.zeros((2,) + shape))
  real = jax.random.uniform(key, (batch,) + shape, minval=-1, maxval=1)
  x = jax.random.uniform(jax.random.PRNGKey(1), (pool,) + shape, minval=-1, maxval=1)
  z = jax.random.normal(key, (pool, nz))
  # Forward MACs per image from the jaxprs of the same nets built on XLA's own
  # convolution (conv.py writes few-channel convolutions as multiply-adds, which
  # _macs does not count): 2 images less 1, which leaves out the spectral-norm
  # power iterations (once per call, not per image). These nets run the plain
  # layer order but with the 1×1 shortcuts at the lower resolution (models.py),
  # about 4% fewer multiply-adds than the official order; the fused resampling
  # convolutions of the custom implementation run fewer still.
  ref_g, ref_d = models.build(dataclasses.replace(cfg, conv_impl='xla'), shape)
  d_macs = (_macs(lambda y: ref_d.eval_apply(dp, ds, y), x[:2])
            - _macs(lambda y: ref_d.eval_apply(dp, ds, y), x[:1]))
  g_macs = (_macs(lambda w: ref_g.eval_apply(gp, gs, w), z[:2])
            - _macs(lambda w: ref_g.eval_apply(gp, gs, w), z[:1]))

  def d_step(c, _):
    dp, ds, opt = c

    def loss_fn(p):
      logit, new = d.train_apply(p, ds, jnp.concatenate([real, x[:batch]]))
      return jnp.mean(jax.nn.softplus(-logit[:batch])) + jnp.mean(jax.nn.softplus(logit[batch:])), new

    (loss, ds), grads = jax.value_and_grad(loss_fn, has_aux=True)(dp)
    updates, opt = tx.update(grads, opt, dp)
    return (optax.apply_updates(dp, updates), ds, opt), loss

  def field(y, dp, ds):
    h = jax.grad(lambda v: jnp.sum(d.eval_apply(dp, ds, v)))(y)
    return jnp.clip(y + 0.5 * h, -1, 1)

  def g_step(c, _):
    gp, gs, opt = c

    def loss_fn(p):
      pred, new = g.train_apply(p, gs, z[:batch])
      return jnp.mean(jnp.square(pred - x[:batch])), new

    (loss, gs), grads = jax.value_and_grad(loss_fn, has_aux=True)(gp)
    updates, opt = tx.update(grads, opt, gp)
    return (optax.apply_updates(gp, updates), gs, opt), loss

  scan = lambda f, c: jax.lax.scan(f, c, None, length=reps)
  return {
      'pool': (lambda gp, gs, z: g.eval_apply(gp, gs, z), (gp, gs, z), 2 * pool * g_macs, 1),
      # The whole result, so XLA keeps the last step's backward pass.
      'd_step': (lambda *c: scan(d_step, c), (dp, ds, tx.init(dp)),
                 3 * 2 * 2 * batch * d_macs, reps),
      'field': (lambda y, dp, ds: scan(lambda v, _: (field(v, dp, ds), None), y)[0],
                (x, dp, ds), 2 * 2 * pool * d_macs, reps),
      'g_step': (lambda *c: scan(g_step, c), (gp, gs, tx.init(gp)),
                 3 * 2 * batch * g_macs, reps),
  }, d_macs, g_macs


def _peaks(reps):
  """Matmul and widest-conv forward inside a scan: name -> (fn, args, flops per step, steps)."""
  a = jnp.full((1280, 256), 0.01)
  b = jnp.full((256, 256), 0.01)
  mm_reps = 25 * reps  # a matmul takes ~1 ms: enough of them to time
  mm = lambda a, b: jax.lax.scan(lambda c, _: (c + 1e-3 * jnp.mean(a @ (b + c)), None), 0.0,
                                 None, length=mm_reps)[0]
  xs = jnp.full((128, 32, 32, 32), 0.01)
  k = jnp.full((3, 3, 32, 32), 0.01)
  cv = lambda xs, k: jax.lax.scan(
      lambda c, _: (c + 1e-3 * jnp.mean(conv_lib.conv2d_same(xs, k + c)), None), 0.0, None,
      length=reps)[0]
  return {'peak_matmul_1280x256x256': (mm, (a, b), 2 * 1280 * 256 * 256, mm_reps),
          'peak_conv3x3_128x32x32x32': (cv, (xs, k), 2 * 128 * 32 * 32 * 9 * 32 * 32, reps)}


def _xla_flops(compiled):
  """FLOPs of one step by XLA's cost analysis (it counts a while body once, so one step)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, list) else cost
  return cost.get('flops', float('nan'))


def main(argv):
  del argv
  batch, pool = _BATCH.value, _POOL.value * _BATCH.value
  counts = {'pool': 1, 'd_step': _T.value * _U.value, 'field': _T.value,
            'g_step': _L.value * _POOL.value}
  compiled = {}
  for impl in _IMPLS.value:
    phases, d_macs, g_macs = _phases(_ARCH.value, _WIDTH.value, _CHANNELS.value, _SIZE.value,
                                     _LATENT.value, batch, pool, _REPS.value, impl)
    for name, (fn, args, flops, steps) in phases.items():
      c = jax.jit(fn).lower(*args).compile()
      compiled[(name, impl)] = (c, args, flops, steps, _xla_flops(c))
  for name, (fn, args, flops, steps) in _peaks(_REPS.value).items():
    compiled[(name, '-')] = (jax.jit(fn).lower(*args).compile(), args, flops, steps, float('nan'))
  print(f'arch {_ARCH.value} width {_WIDTH.value} forward MACs per image: D {d_macs / 1e6:.2f} M, '
        f'G {g_macs / 1e6:.2f} M; device {jax.devices()[0].device_kind}')
  for c, args, *_ in compiled.values():
    jax.block_until_ready(c(*args))
  times = {k: [] for k in compiled}
  for _ in range(_ROUNDS.value):
    for k, (c, args, *_) in compiled.items():
      t0 = time.perf_counter()
      jax.block_until_ready(c(*args))
      times[k].append((time.perf_counter() - t0) / compiled[k][3])  # per step
  print(f'{"phase":26s} {"impl":13s} {"n/loop":>6s} {"ms/step min":>11s} {"med":>8s} '
        f'{"max":>8s} {"GFLOP/step":>10s} {"XLA GFLOP":>9s} {"GFLOP/s":>7s} {"s/loop":>7s}')
  loop = {impl: 0.0 for impl in _IMPLS.value}
  for (name, impl), ts in times.items():
    _, _, flops, _, xla = compiled[(name, impl)]
    med = statistics.median(ts)
    n = counts.get(name, 0)
    if impl in loop:
      loop[impl] += n * med
    print(f'{name:26s} {impl:13s} {n:6d} {1e3 * min(ts):11.1f} {1e3 * med:8.1f} '
          f'{1e3 * max(ts):8.1f} {flops / 1e9:10.2f} {xla / 1e9:9.2f} {flops / med / 1e9:7.1f} '
          f'{n * med:7.2f}')
  for impl, s in loop.items():
    print(f'loop_seconds {impl} {s:.3f}')


if __name__ == '__main__':
  app.run(main)
