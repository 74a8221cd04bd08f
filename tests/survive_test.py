"""Surviving bad input and interruptions: config errors, non-finite loops, SIGTERM,
corrupt checkpoints, checkpoints of another config, and exact re-runs."""

import dataclasses
import glob
import json
import logging
import os
import shutil
import signal
import subprocess
import sys
import time

import chex
import flax
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import checkpoint as checkpoint_lib
from vgrow_jax import config as config_lib
from vgrow_jax import guard
from vgrow_jax import preemption
from vgrow_jax import train
from vgrow_jax import vgrow

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(num_loops, *, g_width=16, **training_kw):
  return config_lib.Config(
      data=config_lib.DataConfig(name='ring'),
      model=config_lib.ModelConfig(latent_dim=4, g_width=g_width, g_depth=1, d_width=16,
                                   d_depth=1),
      methods={'vgrow': vgrow.HParams(batch_size=16, pool_batches=2, particle_steps=2,
                                      g_passes=1, step_size=0.1)},
      training=config_lib.TrainingConfig(**{
          'num_outer_loops': num_loops, 'log_every': 2, 'checkpoint_every': 2,
          'eval_samples': 200, **training_kw}))


def _run(args, cwd, **popen_kw):
  path = [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  env = dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=os.pathsep.join(path),
             JAX_DEFAULT_MATMUL_PRECISION='highest')  # as tests/conftest.py sets here
  return subprocess.Popen([sys.executable, '-m'] + args, cwd=cwd, env=env, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE, **popen_kw)


@pytest.fixture(scope='module')
def straight(tmp_path_factory):
  """Six loops of tiny() without interruption (checkpoints 2, 4, 6): the reference."""
  wd = str(tmp_path_factory.mktemp('straight') / 'w')
  train.train_and_evaluate(tiny(6), wd)
  return wd


def _copy(workdir, tmp_path):
  """A copy of a trained workdir to damage (training again costs a compile)."""
  return shutil.copytree(workdir, str(tmp_path / 'w'))


# --- Config validation -------------------------------------------------------------------

def _vgrow(fields):
  """A config mapping setting ``fields`` of VGrow's section."""
  return {'methods': {'vgrow': fields}}


@pytest.mark.parametrize('d,message', [
    ({'mesh': {'data': 3}},
     'config field methods.vgrow.batch_size=64: must be a multiple of the 3 devices on the '
     'data axis '
     '(mesh.data=3)'),
    ({'mesh': {'devices': 8}}, "unknown config field mesh.devices; known fields here: ['data']"),
    ({'training': {'on_nonfinite': 'ignore'}},
     "config field training.on_nonfinite='ignore': expected one of ['skip', 'stop']"),
    ({'training': {'on_watch': 'halt'}},
     "config field training.on_watch='halt': expected one of ['stop', 'warn']"),
    ({'training': {'seed': 2**32}}, 'config field training.seed=4294967296: must be in [0, 2**32)'),
    ({'training': {'log_every': 0}}, 'config field training.log_every=0: must be >= 1'),
    (_vgrow({'g_optimizer': {'learning_rate': float('nan')}}),
     'config field methods.vgrow.g_optimizer.learning_rate=nan: expected a finite float'),
    (_vgrow({'d_optimizer': {'lr_decay_factor': 0.0}}),
     'config field methods.vgrow.d_optimizer.lr_decay_factor=0.0: must be > 0'),
    (_vgrow({'d_optimizer': {'lr_decay_boundaries': [-1]}}),
     'config field methods.vgrow.d_optimizer.lr_decay_boundaries=(-1,): must be increasing '
     'outer-loop indices >= 0'),
    (_vgrow({'clip': [-1, 1], 'clip_to_data_range': True}),
     'config field methods.vgrow.clip_to_data_range=True: conflicts with '
     'methods.vgrow.clip=(-1.0, 1.0); set one of them'),
    (_vgrow({'g_passes_schedule': [[-5, 2]]}),
     'config field methods.vgrow.g_passes_schedule=((-5, 2),): must be increasing '
     '(from_loop >= 0, passes >= 0) pairs'),
    (_vgrow({'step_size_schedule': [[100, 15.0], [50, 10.0]]}),
     'config field methods.vgrow.step_size_schedule=((100, 15.0), (50, 10.0)): must be '
     'increasing (from_loop >= 0, η > 0) pairs'),
    (_vgrow({'clip': [0, float('inf')]}),
     'config field methods.vgrow.clip=inf: expected a finite float'),
    # The layout of older releases is read into methods.vgrow, errors named there.
    ({'d_optimizer': {'lr_decay_factor': 0.0}},
     'config field methods.vgrow.d_optimizer.lr_decay_factor=0.0: must be > 0'),
    ({'data': {'seed': -3}}, 'config field data.seed=-3: must be >= 0'),
])
def test_bad_config_is_one_error_naming_field_and_value(d, message):
  with pytest.raises(config_lib.ConfigError) as e:
    config_lib.Config.from_dict(d)
  assert str(e.value) == message


