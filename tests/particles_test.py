"""Generator-free VGrow: particles move to the data, exact resume, one-line errors."""

import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib
from vgrow_jax import particles
from vgrow_jax import refine
from vgrow_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(num_loops=4, *, data='ring', eval_samples=64, d_width=16, d_depth=1, **hp):
  settings = dict(num_particles=128, flow_steps=3, d_steps=1, batch_size=32, step_size=0.01)
  settings.update(hp)
  return config_lib.Config(
      method='particles', data=config_lib.DataConfig(name=data),
      model=config_lib.ModelConfig(d_width=d_width, d_depth=d_depth),
      methods={'particles': particles.HParams(**settings)},
      training=config_lib.TrainingConfig(num_outer_loops=num_loops, log_every=2,
                                         checkpoint_every=2, eval_samples=eval_samples))


def test_particles_move_to_a_gaussian_target():
  # p = N(μ, σ²I) with μ = (1.5, -1), σ = 0.5; the particles start uniform on
  # [lo, hi]² = [μ_min − 4σ, μ_max + 4σ]² = [-3, 3.5]² (mean 0.25, variance 3.5),
  # far from p in mean and spread. A re-fitted D's flow brings both to p's.
  mu, sigma = np.array([1.5, -1.0]), 0.5
  ds = data_lib.mixture(mu[None], sigma)
  cfg = tiny(data='mixture', d_width=64, d_depth=2, num_particles=1024, batch_size=256,
             flow_steps=10, d_steps=2, step_size=0.05)
  m = particles.make(cfg, ds)
  step = jax.jit(m.step)
  state = m.init(jax.random.PRNGKey(0))
  x0 = np.asarray(state.particles)
  assert np.abs(x0.mean(0) - mu).max() > 1.0 and np.cov(x0.T).diagonal().min() > 3.0
  for _ in range(20):
    state, met = step(state, ds.arrays)
  x = np.asarray(state.particles, np.float64)
  # Measured over seeds 0-2 after these 200 moves: mean within 0.01 of μ,
  # variances 0.205-0.267 against σ² = 0.25, |covariance| <= 0.026. The
  # tolerances: 3 standard errors of the mean of 1,024 draws of p (σ/32 = 0.016),
  # 25% on a variance (its standard error is 4.4%; the rest is the flow's jitter).
  np.testing.assert_allclose(x.mean(0), mu, atol=0.05)
  cov = np.cov(x.T)
  np.testing.assert_allclose(cov.diagonal(), sigma**2, rtol=0.25)
  assert abs(cov[0, 1]) < 0.05, cov
  assert np.isfinite(float(met['d_loss'])) and met['particles_after'].shape == (512, 2)


def test_resumed_run_equals_uninterrupted_run(tmp_path):
  straight, resumed = str(tmp_path / 'a'), str(tmp_path / 'b')
  train.train_and_evaluate(tiny(4), straight)
  train.train_and_evaluate(tiny(2), resumed)
  out = train.train_and_evaluate(tiny(4), resumed)
  assert out['summary'].startswith('particles (kl) on ring: 4 outer loops, modes ')
  _, _, s1 = train.restore(straight)
  _, _, s2 = train.restore(resumed)
  assert int(s1.step) == int(s2.step) == 4
  chex.assert_trees_all_equal(s1, s2)  # particles, D, its Adam state, key: bit for bit
  assert s1.particles.shape == (128, 2)


def test_generate_returns_the_first_particles_and_refuses_more():
  cfg = tiny()
  m = method_lib.get('particles')(cfg, data_lib.ring())
  state = m.init(jax.random.PRNGKey(0))
  assert m.latent_dim == 1
  np.testing.assert_array_equal(m.generate(state, jnp.zeros((5, 1))), state.particles[:5])
  with pytest.raises(ValueError) as e:
    jax.jit(m.generate)(state, jnp.zeros((129, 1)))
  assert str(e.value) == ('particles: num=129 samples asked for, but the run holds '
                          'methods.particles.num_particles=128; ask for at most 128')


def test_refined_sampling_flows_the_particles_along_their_own_d(tmp_path):
  wd = str(tmp_path / 'w')
  train.train_and_evaluate(tiny(2), wd)
  _, method, state = train.restore(wd, sample_flow_steps=3)
  assert method.sampling == 'G(z) + 3 flow steps along the final D (η = 0.01)'
  moved = np.asarray(train.generate(method, state, jnp.zeros((64, 1))))
  before = np.asarray(state.particles[:64])
  # Each of the 3 moves is η·∇d with |∇d| bounded by the tiny D: the particles move, a little.
  shift = np.linalg.norm(moved - before, axis=1)
  assert moved.shape == (64, 2) and 0 < shift.mean() < 0.1, shift.mean()


def test_more_particles_than_a_sampling_chunk_are_all_sampled():
  # train.generate evaluates a G(z) in chunks of 4,096 latents; stored particles
  # cannot be (every chunk would get the first ones), so all N = 5,000 come back.
  cfg = tiny(num_particles=5000, batch_size=64, eval_samples=5000)
  ds = data_lib.ring()
  m = particles.make(cfg, ds)
  step = jax.jit(m.step)
  state = m.init(jax.random.PRNGKey(0))
  for _ in range(2):
    state, _ = step(state, ds.arrays)
  samples = train.sample(m, state, 5000)
  np.testing.assert_array_equal(samples, state.particles)
  assert len(np.unique(samples, axis=0)) == 5000
  np.testing.assert_array_equal(train.sample(m, state, 4500), state.particles[:4500])
  with pytest.raises(ValueError) as e:
    train.sample(m, state, 5001)
  assert str(e.value) == ('particles: num=5001 samples asked for, but the run holds '
                          'methods.particles.num_particles=5000; ask for at most 5000')
  # Refined (re-fit) sampling moves all 5,000 of them, not 4,096 twice over.
  _, r = refine.plan(cfg, sample_flow_steps=2, sample_d_steps=1)
  moved = train.sample(refine.refined_method(cfg, m, ds, r), state, 5000)
  shift = np.linalg.norm(moved - np.asarray(state.particles), axis=1)
  assert moved.shape == (5000, 2) and (shift > 0).mean() > 0.99, (shift > 0).mean()


