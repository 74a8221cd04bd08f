"""The loop-friendly convolution equals XLA's convolution and its autodiff.

Run also under ``XLA_FLAGS=--xla_cpu_max_isa=AVX2`` (a CPU without AVX-512).
"""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import conv

pytestmark = pytest.mark.usefixtures('classic_threefry')


def _ref(x, k):
  return jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                      dimension_numbers=('NHWC', 'HWIO', 'NHWC'))


def _np_kernel_grad(x, g, ksize, padding):
  """dK[i, j, c, o] = Σ_{b,h,w} x̃[b, h+i, w+j, c] g[b, h, w, o], in float64.

  The definition itself: at these sizes it is much faster than XLA's own
  convolution gradient on CPU (seconds per case at odd channel counts).
  """
  x, g = np.asarray(x, np.float64), np.asarray(g, np.float64)
  xp = np.pad(x, ((0, 0),) + tuple(padding) + ((0, 0),))
  h, w = g.shape[1:3]
  return np.stack([np.stack([np.einsum('bhwc,bhwo->co', xp[:, i:i + h, j:j + w], g)
                             for j in range(ksize)]) for i in range(ksize)])


def _same(ksize):
  return ((ksize // 2, (ksize - 1) // 2),) * 2


# Few input channels (≤ 4: broadcast multiply-adds), few output channels (matmul
# and shifted adds), and neither (the library convolution).
@pytest.mark.parametrize('ksize,cin,cout', [(3, 1, 4), (3, 5, 3), (5, 2, 2), (3, 1, 1),
                                            (3, 8, 1), (5, 6, 2), (3, 6, 7), (1, 3, 5)])
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


@pytest.mark.parametrize('batch,side,ksize,cin,cout', [
    (16, 32, 3, 2, 3),
    (12, 32, 3, 1, 4),
    (6, 32, 5, 3, 2),
    (9, 24, 3, 4, 4),  # C ≤ 4: windows on a major axis, no chunks
    (16, 32, 3, 6, 3),  # 4 chunks of 4 images
    (12, 32, 3, 5, 4),  # 3 chunks of 4 (12 is no power of 2)
    (6, 32, 5, 6, 2),  # 1 chunk, k = 5
    (9, 24, 3, 8, 4),  # 2 chunks wanted, 9 odd: 1 chunk
    (16, 32, 3, 5, 8),  # C < O: one dot per tap, 16 chunks of 1 image
    (12, 16, 3, 6, 9),  # C < O: 6 chunks of 2
    (9, 24, 5, 6, 7)])  # C < O, k = 5: 9 chunks
def test_kernel_grad_in_chunks_matches_lax_conv(batch, side, ksize, cin, cout):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(batch), 3)
  x = jax.random.normal(kx, (batch, side, side, cin))
  k = jax.random.normal(kk, (ksize, ksize, cin, cout))
  g = jax.random.normal(kg, (batch, side, side, cout))
  ref = _np_kernel_grad(x, g, ksize, _same(ksize))
  ours = jax.jit(conv.kernel_grad, static_argnums=2)(x, g, ksize)
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-3 * float(jnp.abs(ref).max()))