def test_configs_built_directly_are_type_checked():
  with pytest.raises(config_lib.ConfigError, match=r"^config field methods\.vgrow\.batch_size="
                     r"'16': expected an int$"):
    vgrow.HParams(batch_size='16')
  with pytest.raises(config_lib.ConfigError, match=r'^config field optimizer\.eps=inf: '
                     r'expected a finite float$'):
    config_lib.OptimizerConfig(eps=float('inf'))


def test_app_unknown_override_is_one_line(tmp_path):
  p = _run(['experiments.main', f'--workdir={tmp_path}/w', '--config.mesh.devices=8'],
           str(tmp_path))
  _, err = p.communicate(timeout=300)
  assert p.returncode == 1
  assert err.strip().splitlines() == [
      "vgrow-train: unknown config field mesh.devices; known fields here: ['data']"]


# --- Non-finite loops ---------------------------------------------------------------------

@flax.struct.dataclass
class _State:
  step: jax.Array
  key: jax.Array
  w: jax.Array


def _noisy_step(state, data):
  """w += N(0, 1) from fold_in(key, step); the loss is NaN at loop 1."""
  del data
  w = state.w + jax.random.normal(jax.random.fold_in(state.key, state.step), state.w.shape)
  loss = jnp.where(state.step == 1, jnp.nan, jnp.sum(w))
  return dataclasses.replace(state, step=state.step + 1, w=w), {'loss': loss}


def _noise(key, step):
  return jax.random.normal(jax.random.fold_in(key, step), (3,))


def test_skip_keeps_the_previous_state_and_moves_on_to_new_randomness():
  key = jax.random.PRNGKey(0)
  state = _State(step=jnp.int32(0), key=key, w=jnp.zeros(3))
  names = guard.quantity_names(_noisy_step, state, None)
  assert names == ['train_loss', 'state/w']
  step = jax.jit(guard.guarded(_noisy_step, skip=True))
  flags = []
  for _ in range(3):
    state, _, finite = step(state, None)
    flags.append(guard.non_finite(names, finite))
  assert flags == [[], ['train_loss'], []]
  assert int(state.step) == 3
  # Loop 1 was dropped; loop 2 drew fold_in(key, 2), not loop 1's numbers again
  # (to float rounding: eager and compiled erf_inv may differ in the last bits
  # of each draw, so the tolerance follows the draws' size, not their sum's,
  # which can cancel).
  n0, n2 = np.asarray(_noise(key, 0)), np.asarray(_noise(key, 2))
  np.testing.assert_allclose(state.w, n0 + n2, rtol=0, atol=1e-6 * np.max(np.abs(n0) + np.abs(n2)))
  assert np.abs(state.w - (_noise(key, 0) + _noise(key, 1) + _noise(key, 2))).min() > 0.01


def test_stop_mode_returns_the_bad_update_and_names_it():
  state = _State(step=jnp.int32(1), key=jax.random.PRNGKey(0), w=jnp.zeros(3))
  new, metrics, finite = jax.jit(guard.guarded(_noisy_step, skip=False))(state, None)
  assert int(new.step) == 2 and np.isnan(metrics['loss'])
  assert guard.non_finite(['train_loss', 'state/w'], finite) == ['train_loss']
  assert guard.describe([f'q{i}' for i in range(8)]) == 'q0, q1, q2, q3, q4, q5 (and 2 more)'


