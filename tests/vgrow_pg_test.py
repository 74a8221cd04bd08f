"""VGrow with the progressive-growing code's extras: gradient penalty on D and an EMA of G."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import adversarial
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import models
from vgrow_jax import vgrow


@pytest.mark.parametrize('center', [1.0, 0.0])
def test_d_step_adds_the_gradient_penalty_and_generate_uses_the_ema(center):
  lam, beta, lr = 0.5, 0.9, 0.05
  cfg = config_lib.Config(
      model=config_lib.ModelConfig(latent_dim=4, g_width=16, g_depth=1, d_width=16, d_depth=1),
      methods={'vgrow': vgrow.HParams(
          batch_size=16, pool_batches=2, particle_steps=1, d_steps=1, g_passes=1, step_size=0.1,
          d_gradient_penalty=lam, d_gradient_penalty_center=center, g_ema_decay=beta,
          d_optimizer=config_lib.OptimizerConfig(name='sgd', learning_rate=lr))})
  ds = data_lib.ring()
  m = vgrow.make(cfg, ds)
  g_net, d_net = models.build(cfg.model, ds.shape)
  s0 = m.init(jax.random.PRNGKey(0))
  step = jax.jit(m.step)
  s1, _ = step(s0, ds.arrays)
  s2, _ = step(s1, ds.arrays)

  # D's one SGD step (T = U = 1) on logistic loss + λ·GP, by hand with the
  # loop's keys: pool latents, then the first particle step's first D step.
  batch, pool = cfg.hparams.batch_size, cfg.hparams.pool_size

  @jax.jit
  def expected_d_params(penalty):
    k_pool, k_move, _ = vgrow.loop_keys(s0.key, 0)
    key = jax.random.split(jax.random.split(k_move, 1)[0], 1)[0]
    k_real, k_fake = jax.random.split(key)
    x0 = g_net.eval_apply(s0.g_params, s0.g_state, jax.random.normal(k_pool, (pool, 4)))
    real = ds.sample(ds.arrays, k_real, batch)
    fake = x0[jax.random.choice(k_fake, pool, (batch,), replace=False)]

    def d_loss(p):
      logits = d_net.eval_apply(p, s0.d_state, jnp.concatenate([real, fake]))
      loss = vgrow.discriminator_loss(logits[:batch], logits[batch:])
      return loss + penalty * adversarial.interpolated_gradient_penalty(
          lambda y: d_net.eval_apply(p, s0.d_state, y), real, fake, jax.random.fold_in(key, 1),
          center)

    return jax.tree.map(lambda p, g: p - lr * g, s0.d_params, jax.grad(d_loss)(s0.d_params))

  for penalty, close in ((lam, True), (0.0, False)):
    expected = expected_d_params(penalty)
    same = all(np.allclose(a, b, rtol=1e-5, atol=1e-7) for a, b in
               zip(jax.tree.leaves(s1.d_params), jax.tree.leaves(expected)))
    assert same == close, penalty  # with λ: equal; without: not (the penalty acts)

  # EMA after each outer loop: β·EMA + (1 − β)·θ, from θ₀.
  chex.assert_trees_all_equal(s0.g_ema_params, s0.g_params)
  for prev, new in ((s0, s1), (s1, s2)):
    chex.assert_trees_all_close(
        new.g_ema_params,
        jax.tree.map(lambda e, p: beta * e + (1 - beta) * p, prev.g_ema_params, new.g_params),
        rtol=1e-6, atol=1e-7)
  z = jax.random.normal(jax.random.PRNGKey(5), (8, 4))
  np.testing.assert_allclose(m.generate(s2, z), g_net.eval_apply(s2.g_ema_params, s2.g_state, z),
                             rtol=1e-6)
  assert not np.allclose(m.generate(s2, z), g_net.eval_apply(s2.g_params, s2.g_state, z))


def test_without_the_extras_the_state_has_no_ema_leaves():
  m = vgrow.make(config_lib.Config(
      model=config_lib.ModelConfig(latent_dim=2, g_width=4, g_depth=1, d_width=4, d_depth=1)),
      data_lib.ring())
  assert jax.eval_shape(m.init, jax.random.PRNGKey(0)).g_ema_params is None


@pytest.mark.parametrize('field,value,message', [
    ('d_gradient_penalty', -1.0, r'methods\.vgrow\.d_gradient_penalty=-1\.0: must be >= 0'),
    ('d_gradient_penalty_center', -0.5,
     r'methods\.vgrow\.d_gradient_penalty_center=-0\.5: must be >= 0'),
    ('g_ema_decay', 1.0, r'methods\.vgrow\.g_ema_decay=1\.0: must be in \[0, 1\)'),
])
def test_bad_extras_are_named(field, value, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.Config.from_dict({'methods': {'vgrow': {field: value}}})


def test_vgrow_pg_config_has_the_progressive_growing_settings():
  from experiments.configs import vgrow_pg  # pylint: disable=g-import-not-at-top
  cfg = config_lib.Config.from_dict(vgrow_pg.get_config('ring').to_dict())
  vc = cfg.hparams
  assert (vc.particle_steps, vc.d_steps, vc.g_passes, vc.pool_batches) == (1, 1, 1, 1)
  assert (vc.step_size, vc.d_gradient_penalty, vc.g_ema_decay, vc.clip) == (1.0, 0.5, 0.99, None)
  assert cfg.data.name == 'ring'
  for opt in (vc.g_optimizer, vc.d_optimizer):
    assert (opt.name, opt.learning_rate, opt.b1, opt.b2) == ('adam', 1e-3, 0.0, 0.99)
