"""vgrow_jax.load: a trained workdir as config, state, G and D functions and samplers."""

import dataclasses
import os
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import vgrow_jax as vg
from vgrow_jax import config as config_lib
from vgrow_jax import method as method_lib
from vgrow_jax import metrics as metrics_lib
from vgrow_jax import train
from vgrow_jax import vgrow


def _vgrow_config():
  return config_lib.Config(
      data=config_lib.DataConfig(name='ring'),
      model=config_lib.ModelConfig(latent_dim=4, g_width=16, g_depth=1, d_width=16, d_depth=1),
      methods={'vgrow': vgrow.HParams(batch_size=16, pool_batches=2, particle_steps=2,
                                      g_passes=1, step_size=0.1)},
      training=config_lib.TrainingConfig(num_outer_loops=2, log_every=2, checkpoint_every=1,
                                         eval_samples=100, figure_every=0))


def _sngan_config():
  hp = method_lib.hparams_class('sngan')()
  hp = dataclasses.replace(hp, batch_size=64, g_steps_per_loop=20,
                           g_optimizer=dataclasses.replace(hp.g_optimizer, learning_rate=1e-3),
                           d_optimizer=dataclasses.replace(hp.d_optimizer, learning_rate=1e-3))
  return config_lib.Config(
      method='sngan', data=config_lib.DataConfig(name='grid'),
      model=config_lib.ModelConfig(latent_dim=4, g_width=32, g_depth=2, d_width=32, d_depth=2),
      methods={'sngan': hp},
      training=config_lib.TrainingConfig(num_outer_loops=10, log_every=10, checkpoint_every=10,
                                         eval_samples=100, figure_every=0))


@pytest.fixture(scope='module')
def vgrow_workdir(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp('vgrow') / 'run')
  train.train_and_evaluate(_vgrow_config(), wd)
  return wd


@pytest.fixture(scope='module')
def sngan_workdir(tmp_path_factory):
  wd = str(tmp_path_factory.mktemp('sngan') / 'run')
  train.train_and_evaluate(_sngan_config(), wd)
  return wd


def test_load_gives_config_state_spec_and_pure_g_and_d(vgrow_workdir):
  run = vg.load(vgrow_workdir)
  assert run.config == _vgrow_config()
  assert int(run.state.step) == 2 and run.latent_dim == 4
  assert run.data_spec['name'] == 'ring' and run.data_spec['shape'] == [2]
  cfg, method, state = train.restore(vgrow_workdir)
  chex.assert_trees_all_equal(run.state, state)
  z = jax.random.normal(jax.random.PRNGKey(0), (50, 4))
  np.testing.assert_array_equal(jax.jit(run.generate)(z), method.generate(state, z))
  x = run.generate(z)
  logits = jax.jit(run.logit)(x)
  assert logits.shape == (50,)
  np.testing.assert_array_equal(logits, method.logit(state, x))
  # The closures are differentiable: they plug into the flow functions.
  z1 = vg.latent_flow(run.logit, run.generate, z, 'kl', step_size=0.1, num_steps=2)
  assert z1.shape == z.shape and float(jnp.abs(z1 - z).max()) > 0
  d_net = run.discriminator_net()
  np.testing.assert_array_equal(d_net.eval_apply(state.d_params, state.d_state, x), logits)
  # An earlier checkpoint by its outer loop.
  assert int(vg.load(vgrow_workdir, step=1).state.step) == 1


def test_sample_is_vgrow_sample_and_refines_with_the_existing_sampler(vgrow_workdir):
  run = vg.load(vgrow_workdir)
  _, method, state = train.restore(vgrow_workdir)
  np.testing.assert_array_equal(run.sample(30, seed=3), train.sample(method, state, 30, seed=3))
  for kw in (dict(flow_steps=3), dict(flow_steps=3, d_steps=1, step_schedule='linear'),
             dict(flow_steps=2, step_size=0.05)):
    _, refining, _ = train.restore(vgrow_workdir, **{f'sample_{k}': v for k, v in kw.items()})
    expected = train.sample(refining, state, 30, seed=1)
    np.testing.assert_array_equal(run.sample(30, seed=1, **kw), expected)
    assert np.abs(expected - run.sample(30, seed=1)).max() > 0
  with pytest.raises(ValueError, match=r'^Run.sample: d_steps=2 need flow_steps > 0$'):
    run.sample(10, d_steps=2)
  with pytest.raises(ValueError, match=r"^Run.sample: step_size=0.1, flow_space='latent' need "
                     r'flow_steps > 0$'):
    run.sample(10, step_size=0.1, flow_space='latent')
  # A latent flow along VGrow's final D: the generic refiner on G alone.
  latent = run.sample(30, seed=1, flow_steps=3, flow_space='latent')
  assert latent.shape == (30, 2) and np.abs(latent - run.sample(30, seed=1)).max() > 0


def test_load_errors(tmp_path, vgrow_workdir):
  with pytest.raises(FileNotFoundError, match='no config.json in workdir'):
    vg.load(str(tmp_path))


