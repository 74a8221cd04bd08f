"""The particle phase (docs/math.md §1): the logistic D step, refit_flow, and VGrow's use of them."""

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import flow
from vgrow_jax import models
from vgrow_jax import optim
from vgrow_jax import particle_phase as pp
from vgrow_jax import vgrow


def _images(num=256, side=8):
  """Random 8×8 one-channel images in [-1, 1], as a Dataset (for d_augment_shift)."""
  arrays = jax.random.uniform(jax.random.PRNGKey(11), (num, side, side, 1), minval=-1, maxval=1)

  def sample(a, key, n):
    return a[jax.random.randint(key, (n,), 0, a.shape[0])]

  return data_lib.Dataset(name='images', arrays=arrays, sample=sample, shape=(side, side, 1),
                          value_range=(-1.0, 1.0))


CASES = {
    # D with a gradient penalty on the ring.
    'ring_gp': (dict(d_gradient_penalty=1.0), data_lib.ring),
    # D shown translated images; the move reads D through a fresh translation.
    'images_shift': (dict(d_augment_shift=1, clip_to_data_range=True), _images),
}


def _config(**vgrow_fields):
  vc = dict(batch_size=32, pool_batches=2, particle_steps=3, d_steps=2, g_passes=1,
            step_size=0.05)
  vc.update(vgrow_fields)
  return config_lib.Config(
      model=config_lib.ModelConfig(latent_dim=4, g_width=16, g_depth=1, d_width=16, d_depth=1),
      methods={'vgrow': vgrow.HParams(
          **vc, d_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=3e-3, b1=0.5,
                                                       lr_decay_boundaries=(1,)))})


def _pieces(cfg, ds, state, batch_size):
  """VGrow's D, its optimiser at the state's learning rate, and a D step, built by hand."""
  _, d_net = models.build(cfg.model, ds.shape)
  d_opt_state = optim.with_learning_rate(state.d_opt_state,
                                         optim.learning_rate(cfg.hparams.d_optimizer, state.step))
  d0 = pp.Discriminator(state.d_params, state.d_state, d_opt_state)
  view = lambda k, x: vgrow.augment.translate(k, x, max_shift=cfg.hparams.d_augment_shift)
  d_step = pp.make_discriminator_step(
      train_apply=d_net.train_apply, eval_apply=d_net.eval_apply,
      optimizer=optim.make(cfg.hparams.d_optimizer), sample_real=ds.sample, batch_size=batch_size,
      gradient_penalty=cfg.hparams.d_gradient_penalty, view_fn=view)
  return d_net, d0, d_step, view


@pytest.mark.parametrize('case', sorted(CASES))
def test_refit_flow_is_vgrows_particle_phase_bit_for_bit(case):
  fields, make_data = CASES[case]
  cfg, ds = _config(**fields), make_data()
  m = vgrow.make(cfg, ds)
  step = jax.jit(m.step)
  state, _ = step(m.init(jax.random.PRNGKey(0)), ds.arrays)  # past the lr boundary at loop 1
  new_state, met = step(state, ds.arrays)

  vc = cfg.hparams
  k_pool, k_move, _ = vgrow.loop_keys(state.key, state.step)
  g_net = models.build(cfg.model, ds.shape)[0]
  x0 = g_net.eval_apply(state.g_params, state.g_state,
                        jax.random.normal(k_pool, (vc.pool_size, cfg.model.latent_dim)))
  d_net, d0, d_step, view = _pieces(cfg, ds, state, vc.batch_size)
  d, x, metrics = jax.jit(lambda d, x, a: pp.refit_flow(
      d, x, k_move, a, d_step=d_step, logit_apply=d_net.eval_apply, divergence=vc.divergence,
      d_steps=vc.d_steps, step_size=vc.step_size, num_steps=vc.particle_steps,
      clip=vgrow.particle_clip(vc, ds), view_fn=view))(d0, x0, ds.arrays)

  chex.assert_trees_all_equal((d.params, d.state, d.opt_state),
                              (new_state.d_params, new_state.d_state, new_state.d_opt_state))
  show = met['particles_after'].shape[0]
  np.testing.assert_array_equal(x[:show], met['particles_after'])
  for name in ('field_norm', 'd_loss', 'logit_real', 'logit_fake'):
    np.testing.assert_array_equal(jnp.mean(metrics[name]), met[name])
  assert metrics['field_norm'].shape == (vc.particle_steps,)


