"""Images end to end: the digit classifier, a tiny VGrow run on 8×8 digits, vgrow-eval."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from experiments import evaluate as eval_app
from vgrow_jax import classifier
from vgrow_jax import config as config_lib
from vgrow_jax import image_data
from vgrow_jax import train
from vgrow_jax import vgrow


@pytest.fixture(scope='module')
def digits_classifier(tmp_path_factory):
  tr, te = image_data.read_digits('train'), image_data.read_digits('test')
  clf = classifier.fit(tr, te, steps=150, batch_size=32, learning_rate=3e-3, shift=0, width=8)
  path = str(tmp_path_factory.mktemp('clf') / 'digits.npz')
  classifier.save(path, clf)
  return clf, path


def test_classifier_learns_digits_and_round_trips(digits_classifier):
  clf, path = digits_classifier
  assert clf.image_shape == (8, 8, 1) and clf.num_classes == 10
  assert clf.test_accuracy > 0.7  # chance is 0.1; 0.83 measured
  back = classifier.load(path)
  x = np.asarray(image_data.to_unit_range(image_data.read_digits('test').images[:7]))
  np.testing.assert_array_equal(back.probs(x), clf.probs(x))
  assert back.features(x).shape == (7, 128) and back.test_accuracy == clf.test_accuracy
  assert back.train_data == 'digits:train'
  with pytest.raises(ValueError, match=r'trained on images \(8, 8, 1\), got \(4, 4, 1\)'):
    back.probs(np.zeros((1, 4, 4, 1)))
  with pytest.raises(FileNotFoundError, match='vgrow-classifier --out=PATH'):
    classifier.load(path + '.missing')


def test_vgrow_on_digits_writes_figures_and_vgrow_eval_scores_it(tmp_path, digits_classifier):
  _, clf_path = digits_classifier
  cfg = config_lib.Config(
      data=config_lib.DataConfig(name='digits'),
      model=config_lib.ModelConfig(arch='dcgan', latent_dim=4, g_width=4, d_width=4),
      methods={'vgrow': vgrow.HParams(batch_size=16, pool_batches=2, particle_steps=2,
                                      g_passes=1, step_size=0.5, clip=(-1.0, 1.0))},
      training=config_lib.TrainingConfig(num_outer_loops=2, log_every=1, checkpoint_every=2,
                                         eval_samples=64, figure_every=1))
  wd = str(tmp_path / 'w')
  out = train.train_and_evaluate(cfg, wd)
  assert out['loop'] == 2 and out['eval_finite_fraction'] == 1.0
  for name in ('grids/loop_000001.png', 'grids/loop_000002.png', 'losses.png', 'samples.png'):
    assert os.path.getsize(os.path.join(wd, name)) > 0, name
  r = eval_app.evaluate_workdir(wd, classifier_path=clf_path, num_samples=100, kid_subsets=10,
                                kid_subset_size=50)
  p = r['protocol']
  assert (p['n_generated'], p['n_reference'], p['reference']) == (100, 100,
                                                                  'digits:test (held out)')
  assert 'digits:train' in p['features']
  # The real held-out digits score near the classifier's ceiling, two loops of VGrow do not.
  assert r['eval_classifier_score_reference'] > 3
  assert r['eval_classifier_score'] < r['eval_classifier_score_reference']
  assert r['eval_fcd'] > 0 and r['eval_kid'] > 3 * r['eval_kid_std']
  assert 0 < r['eval_class_tv'] <= 1  # two loops do not make the held-out digits' classes
  last = json.loads(open(os.path.join(wd, 'metrics.jsonl')).read().splitlines()[-1])
  assert last['eval_fcd'] == r['eval_fcd'] and last['loop'] == 2
  assert 'Fréchet classifier distance' in eval_app.format_record(r)
  assert 'label-histogram TV distance' in eval_app.format_record(r)
  # D's logit on as many training digits as held-out ones (VGrow has a D).
  assert r['eval_d_gap'] == pytest.approx(r['eval_d_logit_train'] - r['eval_d_logit_held_out'])
  assert np.isfinite(r['eval_d_gap']) and p['d_gap'].endswith('on the 100 held-out reference images')
  assert 'memorised its training images' in eval_app.format_record(r)
  assert 'sampling' not in p
  # Refined sampling: other images (moved along D), same reference, the protocol says so.
  rr = eval_app.evaluate_workdir(wd, classifier_path=clf_path, num_samples=100, kid_subsets=10,
                                 kid_subset_size=50, sample_flow_steps=3)
  assert rr['protocol']['sampling'] == 'G(z) + 3 flow steps along the final D (η = 0.5)'
  assert rr['eval_fcd'] != r['eval_fcd']
  assert rr['eval_classifier_score_reference'] == r['eval_classifier_score_reference']
  assert 'samples: G(z) + 3 flow steps' in eval_app.format_record(rr)
  # Other latents: other images against the same reference, and the record says which.
  assert p['latent_seed'] == cfg.training.seed
  r1 = eval_app.evaluate_workdir(wd, classifier_path=clf_path, num_samples=100, kid_subsets=10,
                                 kid_subset_size=50, latent_seed=cfg.training.seed + 1)
  assert r1['protocol']['latent_seed'] == cfg.training.seed + 1
  assert r1['eval_fcd'] != r['eval_fcd']
  assert r1['eval_classifier_score_reference'] == r['eval_classifier_score_reference']
  assert f'(latents of seed {cfg.training.seed + 1})' in eval_app.format_record(r1)


def test_eval_app_without_a_workdir_is_a_one_line_error(tmp_path):
  env = dict(os.environ, JAX_PLATFORMS='cpu')
  r = subprocess.run([sys.executable, '-m', 'experiments.eval', f'--workdir={tmp_path}'],
                     cwd=os.path.dirname(os.path.dirname(__file__)), env=env,
                     capture_output=True, text=True, timeout=120)
  assert r.returncode != 0
  assert r.stderr.strip().splitlines() == [
      f"vgrow-eval: no config.json in workdir '{tmp_path}': is it a training workdir?"]


def test_mnist_config_is_the_official_one_scaled_down():
  from experiments.configs import mnist  # pylint: disable=g-import-not-at-top
  cfg = config_lib.Config.from_dict(mnist.get_config().to_dict())
  assert (cfg.data.name, cfg.data.image_size, cfg.data.resize) == ('mnist_5k', 32, 'bilinear')
  hp = cfg.hparams
  assert cfg.model.arch == 'mlp' and hp.step_size == 0.5 and hp.clip == (-1, 1)
  # L = 3 and the EMA of G: B3's 150-s tuning round (benchmarks/RESULTS.md, B3).
  assert (hp.pool_batches, hp.particle_steps, hp.g_passes) == (4, 5, 3)
  assert hp.g_ema_decay == 0.99
  assert config_lib.Config.from_dict(mnist.get_config('resnet_sn').to_dict()).model.arch == \
      'resnet_sn'


def test_conv_vgrow_resumed_run_equals_uninterrupted_run(tmp_path):
  # The conv nets' hand-written gradients (vgrow_jax/conv.py) inside the compiled
  # loop: width 8 takes both the library-convolution and the few-channel paths.
  # (The SN-ResNet pair uses the same convolutions; it compiles for a minute, so
  # its gradients are checked in tests/conv_test.py instead.)
  import chex  # pylint: disable=g-import-not-at-top

  def cfg(loops):
    return config_lib.Config(
        data=config_lib.DataConfig(name='digits'),
        model=config_lib.ModelConfig(arch='dcgan', latent_dim=4, g_width=8, d_width=8),
        methods={'vgrow': vgrow.HParams(batch_size=8, pool_batches=2, particle_steps=2,
                                        g_passes=1, step_size=0.5, clip=(-1.0, 1.0))},
        training=config_lib.TrainingConfig(num_outer_loops=loops, log_every=1,
                                           checkpoint_every=1, eval_samples=16,
                                           figure_every=0))

  straight, resumed = str(tmp_path / 'a'), str(tmp_path / 'b')
  train.train_and_evaluate(cfg(3), straight)
  train.train_and_evaluate(cfg(1), resumed)
  train.train_and_evaluate(cfg(3), resumed)
  _, _, s1 = train.restore(straight)
  _, _, s2 = train.restore(resumed)
  assert int(s1.step) == int(s2.step) == 3
  chex.assert_trees_all_equal(s1, s2)
