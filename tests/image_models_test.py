"""The DCGAN pair: sizes, parameter counts, BatchNorm in train vs eval, per-sample logits."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import models


@pytest.mark.parametrize('size,plan', [(8, (4, 1)), (28, (7, 2)), (32, (4, 3)), (64, (4, 4))])
def test_dcgan_plan(size, plan):
  assert models.dcgan_plan(size) == plan


def _pair(size, channels, w=4, nz=3, init=jax.jit):
  cfg = config_lib.ModelConfig(arch='dcgan', latent_dim=nz, g_width=w, d_width=w,
                               conv_impl='custom_vjp')
  g, d = models.build(cfg, (size, size, channels))
  gp, gs = init(g.init)(jax.random.PRNGKey(0), jnp.zeros((2, nz)))
  dp, ds = init(d.init)(jax.random.PRNGKey(1), jnp.zeros((2, size, size, channels)))
  return g, d, gp, gs, dp, ds


def _shapes(f):
  return lambda *a: jax.eval_shape(f, *a)


@pytest.mark.parametrize('size,channels', [(28, 1), (32, 3), (64, 3)])
def test_dcgan_parameter_count_and_shapes(size, channels):
  g, d, gp, gs, dp, ds = _pair(size, channels, init=_shapes)
  s0, k = models.dcgan_plan(size)
  w, nz, c = 4, 3, channels
  chans = [w * 2 ** (k - 1 - i) for i in range(k)]  # G's conv widths
  top = w * 2 ** (k - 1)
  g_expected = (nz * s0 * s0 * top + s0 * s0 * top) + 2 * top  # dense + its BN
  prev = top
  for ch in chans:
    g_expected += 9 * prev * ch + 2 * ch  # 3x3 conv, no bias, + BN
    prev = ch
  g_expected += 9 * w * c
  d_expected, prev = 0, c
  for i in range(k):
    d_expected += 9 * prev * w * 2 ** i
    prev = w * 2 ** i
  d_expected += s0 * s0 * prev + 1
  count = lambda t: sum(x.size for x in jax.tree.leaves(t))
  assert count(gp) == g_expected and count(dp) == d_expected
  x = _shapes(g.eval_apply)(gp, gs, jnp.zeros((5, nz)))
  assert x.shape == (5, size, size, c)
  assert _shapes(d.eval_apply)(dp, ds, x).shape == (5,)


def test_dcgan_batchnorm_train_uses_the_batch_and_eval_the_running_averages():
  g, _, gp, gs, _, _ = _pair(8, 1)
  z = jax.random.normal(jax.random.PRNGKey(3), (16, 3))
  y_train, new_gs = g.train_apply(gp, gs, z)
  assert y_train.shape == (16, 8, 8, 1) and float(jnp.abs(y_train).max()) <= 1.0  # tanh
  # Training mode normalises with the batch: a sample's output depends on its batch.
  y_half, _ = g.train_apply(gp, gs, z[:8])
  assert float(jnp.abs(y_train[:8] - y_half).max()) > 1e-3
  # The running mean moved 10% towards the batch mean (momentum 0.9).
  h = (z @ gp['Dense_0']['kernel'] + gp['Dense_0']['bias']).reshape(16, 4, 4, 4)
  np.testing.assert_allclose(new_gs['batch_stats']['BatchNorm_0']['mean'],
                             0.1 * h.mean((0, 1, 2)), rtol=1e-4, atol=1e-7)
  # Evaluation mode uses the stored statistics: per sample, and state unchanged.
  y_eval = g.eval_apply(gp, new_gs, z)
  np.testing.assert_allclose(g.eval_apply(gp, new_gs, z[:8]), y_eval[:8], rtol=1e-5, atol=1e-6)


def test_dcgan_logits_are_per_sample_and_impls_agree():
  build = lambda impl: models.build(config_lib.ModelConfig(arch='dcgan', d_width=4,
                                                           conv_impl=impl), (16, 16, 1))[1]
  d, d_xla = build('custom_vjp'), build('xla')
  dp, ds = jax.jit(d.init)(jax.random.PRNGKey(1), jnp.zeros((2, 16, 16, 1)))
  x = jax.random.uniform(jax.random.PRNGKey(4), (6, 16, 16, 1), minval=-1, maxval=1)
  full = d.eval_apply(dp, ds, x)
  np.testing.assert_allclose(d.eval_apply(dp, ds, x[2:3]), full[2:3], rtol=1e-5, atol=1e-6)
  # Same parameter tree: the nn.Conv version computes the same logits.
  np.testing.assert_allclose(d_xla.eval_apply(dp, ds, x), full, rtol=1e-4, atol=1e-5)


def test_dcgan_rejects_sizes_it_cannot_grow():
  cfg = config_lib.ModelConfig(arch='dcgan')
  with pytest.raises(ValueError, match=r'dcgan needs square images.*got example shape \(7, 7, 1\)'):
    models.build(cfg, (7, 7, 1))
  with pytest.raises(ValueError, match=r'got example shape \(2,\)'):
    models.build(cfg, (2,))
