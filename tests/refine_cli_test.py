"""vgrow-sample's fresh-D flags: --sample_d_spectral_norm, --sample_d_input_scale and
--sample_d_warmup_steps.

The app runs in this process (its flags parsed by absl, restored after each
call): a subprocess would cost a JAX import per call.
"""

import dataclasses
import logging

from absl import flags
from absl.testing import flagsaver
import numpy as np
import pytest

from experiments import evaluate
from experiments import sample as sample_app
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib
from vgrow_jax import refine
from vgrow_jax import train

ETA, C = 0.05, 1.5
REFINE = ['--sample_flow_steps=1', '--sample_d_steps=1', f'--sample_step_size={ETA}']
NUM = 40


@pytest.fixture(scope='module')
def sngan_workdir(tmp_path_factory):
  """A tiny ring SNGAN run (1 outer loop): its hinge D is no logistic D."""
  hp = dataclasses.replace(method_lib.hparams_class('sngan')(), batch_size=32,
                           g_steps_per_loop=1)
  cfg = config_lib.Config(
      method='sngan', data=config_lib.DataConfig(name='ring'),
      model=config_lib.ModelConfig(latent_dim=4, g_width=16, g_depth=1, d_width=16, d_depth=1),
      methods={'sngan': hp},
      training=config_lib.TrainingConfig(num_outer_loops=1, log_every=1, checkpoint_every=1,
                                         eval_samples=50, figure_every=0))
  wd = str(tmp_path_factory.mktemp('sngan') / 'run')
  train.train_and_evaluate(cfg, wd)
  return wd


def _sample(wd, out, *extra):
  """vgrow-sample's samples, or the SystemExit message of a refused flag."""
  argv = ['vgrow-sample', f'--workdir={wd}', f'--num={NUM}', f'--out={out}', *extra]
  # The app sets up the 'vgrow_jax' logger for a terminal (its own handler, no
  # propagation); put it back so later tests in this process still see records.
  log = logging.getLogger('vgrow_jax')
  saved = log.handlers[:], log.propagate, log.level
  with flagsaver.flagsaver():
    flags.FLAGS.unparse_flags()
    flags.FLAGS(argv)
    try:
      sample_app.main([argv[0]])
    except SystemExit as e:
      return str(e.code)
    finally:
      log.handlers[:], log.propagate = saved[0], saved[1]
      log.setLevel(saved[2])
  return np.load(out)['samples']


def test_the_acceptance_rate_reaches_vgrow_sample_and_vgrow_eval(sngan_workdir, tmp_path):
  mala = dict(sample_flow_steps=3, sample_d_steps=0, sample_d_warmup_steps=5,
              sample_step_size=0.5, flow_space='latent', langevin=1.0, sample_metropolis=True)
  out = tmp_path / 's.npz'
  _sample(sngan_workdir, out, *(f'--{k}={v}' for k, v in mala.items()))
  with np.load(out) as f:
    assert f['samples'].shape == (NUM, 2) and f['acceptance'].shape == (NUM,)
    a = f['acceptance']
  assert ((a >= 0) & (a <= 1)).all() and np.allclose(a * 3, np.round(a * 3), atol=1e-5)
  # vgrow-eval's record: the mean and range over the chains of its fixed latents.
  r = evaluate.evaluate_mode_workdir(sngan_workdir, num_samples=NUM, **mala)
  cfg, method, state = train.restore(sngan_workdir, None, **mala)
  _, stats = train.generate(method, state, train.eval_latents(method, cfg.training.seed, NUM),
                            aux=True)
  assert r['eval_sample_acceptance'] == pytest.approx(float(stats['acceptance'].mean()))
  assert (r['eval_sample_acceptance_min'], r['eval_sample_acceptance_max']) == pytest.approx(
      (float(stats['acceptance'].min()), float(stats['acceptance'].max())))
  assert 'Metropolis acceptance' in evaluate.format_mode_record(r)
  plain = evaluate.evaluate_mode_workdir(sngan_workdir, num_samples=NUM)
  assert 'eval_sample_acceptance' not in plain
  assert 'Metropolis' not in evaluate.format_mode_record(plain)


def test_the_flags_reach_the_fresh_d_and_bound_the_move_by_eta_c(sngan_workdir, tmp_path):
  out = str(tmp_path / 's.npz')
  plain = _sample(sngan_workdir, out)
  old = _sample(sngan_workdir, out, *REFINE)
  sn = _sample(sngan_workdir, out, *REFINE, '--sample_d_spectral_norm',
               f'--sample_d_input_scale={C}')
  assert plain.shape == old.shape == sn.shape == (NUM, 2)
  step_old = np.linalg.norm(old - plain, axis=1)
  step_sn = np.linalg.norm(sn - plain, axis=1)
  # One move of η·∇_x f(c·x) with f spectrally normalised (its σ estimated by
  # power iteration over the 200 warm-up steps): |move| ≤ η·c, up to that estimate.
  # The config's D (no spectral norm, x as it is) moves them farther.
  assert 1e-4 < step_sn.max() <= 1.05 * ETA * C < step_old.max(), (step_sn.max(), step_old.max())