# Explicit padding (the fused convolutions' 2×2 kernels): shifted g (C ≥ O) and
# per-tap dots (C < O), each over several chunks, against the definition; and
# one small case against XLA's convolution and its autodiff.
@pytest.mark.parametrize('padding', [((0, 0), (0, 0)), ((1, 1), (1, 1)), ((1, 0), (0, 1))])
@pytest.mark.parametrize('cin,cout', [(16, 4), (5, 12)])
def test_kernel_grad_with_explicit_padding_matches_lax_conv(padding, cin, cout):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(cin), 3)
  x = jax.random.normal(kx, (16, 16, 16, cin))
  h, w = (16 + sum(padding[0]) - 1, 16 + sum(padding[1]) - 1)
  g = jax.random.normal(kg, (16, h, w, cout))
  ours = jax.jit(conv.kernel_grad, static_argnums=(2, 3))(x, g, 2, padding)
  ref = _np_kernel_grad(x, g, 2, padding)
  np.testing.assert_allclose(ours, ref, rtol=1e-4, atol=1e-4 * float(np.abs(ref).max()))
  xs = x[:2, :5, :4]  # small: XLA's own conv is slow at odd channel counts
  ks = jax.random.normal(kk, (2, 2, cin, cout))
  fwd = lambda k: jax.lax.conv_general_dilated(xs, k, (1, 1), padding,
                                               dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
  y, vjp = jax.vjp(fwd, ks)
  gs = jax.random.normal(kg, y.shape)
  np.testing.assert_allclose(conv.conv2d(xs, ks, padding), y, rtol=1e-5, atol=1e-4)
  np.testing.assert_allclose(conv.kernel_grad(xs, gs, 2, padding), vjp(gs)[0],
                             rtol=1e-4, atol=1e-4)


def _avgpool2(y):
  return jax.lax.reduce_window(y, 0.0, jax.lax.add, (1, 2, 2, 1), (1, 2, 2, 1), 'VALID') / 4


def _upsample2(x):
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


# Fused resampling convs against their plain composition with lax.conv: channel
# counts that take each path of the underlying conv2d (the space-to-depth input
# has 4C channels, the phase output 4·O), k = 3 and k = 5 for the pooled one.
@pytest.mark.parametrize('op,ksize,cin,cout', [
    ('pool2', 3, 3, 5), ('pool2', 3, 6, 7), ('pool2', 3, 1, 4), ('pool2', 3, 8, 1),
    ('pool2', 5, 2, 3), ('up2', 3, 3, 5), ('up2', 3, 6, 7), ('up2', 3, 1, 4),
    ('up2', 3, 8, 1), ('up2', 3, 5, 2)])
def test_fused_resampling_convs_match_the_plain_composition(op, ksize, cin, cout):
  kx, kk, kg = jax.random.split(jax.random.PRNGKey(7 * cin + cout), 3)
  x = jax.random.normal(kx, (3, 8, 6, cin))
  k = jax.random.normal(kk, (ksize, ksize, cin, cout))
  if op == 'pool2':
    ours_fn, ref_fn = conv.conv_avgpool2, lambda x, k: _avgpool2(_ref(x, k))
    g = jax.random.normal(kg, (3, 4, 3, cout))
  else:
    ours_fn, ref_fn = conv.upsample2_conv, lambda x, k: _ref(_upsample2(x), k)
    g = jax.random.normal(kg, (3, 16, 12, cout))
  np.testing.assert_allclose(ours_fn(x, k), ref_fn(x, k), rtol=1e-5, atol=1e-5)
  ours = jax.jit(jax.grad(lambda x, k: jnp.sum(ours_fn(x, k) * g), argnums=(0, 1)))(x, k)
  ref = jax.grad(lambda x, k: jnp.sum(ref_fn(x, k) * g), argnums=(0, 1))(x, k)
  for a, b in zip(ours, ref):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


def test_fused_resampling_convs_reject_shapes_they_cannot_fuse():
  with pytest.raises(ValueError, match=r'conv_avgpool2 needs even H, W'):
    conv.conv_avgpool2(jnp.zeros((1, 5, 4, 2)), jnp.zeros((3, 3, 2, 2)))
  with pytest.raises(ValueError, match=r'upsample2_conv needs a 3×3 kernel, got kernel_size = 5'):
    conv.upsample2_conv(jnp.zeros((1, 4, 4, 2)), jnp.zeros((5, 5, 2, 2)))
  with pytest.raises(ValueError, match=r"Conv resample must be .* got 'up3'"):
    conv.Conv(4, 3, resample='up3').init(jax.random.PRNGKey(0), jnp.zeros((1, 4, 4, 2)))


def _nets_grads(arch, impl, shape, x, z, in_scan):
  from vgrow_jax import config as config_lib, models  # pylint: disable=g-import-not-at-top
  cfg = config_lib.ModelConfig(arch=arch, g_width=8, d_width=8, latent_dim=4, conv_impl=impl)
  g, d = models.build(cfg, shape)
  gp, gs = g.init(jax.random.PRNGKey(0), z)
  dp, ds = d.init(jax.random.PRNGKey(1), x)

  def d_loss(p, x):
    logit, _ = d.train_apply(p, ds, x)
    return jnp.sum(jnp.sin(logit))

  def g_loss(p):
    y, _ = g.train_apply(p, gs, z)
    return jnp.sum(jnp.sin(3 * y))

  grads = lambda: (jax.grad(d_loss, argnums=(0, 1))(dp, x), jax.grad(g_loss)(gp))
  if not in_scan:  # XLA's own autodiff is slow inside loops (the reason for conv.py)
    return jax.jit(grads)()
  # As VGrow uses them, inside a loop: D's parameter and input gradients, G's parameters.
  return jax.jit(lambda: jax.tree.map(lambda a: a[0], jax.lax.scan(
      lambda c, _: (c, grads()), 0.0, None, length=2)[1]))()


@pytest.mark.parametrize('arch,shape', [('resnet_sn', (32, 32, 1)), ('dcgan', (16, 16, 3))])
def test_nets_gradients_equal_nn_conv_autodiff_inside_scan(arch, shape):
  x = jax.random.uniform(jax.random.PRNGKey(2), (8,) + shape, minval=-1, maxval=1)
  z = jax.random.normal(jax.random.PRNGKey(3), (8, 4))
  ours = _nets_grads(arch, 'custom_vjp', shape, x, z, in_scan=True)
  ref = _nets_grads(arch, 'xla', shape, x, z, in_scan=False)
  for a, b in zip(jax.tree.leaves(ours), jax.tree.leaves(ref)):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * float(jnp.abs(b).max()) + 1e-7)


