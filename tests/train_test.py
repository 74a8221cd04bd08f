"""The trainer and the apps: workdir contents, exact resume, user data, errors."""

import dataclasses
import json
import logging
import os
import subprocess
import sys

import chex
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import train
from vgrow_jax import vgrow


def tiny(num_loops, **data_kw):
  return config_lib.Config(
      data=config_lib.DataConfig(**(data_kw or {'name': 'ring'})),
      model=config_lib.ModelConfig(latent_dim=4, g_width=16, g_depth=1, d_width=16, d_depth=1),
      methods={'vgrow': vgrow.HParams(batch_size=16, pool_batches=2, particle_steps=2,
                                      g_passes=1, step_size=0.1)},
      training=config_lib.TrainingConfig(num_outer_loops=num_loops, log_every=2,
                                         checkpoint_every=2, eval_samples=200))


def test_workdir_contents_and_metrics(tmp_path):
  wd = str(tmp_path / 'run')
  out = train.train_and_evaluate(tiny(4), wd)
  for name in ('config.json', 'data_spec.json', 'metrics.jsonl', 'samples.png', 'flow.png'):
    assert os.path.getsize(os.path.join(wd, name)) > 0, name
  assert sorted(os.listdir(os.path.join(wd, 'checkpoints'))) == ['2', '4']
  records = [json.loads(l) for l in open(os.path.join(wd, 'metrics.jsonl'))]
  assert [r['loop'] for r in records] == [2, 4]
  for key in ('train_d_loss', 'train_g_loss', 'train_field_norm', 'eval_modes',
              'eval_high_quality', 'eval_reverse_kl', 'loops_per_sec', 'eta_sec'):
    assert key in records[-1], key
  assert records[-1]['eval_num_modes'] == 8
  assert config_lib.Config.from_dict(json.load(open(os.path.join(wd, 'config.json')))) == tiny(4)
  assert out['loop'] == 4 and 'modes' in out['summary'] and 'high quality' in out['summary']


def test_resumed_run_equals_uninterrupted_run(tmp_path):
  straight, resumed = str(tmp_path / 'a'), str(tmp_path / 'b')
  train.train_and_evaluate(tiny(6), straight)
  train.train_and_evaluate(tiny(2), resumed)
  train.train_and_evaluate(tiny(6), resumed)  # more loops than before: continues
  _, _, s1 = train.restore(straight)
  _, _, s2 = train.restore(resumed)
  assert int(s1.step) == int(s2.step) == 6
  chex.assert_trees_all_equal(s1, s2)
  loops = [json.loads(l)['loop'] for l in open(os.path.join(resumed, 'metrics.jsonl'))]
  assert loops == [2, 4, 6]


def test_wall_clock_budget_stops_checkpoints_and_evaluates(tmp_path):
  # A budget shorter than one loop stops after the first loop after compilation.
  wd = str(tmp_path / 'w')
  cfg = tiny(10**6)
  cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, max_seconds=1e-6))
  out = train.train_and_evaluate(cfg, wd)
  assert out['loop'] == 1 and 'eval_modes' in out
  assert os.listdir(os.path.join(wd, 'checkpoints')) == ['1']
  assert [json.loads(l)['loop'] for l in open(os.path.join(wd, 'metrics.jsonl'))] == [1]


def test_rerun_with_same_loops_does_not_retrain(tmp_path):
  wd = str(tmp_path / 'w')
  train.train_and_evaluate(tiny(2), wd)
  mtime = os.path.getmtime(os.path.join(wd, 'checkpoints', '2'))
  out = train.train_and_evaluate(tiny(2), wd)
  assert out['loop'] == 2
  assert os.path.getmtime(os.path.join(wd, 'checkpoints', '2')) == mtime


def test_trains_on_user_npz_data(tmp_path):
  x = np.random.default_rng(0).normal(size=(300, 3)).astype(np.float32) + 5
  path = str(tmp_path / 'mine.npz')
  np.savez(path, points=x)
  wd = str(tmp_path / 'w')
  out = train.train_and_evaluate(tiny(2, name='npz', path=path), wd)
  assert out['loop'] == 2 and out['eval_finite_fraction'] == 1.0
  _, method, state = train.restore(wd)
  s = train.sample(method, state, 7)
  assert s.shape == (7, 3)


def test_non_finite_training_stops_and_keeps_the_last_good_checkpoint(tmp_path):
  wd = str(tmp_path / 'w')
  cfg = tiny(2)
  train.train_and_evaluate(cfg, wd)
  bad = dataclasses.replace(cfg.with_hparams(step_size=1e38),
                            training=dataclasses.replace(cfg.training, num_outer_loops=4))
  # The loop after the last good checkpoint (2) is the first bad one.
  with pytest.raises(FloatingPointError, match=r'non-finite train_d_loss, train_g_loss, .* at '
                     r'outer loop 3; stopped, the last good checkpoint \(outer loop 2\) is kept'):
    train.train_and_evaluate(bad, wd)
  assert sorted(os.listdir(os.path.join(wd, 'checkpoints'))) == ['2']