def test_the_flag_values_reach_train_restore(sngan_workdir, tmp_path, monkeypatch):
  seen = {}

  def restore(workdir, step=None, **sampling):
    seen.update(sampling)
    raise ValueError('stop here')
  monkeypatch.setattr(sample_app.train, 'restore', restore)
  got = _sample(sngan_workdir, str(tmp_path / 's.npz'), *REFINE, '--nosample_d_spectral_norm',
                '--sample_d_input_scale=3')
  assert got == 'vgrow-sample: stop here'
  assert (seen['sample_d_spectral_norm'], seen['sample_d_input_scale']) == (False, 3.0)
  _sample(sngan_workdir, str(tmp_path / 's.npz'), *REFINE)  # unset: the config's D
  assert (seen['sample_d_spectral_norm'], seen['sample_d_input_scale']) == (None, None)
  assert seen['sample_d_warmup_steps'] is None and seen['sample_d_batch_size'] is None
  assert seen['sample_divergence'] is None and seen['sample_metropolis'] is None
  _sample(sngan_workdir, str(tmp_path / 's.npz'), '--sample_flow_steps=2',
          '--sample_d_steps=0', '--sample_d_warmup_steps=7', '--sample_d_batch_size=16',
          '--sample_divergence=js', '--flow_space=latent', '--langevin=1',
          '--sample_metropolis')
  assert (seen['sample_d_steps'], seen['sample_d_warmup_steps'], seen['sample_d_batch_size'],
          seen['sample_divergence'], seen['sample_metropolis']) == (0, 7, 16, 'js', True)


def test_a_d_fitted_once_moves_the_samples_from_the_cli(sngan_workdir, tmp_path):
  # --sample_d_steps=0 --sample_d_warmup_steps=W: a fresh D fitted W steps, then fixed.
  out = str(tmp_path / 's.npz')
  plain = _sample(sngan_workdir, out)
  fixed = _sample(sngan_workdir, out, '--sample_flow_steps=2', '--sample_d_steps=0',
                  '--sample_d_warmup_steps=20', f'--sample_step_size={ETA}')
  refit = _sample(sngan_workdir, out, '--sample_flow_steps=2', '--sample_d_steps=1',
                  '--sample_d_warmup_steps=20', f'--sample_step_size={ETA}')
  assert fixed.shape == plain.shape == (NUM, 2)
  assert np.abs(fixed - plain).max() > 1e-4 and np.abs(fixed - refit).max() > 1e-6


@pytest.mark.parametrize('extra, message', [
    (REFINE + ['--sample_d_input_scale=0'],
     'sample_d_input_scale=0.0: must be finite and > 0'),
    (REFINE + ['--sample_d_input_scale=-2'],
     'sample_d_input_scale=-2.0: must be finite and > 0'),
    (['--sample_d_spectral_norm'],
     'sample_d_spectral_norm=True sets the fresh D fitted at sampling: it needs '
     'sample_flow_steps > 0 and sample_d_steps > 0 or sample_d_warmup_steps > 0'),
    (['--sample_flow_steps=1', f'--sample_step_size={ETA}', '--sample_d_input_scale=2'],
     'sample_d_input_scale=2.0 sets the fresh D fitted at sampling: it needs '
     'sample_flow_steps > 0 and sample_d_steps > 0 or sample_d_warmup_steps > 0'),
    (['--sample_d_warmup_steps=5'],
     'sample_d_warmup_steps=5 fits the D of refined sampling: it needs sample_flow_steps > 0'),
    (REFINE + ['--sample_metropolis', '--langevin=1'],
     "sample_metropolis=True accepts or rejects latent Langevin moves: it needs "
     "flow_space='latent' and langevin > 0, got flow_space='data', langevin=1.0"),
])
def test_a_flag_it_cannot_honour_is_one_line_naming_it(sngan_workdir, tmp_path, extra, message):
  got = _sample(sngan_workdir, str(tmp_path / 's.npz'), *extra)
  assert got == f'vgrow-sample: {message}'


@pytest.mark.parametrize('name', ['gan', 'vgrow'])
def test_a_method_refined_along_its_own_logistic_d_refuses_them(name):
  cfg = config_lib.Config(method=name, data=config_lib.DataConfig(name='ring'),
                          model=config_lib.ModelConfig(latent_dim=3, g_width=16, g_depth=1,
                                                       d_width=16, d_depth=1))
  m = method_lib.get(name)(cfg, data_lib.ring())
  for kw, shown in ((dict(sample_d_spectral_norm=True), 'sample_d_spectral_norm=True'),
                    (dict(sample_d_input_scale=5.0), 'sample_d_input_scale=5.0')):
    with pytest.raises(ValueError, match=(
        rf"^{shown} sets the fresh D fitted for a method without a logistic D, but method "
        rf"'{name}' is refined along its own logistic D; drop it$")):
      cfg2, r = refine.plan(cfg, sample_flow_steps=2, sample_d_steps=1, sample_step_size=0.05,
                            **kw)
      refine.refined_method(cfg2, m, data_lib.ring(), r)