def test_trainer_skips_non_finite_loops_when_asked(tmp_path, caplog, straight):
  wd = _copy(straight, tmp_path)
  good = train.restore(wd)[2]
  cfg = tiny(8, on_nonfinite='skip')
  bad = cfg.with_hparams(step_size=1e38)
  with caplog.at_level(logging.WARNING, logger='vgrow_jax'):
    out = train.train_and_evaluate(bad, wd)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 2, warnings
  for loop, w in zip((7, 8), warnings):
    assert w.startswith(f'outer loop {loop}: non-finite train_')
    assert 'train_g_loss' in w and 'state/g_opt_state' in w and w.endswith(
        "; skipped its update (training.on_nonfinite='skip')")
  assert out['loop'] == 8
  kept = train.restore(wd)[2]
  assert int(kept.step) == 8
  chex.assert_trees_all_equal(dataclasses.replace(kept, step=good.step), good)
  last = json.loads(open(os.path.join(wd, 'metrics.jsonl')).read().splitlines()[-1])
  assert last['loop'] == 8 and last['skipped_loops'] == 2


# --- Checkpoints --------------------------------------------------------------------------

def test_corrupt_latest_checkpoint_is_skipped_and_kept(tmp_path, caplog, straight):
  wd = _copy(straight, tmp_path)
  ckpts = os.path.join(wd, 'checkpoints')
  # Garble every data file of checkpoint 6 (its metadata stays readable).
  data_files = [f for f in glob.glob(os.path.join(ckpts, '6', 'default', '**', 'd', '*'),
                                     recursive=True)]
  assert data_files
  for f in data_files:
    with open(f, 'wb') as fh:
      fh.write(b'garbage')
  with caplog.at_level(logging.WARNING, logger='vgrow_jax'):
    # Sampling falls back to checkpoint 4 and leaves 6 in place.
    _, _, state = train.restore(wd)
    assert int(state.step) == 4 and os.path.isdir(os.path.join(ckpts, '6'))
    # Training moves 6 aside and continues from 4, to the uninterrupted result.
    train.train_and_evaluate(tiny(6), wd)
  warnings = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
  assert len(warnings) == 2, warnings
  prefix = f'checkpoint 6 in {ckpts} cannot be read (ValueError: '
  assert warnings[0].startswith(prefix) and warnings[0].endswith('); trying checkpoint 4')
  assert warnings[1].startswith(prefix) and warnings[1].endswith(
      f'); moved it to {ckpts}/6.corrupt; trying checkpoint 4')
  assert sorted(os.listdir(ckpts)) == ['2', '4', '6', '6.corrupt']
  for f in data_files:  # nothing deleted
    with open(f.replace(f'{ckpts}/6/', f'{ckpts}/6.corrupt/'), 'rb') as fh:
      assert fh.read() == b'garbage'
  chex.assert_trees_all_equal(train.restore(wd)[2], train.restore(straight)[2])


def test_no_readable_checkpoint_is_an_error(tmp_path, straight):
  wd = _copy(straight, tmp_path)
  ckpts = os.path.join(wd, 'checkpoints')
  for f in glob.glob(os.path.join(ckpts, '*', '**', '*'), recursive=True):
    if os.path.isfile(f):
      open(f, 'w').close()  # every file cut to nothing
  with pytest.raises(checkpoint_lib.CheckpointError) as e:
    train.restore(wd)
  assert str(e.value) == (f'none of the checkpoints [6, 4, 2] in {ckpts} can be read (see the '
                          'warnings above); move them away to start afresh')


def test_checkpoints_of_another_config_are_a_clear_error(tmp_path, straight):
  wd = _copy(straight, tmp_path)
  config_json = open(os.path.join(wd, 'config.json')).read()
  ckpts = os.path.join(wd, 'checkpoints')
  message = (f'checkpoint 6 in {ckpts} does not match this config (was it written with '
             'another one?): g_opt_state/inner_state/0/nu/Dense_0/bias is float32[16] '
             'there but float32[32] here (and 5 more differences)')
  with pytest.raises(checkpoint_lib.CheckpointMismatchError) as e:
    train.train_and_evaluate(tiny(8, g_width=32), wd)
  assert str(e.value) == message
  assert open(os.path.join(wd, 'config.json')).read() == config_json  # untouched
  assert sorted(os.listdir(ckpts)) == ['2', '4', '6']

  # vgrow-sample on a workdir whose config.json is another config's: one line, no traceback.
  with open(os.path.join(wd, 'config.json'), 'w') as f:
    json.dump(tiny(8, g_width=32).to_dict(), f)
  p = _run(['experiments.sample', f'--workdir={wd}', f'--out={tmp_path}/s.npz'], str(tmp_path))
  _, err = p.communicate(timeout=300)
  assert p.returncode == 1
  assert err.strip().splitlines() == ['vgrow-sample: ' + message]


