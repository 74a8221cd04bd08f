"""GAN-type baselines (docs/math.md §2, §5): their maths, constraints, and short runs.

Analytic checks: the GAN's optimal-D value C(G) = −log 4 + 2·JS, the gradient
penalty of a linear critic, weight clipping after every critic step, spectral
norm vs SVD. End to end: every method trains a few loops through
``train.train_and_evaluate``, moves its samples towards the data, and its
state survives the checkpoint round trip (and, for SNGAN, exact resume).
"""

import dataclasses
import math
import os
import shutil

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy import stats

from vgrow_jax import adversarial
from vgrow_jax import checkpoint as checkpoint_lib
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import gan
from vgrow_jax import method as method_lib
from vgrow_jax import metrics
from vgrow_jax import models
from vgrow_jax import sngan
from vgrow_jax import train
from vgrow_jax import wgan
from vgrow_jax import wgan_gp

METHODS = ('gan', 'wgan', 'wgan_gp', 'sngan', 'fgan')
LOOPS = 20


def tiny_config(name, *, loops=LOOPS, **hp_overrides):
  """A tiny MLP pair on the grid; the method's own optimisers at lr 1e-3."""
  hp = method_lib.hparams_class(name)()
  fields = dict(batch_size=64, g_steps_per_loop=20,
                g_optimizer=dataclasses.replace(hp.g_optimizer, learning_rate=1e-3),
                d_optimizer=dataclasses.replace(hp.d_optimizer, learning_rate=1e-3))
  if name == 'fgan':
    fields['divergence'] = 'reverse_kl'  # kl and pearson oscillate in runs this short
  fields.update(hp_overrides)
  return config_lib.Config(
      method=name, data=config_lib.DataConfig(name='grid'),
      model=config_lib.ModelConfig(latent_dim=4, g_width=32, g_depth=2, d_width=32, d_depth=2),
      methods={name: dataclasses.replace(hp, **fields)},
      training=config_lib.TrainingConfig(num_outer_loops=loops, log_every=loops,
                                         checkpoint_every=loops // 2, eval_samples=1000))


# --- GAN: losses and the optimal discriminator (Goodfellow et al., Thm 1).

def test_gan_losses_are_the_log_forms_and_stay_finite_when_saturated():
  d = jnp.array([-3.0, -0.5, 0.0, 2.0])
  sig = jax.nn.sigmoid(d)
  np.testing.assert_allclose(gan.discriminator_loss(d, d[::-1]),
                             -jnp.mean(jnp.log(sig)) - jnp.mean(jnp.log(1 - sig[::-1])), rtol=1e-6)
  np.testing.assert_allclose(gan.minimax_generator_loss(d), jnp.mean(jnp.log(1 - sig)), rtol=1e-6)
  np.testing.assert_allclose(gan.non_saturating_generator_loss(d), -jnp.mean(jnp.log(sig)),
                             rtol=1e-6)
  big = jnp.array([-200.0, 200.0])
  for v in (gan.discriminator_loss(big, big), gan.minimax_generator_loss(big),
            gan.non_saturating_generator_loss(big)):
    assert math.isfinite(float(v))
  # Where the fake logit is very negative (D sure it is fake), the minimax
  # gradient vanishes and the non-saturating one does not: why the trick exists.
  g_mm = jax.grad(gan.minimax_generator_loss)(jnp.array([-10.0]))
  g_ns = jax.grad(gan.non_saturating_generator_loss)(jnp.array([-10.0]))
  assert abs(float(g_mm[0])) < 1e-4 and abs(float(g_ns[0]) + 1.0) < 1e-4


def test_optimal_discriminator_value_is_minus_log_4_plus_twice_js():
  # p = N(0, 1), q = N(1, 1.5²). Equal-weight quantile nodes of each density
  # turn the losses' means into quadratures of E_p and E_q.
  p, q = stats.norm(0.0, 1.0), stats.norm(1.0, 1.5)
  n = 200_000
  levels = (np.arange(n) + 0.5) / n
  xp, xq = p.ppf(levels), q.ppf(levels)
  d_star = lambda x: jnp.asarray(p.logpdf(x) - q.logpdf(x), jnp.float32)  # log p/q
  value = float(gan.minimax_value(d_star(xp), d_star(xq)))
  m = lambda x: 0.5 * (p.pdf(x) + q.pdf(x))
  js = 0.5 * integrate.quad(lambda x: p.pdf(x) * math.log(p.pdf(x) / m(x)) +
                            q.pdf(x) * math.log(q.pdf(x) / m(x)), -30, 30, limit=200)[0]
  assert js > 0.05
  np.testing.assert_allclose(value, -math.log(4.0) + 2.0 * js, atol=2e-4)
  # A worse discriminator gives a smaller value (C(G) is the max over D).
  assert float(gan.minimax_value(d_star(xp) + 0.3, d_star(xq) + 0.3)) < value - 1e-3


# --- WGAN-GP: the penalty.

def test_gradient_penalty_of_a_linear_critic_is_exact():
  w = jnp.array([0.3, -1.2, 2.0])
  real = jax.random.normal(jax.random.PRNGKey(0), (16, 3))
  fake = jax.random.normal(jax.random.PRNGKey(1), (16, 3)) + 2.0
  x_hat = adversarial.interpolate(real, fake, jax.random.PRNGKey(2))
  lam = wgan_gp.HParams().gp_weight
  gp = lam * adversarial.gradient_penalty(lambda x: x @ w, x_hat)
  np.testing.assert_allclose(gp, lam * (float(jnp.linalg.norm(w)) - 1.0) ** 2, rtol=1e-5)
  assert lam == 10.0


@pytest.mark.parametrize('center', [0.0, 0.5, 3.0])
def test_gradient_penalty_pulls_the_norm_toward_its_center(center):
  # f(x) = ½ wᵀx² per coordinate: ∇f(x) = w ⊙ x, so GP = mean_i (‖w ⊙ x_i‖ − c)².
  w = jnp.array([0.3, -1.2, 2.0])
  x = jax.random.normal(jax.random.PRNGKey(3), (32, 3))
  gp = adversarial.gradient_penalty(lambda y: 0.5 * jnp.square(y) @ w, x, center)
  norms = np.linalg.norm(np.asarray(w) * np.asarray(x), axis=1)
  np.testing.assert_allclose(gp, np.mean((norms - center) ** 2), rtol=1e-5)


def test_interpolation_draws_one_t_per_example_on_the_segment():
  real = jnp.zeros((64, 2, 3))
  fake = jnp.ones((64, 2, 3))
  x_hat = adversarial.interpolate(real, fake, jax.random.PRNGKey(0))  # = 1 − t
  t = 1.0 - np.asarray(x_hat).reshape(64, -1)
  assert np.all(t == t[:, :1])  # the same t for every coordinate of an example
  assert 0.0 <= t.min() and t.max() <= 1.0 and t[:, 0].std() > 0.2  # ~ U[0, 1] (sd 0.29)


# --- WGAN: the clip.

def test_weight_clipping_holds_after_every_critic_step():
  # One critic step and one G step per loop, so every loop boundary follows
  # a critic update.
  cfg = tiny_config('wgan', n_critic=1, g_steps_per_loop=1)
  c = cfg.hparams.clip
  assert c == 0.01
  ds = data_lib.load(cfg.data)
  m = wgan.make(cfg, ds)
  state = m.init(jax.random.PRNGKey(0))
  step = jax.jit(m.step)
  at_bound = []
  for _ in range(8):
    state, _ = step(state, ds.arrays)
    leaves = [np.asarray(p) for p in jax.tree.leaves(state.d_params)]
    assert max(np.abs(p).max() for p in leaves) <= c
    at_bound.append(sum(int((np.abs(p) == np.float32(c)).sum()) for p in leaves))
  assert at_bound[-1] > 0  # the clip is active, not vacuous


# --- Config plumbing.

def test_method_switch_gives_the_published_defaults():
  hp = config_lib.Config.from_dict({'method': 'wgan_gp'}).hparams
  assert (hp.gp_weight, hp.n_critic, hp.d_optimizer.name, hp.d_optimizer.learning_rate,
          hp.d_optimizer.b1, hp.d_optimizer.b2) == (10.0, 5, 'adam', 1e-4, 0.0, 0.9)
  hp = config_lib.Config.from_dict({'method': 'wgan'}).hparams
  assert (hp.clip, hp.n_critic, hp.d_optimizer.name, hp.d_optimizer.learning_rate) == \
      (0.01, 5, 'rmsprop', 5e-5)
  hp = config_lib.Config.from_dict({'method': 'sngan'}).hparams
  assert (hp.loss, hp.power_iterations, hp.n_critic) == ('hinge', 1, 5)
  assert config_lib.Config.from_dict({'method': 'gan'}).hparams.generator_loss == 'non_saturating'


@pytest.mark.parametrize('d,message', [
    ({'methods': {'wgan_gp': {'gp_weight': -1.0}}}, r'methods\.wgan_gp\.gp_weight=-1\.0: must be > 0'),
    ({'methods': {'gan': {'generator_loss': 'logd'}}}, r"methods\.gan\.generator_loss='logd'"),
    ({'methods': {'fgan': {'divergence': 'chi2'}}}, r"methods\.fgan\.divergence='chi2'"),
    ({'methods': {'sngan': {'n_critic': 0}}}, r'methods\.sngan\.n_critic=0: must be >= 1'),
])
def test_bad_method_settings_are_named(d, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.Config.from_dict(d)


# --- End to end.

def _energy_distance(x, y):
  """2E‖X − Y‖ − E‖X − X'‖ − E‖Y − Y'‖ (V-statistic), 0 iff equal in law."""
  d = lambda a, b: np.sqrt(((a[:, None] - b[None]) ** 2).sum(-1)).mean()
  return 2 * d(x, y) - d(x, x) - d(y, y)


@pytest.fixture
def saved_states(monkeypatch):
  """The in-memory states the trainer hands to the checkpointer, by loop."""
  saved = {}
  original = checkpoint_lib.Checkpointer.save

  def spy(self, step, state):
    saved[step] = jax.device_get(state)  # a host copy: the trainer donates the buffers
    original(self, step, state)

  monkeypatch.setattr(checkpoint_lib.Checkpointer, 'save', spy)
  return saved


def _power_iteration64(w, u, n):
  """n steps of flax's power iteration in float64, from the stored u; (u, σ).

  flax.linen.SpectralNorm on a kernel W [in, out] with u [1, out]:
  v ← uWᵀ/‖uWᵀ‖, u ← vW/‖vW‖, σ = vWuᵀ.
  """
  w, u = np.asarray(w, np.float64), np.asarray(u, np.float64)
  for _ in range(n):
    v = u @ w.T
    v /= np.linalg.norm(v)
    u = v @ w
    u /= np.linalg.norm(u)
  return u, float((v @ w @ u.T)[0, 0])


def _sigma_error_bound(w, u, n):
  """Bound on 1 − σₙ/s₁ after n power iterations from u, from W's spectrum.

  With u = Σ cᵢbᵢ over W's right singular vectors and rᵢ = sᵢ/s₁, the n-th
  iteration starts from u ∝ Σ cᵢsᵢ^{2(n−1)}bᵢ, so σₙ² = Σ wᵢsᵢ²/Σ wᵢ with
  wᵢ = cᵢ²sᵢ^{4n−2}; then 1 − σₙ/s₁ ≤ 1 − σₙ²/s₁² = Σ wᵢ(1 − rᵢ²)/Σ wᵢ
  ≤ Σ_{i≥2} (cᵢ/c₁)² rᵢ^{4n−2} (1 − rᵢ²). A small gap (rᵢ near 1) slows the
  convergence of u but also shrinks the error it leaves in σ.
  """
  _, s, vt = np.linalg.svd(np.asarray(w, np.float64))
  c = vt[:len(s)] @ np.asarray(u, np.float64)[0]
  r = s[1:] / s[0]
  return float(np.sum((c[1:] / c[0]) ** 2 * r ** (4 * n - 2) * (1 - r ** 2)))


def _spectral_norm_layers(d_params, d_state):
  """Per SN layer, in order: (kernel, u, σ) as float64 numpy arrays."""
  out = []
  for name, sn in sorted(d_state['batch_stats'].items()):
    # ['_MaybeSN_i']['SpectralNorm_0'] holds 'Dense_i/kernel/u' and '/sigma' of ['Dense_i'].
    i = name.split('_MaybeSN_')[1]
    stats = sn['SpectralNorm_0']
    out.append((np.asarray(d_params[f'Dense_{i}']['kernel'], np.float64),
                np.asarray(stats[f'Dense_{i}/kernel/u'], np.float64),
                float(stats[f'Dense_{i}/kernel/sigma'])))
  return out


def _iterate_fn(d_net):
  """``(params, state, n) -> state`` after n more power iterations (one compile for all n)."""

  @jax.jit
  def iterate(d_params, d_state, n):
    return jax.lax.fori_loop(
        0, n, lambda _, s: d_net.train_apply(d_params, s, jnp.zeros((1, 2)))[1], d_state)

  return iterate


@pytest.mark.parametrize('name', METHODS)
def test_short_run_moves_samples_to_the_data_and_state_survives_checkpoints(
    name, tmp_path, saved_states):
  cfg = tiny_config(name)
  wd = str(tmp_path / 'run')
  out = train.train_and_evaluate(cfg, wd)
  assert out['loop'] == LOOPS
  assert math.isfinite(out['train_d_loss']) and math.isfinite(out['train_g_loss'])

  # The checkpoint holds exactly the state the run had in memory.
  _, method, state = train.restore(wd)
  assert sorted(saved_states) == [LOOPS // 2, LOOPS]
  chex.assert_trees_all_equal(jax.device_get(state), saved_states[LOOPS])

  # Samples moved towards the data: energy distance and modes vs init.
  ds = data_lib.load(cfg.data)
  z = jax.random.normal(jax.random.PRNGKey(9), (1000, cfg.model.latent_dim))
  real = np.asarray(ds.sample(ds.arrays, jax.random.PRNGKey(3), 1000))
  init = method.init(jax.random.PRNGKey(cfg.training.seed))
  before, after = np.asarray(method.generate(init, z)), np.asarray(method.generate(state, z))
  e0, e1 = _energy_distance(before, real), _energy_distance(after, real)
  # By far more than the estimate's own noise: the distance between two
  # independent draws of 1,000 data points (0.01; e0 ≈ 2.3). Not a fixed
  # fraction of e0: over seeds (which differ as much as another CPU's
  # rounding makes these runs differ) e1/e0 ranged from 0.01 to 0.34 (WGAN-GP)
  # in runs that covered 7-16 modes.
  noise = _energy_distance(np.asarray(ds.sample(ds.arrays, jax.random.PRNGKey(4), 1000)), real)
  assert e0 - e1 > 10 * noise, (e0, e1, noise)
  # Modes covered, of 25 (measured 7-16 over 4 seeds of every method; 1 at init).
  m0 = metrics.mode_metrics(before, ds.modes, ds.std)['modes']
  assert out['eval_modes'] > m0 + 3, (m0, out['eval_modes'])

  if name == 'sngan':
    _check_spectral_norm_state(cfg, ds, state, init, wd, tmp_path)


def _check_spectral_norm_state(cfg, ds, state, init, wd, tmp_path):
  # None of these checks depends on how training went (another CPU's
  # rounding takes another trajectory, hence other weights): each holds for
  # whatever weights the run reached, with tolerances from float32 rounding.
  _, d_net = models.build(sngan.model_config(cfg, cfg.hparams), ds.shape)
  iterate = _iterate_fn(d_net)
  layers = _spectral_norm_layers(state.d_params, state.d_state)
  assert len(layers) == 3

  # The iteration is the power iteration: one more step from the persistent
  # u gives float64's u and σ to float32 rounding (dot products of <= 32
  # terms: relative error <= 32·2⁻²⁴ = 2e-6 each).
  once = _spectral_norm_layers(state.d_params, iterate(state.d_params, state.d_state, 1))
  for (w, u, _), (_, u1, sigma1) in zip(layers, once):
    u64, sigma64 = _power_iteration64(w, u, 1)
    np.testing.assert_allclose(u1, u64, rtol=0, atol=1e-5)
    assert abs(sigma1 - sigma64) <= 1e-5 * sigma64, (sigma1, sigma64)

  # Enough further iterations reach the SVD's σ: as many as the bound from
  # these weights' singular-value gaps and the persistent u needs for 1e-4.
  tol = 1e-4
  needed = []
  for w, u, _ in layers:
    n = 1
    while _sigma_error_bound(w, u, n) > tol:
      n *= 2
    needed.append(n)
  n = max(needed)
  assert n <= 2**17, needed  # σ converges however small the gap (the bound's 1 − rᵢ²)
  many = _spectral_norm_layers(state.d_params, iterate(state.d_params, state.d_state, n))
  for (w, u, _), (_, _, sigma_n) in zip(layers, many):
    top = np.linalg.svd(w, compute_uv=False)[0]
    assert top * (1 - tol - 1e-5) <= sigma_n <= top * (1 + 1e-5), (n, sigma_n, top)
    assert abs(sigma_n - _power_iteration64(w, u, n)[1]) <= 1e-5 * top

  # The u carried from D step to D step has converged where power iteration
  # converges fast: each step multiplies its components along right singular
  # vectors with sᵢ <= s₁/2 (null space included) by (sᵢ/s₁)² <= 1/4, while a
  # step of D's Adam (lr 1e-3) turns W's top direction little, so their
  # energy stays far below 1e-3 (measured 1e-5 to 3e-5 over 4 seeds). A u
  # not carried over keeps the random init's share of it, about (their
  # number)/32 (measured 0.35 to 1).
  fresh = _spectral_norm_layers(state.d_params, init.d_state)
  for (w, u, _), (_, u0, _) in zip(layers[:2], fresh[:2]):  # the last layer has 1 output
    _, s, vt = np.linalg.svd(w)
    s = np.pad(s, (0, len(vt) - len(s)))
    fast = s <= s[0] / 2
    energy = lambda x: float(np.sum((vt[fast] @ x[0]) ** 2) / np.sum(x ** 2))
    assert fast.sum() >= len(s) // 4, s
    assert energy(u) < 1e-3 < 0.1 < energy(u0), (energy(u), energy(u0))

  # The u vectors evolved and were checkpointed: resuming from the middle
  # checkpoint reproduces the uninterrupted run bit for bit.
  assert not np.allclose(jax.tree.leaves(state.d_state)[1], jax.tree.leaves(init.d_state)[1])
  resumed = str(tmp_path / 'resumed')
  shutil.copytree(wd, resumed)
  shutil.rmtree(os.path.join(resumed, 'checkpoints', str(LOOPS)))
  train.train_and_evaluate(cfg, resumed)
  _, _, state_resumed = train.restore(resumed)
  chex.assert_trees_all_equal(state_resumed, state)


def test_toy_configs_give_published_defaults_on_vgrows_toy_model():
  from experiments.configs import toy  # pylint: disable=g-import-not-at-top
  vg = config_lib.Config.from_dict(toy.get_config('vgrow:js,ring').to_dict())
  assert (vg.method, vg.hparams.divergence, vg.data.name) == ('vgrow', 'js', 'ring')
  for name in METHODS:
    cfg = config_lib.Config.from_dict(toy.get_config(f'{name},grid').to_dict())
    assert cfg.method == name and cfg.data.name == 'grid'
    # The same nets as VGrow's toy runs; spectral norm on D (and, on the ring,
    # the D's input scale) is VGrow's (and SNGAN's) choice, not part of the
    # shared architecture.
    assert cfg.model == dataclasses.replace(
        vg.model, d_spectral_norm=cfg.model.d_spectral_norm,
        sn_power_iterations=cfg.model.sn_power_iterations, d_input_scale=1.0)
    assert vg.model.d_input_scale == 5.0
    assert vg.model.d_spectral_norm and not (name != 'sngan' and cfg.model.d_spectral_norm)
    published = method_lib.hparams_class(name)()
    assert cfg.hparams == dataclasses.replace(published, batch_size=256,
                                              g_steps_per_loop=toy.G_STEPS_PER_LOOP)
  cfg = config_lib.Config.from_dict(toy.get_config('fgan:hellinger,ring').to_dict())
  assert cfg.hparams.divergence == 'hellinger' and cfg.data.name == 'ring'
  with pytest.raises(ValueError, match="method 'wgan' has no variant"):
    toy.parse('wgan:x')
  for arg, message in (('gan,moons', "data.name='moons'"), ('gan9', "method='gan9'"),
                       ('fgan:chi2', "methods.fgan.divergence='chi2'")):
    with pytest.raises(config_lib.ConfigError, match=message):
      config_lib.Config.from_dict(toy.get_config(arg).to_dict())
