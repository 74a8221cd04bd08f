"""The VGrow outer loop: GAN equivalence, one compile, learning, exact resume."""

import dataclasses

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import metrics
from vgrow_jax import optim
from vgrow_jax import vgrow


def tiny_config(**vgrow_overrides):
  vc = dict(batch_size=16, pool_batches=2, particle_steps=2, d_steps=1, g_passes=1,
            step_size=0.1)
  vc.update(vgrow_overrides)
  return config_lib.Config(
      model=config_lib.ModelConfig(latent_dim=4, g_width=16, g_depth=1, d_width=16, d_depth=1),
      methods={'vgrow': vgrow.HParams(**vc)})


# Generator loss whose gradient the T = L = 1 VGrow update reproduces (docs/math.md §1).
GAN_G_LOSS = {
    'kl': lambda d: -d,
    'logd': lambda d: -jax.nn.log_sigmoid(d),
    'js': lambda d: jnp.log1p(-jax.nn.sigmoid(d)),
    'jeffreys': lambda d: -(d + jnp.exp(d)),  # F' = 1 + e^d = s(d) below the clip
}


@pytest.mark.parametrize('name', ['kl', 'logd', 'js', 'jeffreys'])
def test_g_update_with_t_equals_l_equals_1_is_the_gan_generator_gradient(name):
  # One particle move (U = 0: D fixed), one SGD step of the least-squares fit
  # on the whole pool: Δθ = −lr·∇θ MSE = −lr·(2η/D)·∇θ E[−F(d(G(z)))].
  eta, lr = 0.3, 0.05
  cfg = tiny_config(divergence=name, pool_batches=1, particle_steps=1, d_steps=0,
                    g_passes=1, step_size=eta)
  cfg = cfg.with_hparams(g_optimizer=config_lib.OptimizerConfig(name='sgd', learning_rate=lr))
  ds = data_lib.grid()
  m = vgrow.make(cfg, ds)
  state = m.init(jax.random.PRNGKey(0))
  new_state, _ = jax.jit(m.step)(state, ds.arrays)

  k_pool, _, _ = vgrow.loop_keys(jax.random.PRNGKey(cfg.training.seed), 0)
  z = jax.random.normal(k_pool, (cfg.hparams.pool_size, cfg.model.latent_dim))
  g_net, d_net = vgrow.models.build(cfg.model, ds.shape)

  def gan_loss(gp):
    d = d_net.eval_apply(state.d_params, state.d_state, g_net.eval_apply(gp, state.g_state, z))
    return jnp.mean(GAN_G_LOSS[name](d))

  grad = jax.grad(gan_loss)(state.g_params)
  dim = ds.shape[0]
  expected = jax.tree.map(lambda p, g: p - lr * (2 * eta / dim) * g, state.g_params, grad)
  chex.assert_trees_all_close(new_state.g_params, expected, rtol=1e-4, atol=1e-7)
  # And the update is not trivially zero.
  moved = max(float(jnp.max(jnp.abs(a - b))) for a, b in
              zip(jax.tree.leaves(new_state.g_params), jax.tree.leaves(state.g_params)))
  assert moved > 1e-6


def test_outer_loop_compiles_once_even_when_l_changes():
  cfg = tiny_config(g_passes_schedule=((2, 3),))
  ds = data_lib.ring()
  m = vgrow.make(cfg, ds)
  step = jax.jit(chex.assert_max_traces(m.step, n=1), donate_argnums=0)
  state = m.init(jax.random.PRNGKey(0))
  passes = []
  for _ in range(4):
    state, met = step(state, ds.arrays)
    passes.append(int(met['g_passes']))
  assert passes == [1, 1, 3, 3]
  assert int(state.step) == 4