def test_sample_app_errors_are_one_line(tmp_path, straight):
  wd = str(tmp_path / 'w')
  os.makedirs(wd)
  with open(os.path.join(wd, 'config.json'), 'w') as f:
    f.write('{"vgrow": {"batch_size": 16,')  # cut off mid-write
  with pytest.raises(config_lib.ConfigError) as e:
    train.restore(wd)
  assert str(e.value) == (f'cannot use {wd}/config.json: Expecting property name enclosed in '
                          'double quotes: line 1 column 29 (char 28)')
  with open(os.path.join(wd, 'config.json'), 'w') as f:
    json.dump(tiny(2).to_dict(), f)
  with pytest.raises(FileNotFoundError) as e:
    train.restore(wd)
  assert str(e.value) == f"no data_spec.json in workdir '{wd}': is it a training workdir?"
  shutil.copy(os.path.join(straight, 'data_spec.json'), wd)
  with pytest.raises(FileNotFoundError) as e:
    train.restore(wd)
  assert str(e.value) == f'no checkpoint in {wd}/checkpoints: train first'
  with pytest.raises(FileNotFoundError) as e:
    train.restore(straight, step=7)
  assert str(e.value) == (f'no checkpoint at outer loop 7 in {straight}/checkpoints; '
                          'there are [2, 4, 6]')


# --- Interruptions and re-runs ------------------------------------------------------------

def test_stop_request_records_the_first_signal_and_aborts_on_the_second():
  before = signal.getsignal(signal.SIGINT)
  with preemption.StopRequest() as stop:
    assert stop.requested() is None
    os.kill(os.getpid(), signal.SIGTERM)
    time.sleep(0.01)  # the handler runs between bytecodes
    assert stop.requested() == 'SIGTERM'
    with pytest.raises(KeyboardInterrupt, match='second SIGINT: aborting'):
      os.kill(os.getpid(), signal.SIGINT)
      time.sleep(0.01)
  assert signal.getsignal(signal.SIGINT) is before


def test_same_seed_and_config_give_identical_results(tmp_path, straight):
  wd = str(tmp_path / 'again')
  train.train_and_evaluate(tiny(6), wd)
  chex.assert_trees_all_equal(train.restore(wd)[2], train.restore(straight)[2])


def test_sigterm_saves_and_the_restart_equals_an_uninterrupted_run(tmp_path):
  wd = str(tmp_path / 'w')
  flags = ['--config.data.name=ring', '--config.model.latent_dim=4', '--config.model.g_width=16',
           '--config.model.g_depth=1', '--config.model.d_width=16', '--config.model.d_depth=1',
           '--config.methods.vgrow.batch_size=16', '--config.methods.vgrow.pool_batches=2',
           '--config.methods.vgrow.particle_steps=2', '--config.methods.vgrow.g_passes=1',
           '--config.training.log_every=1', '--config.training.checkpoint_every=1000',
           '--config.training.eval_samples=100', f'--workdir={wd}']
  p = _run(['experiments.main', '--config.training.num_outer_loops=100000'] + flags,
           str(tmp_path))
  metrics = os.path.join(wd, 'metrics.jsonl')
  deadline = time.time() + 300
  while not (os.path.exists(metrics) and len(open(metrics).readlines()) >= 2):
    assert p.poll() is None and time.time() < deadline, p.communicate()
    time.sleep(0.05)
  p.send_signal(signal.SIGTERM)
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err
  ckpts = os.path.join(wd, 'checkpoints')
  stopped = int(os.listdir(ckpts)[0])  # the only checkpoint: the one the signal saved
  assert out.strip().splitlines()[-1] == (
      f'SIGTERM received: stopped after outer loop {stopped}/100000, checkpoint saved in '
      f'{ckpts}; run the same command again to resume')
  assert 'Traceback' not in err

  total = stopped + 2
  p = _run(['experiments.main', f'--config.training.num_outer_loops={total}'] + flags,
           str(tmp_path))
  out, err = p.communicate(timeout=300)
  assert p.returncode == 0, err
  assert f'Resumed from checkpoint at outer loop {stopped} in {ckpts}' in err
  assert out.strip().splitlines()[-1].startswith(f'vgrow (kl) on ring: {total} outer loops')

  # The same config trained here, without interruption: identical parameters.
  cfg = train.load_config(wd)
  assert cfg.training.num_outer_loops == total
  train.train_and_evaluate(cfg, str(tmp_path / 'straight'))
  chex.assert_trees_all_equal(train.restore(wd)[2], train.restore(str(tmp_path / 'straight'))[2])
