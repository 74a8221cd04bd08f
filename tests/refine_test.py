"""Refined sampling for any method (vgrow_jax.refine): along a logistic D, re-fit, latent, Langevin."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import flow
from vgrow_jax import method as method_lib
from vgrow_jax import models
from vgrow_jax import optim
from vgrow_jax import particle_phase
from vgrow_jax import refine

MODEL = config_lib.ModelConfig(latent_dim=3, g_width=16, g_depth=1, d_width=16, d_depth=1)


def _setup(name):
  """(config, ring, method, an initial state): a D and a G to refine with, no training."""
  cfg = config_lib.Config(method=name, model=MODEL, data=config_lib.DataConfig(name='ring'))
  ds = data_lib.ring()
  m = method_lib.get(name)(cfg, ds)
  return cfg, ds, m, m.init(jax.random.PRNGKey(0))


Z = jax.random.normal(jax.random.PRNGKey(7), (64, 3))
KEY = lambda state: jax.random.fold_in(state.key, 2**31 - 1)  # refine's fixed sampling key


def _refined(cfg, ds, m, **kw):
  _, r = refine.plan(cfg, **kw)
  return refine.refined_method(cfg, m, ds, r)


def test_along_a_gan_d_is_the_flow_along_its_logit():
  cfg, ds, m, state = _setup('gan')
  r = _refined(cfg, ds, m, sample_flow_steps=5, sample_step_size=0.05,
               sample_step_schedule='linear')
  logit = lambda y: m.logit(state, y)
  etas = refine.step_sizes(0.05, 5, 'linear')
  expected = flow.flow_particles(logit, m.generate(state, Z), 'kl', step_size=etas, num_steps=5)
  np.testing.assert_array_equal(jax.jit(r.generate)(state, Z), jax.jit(lambda: expected)())
  assert np.abs(np.asarray(expected) - np.asarray(m.generate(state, Z))).max() > 1e-4
  # In latent space: z along ∇_z d(G(z)) − z, then G(z).
  rl = _refined(cfg, ds, m, sample_flow_steps=5, sample_step_size=0.05, flow_space='latent')
  g = lambda u: m.generate(state, u)
  z = flow.latent_flow(logit, g, Z, 'kl', step_size=jnp.full((5,), 0.05), num_steps=5)
  np.testing.assert_allclose(rl.generate(state, Z), g(z), rtol=1e-5, atol=1e-6)
  # Langevin noise: other samples, the same ones for the same latents.
  rn = _refined(cfg, ds, m, sample_flow_steps=5, sample_step_size=0.05, langevin=0.01)
  x = jax.jit(rn.generate)(state, Z)
  noisy = flow.flow_particles(logit, m.generate(state, Z), 'kl', step_size=jnp.full((5,), 0.05),
                              num_steps=5, noise=0.01, key=KEY(state))
  np.testing.assert_allclose(x, noisy, rtol=1e-5, atol=1e-6)
  np.testing.assert_array_equal(x, jax.jit(rn.generate)(state, Z))


def test_a_method_without_a_logistic_d_needs_sample_d_steps():
  cfg, ds, m, _ = _setup('sngan')
  with pytest.raises(ValueError, match=r"^sample_flow_steps=5 with sample_d_steps=0 flows along "
                     r"the final D, but method 'sngan' has no logistic D \(d = log p/q\); set "
                     r'--sample_d_steps=U > 0 or --sample_d_warmup_steps=W > 0 to fit a fresh '
                     r'logistic D at sampling$'):
    _refined(cfg, ds, m, sample_flow_steps=5, sample_step_size=0.05)
  with pytest.raises(ValueError, match=r"method 'sngan' has no step_size to move by; set "
                     r'--sample_step_size'):
    _refined(cfg, ds, m, sample_flow_steps=5, sample_d_steps=1)


def test_a_fresh_d_frozen_at_its_init_is_the_flow_along_its_init_logit():
  # With Adam's rate 1e-30 (updates below a float32 ulp of the weights) the
  # re-fit steps leave the fresh D at its initialisation.
  cfg, ds, m, state = _setup('wgan_gp')
  r = _refined(cfg, ds, m, sample_flow_steps=4, sample_d_steps=2, sample_step_size=0.05,
               sample_d_learning_rate=1e-30)
  _, d_net = models.build(MODEL, ds.shape)
  params, d_state = d_net.init(jax.random.PRNGKey(refine._FRESH_D_SEED), jnp.zeros((2, 2)))
  logit = lambda y: d_net.eval_apply(params, d_state, y)
  expected = flow.flow_particles(logit, m.generate(state, Z), 'kl', step_size=0.05, num_steps=4)
  np.testing.assert_allclose(jax.jit(r.generate)(state, Z), expected, rtol=1e-5, atol=1e-6)
  # With a working rate the fitted D moves them elsewhere, and toward the ring.
  # (An untrained G's blob at the origin: 0.52 off the unit circle on average, 0.27 after.)
  fitted = jax.jit(_refined(cfg, ds, m, sample_flow_steps=50, sample_d_steps=1,
                            sample_step_size=0.02, sample_step_schedule='linear').generate)(
                                state, Z)
  off = lambda y: np.abs(np.linalg.norm(np.asarray(y), axis=1) - 1).mean()
  assert off(fitted) < 0.7 * off(m.generate(state, Z)), (off(m.generate(state, Z)), off(fitted))


def test_a_d_fitted_once_is_the_flow_along_the_warmed_up_d():
  # sample_d_steps=0 with W warm-up steps: a fresh D fitted W logistic steps against the
  # plain samples, then fixed for all K moves (the tilt e^{d} of G's own law).
  cfg, ds, m, state = _setup('sngan')
  w, k, eta = 3, 4, 0.05
  r = _refined(cfg, ds, m, sample_flow_steps=k, sample_d_steps=0, sample_d_warmup_steps=w,
               sample_step_size=eta, sample_d_learning_rate=1e-2)
  _, d_net = models.build(MODEL, ds.shape)
  params, d_state = d_net.init(jax.random.PRNGKey(refine._FRESH_D_SEED), jnp.zeros((2, 2)))
  tx = optim.make(config_lib.OptimizerConfig(name='adam', learning_rate=1e-2, b1=0.5))
  d_step = particle_phase.make_discriminator_step(
      train_apply=d_net.train_apply, eval_apply=d_net.eval_apply, optimizer=tx,
      sample_real=ds.sample, batch_size=Z.shape[0])
  k_warm, _ = jax.random.split(KEY(state))
  x0 = m.generate(state, Z)

  @jax.jit
  def expected():
    d = particle_phase.Discriminator(params, d_state, tx.init(params))
    d, _ = jax.lax.scan(lambda dc, kd: d_step(dc, x0, kd, ds.arrays), d,
                        jax.random.split(k_warm, w))
    return flow.flow_particles(lambda y: d_net.eval_apply(d.params, d.state, y), x0, 'kl',
                               step_size=jnp.full((k,), eta), num_steps=k)

  got = jax.jit(r.generate)(state, Z)
  np.testing.assert_allclose(got, expected(), rtol=1e-5, atol=1e-6)
  # Not the re-fitted flow: that D takes one more step before each move.
  refit = _refined(cfg, ds, m, sample_flow_steps=k, sample_d_steps=1, sample_d_warmup_steps=w,
                   sample_step_size=eta, sample_d_learning_rate=1e-2)
  assert np.abs(np.asarray(jax.jit(refit.generate)(state, Z)) - np.asarray(got)).max() > 1e-5
  assert np.abs(np.asarray(got) - np.asarray(x0)).max() > 1e-4
  assert r.sampling == (
          'G(z) + 4 flow steps, a fresh logistic D fitted on the training data with 3 step(s) '
          'against the plain samples, then fixed (η = 0.05)')
  with pytest.raises(ValueError, match=r'^sample_d_warmup_steps=3 fits the D of refined '
                     r'sampling: it needs sample_flow_steps > 0$'):
    refine.plan(cfg, sample_d_warmup_steps=3)


def test_vgrow_with_a_warmup_or_a_d_rate_takes_the_generic_refiner():
  # VGrow's own sampler has neither: the keyword is applied, not dropped.
  cfg = config_lib.Config(model=MODEL)
  _, r = refine.plan(cfg, sample_flow_steps=3, sample_d_warmup_steps=5)
  assert r == refine.Refinement(flow_steps=3, d_warmup_steps=5)
  _, r = refine.plan(cfg, sample_flow_steps=3, sample_d_steps=1, sample_d_learning_rate=1e-4)
  assert (r.d_steps, r.d_learning_rate) == (1, 1e-4)
  assert refine.describe(cfg, r).startswith(
      'G(z) + 3 flow steps, D re-fitted on the training data with 1 logistic step(s) before '
      'each')


def test_vgrow_keeps_its_own_sampler_and_plain_keywords_change_nothing():
  cfg = config_lib.Config(model=MODEL)
  cfg2, r = refine.plan(cfg, sample_flow_steps=3, sample_d_steps=1)
  assert r is None and (cfg2.hparams.sample_flow_steps, cfg2.hparams.sample_d_steps) == (3, 1)
  _, r = refine.plan(cfg, sample_flow_steps=3, flow_space='latent')
  assert r == refine.Refinement(flow_steps=3, flow_space='latent')
  gan = dataclasses.replace(cfg, method='gan')
  assert refine.plan(gan, sample_flow_steps=0, sample_d_steps=0)[1] == refine.Refinement()


def test_sample_divergence_sets_the_weight_of_each_move():
  # VGrow-Jeffreys flows by s(d) = 1 + e^d unless told otherwise; 'kl' (s = 1) is the
  # Langevin tilt N(z)·e^{d(G(z))} of DDLS. Both along the run's own D, in latent space.
  cfg = config_lib.Config(model=MODEL, data=config_lib.DataConfig(name='ring')).with_hparams(
      divergence='jeffreys')
  ds = data_lib.ring()
  m = method_lib.get('vgrow')(cfg, ds)
  state = m.init(jax.random.PRNGKey(0))
  logit = lambda y: m.logit(state, y)
  g = lambda u: m.generate(state, u)
  etas = jnp.full((4,), 0.05)
  outs = {}
  for name in (None, 'kl'):
    kw = {} if name is None else {'sample_divergence': name}
    cfg2, r = refine.plan(cfg, sample_flow_steps=4, sample_step_size=0.05, flow_space='latent',
                          **kw)
    assert r.divergence == name
    outs[name] = refine.refined_method(cfg2, m, ds, r).generate(state, Z)
  for name, div in ((None, 'jeffreys'), ('kl', 'kl')):
    z = flow.latent_flow(logit, g, Z, div, step_size=etas, num_steps=4)
    np.testing.assert_allclose(outs[name], g(z), rtol=1e-5, atol=1e-6)
  assert np.abs(np.asarray(outs[None]) - np.asarray(outs['kl'])).max() > 1e-5
  # In the data space the keyword takes the generic refiner, not VGrow's own sampler.
  _, r = refine.plan(cfg, sample_flow_steps=3, sample_d_steps=1, sample_divergence='js')
  assert r == refine.Refinement(flow_steps=3, d_steps=1, divergence='js')
  assert refine.describe(cfg, r).endswith('before each (η = 0.5, js weight s(d))')


def test_sample_metropolis_accepts_or_rejects_each_latent_move():
  # GAN's D along a fresh G in latent space, γ = 1: the refiner's moves are
  # flow.metropolis_latent_flow's with refine's fixed key, whatever the divergence.
  cfg, ds, m, state = _setup('gan')
  logit = lambda y: m.logit(state, y)
  g = lambda u: m.generate(state, u)
  for name in ('kl', 'js'):
    cfg2, r = refine.plan(cfg, sample_flow_steps=4, sample_step_size=0.3, flow_space='latent',
                          langevin=1.0, sample_metropolis=True, sample_divergence=name)
    assert r.metropolis
    x = jax.jit(refine.refined_method(cfg2, m, ds, r).generate)(state, Z)
    z, acc = flow.metropolis_latent_flow(logit, g, Z, name, step_size=jnp.full((4,), 0.3),
                                         num_steps=4, noise=1.0, key=KEY(state))
    np.testing.assert_allclose(x, g(z), rtol=1e-5, atol=1e-6)
    assert 0 < float(acc.mean()) < 1  # some moves are rejected at this η, some taken
    # generate_aux gives the same samples and each chain's acceptance rate.
    x_aux, stats = jax.jit(refine.refined_method(cfg2, m, ds, r).generate_aux)(state, Z)
    np.testing.assert_array_equal(x_aux, x)
    np.testing.assert_allclose(stats['acceptance'], acc, rtol=1e-6)
  _, plain = refine.plan(cfg, sample_flow_steps=4, sample_step_size=0.3, flow_space='latent',
                         langevin=1.0)
  assert refine.refined_method(cfg, m, ds, plain).generate_aux is None
  unadjusted = refine.refined_method(cfg, m, ds, plain).generate(state, Z)
  assert np.abs(np.asarray(unadjusted) - np.asarray(x)).max() > 1e-4
  assert refine.describe(cfg, r).endswith(
      '(η = 0.3, js weight s(d), Langevin noise γ = 1, each move Metropolis-adjusted (MALA))')


def test_acceptance_of_moves_along_a_re_fitted_d_counts_every_move():
  # D re-fitted before each of K = 5 moves: each chain's rate is a count over K moves,
  # near 1 for tiny moves (MALA's rejections are O(η^{3/2})) and lower for large ones.
  cfg, ds, m, state = _setup('sngan')
  rates = {}
  for eta in (1e-4, 1.0):
    cfg2, r = refine.plan(cfg, sample_flow_steps=5, sample_d_steps=1, sample_step_size=eta,
                          flow_space='latent', langevin=1.0, sample_metropolis=True)
    rm = refine.refined_method(cfg2, m, ds, r)
    x, stats = jax.jit(rm.generate_aux)(state, Z)
    np.testing.assert_array_equal(x, jax.jit(rm.generate)(state, Z))
    a = np.asarray(stats['acceptance'])  # [64]
    assert a.shape == (64,)
    np.testing.assert_allclose(a * 5, np.round(a * 5), atol=1e-5)
    rates[eta] = a.mean()
  assert rates[1e-4] > 0.99 and rates[1.0] < rates[1e-4] - 0.05, rates


def test_a_method_without_a_generator_has_no_latent_flow():
  cfg, ds, m, _ = _setup('gan')
  stored = m._replace(generate=lambda state, z: jnp.zeros((z.shape[0], 2)) + state.step)
  assert refine.has_generator(m) and not refine.has_generator(stored)
  _, r = refine.plan(cfg, sample_flow_steps=2, flow_space='latent', sample_step_size=0.1)
  with pytest.raises(ValueError, match=r"^flow_space='latent' moves latents z of G\(z\), but "
                     r"method 'gan' has no generator"):
    refine.refined_method(cfg, stored, ds, r)
  # In the data space such a method refines like any other.
  _, r = refine.plan(cfg, sample_flow_steps=2, sample_step_size=0.1)
  assert refine.refined_method(cfg, stored, ds, r).generate is not stored.generate


@pytest.mark.parametrize('kw,message', [
    (dict(sample_d_steps=2), r'^sample_d_steps=2 refines samples: it needs sample_flow_steps > 0$'),
    (dict(langevin=0.1), r'^langevin=0.1 refines samples: it needs sample_flow_steps > 0$'),
    (dict(sample_flow_steps=2, flow_space='pixels'),
     r"^flow_space='pixels': expected one of \['data', 'latent'\]$"),
    (dict(sample_flow_steps=2, langevin=-1.0), r'^langevin=-1.0: must be >= 0$'),
    (dict(sample_flow_steps=2, sample_step_schedule='cosine'),
     r"^sample_step_schedule='cosine': expected one of \['constant', 'linear'\]$"),
    (dict(sample_flowsteps=2), r'^unknown refined-sampling keyword sample_flowsteps'),
    (dict(sample_flow_steps=2, sample_d_steps=1, sample_d_input_scale=0.0),
     r'^sample_d_input_scale=0.0: must be finite and > 0$'),
    (dict(sample_flow_steps=2, sample_d_steps=1, sample_d_spectral_norm='yes'),
     r"^sample_d_spectral_norm='yes': must be a bool$"),
    (dict(sample_flow_steps=2, sample_divergence='hellinger'),
     r"^sample_divergence='hellinger': expected one of \['jeffreys', 'js', 'kl', 'logd'\]$"),
    (dict(sample_divergence='kl'),
     r"^sample_divergence='kl' refines samples: it needs sample_flow_steps > 0$"),
    (dict(sample_metropolis=True),
     r"^sample_metropolis=True refines samples: it needs sample_flow_steps > 0$"),
    (dict(sample_flow_steps=2, sample_metropolis=True, langevin=1.0),
     r"^sample_metropolis=True accepts or rejects latent Langevin moves: it needs "
     r"flow_space='latent' and langevin > 0, got flow_space='data', langevin=1.0$"),
    (dict(sample_flow_steps=2, sample_metropolis=True, flow_space='latent'),
     r"^sample_metropolis=True accepts .* got flow_space='latent', langevin=0.0$"),
])
def test_bad_refinements_are_one_line_errors(kw, message):
  cfg = config_lib.Config(method='gan', model=MODEL)
  with pytest.raises(ValueError, match=message):
    refine.plan(cfg, **kw)


def test_a_vgrow_run_asking_d_steps_without_flow_steps_is_an_error():
  with pytest.raises(ValueError, match=r'^sample_d_steps=2 refines samples: it needs '
                     r'sample_flow_steps > 0$'):
    refine.plan(config_lib.Config(model=MODEL), sample_d_steps=2)


def test_describe_names_the_d_and_the_space():
  gan = config_lib.Config(method='gan', model=MODEL)
  sngan = config_lib.Config(method='sngan', model=MODEL)
  assert refine.describe(gan, refine.Refinement(flow_steps=5, step_size=0.1)) == (
      'G(z) + 5 flow steps along the final D (η = 0.1)')
  assert refine.describe(sngan, refine.Refinement(
      flow_steps=200, d_steps=1, step_size=0.1, step_schedule='linear', langevin=0.01)) == (
          'G(z) + 200 flow steps, a fresh logistic D fitted on the training data with 1 step(s) '
          'before each (η = 0.1, decaying linearly, Langevin noise γ = 0.01)')
  assert refine.describe(gan, refine.Refinement(flow_steps=3, d_steps=2, step_size=0.1,
                                                flow_space='latent')) == (
      'G(z), z moved by 3 flow steps in latent space (prior drift −z), D re-fitted on the '
      'training data with 2 logistic step(s) before each (η = 0.1)')


def test_a_fresh_d_takes_spectral_norm_and_an_input_scale():
  r = refine.Refinement(flow_steps=2, d_steps=1, d_spectral_norm=True, d_input_scale=5.0)
  model = refine.fresh_d_model(MODEL, r)
  assert (model.d_spectral_norm, model.sn_power_iterations, model.d_input_scale) == (True, 1, 5.0)
  plain = refine.fresh_d_model(MODEL, refine.Refinement(flow_steps=2, d_steps=1,
                                                        d_spectral_norm=False))
  assert (plain.d_spectral_norm, plain.d_input_scale) == (False, 1.0)
  # Unset, the fresh D is the config's D net as it is.
  sn_model = dataclasses.replace(MODEL, d_spectral_norm=True, sn_power_iterations=3)
  assert refine.fresh_d_model(sn_model, refine.Refinement(flow_steps=2, d_steps=1)) == sn_model
  resnet = dataclasses.replace(MODEL, arch='resnet_sn')
  with pytest.raises(config_lib.ConfigError, match=r'model.d_input_scale=5.0: applies to the mlp '
                     r'and dcgan discriminators only'):
    refine.fresh_d_model(resnet, r)
  sngan = config_lib.Config(method='sngan', model=MODEL)
  assert refine.describe(sngan, dataclasses.replace(r, step_size=0.1)) == (
      'G(z) + 2 flow steps, a fresh logistic D (spectrally normalised, on 5·x) fitted on the '
      'training data with 1 step(s) before each (η = 0.1)')


def test_a_spectrally_normalised_fresh_d_on_c_x_moves_a_sample_at_most_eta_c_a_step():
  # d(x) = D'(c·x) with D' 1-Lipschitz (each layer divided by its largest singular
  # value, ReLU 1-Lipschitz), so |∇ₓd| ≤ c and KL's move η·∇ₓd is at most η·c: the
  # fresh D cannot throw a sample further than that however it is fitted.
  cfg, ds, m, state = _setup('wgan_gp')
  c, eta, k = 5.0, 0.02, 20
  x0 = np.asarray(m.generate(state, Z))
  moved = {}
  for sn in (True, False):
    r = _refined(cfg, ds, m, sample_flow_steps=k, sample_d_steps=1, sample_step_size=eta,
                 sample_d_spectral_norm=sn, sample_d_input_scale=c,
                 sample_d_learning_rate=3e-2)
    moved[sn] = np.linalg.norm(np.asarray(jax.jit(r.generate)(state, Z)) - x0, axis=1)
  # Measured: the largest move 0.60 of the bound, the mean 0.45 (5% slack: one power
  # iteration a step estimates σ(W) from below).
  assert moved[True].max() <= 1.05 * k * eta * c, moved[True].max()
  assert moved[True].mean() > 0.1 * k * eta * c, moved[True].mean()
  # Without spectral norm the same fit, at Adam's rate 3e-2, moves samples past that
  # bound (measured: the largest move 1.38 of it).
  assert moved[False].max() > 1.05 * k * eta * c, moved[False].max()