def test_step_size_schedule_moves_with_the_scheduled_eta_in_one_compile():
  # Three loops with η = 0.1 switched to 0.03 at loop 2 are two loops of a run
  # at η = 0.1 followed by one loop of a run at η = 0.03 from its state.
  ds = data_lib.ring()
  m = vgrow.make(tiny_config(step_size=0.1, step_size_schedule=((2, 0.03),)), ds)
  step = jax.jit(chex.assert_max_traces(m.step, n=1))
  state = m.init(jax.random.PRNGKey(0))
  etas = []
  for _ in range(3):
    state, met = step(state, ds.arrays)
    etas.append(float(met['step_size']))
  np.testing.assert_allclose(etas, [0.1, 0.1, 0.03], rtol=1e-7)

  fast, slow = (vgrow.make(tiny_config(step_size=eta), ds) for eta in (0.1, 0.03))
  fast_step, slow_step = jax.jit(fast.step), jax.jit(slow.step)
  ref = fast.init(jax.random.PRNGKey(0))
  for _ in range(2):
    ref, _ = fast_step(ref, ds.arrays)
  # The switch is not a no-op: a third loop at η = 0.1 lands elsewhere.
  other, _ = fast_step(ref, ds.arrays)
  ref, _ = slow_step(ref, ds.arrays)
  chex.assert_trees_all_close(state, ref, rtol=1e-5, atol=1e-7)
  gap = max(float(jnp.max(jnp.abs(a - b))) for a, b in
            zip(jax.tree.leaves(other.g_params), jax.tree.leaves(state.g_params)))
  assert gap > 1e-5, gap


def test_learning_rate_halves_at_outer_loop_boundaries():
  cfg = config_lib.OptimizerConfig(learning_rate=1e-3, lr_decay_boundaries=(2, 5))
  lrs = [float(optim.learning_rate(cfg, jnp.int32(i))) for i in range(7)]
  np.testing.assert_allclose(lrs, [1e-3] * 2 + [5e-4] * 3 + [2.5e-4] * 2, rtol=1e-6)


def test_rmsprop_follows_pytorch_semantics():
  # torch.optim.RMSprop(alpha=0.99, eps=1e-8): v = 0.01 g², Δ = −lr g/(√v + eps).
  tx = optim.make(config_lib.OptimizerConfig(name='rmsprop', learning_rate=0.1))
  p = jnp.array([1.0, -2.0])
  g = jnp.array([0.5, -3.0])
  upd, _ = tx.update(g, tx.init(p), p)
  expected = -0.1 * np.array([0.5, -3.0]) / (np.sqrt(0.01 * np.array([0.25, 9.0])) + 1e-8)
  np.testing.assert_allclose(upd, expected, rtol=1e-5)


def test_particles_move_towards_the_data_and_clip_holds():
  cfg = tiny_config(batch_size=64, particle_steps=5, d_steps=40, clip=(-1.0, 1.0),
                    step_size=0.02,
                    d_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=3e-3, b1=0.5))
  ds = data_lib.ring()
  m = vgrow.make(cfg, ds)
  step = jax.jit(m.step)
  state = m.init(jax.random.PRNGKey(1))
  state, met = step(state, ds.arrays)
  before, after = np.asarray(met['particles_before']), np.asarray(met['particles_after'])
  assert np.abs(after).max() <= 1.0
  radius = lambda x: np.abs(np.linalg.norm(x, axis=1) - 1).mean()
  # Mean distance to the unit circle (the ring) falls.
  assert radius(after) < 0.9 * radius(before), (radius(before), radius(after))


def test_short_run_covers_more_modes_than_at_init():
  cfg = dataclasses.replace(
      tiny_config(batch_size=128, pool_batches=2, particle_steps=5, d_steps=1, g_passes=2,
                  step_size=0.05,
                  g_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=1e-3, b1=0.5),
                  d_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=1e-3, b1=0.5)),
      model=config_lib.ModelConfig(latent_dim=8, g_width=64, g_depth=2, d_width=64, d_depth=2))
  ds = data_lib.ring(std=0.05)
  m = vgrow.make(cfg, ds)
  step = jax.jit(m.step, donate_argnums=0)
  state = m.init(jax.random.PRNGKey(0))
  z = jax.random.normal(jax.random.PRNGKey(9), (2500, 8))
  score = lambda s: metrics.mode_metrics(np.asarray(m.generate(s, z)), ds.modes, ds.std)
  at_init = score(state)
  for _ in range(60):
    state, _ = step(state, ds.arrays)
  trained = score(state)
  assert trained['modes'] > at_init['modes'], (at_init, trained)
  assert trained['modes'] >= 6
  assert trained['high_quality'] > at_init['high_quality']