def test_refit_sampling_is_refit_flow_on_gs_samples_with_the_linear_schedule():
  cfg, ds = _config(), data_lib.ring()
  m = vgrow.make(cfg, ds)
  state, _ = jax.jit(m.step)(m.init(jax.random.PRNGKey(0)), ds.arrays)
  refit_cfg = cfg.with_hparams(sample_flow_steps=10, sample_d_steps=2,
                               sample_step_schedule='linear', sample_d_batch_size=32,
                               sample_step_size=0.1)
  z = jax.random.normal(jax.random.PRNGKey(2), (100, 4))
  refined = jax.jit(vgrow.make(refit_cfg, ds).generate)(state, z)

  d_net, d0, d_step, _ = _pieces(cfg, ds, state, 32)
  etas = vgrow.sample_step_sizes(0.1, 10, 'linear')  # [10], 0.1 → 0.01
  key = jax.random.fold_in(state.key, 2**31 - 1)  # vgrow's fixed sampling key
  _, x, _ = jax.jit(lambda d, x, a: pp.refit_flow(
      d, x, key, a, d_step=d_step, logit_apply=d_net.eval_apply, divergence='kl', d_steps=2,
      step_size=etas, num_steps=10))(d0, m.generate(state, z), ds.arrays)
  np.testing.assert_array_equal(refined, x)


def _linear_d():
  train_apply = lambda p, s, x: (x @ p['w'] + p['c'], s)  # [B, 2] -> [B], no state
  eval_apply = lambda p, s, x: x @ p['w'] + p['c']
  return train_apply, eval_apply


def test_logistic_d_step_fits_the_log_density_ratio_of_two_gaussians():
  # p = N(μp, I), q = N(μq, I): log p/q = (μp − μq)ᵀx + (|μq|² − |μp|²)/2, linear,
  # so a linear D fitted by full-batch logistic regression (real = 1) reaches
  # it up to the sampling error of 4,096 + 4,096 points (~0.03 per coefficient).
  mu_p, mu_q, n = jnp.array([1.0, -0.5]), jnp.array([-0.5, 0.3]), 4096
  real = jax.random.normal(jax.random.PRNGKey(0), (n, 2)) + mu_p
  x = jax.random.normal(jax.random.PRNGKey(1), (n, 2)) + mu_q
  train_apply, eval_apply = _linear_d()
  tx = optax.adam(0.05)
  params = {'w': jnp.zeros(2), 'c': jnp.zeros(())}
  d_step = pp.make_discriminator_step(
      train_apply=train_apply, eval_apply=eval_apply, optimizer=tx, batch_size=n,
      sample_real=lambda data, k, m: data[:m])  # the whole (fixed) real set
  d, metrics = jax.jit(lambda d: jax.lax.scan(
      lambda c, k: d_step(c, x, k, real), d, jax.random.split(jax.random.PRNGKey(2), 400)))(
          pp.Discriminator(params, {}, tx.init(params)))
  np.testing.assert_allclose(d.params['w'], mu_p - mu_q, atol=0.1)
  np.testing.assert_allclose(d.params['c'], (mu_q @ mu_q - mu_p @ mu_p) / 2, atol=0.1)
  # The loss at the start is log 4 (d = 0), and the step reports the loss it took.
  np.testing.assert_allclose(metrics['d_loss'][0], 2 * np.log(2), rtol=1e-6)
  assert metrics['d_loss'][-1] < metrics['d_loss'][0] - 0.3


def test_gradient_penalty_of_a_linear_d_is_lambda_times_norm_minus_one_squared():
  train_apply, eval_apply = _linear_d()
  params = {'w': jnp.array([0.6, -1.7]), 'c': jnp.array(0.2)}
  real = jax.random.normal(jax.random.PRNGKey(0), (16, 2))
  x = jax.random.normal(jax.random.PRNGKey(1), (16, 2))
  tx = optax.sgd(0.0)
  step = lambda lam: pp.make_discriminator_step(
      train_apply=train_apply, eval_apply=eval_apply, optimizer=tx, batch_size=16,
      sample_real=lambda data, k, m: data[:m], gradient_penalty=lam)
  d = pp.Discriminator(params, {}, tx.init(params))
  _, plain = step(0.0)(d, x, jax.random.PRNGKey(2), real)
  _, with_gp = step(2.0)(d, x, jax.random.PRNGKey(2), real)
  penalty = 2.0 * (np.linalg.norm([0.6, -1.7]) - 1.0) ** 2
  np.testing.assert_allclose(with_gp['d_loss'], plain['d_loss'] + penalty, rtol=1e-5)


