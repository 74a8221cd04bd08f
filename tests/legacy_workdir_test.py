"""A workdir written before VGrow's settings moved to methods.vgrow still restores, samples and resumes.

tests/data/legacy_vgrow_workdir holds config.json, data_spec.json and the
checkpoint of a 2-loop VGrow-JS run on the ring (a 4-wide MLP pair) in the
old layout: top-level ``vgrow``, ``g_optimizer`` and ``d_optimizer`` sections.
``expected_samples.json`` holds the samples the code of that layout drew
from it (16 latents of seed 0, with the run's own 2 flow steps along the
final D, and plain G(z)).
"""

import dataclasses
import json
import os
import shutil

import numpy as np
import pytest

import vgrow_jax as vg
from vgrow_jax import config as config_lib
from vgrow_jax import train

LEGACY = os.path.join(os.path.dirname(os.path.abspath(__file__)), 'data',
                      'legacy_vgrow_workdir')


@pytest.fixture
def workdir(tmp_path):
  """A copy (restoring reads only, resuming writes)."""
  return shutil.copytree(LEGACY, str(tmp_path / 'w'))


def _expected():
  with open(os.path.join(LEGACY, 'expected_samples.json')) as f:
    e = json.load(f)
  return e, np.asarray(e['refined'], np.float32), np.asarray(e['plain'], np.float32)


def test_the_test_data_is_in_the_old_layout():
  with open(os.path.join(LEGACY, 'config.json')) as f:
    d = json.load(f)
  assert {'vgrow', 'g_optimizer', 'd_optimizer'} <= set(d) and 'vgrow' not in d['methods']


def test_an_old_workdir_restores_with_its_settings_and_samples_as_before(workdir):
  cfg, method, state = train.restore(workdir)
  hp = cfg.hparams
  assert cfg.method == 'vgrow' and cfg.hparams_section == 'methods.vgrow'
  assert (hp.divergence, hp.batch_size, hp.step_size, hp.sample_flow_steps) == ('js', 8, 0.05, 2)
  assert (hp.g_optimizer.name, hp.g_optimizer.learning_rate, hp.g_optimizer.b1) == (
      'adam', 1e-3, 0.5)
  assert (hp.d_optimizer.name, hp.d_optimizer.learning_rate) == ('sgd', 3e-3)
  assert int(state.step) == 2
  e, refined, plain = _expected()
  np.testing.assert_allclose(train.sample(method, state, e['num'], seed=e['seed']), refined,
                             rtol=1e-5, atol=1e-6)
  _, method0, state0 = train.restore(workdir, sample_flow_steps=0)
  np.testing.assert_allclose(train.sample(method0, state0, e['num'], seed=e['seed']), plain,
                             rtol=1e-5, atol=1e-6)
  run = vg.load(workdir)  # G alone
  np.testing.assert_allclose(run.sample(e['num'], seed=e['seed']), plain, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(run.sample(e['num'], seed=e['seed'], flow_steps=2), refined,
                             rtol=1e-5, atol=1e-6)


def test_an_old_workdir_resumes_and_is_rewritten_in_the_new_layout(workdir):
  cfg = train.load_config(workdir)
  more = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, num_outer_loops=3))
  out = train.train_and_evaluate(more, workdir)
  assert out['loop'] == 3 and out['summary'].startswith('vgrow (js) on ring: 3 outer loops')
  with open(os.path.join(workdir, train.CONFIG_FILE)) as f:
    d = json.load(f)
  assert 'vgrow' not in d and d['methods']['vgrow']['divergence'] == 'js'
  assert config_lib.Config.from_dict(d) == more