@pytest.mark.parametrize('ksize,cin,cout', [(3, 1, 4), (3, 6, 7), (3, 8, 1), (5, 2, 3)])
def test_gradient_of_the_input_gradient_matches_lax_conv(ksize, cin, cout):
  # A gradient penalty's term: the parameters' and inputs' gradient of Σ(∂L/∂x)².
  kx, kk = jax.random.split(jax.random.PRNGKey(ksize * cin + cout))
  x = jax.random.normal(kx, (2, 7, 6, cin))
  k = jax.random.normal(kk, (ksize, ksize, cin, cout))

  def penalty(conv_fn):
    def f(x, k):
      gx = jax.grad(lambda x: jnp.sum(jnp.tanh(conv_fn(x, k))))(x)
      return jnp.sum(gx ** 2)
    return jax.grad(f, argnums=(0, 1))(x, k)

  for a, b in zip(penalty(conv.conv2d_same), penalty(_ref)):
    np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4 * float(jnp.abs(b).max()))


@pytest.mark.parametrize('arch,shape', [('resnet_sn', (32, 32, 1)), ('dcgan', (16, 16, 3))])
def test_nets_gradient_penalty_gradients_equal_nn_conv_autodiff(arch, shape):
  # WGAN-GP's critic loss differentiates D's input gradient once more.
  from vgrow_jax import adversarial, config as config_lib, models  # pylint: disable=g-import-not-at-top
  x = jax.random.uniform(jax.random.PRNGKey(2), (4,) + shape, minval=-1, maxval=1)

  def grads(impl):
    cfg = config_lib.ModelConfig(arch=arch, d_width=8, latent_dim=4, conv_impl=impl)
    _, d = models.build(cfg, shape)
    dp, ds = d.init(jax.random.PRNGKey(1), x)
    return jax.jit(jax.grad(lambda p: adversarial.gradient_penalty(
        lambda y: d.eval_apply(p, ds, y), x)))(dp)

  for a, b in zip(jax.tree.leaves(grads('custom_vjp')), jax.tree.leaves(grads('xla'))):
    np.testing.assert_allclose(a, b, rtol=2e-4, atol=2e-4 * float(jnp.abs(b).max()) + 1e-7)


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