def test_refit_flow_without_d_steps_is_the_fixed_d_flow_and_refitting_reaches_the_data():
  train_apply, eval_apply = _linear_d()
  tx = optax.adam(0.05)
  params = {'w': jnp.array([0.5, -0.2]), 'c': jnp.zeros(())}
  d0 = pp.Discriminator(params, {}, tx.init(params))
  mu_p = jnp.array([2.0, 2.0])
  d_step = pp.make_discriminator_step(
      train_apply=train_apply, eval_apply=eval_apply, optimizer=tx, batch_size=256,
      sample_real=lambda mu, k, m: mu + jax.random.normal(k, (m, 2)))
  x0 = jax.random.normal(jax.random.PRNGKey(0), (512, 2))
  etas = jnp.linspace(0.5, 0.1, 8)
  run = lambda u, eta, k: pp.refit_flow(d0, x0, jax.random.PRNGKey(1), mu_p, d_step=d_step,
                                        logit_apply=eval_apply, divergence='js', d_steps=u,
                                        step_size=eta, num_steps=k)
  d, x, metrics = run(0, etas, 8)
  chex.assert_trees_all_equal(d, d0)  # U = 0: D untouched
  np.testing.assert_allclose(
      x, flow.flow_particles(lambda y: eval_apply(params, {}, y), x0, 'js', step_size=etas,
                             num_steps=8), rtol=1e-6, atol=1e-6)
  assert sorted(metrics) == ['field_norm']
  # Re-fitted every move (U = 5), the KL flow carries the particles' mean to μp.
  _, x, metrics = jax.jit(lambda: pp.refit_flow(
      d0, x0, jax.random.PRNGKey(1), mu_p, d_step=d_step, logit_apply=eval_apply,
      divergence='kl', d_steps=5, step_size=0.5, num_steps=40))()
  assert float(jnp.linalg.norm(x.mean(0) - mu_p)) < 0.15 * float(jnp.linalg.norm(mu_p))
  assert sorted(metrics) == ['d_loss', 'field_norm', 'logit_fake', 'logit_real']
  assert metrics['d_loss'].shape == (40,)


def test_refit_flow_errors_are_one_line_and_name_it():
  train_apply, eval_apply = _linear_d()
  tx = optax.sgd(0.1)
  params = {'w': jnp.zeros(2), 'c': jnp.zeros(())}
  d = pp.Discriminator(params, {}, tx.init(params))
  d_step = pp.make_discriminator_step(train_apply=train_apply, eval_apply=eval_apply,
                                      optimizer=tx, batch_size=4,
                                      sample_real=lambda a, k, m: a[:m])
  kw = dict(d_step=d_step, logit_apply=eval_apply, divergence='kl')
  x = jnp.zeros((8, 2))
  for call, match in (
      (lambda: pp.refit_flow(d, x, jax.random.PRNGKey(0), x, d_steps=1, step_size=jnp.ones(3),
                             num_steps=4, **kw),
       r'^refit_flow: step_size of shape \(3,\) must be a scalar or a \[num_steps\] = \[4\] '
       r'schedule$'),
      (lambda: pp.refit_flow(d, x, jax.random.PRNGKey(0), x, d_steps=-1, step_size=0.1,
                             num_steps=4, **kw),
       r'^refit_flow: d_steps=-1 must be an int >= 0$')):
    with pytest.raises(ValueError, match=match) as e:
      call()
    assert '\n' not in str(e.value)


def test_balanced_d_loss_is_the_logistic_loss_of_a_constant_zero_logit():
  zeros = jnp.zeros(8)
  np.testing.assert_allclose(float(pp.discriminator_loss(zeros, zeros)), np.log(4.0), rtol=1e-6)
  np.testing.assert_allclose(pp.BALANCED_D_LOSS, np.log(4.0), rtol=1e-12)


def test_watcher_warns_once_when_d_wins_after_being_balanced():
  # train_d_loss / train_field_norm every 100 loops of the 32×32 DCGAN run that
  # broke past an hour (benchmarks/RESULTS.md, B3), then a recovery and a second break.
  losses = [1.378, 1.384, 1.385, 1.3849, 0.2082, 0.0024, 0.0002, 1.38, 1.2, 0.1]
  fields = [0.026, 0.03, 0.034, 0.034, 0.989, 1.669, 2.7, 0.03, 0.1, 1.5]
  check = pp.watch_discriminator(remedy='do X')
  out = [check(100 * (i + 1), {'train_d_loss': l, 'train_field_norm': f})
         for i, (l, f) in enumerate(zip(losses, fields))]
  assert [i for i, w in enumerate(out) if w] == [4, 9], out
  assert out[4] == ('outer loop 500: D separates the particles from the data (D loss 0.208, '
                    '1.38 at loop 400; log 4 = 1.386 is balanced, field norm 0.989); the moves '
                    'grow and G may collapse; do X')
  # 1.2 is not balanced (< 0.9 log 4), so the second break is dated from loop 800.
  assert '1.38 at loop 800' in out[9]


def test_watcher_is_quiet_while_d_separates_a_generator_far_from_the_data():
  check = pp.watch_discriminator()
  # D wins at the start (G far from the data), then the run balances: no warning,
  # nor for a missing or non-finite loss.
  seq = [{'train_d_loss': l} for l in (0.01, 0.05, 0.3, 0.9, 1.3, 1.386, 0.5)]
  seq += [{}, {'train_d_loss': float('nan')}]
  assert [check(i, s) for i, s in enumerate(seq)] == [''] * len(seq)


@pytest.mark.parametrize('kw', [{'won': 0.0}, {'won': 0.9, 'balanced': 0.9}])
def test_watcher_bad_thresholds_are_one_line_errors(kw):
  with pytest.raises(ValueError, match=r'^watch_discriminator: need 0 < won < balanced, got '):
    pp.watch_discriminator(**kw)