def test_sngan_run_refined_by_refit_flow_as_in_the_readme(sngan_workdir):
  run = vg.load(sngan_workdir)
  assert run.config.method == 'sngan' and run.logit is not None
  # Its hinge D is no log-ratio: refined sampling fits a fresh logistic D (U > 0).
  with pytest.raises(ValueError, match=r"^sample_flow_steps=5 with sample_d_steps=0 flows along "
                     r"the final D, but method 'sngan' has no logistic D"):
    run.sample(10, flow_steps=5, step_size=0.05)
  kw = dict(flow_steps=5, d_steps=1, step_size=0.05)
  refined = run.sample(50, seed=1, **kw)
  _, refining, _ = train.restore(sngan_workdir, **{f'sample_{k}': v for k, v in kw.items()})
  assert refining.sampling.startswith('G(z) + 5 flow steps, a fresh logistic D fitted')
  np.testing.assert_array_equal(refined, train.sample(refining, run.state, 50, seed=1))
  assert np.abs(refined - run.sample(50, seed=1)).max() > 1e-4

  # README: refine an SNGAN run's samples. Its hinge D is not a log-ratio, so the
  # first 100 "moves" have η = 0 (D alone is re-fitted with the logistic loss),
  # then 100 moves with η falling linearly, D re-fitted before each.
  z = jax.random.normal(jax.random.PRNGKey(0), (1000, run.latent_dim))
  x = jax.jit(run.generate)(z)
  data, d_net = run.dataset(), run.discriminator_net()
  tx = optax.adam(1e-3, b1=0.5)
  d_step = vg.make_discriminator_step(train_apply=d_net.train_apply,
                                      eval_apply=d_net.eval_apply, optimizer=tx,
                                      sample_real=data.sample, batch_size=256)
  etas = jnp.concatenate([jnp.zeros(100), 0.05 * (1 - jnp.arange(100) / 100)])
  refine = jax.jit(lambda d, x: vg.refit_flow(
      d, x, jax.random.PRNGKey(1), data.arrays, d_step=d_step, logit_apply=d_net.eval_apply,
      divergence='kl', d_steps=1, step_size=etas, num_steps=200, clip=data.value_range))
  d, refined, metrics = refine(run.discriminator(tx), x)
  assert metrics['d_loss'].shape == (200,)
  before = metrics_lib.mode_metrics(np.asarray(x), data.modes, data.std)
  after = metrics_lib.mode_metrics(np.asarray(refined), data.modes, data.std)
  # A 10-loop SNGAN covers 10-11 of 25 modes (rKL 0.88-0.97, by CPU); refined: 15-19
  # (rKL 0.48-0.73). The margins are what refinement must at least do on any CPU.
  assert after['modes'] >= before['modes'] + 2, (before, after)
  assert after['reverse_kl'] < 0.9 * before['reverse_kl'], (before, after)
  assert after['high_quality'] > before['high_quality'], (before, after)
  # The D's spectral-norm vectors were updated by the re-fit steps.
  assert not np.array_equal(jax.tree.leaves(d.state)[0], jax.tree.leaves(run.state.d_state)[0])


def _app(args, cwd):
  repo = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=repo)
  return subprocess.run([sys.executable, '-m'] + args, cwd=cwd, env=env, capture_output=True,
                        text=True, timeout=300)


def test_sample_and_eval_apps_refine_a_baseline_run(sngan_workdir, tmp_path):
  refine = ['--sample_flow_steps=5', '--sample_d_steps=1', '--sample_step_size=0.05']
  plain, refined = str(tmp_path / 'plain.npz'), str(tmp_path / 'refined.npz')
  for out, extra in ((plain, []), (refined, refine)):
    r = _app(['experiments.sample', f'--workdir={sngan_workdir}', '--num=40', f'--out={out}']
             + extra, str(tmp_path))
    assert r.returncode == 0, r.stderr
  x, y = np.load(plain)['samples'], np.load(refined)['samples']
  assert x.shape == y.shape == (40, 2) and np.abs(x - y).max() > 1e-4
  r = _app(['experiments.eval', f'--workdir={sngan_workdir}', '--num_samples=100'] + refine,
           str(tmp_path))
  assert r.returncode == 0, r.stderr
  assert ('samples: G(z) + 5 flow steps, a fresh logistic D fitted on the training data with '
          '1 step(s) before each (η = 0.05)') in r.stdout
  # A flag it cannot honour is a one-line error, not plain samples.
  r = _app(['experiments.sample', f'--workdir={sngan_workdir}', '--sample_flow_steps=5',
            '--sample_step_size=0.05', f'--out={plain}'], str(tmp_path))
  assert r.returncode != 0 and r.stderr.strip().splitlines() == [
      "vgrow-sample: sample_flow_steps=5 with sample_d_steps=0 flows along the final D, but "
      "method 'sngan' has no logistic D (d = log p/q); set --sample_d_steps=U > 0 or "
      '--sample_d_warmup_steps=W > 0 to fit a fresh logistic D at sampling'], r.stderr