def test_sample_flow_steps_moves_g_samples_along_the_final_d_and_leaves_training_alone():
  cfg = tiny_config(batch_size=64, particle_steps=5, d_steps=40, step_size=0.02,
                    d_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=3e-3, b1=0.5))
  refined_cfg = cfg.with_hparams(sample_flow_steps=20)
  ds = data_lib.ring()
  m, mr = vgrow.make(cfg, ds), vgrow.make(refined_cfg, ds)
  state, _ = jax.jit(m.step)(m.init(jax.random.PRNGKey(1)), ds.arrays)
  state_r, _ = jax.jit(mr.step)(mr.init(jax.random.PRNGKey(1)), ds.arrays)
  chex.assert_trees_all_equal(state, state_r)  # training does not see the option
  z = jax.random.normal(jax.random.PRNGKey(2), (256, 4))
  x = m.generate(state, z)
  d = vgrow.models.build(cfg.model, ds.shape)[1]
  logit_fn = lambda y: d.eval_apply(state.d_params, state.d_state, y)
  expected = vgrow.flow.flow_particles(logit_fn, x, 'kl', step_size=0.02, num_steps=20)
  np.testing.assert_allclose(mr.generate(state, z), expected, rtol=1e-5, atol=1e-6)
  radius = lambda y: np.abs(np.linalg.norm(np.asarray(y), axis=1) - 1).mean()
  assert radius(expected) < 0.9 * radius(x), (radius(x), radius(expected))
  with pytest.raises(config_lib.ConfigError,
                     match=r'methods\.vgrow\.sample_flow_steps=-1: must be >= 0'):
    vgrow.HParams(sample_flow_steps=-1)


def _one_ring_loop():
  """(config, ring, method, state) after one outer loop whose D took 40 steps."""
  cfg = tiny_config(batch_size=64, particle_steps=5, d_steps=40, step_size=0.02,
                    d_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=3e-3, b1=0.5))
  ds = data_lib.ring()
  m = vgrow.make(cfg, ds)
  state, _ = jax.jit(m.step)(m.init(jax.random.PRNGKey(1)), ds.arrays)
  return cfg, ds, m, state


def _with_sampling(cfg, **fields):
  return cfg.with_hparams(**fields)


def test_refit_sampling_with_a_frozen_d_is_the_flow_along_the_final_d():
  # With D's learning rate 1e-30 (updates far below a float32 ulp of the
  # weights) and no spectral-norm state to update, the re-fit steps leave D
  # as it is, so re-fit sampling must reduce to the fixed-D flow.
  cfg, ds, m, state = _one_ring_loop()
  frozen = _with_sampling(
      cfg, sample_flow_steps=20, sample_d_steps=2,
      d_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=1e-30, b1=0.5))
  z = jax.random.normal(jax.random.PRNGKey(2), (100, 4))  # fewer samples than a D batch
  fixed = vgrow.make(_with_sampling(cfg, sample_flow_steps=20), ds).generate(state, z)
  np.testing.assert_allclose(vgrow.make(frozen, ds).generate(state, z), fixed,
                             rtol=1e-5, atol=1e-6)
  # Minibatch D steps (64 of the 100 samples) take the same path.
  frozen_mb = _with_sampling(frozen, sample_d_batch_size=64)
  np.testing.assert_allclose(vgrow.make(frozen_mb, ds).generate(state, z), fixed,
                             rtol=1e-5, atol=1e-6)
  # sample_step_size sets η of both samplers: the flow along the final D with
  # η = 0.01, and re-fitting a frozen D with it.
  x = m.generate(state, z)
  d = vgrow.models.build(cfg.model, ds.shape)[1]
  logit_fn = lambda y: d.eval_apply(state.d_params, state.d_state, y)
  small = vgrow.flow.flow_particles(logit_fn, x, 'kl', step_size=0.01, num_steps=20)
  assert np.abs(np.asarray(small) - np.asarray(fixed)).max() > 1e-3  # η matters here
  for c in (_with_sampling(cfg, sample_flow_steps=20, sample_step_size=0.01),
            _with_sampling(frozen, sample_step_size=0.01)):
    np.testing.assert_allclose(vgrow.make(c, ds).generate(state, z), small, rtol=1e-5, atol=1e-6)
  for field in ('sample_d_steps', 'sample_d_batch_size'):
    with pytest.raises(config_lib.ConfigError, match=f'methods.vgrow.{field}=-1: must be >= 0'):
      vgrow.HParams(**{field: -1})
  with pytest.raises(config_lib.ConfigError,
                     match='methods.vgrow.sample_step_size=0.0: must be None'):
    vgrow.HParams(sample_step_size=0.0)