def _run(args, cwd):
  path = [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=os.pathsep.join(path))
  return subprocess.run([sys.executable, '-m'] + args, cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


def test_sample_app_more_than_the_particles_is_a_one_line_error(tmp_path):
  wd = str(tmp_path / 'w')
  train.train_and_evaluate(tiny(2), wd)
  out = str(tmp_path / 's.npz')
  r = _run(['experiments.sample', f'--workdir={wd}', '--num=129', f'--out={out}'],
           cwd=str(tmp_path))
  assert r.returncode != 0 and not os.path.exists(out)
  assert r.stderr.strip().splitlines()[-1] == (
      'vgrow-sample: particles: num=129 samples asked for, but the run holds '
      'methods.particles.num_particles=128; ask for at most 128'), r.stderr
  assert 'Traceback' not in r.stderr
  r = _run(['experiments.sample', f'--workdir={wd}', '--num=128', f'--out={out}'],
           cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  _, _, state = train.restore(wd)
  np.testing.assert_array_equal(np.load(out)['samples'], state.particles)


@pytest.mark.parametrize('field,value,message', [
    ('step_size', -1.0, 'methods.particles.step_size=-1.0: must be > 0'),
    ('init', 'gaussian', "methods.particles.init='gaussian': expected one of ['uniform', "
                         "'normal']"),
    ('divergence', 'hellinger', "methods.particles.divergence='hellinger': expected one of"),
    ('batch_size', 4000, 'methods.particles.batch_size=4000: must be in [1, num_particles=2500]'),
    ('num_particles', 0, 'methods.particles.num_particles=0: must be >= 1'),
    ('step_schedule', 'cosine', "methods.particles.step_schedule='cosine'"),
    ('step_decay_boundaries', [50, 30],
     'methods.particles.step_decay_boundaries=(50, 30): must be sorted integers >= 0'),
    ('step_decay_factor', 0.0, 'methods.particles.step_decay_factor=0.0: must be in (0, 1]'),
])
def test_bad_hparams_are_one_line_errors_naming_the_field(field, value, message):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.Config.from_dict({'method': 'particles',
                                 'methods': {'particles': {field: value}}})
  text = str(e.value)
  assert text.startswith('config field ') and message in text and '\n' not in text, text


def test_step_decay_scales_every_move_from_its_boundary():
  # η × factor^(boundaries passed): loop 0 moves with η, loop 1 with η/4, so from the same
  # state (same loop key, same draws) loop 1 equals a run whose η is η/4 throughout.
  ds = data_lib.ring()
  decayed = particles.make(tiny(step_decay_boundaries=(1,), step_decay_factor=0.25), ds)
  quarter = particles.make(tiny(step_size=0.0025), ds)
  state = decayed.init(jax.random.PRNGKey(0))
  s0, m0 = jax.jit(decayed.step)(state, ds.arrays)
  plain0, _ = jax.jit(particles.make(tiny(), ds).step)(state, ds.arrays)
  np.testing.assert_array_equal(s0.particles, plain0.particles)  # before the boundary: η
  s1, m1 = jax.jit(decayed.step)(s0, ds.arrays)
  q1, _ = jax.jit(quarter.step)(s0, ds.arrays)
  np.testing.assert_allclose(s1.particles, q1.particles, rtol=1e-6, atol=1e-7)
  assert (float(m0['step_scale']), float(m1['step_scale'])) == (1.0, 0.25)
  assert np.abs(np.asarray(s1.particles) - np.asarray(s0.particles)).max() > 1e-5


def test_fewer_particles_than_eval_samples_is_a_one_line_error():
  with pytest.raises(config_lib.ConfigError) as e:
    particles.make(tiny(eval_samples=200), data_lib.ring())
  assert str(e.value).startswith('config field methods.particles.num_particles=128: must be '
                                 '>= training.eval_samples=200'), e.value


def test_toy_and_mnist_configs_build():
  from experiments.configs import mnist, toy  # pylint: disable=g-import-not-at-top
  for dataset, sigma in (('ring', 0.01), ('grid', 0.05)):
    cfg = config_lib.Config.from_dict(toy.get_config(f'particles,{dataset}').to_dict())
    hp = cfg.hparams
    assert cfg.method == 'particles' and cfg.data.name == dataset
    assert hp.num_particles >= cfg.training.eval_samples
    # The first move of a loop is at most 8σ: η·c with the D's input scale c.
    assert hp.step_size * cfg.model.d_input_scale == pytest.approx(8 * sigma)
  cfg = config_lib.Config.from_dict(mnist.get_config('particles').to_dict())
  assert cfg.method == 'particles' and cfg.data.name == 'mnist_5k'
  assert cfg.hparams.num_particles >= max(cfg.training.eval_samples, 1000)  # vgrow-eval's N
