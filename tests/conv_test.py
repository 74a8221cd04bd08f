"""The loop-friendly convolution equals XLA's convolution and its autodiff."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import conv


def _ref(x, k):
  return jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


@pytest.mark.parametrize('ksize,cin,cout', [(3, 1, 4), (3, 5, 3), (5, 2, 2)])
def test_value_and_both_gradients_match_lax_conv(ksize, cin, cout):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(ksize + cin), 3)
  x = jax.random.normal(kx, (2, 8, 6, cin))
  k = jax.random.normal(kk, (ksize, ksize, cin, cout))
  g = jax.random.normal(kg, (2, 8, 6, cout))
  np.testing.assert_allclose(conv.conv2d_same(x, k), _ref(x, k), rtol=1e-5, atol=1e-5)
  ours = jax.grad(lambda x, k: jnp.sum(conv.conv2d_same(x, k) * g), argnums=(0, 1))(x, k)
  ref = jax.grad(lambda x, k: jnp.sum(_ref(x, k) * g), argnums=(0, 1))(x, k)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_gradients_inside_scan_and_vmap():
  x = jax.random.normal(jax.random.PRNGKey(0), (3, 2, 5, 5, 2))
  k = jax.random.normal(jax.random.PRNGKey(1), (3, 3, 2, 2))
  f = lambda conv_fn: jax.lax.scan(
      lambda c, xi: (c + jax.grad(lambda k: jnp.sum(jnp.tanh(conv_fn(xi, k))))(k), None),
      jnp.zeros_like(k), x)[0]
  np.testing.assert_allclose(jax.jit(lambda: f(conv.conv2d_same))(), f(_ref), rtol=1e-4, atol=1e-4)
  batched = jax.vmap(conv.conv2d_same, in_axes=(0, None))(x, k)
  np.testing.assert_allclose(batched, jax.vmap(_ref, in_axes=(0, None))(x, k), rtol=1e-5, atol=1e-5)


def test_module_has_nn_conv_parameter_layout():
  import flax.linen as nn  # pylint: disable=g-import-not-at-top
  x = jnp.ones((1, 4, 4, 3))
  ours = conv.Conv(5, 3).init(jax.random.PRNGKey(0), x)
  ref = nn.Conv(5, (3, 3), padding='SAME', use_bias=False).init(jax.random.PRNGKey(0), x)
  assert jax.tree.map(jnp.shape, ours) == jax.tree.map(jnp.shape, ref)
  np.testing.assert_allclose(conv.Conv(5, 3).apply(ref, x),
                             nn.Conv(5, (3, 3), padding='SAME', use_bias=False).apply(ref, x),
                             rtol=1e-5, atol=1e-5)