def test_sample_step_schedule_linear_decays_eta_to_eta_over_k_in_both_samplers():
  np.testing.assert_allclose(vgrow.sample_step_sizes(0.5, 4, 'constant'), [0.5] * 4)
  # η_k = η(1 − k/K): 0.5, 0.375, 0.25, 0.125; the total move η(K + 1)/2.
  etas = vgrow.sample_step_sizes(0.5, 4, 'linear')
  np.testing.assert_allclose(etas, [0.5, 0.375, 0.25, 0.125], rtol=1e-7)
  np.testing.assert_allclose(vgrow.sample_step_sizes(0.2, 100, 'linear').sum(), 0.2 * 101 / 2,
                             rtol=1e-5)
  with pytest.raises(ValueError, match="sample step schedule 'cosine'"):
    vgrow.sample_step_sizes(0.5, 4, 'cosine')
  with pytest.raises(config_lib.ConfigError,
                     match="methods.vgrow.sample_step_schedule='cosine': must be one of"):
    vgrow.HParams(sample_step_schedule='cosine')
  # Along the final D: the hand loop of flow_step with those η_k.
  cfg, ds, m, state = _one_ring_loop()
  z = jax.random.normal(jax.random.PRNGKey(2), (100, 4))
  x = m.generate(state, z)
  d = vgrow.models.build(cfg.model, ds.shape)[1]
  logit_fn = lambda y: d.eval_apply(state.d_params, state.d_state, y)
  for eta in vgrow.sample_step_sizes(cfg.hparams.step_size, 20, 'linear'):
    x = vgrow.flow.flow_step(logit_fn, x, 'kl', step_size=eta)
  linear = _with_sampling(cfg, sample_flow_steps=20, sample_step_schedule='linear')
  np.testing.assert_allclose(vgrow.make(linear, ds).generate(state, z), x, rtol=1e-5, atol=1e-6)
  constant = vgrow.make(_with_sampling(cfg, sample_flow_steps=20), ds).generate(state, z)
  assert np.abs(np.asarray(constant) - np.asarray(x)).max() > 1e-3  # the schedule matters here
  # Re-fitting a frozen D takes the same path.
  frozen = _with_sampling(
      linear, sample_d_steps=2,
      d_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=1e-30, b1=0.5))
  np.testing.assert_allclose(vgrow.make(frozen, ds).generate(state, z), x, rtol=1e-5, atol=1e-6)


def test_refit_sampling_brings_samples_to_the_ring_where_the_fixed_d_flings_them_off():
  # D after one outer loop is a density-ratio estimate only near G's samples.
  # Far past them its logit keeps rising, so 300 steps along it carry the
  # samples away from the unit circle; re-fitting D to the moving samples
  # (the particle phase with G frozen) brings them onto it.
  cfg, ds, m, state = _one_ring_loop()
  z = jax.random.normal(jax.random.PRNGKey(2), (256, 4))
  off_ring = lambda y: np.abs(np.linalg.norm(np.asarray(y), axis=1) - 1).mean()
  g = off_ring(m.generate(state, z))
  fixed = vgrow.make(_with_sampling(cfg, sample_flow_steps=300), ds)
  refit = vgrow.make(_with_sampling(cfg, sample_flow_steps=300, sample_d_steps=3), ds)
  x_fixed = jax.jit(fixed.generate)(state, z)
  x_refit = jax.jit(refit.generate)(state, z)
  assert off_ring(x_fixed) > 2 * g, (g, off_ring(x_fixed))
  assert off_ring(x_refit) < 0.3 * g, (g, off_ring(x_refit))
  # The same latents give the same samples (the D steps' key is fixed by the state).
  np.testing.assert_array_equal(x_refit, jax.jit(refit.generate)(state, z))