# The apps of this checkout (not of whichever copy is pip-installed).
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _run(args, cwd):
  path = [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=os.pathsep.join(path))
  return subprocess.run([sys.executable, '-m'] + args, cwd=cwd, env=env,
                        capture_output=True, text=True, timeout=300)


SMALL = ['--config.training.num_outer_loops=2', '--config.training.log_every=1',
         '--config.methods.vgrow.batch_size=16', '--config.methods.vgrow.pool_batches=2',
         '--config.methods.vgrow.particle_steps=1', '--config.model.g_width=16',
         '--config.model.d_width=16', '--config.training.eval_samples=100']


def test_apps_train_resume_and_sample(tmp_path):
  wd = str(tmp_path / 'w')
  r = _run(['experiments.main', f'--workdir={wd}'] + SMALL, cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  summary = r.stdout.strip().splitlines()[-1]
  assert summary.startswith('vgrow (kl) on grid: 2 outer loops, modes ') and summary.endswith(' s')
  assert 'loop 2/2' in r.stderr
  out = str(tmp_path / 's.npz')
  r = _run(['experiments.sample', f'--workdir={wd}', '--num=50', f'--out={out}'], cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  assert np.load(out)['samples'].shape == (50, 2)
  # vgrow-eval on mixture data: the mode metrics of the same 100 latents as the
  # run's own final evaluation, so the same numbers; then refined sampling.
  final = [json.loads(l) for l in open(os.path.join(wd, 'metrics.jsonl'))][-1]
  r = _run(['experiments.eval', f'--workdir={wd}', '--num_samples=100'], cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  assert f"modes {final['eval_modes']}/25, high quality {100 * final['eval_high_quality']:.1f}%" \
      in r.stdout, (r.stdout, final)
  r = _run(['experiments.eval', f'--workdir={wd}', '--sample_flow_steps=3', '--latent_seed=5'],
           cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  assert ('grid, N generated 2500 (latents of seed 5); samples: G(z) + 3 flow steps along '
          'the final D') in r.stdout
  last = json.loads(open(os.path.join(wd, 'metrics.jsonl')).read().splitlines()[-1])
  assert last['protocol']['n_generated'] == 2500 and 0 <= last['eval_spread'] < 10
  assert last['protocol']['latent_seed'] == 5


@pytest.mark.parametrize('flag,message', [
    ('--config.methods.vgrow.divergence=hellinger', "methods.vgrow.divergence='hellinger'"),
    ('--config.data.name=moons', "data.name='moons'"),
    ('--config.methods.vgrow.step_size=-1.0', 'methods.vgrow.step_size=-1.0: must be > 0'),
    # The layout of older releases: the field's new place is named.
    ('--config.vgrow.step_size=0.1', 'unknown config field vgrow.step_size: it moved to '
     'methods.vgrow.step_size (--config.methods.vgrow.step_size)'),
    ('--config.g_optimizer.learning_rate=0.5', 'it moved to '
     'methods.vgrow.g_optimizer.learning_rate'),
    # The default config's grid with a conv net: the data is named, not d_input_scale.
    ('--config.model.arch=resnet_sn',
     "data.name='grid': gives points, not images, and model.arch='resnet_sn' needs image data"),
])
def test_app_bad_config_is_a_one_line_error(tmp_path, flag, message):
  r = _run(['experiments.main', f'--workdir={tmp_path}/w', flag], cwd=str(tmp_path))
  assert r.returncode != 0
  lines = r.stderr.strip().splitlines()
  assert len(lines) == 1 and lines[0].startswith('vgrow-train: ') and message in lines[0], r.stderr


def test_app_bad_npz_is_a_one_line_error(tmp_path):
  path = str(tmp_path / 'bad.npz')
  np.savez(path, x=np.array([[1.0, np.nan]]))
  r = _run(['experiments.main', f'--workdir={tmp_path}/w', '--config.data.name=npz',
            f'--config.data.path={path}'], cwd=str(tmp_path))
  last = r.stderr.strip().splitlines()[-1]
  assert r.returncode != 0 and 'Traceback' not in r.stderr, r.stderr
  assert last == ("vgrow-train: bad.npz: data has 1 non-finite values, first at index (0, 1): nan")


def test_sample_app_without_checkpoint_is_a_clear_error(tmp_path):
  r = _run(['experiments.sample', f'--workdir={tmp_path}'], cwd=str(tmp_path))
  assert r.returncode != 0
  assert r.stderr.strip().splitlines() == [
      f"vgrow-sample: no config.json in workdir '{tmp_path}': is it a training workdir?"]


def test_bundled_configs_build_valid_library_configs():
  from experiments.configs import default, jeffreys, js, logd, official, ring  # pylint: disable=g-import-not-at-top
  for mod, div in ((default, 'kl'), (ring, 'kl'), (js, 'js'), (logd, 'logd'),
                   (jeffreys, 'jeffreys')):
    cfg = config_lib.Config.from_dict(mod.get_config().to_dict())
    assert cfg.hparams.divergence == div and cfg.data.name in ('grid', 'ring')
  c = official.get_config()
  c.data.path = 'x.npz'
  cfg = config_lib.Config.from_dict(c.to_dict())
  hp = cfg.hparams
  assert (hp.pool_size, hp.particle_steps, hp.step_size) == (1280, 20, 0.5)
  assert cfg.model.arch == 'resnet_sn' and hp.clip == (-1.0, 1.0)


def test_trainer_logs_the_methods_watch_warnings_at_log_points(tmp_path, caplog, monkeypatch):
  from vgrow_jax import particle_phase
  seen = []

  def fake_watch(remedy=''):
    def check(loop, scalars):
      seen.append((loop, sorted(k for k in scalars if k in ('train_d_loss', 'train_field_norm'))))
      return f'warned at {loop}; {remedy[:6]}' if loop == 4 else ''
    return check

  monkeypatch.setattr(particle_phase, 'watch_discriminator', fake_watch)
  with caplog.at_level(logging.WARNING, logger='vgrow_jax'):
    train.train_and_evaluate(tiny(6), str(tmp_path / 'run'))
  assert seen == [(n, ['train_d_loss', 'train_field_norm']) for n in (2, 4, 6)]
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert warnings == ['warned at 4; resume']


def test_a_resumed_run_gives_the_watcher_its_logged_history_first(tmp_path, monkeypatch):
  from vgrow_jax import particle_phase
  seen = []

  def fake_watch(remedy=''):
    return lambda loop, scalars: seen.append((loop, scalars['train_d_loss'])) or ''

  monkeypatch.setattr(particle_phase, 'watch_discriminator', fake_watch)
  wd = str(tmp_path / 'run')
  train.train_and_evaluate(tiny(4), wd)
  logged = [(r['loop'], r['train_d_loss']) for r in map(json.loads, open(f'{wd}/metrics.jsonl'))]
  assert [loop for loop, _ in logged] == [2, 4] and seen == logged
  seen.clear()
  train.train_and_evaluate(tiny(6), wd)  # resumes at loop 4
  assert seen[:2] == logged and [loop for loop, _ in seen] == [2, 4, 6]


def test_watch_replay_takes_the_newest_record_per_loop_and_skips_cut_lines(tmp_path):
  from vgrow_jax import particle_phase
  path = tmp_path / 'metrics.jsonl'
  lines = [{'loop': 100, 'train_d_loss': 1.38}, {'loop': 200, 'train_d_loss': 0.2},  # abandoned
           {'loop': 200, 'train_d_loss': 1.37},  # the same loop, logged again after a resume
           {'loop': 200, 'eval_fcd': 5.0},  # vgrow-eval's record: no training scalars
           {'loop': 300, 'train_d_loss': 1.38}]  # past the restored checkpoint
  path.write_text(''.join(json.dumps(r) + '\n' for r in lines) + '{"loop": 250, "train_d')
  seen = []
  train._replay_watch(lambda loop, r: seen.append((loop, r['train_d_loss'])), str(path), 200)
  assert seen == [(100, 1.38), (200, 1.37)]
  # The real watcher, given a balanced history, warns at the first loop after the
  # restore where D has won; without the history it cannot.
  for replay in (True, False):
    check = particle_phase.watch_discriminator()
    if replay:
      train._replay_watch(check, str(path), 200)
    warning = check(300, {'train_d_loss': 0.2, 'train_field_norm': 1.0})
    assert warning.startswith('outer loop 300: D separates') == replay, (replay, warning)
  train._replay_watch(lambda *a: 1 / 0, str(tmp_path / 'absent.jsonl'), 200)  # no file: no calls


def test_on_watch_stop_raises_before_saving_the_loop_it_warned_at(tmp_path, monkeypatch):
  from vgrow_jax import particle_phase

  def fake_watch(remedy=''):
    return lambda loop, scalars: 'D won' if loop == 4 else ''

  monkeypatch.setattr(particle_phase, 'watch_discriminator', fake_watch)
  cfg = tiny(8)
  cfg = dataclasses.replace(cfg, training=dataclasses.replace(cfg.training, on_watch='stop'))
  wd = tmp_path / 'run'
  with pytest.raises(train.WatchStop) as e:
    train.train_and_evaluate(cfg, str(wd))
  assert str(e.value) == (
      "D won. Stopped before saving loop 4 (training.on_watch='stop'); the last checkpoint "
      f"(outer loop 2) is kept in {wd / 'checkpoints'}")
  assert os.listdir(wd / 'checkpoints') == ['2']
  # The metrics of the loop it warned at are still written.
  assert [json.loads(l)['loop'] for l in open(wd / 'metrics.jsonl')] == [2, 4]
