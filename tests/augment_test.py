"""Random translations for D (vgrow_jax.augment) and VGrow's D step with them."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import augment
from vgrow_jax import config as config_lib
from vgrow_jax import image_data
from vgrow_jax import models
from vgrow_jax import vgrow


def _shifted(x, dy, dx):
  """numpy reference: y[i, j] = x[clamp(i + dy), clamp(j + dx)]."""
  h, w = x.shape[:2]
  rows = np.clip(np.arange(h) + dy, 0, h - 1)
  cols = np.clip(np.arange(w) + dx, 0, w - 1)
  return x[rows][:, cols]


def test_each_image_is_its_own_edge_padded_shift_and_offsets_are_uniform():
  s, b = 2, 2000
  rng = np.random.default_rng(0)
  x = rng.normal(size=(b, 7, 6, 2)).astype(np.float32)
  y = np.asarray(augment.translate(jax.random.PRNGKey(3), jnp.asarray(x), max_shift=s))
  counts = np.zeros((2 * s + 1, 2 * s + 1))
  for xi, yi in zip(x, y):
    hits = [(dy, dx) for dy in range(-s, s + 1) for dx in range(-s, s + 1)
            if np.array_equal(yi, _shifted(xi, dy, dx))]
    assert len(hits) == 1, hits  # random pixels: exactly one offset explains the image
    counts[hits[0][0] + s, hits[0][1] + s] += 1
  # 25 offsets, 80 expected each: every count within 4.5 binomial standard deviations.
  expected = b / counts.size
  sd = np.sqrt(expected * (1 - 1 / counts.size))
  assert np.all(np.abs(counts - expected) < 4.5 * sd), counts


def test_gradient_moves_back_with_the_image():
  x = jnp.zeros((3, 9, 9, 1))
  key = jax.random.PRNGKey(1)
  y = augment.translate(key, x.at[:, 4, 4, 0].set(1.0), max_shift=3)
  # Where the centre pixel landed tells each image's offset (it stays inside).
  landed = [np.unravel_index(np.argmax(yi[..., 0]), (9, 9)) for yi in np.asarray(y)]
  for b, (i, j) in enumerate(landed):
    g = jax.grad(lambda x: augment.translate(key, x, max_shift=3)[b, i, j, 0])(x)
    want = np.zeros((3, 9, 9, 1))
    want[b, 4, 4, 0] = 1.0  # y[i, j] = x[i + dy, j + dx] and (i + dy, j + dx) = (4, 4)
    np.testing.assert_array_equal(g, want)


def test_zero_shift_is_the_identity_and_bad_input_is_named():
  x = jnp.arange(2 * 4 * 4 * 1.0).reshape(2, 4, 4, 1)
  np.testing.assert_array_equal(augment.translate(jax.random.PRNGKey(0), x, max_shift=0), x)
  with pytest.raises(ValueError, match=r'max_shift=-1 must be >= 0'):
    augment.translate(jax.random.PRNGKey(0), x, max_shift=-1)
  with pytest.raises(ValueError, match=r'needs images \[B, H, W, C\], got shape \(2, 16\)'):
    augment.translate(jax.random.PRNGKey(0), x.reshape(2, 16), max_shift=1)


def _image_cfg(shift, lr):
  return config_lib.Config(
      model=config_lib.ModelConfig(latent_dim=4, g_width=16, g_depth=1, d_width=16, d_depth=1,
                                   output_tanh=True),
      methods={'vgrow': vgrow.HParams(
          batch_size=8, pool_batches=2, particle_steps=1, d_steps=1, g_passes=1, step_size=0.1,
          clip=(-1.0, 1.0), d_augment_shift=shift,
          d_optimizer=config_lib.OptimizerConfig(name='sgd', learning_rate=lr))})


def test_vgrow_d_step_and_flow_see_translated_images():
  lr, shift, eta = 0.05, 2, 0.1
  rng = np.random.default_rng(0)
  ds = image_data.image_dataset(rng.integers(0, 256, size=(32, 8, 8, 1), dtype=np.uint8))
  cfg = _image_cfg(shift, lr)
  m = vgrow.make(cfg, ds)
  g_net, d_net = models.build(cfg.model, ds.shape)
  s0 = m.init(jax.random.PRNGKey(0))
  s1, metrics = jax.jit(m.step)(s0, ds.arrays)
  batch, pool = cfg.hparams.batch_size, cfg.hparams.pool_size
  # The loop's keys, as vgrow_pg_test: pool latents, the move (T = 1), its D step (U = 1).
  k_pool, k_move, _ = vgrow.loop_keys(s0.key, 0)
  k_step = jax.random.split(k_move, 1)[0]
  key = jax.random.split(k_step, 1)[0]
  x0 = g_net.eval_apply(s0.g_params, s0.g_state, jax.random.normal(k_pool, (pool, 4)))

  @functools.partial(jax.jit, static_argnums=0)
  def expected_d_params(max_shift):
    k_real, k_fake = jax.random.split(key)
    real = ds.sample(ds.arrays, k_real, batch)
    fake = x0[jax.random.choice(k_fake, pool, (batch,), replace=False)]
    k_r, k_f = jax.random.split(jax.random.fold_in(key, 2))
    real = augment.translate(k_r, real, max_shift=max_shift)
    fake = augment.translate(k_f, fake, max_shift=max_shift)

    def d_loss(p):
      logits = d_net.eval_apply(p, s0.d_state, jnp.concatenate([real, fake]))
      return vgrow.discriminator_loss(logits[:batch], logits[batch:])

    return jax.tree.map(lambda p, g: p - lr * g, s0.d_params, jax.grad(d_loss)(s0.d_params))

  for max_shift, close in ((shift, True), (0, False)):
    expected = expected_d_params(max_shift)
    same = all(np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in
               zip(jax.tree.leaves(s1.d_params), jax.tree.leaves(expected)))
    assert same == close, max_shift  # D was fitted to the translated batches, not the raw ones

  # The move: x + η·s(d(Tx))·∇ₓd(Tx) (KL: s = 1), T a fresh translation per particle.
  def moved(max_shift):
    def logit_fn(y):
      y = augment.translate(jax.random.fold_in(k_step, 1), y, max_shift=max_shift)
      return d_net.eval_apply(s1.d_params, s1.d_state, y)
    grad = jax.grad(lambda y: logit_fn(y).sum())(x0)  # d of one particle sees only it
    return np.clip(x0 + eta * grad, -1.0, 1.0)

  after = np.asarray(metrics['particles_after'])
  np.testing.assert_allclose(after, moved(shift), rtol=1e-5, atol=1e-6)
  assert not np.allclose(after, moved(0), rtol=1e-5, atol=1e-6)


def test_augmenting_vectors_or_a_negative_shift_is_named():
  from vgrow_jax import data as data_lib  # pylint: disable=g-import-not-at-top
  with pytest.raises(ValueError, match=r'methods\.vgrow\.d_augment_shift=2 needs image data'):
    vgrow.make(_image_cfg(2, 0.1), data_lib.ring())
  with pytest.raises(config_lib.ConfigError,
                     match=r'methods\.vgrow\.d_augment_shift=-1: must be >= 0'):
    config_lib.Config.from_dict({'methods': {'vgrow': {'d_augment_shift': -1}}})


def test_fill_sets_the_pixels_that_come_in():
  x = jnp.ones((64, 5, 5, 1))
  y = np.asarray(augment.translate(jax.random.PRNGKey(2), x, max_shift=1, fill=-1.0))
  for yi in y:
    # Exactly the rows/columns the offset brought in are -1; the rest are the image's 1s.
    rows = int(np.all(yi[:, :, 0] == -1, axis=1).sum())
    cols = int(np.all(yi[:, :, 0] == -1, axis=0).sum())
    assert rows <= 1 and cols <= 1
    assert (yi == -1).sum() == 5 * (rows + cols) - rows * cols
  assert (y == -1).any()  # some image moved
