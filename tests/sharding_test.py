"""Data parallelism: 8 devices and a 2-process job give 1 device's parameters.

One 8-device process (tests/sharded_runs.py) and one 2-process job (the
vgrow-train app, 4 devices per process, jax.distributed on localhost) run
beside the 1-device references trained in this process; every test below
reads their results.
"""

import json
import os
import socket
import subprocess
import sys

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import default as default_config
from vgrow_jax import config as config_lib
from vgrow_jax import method as method_lib
from vgrow_jax import sharding
from vgrow_jax import train

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# 1 vs 8 devices: the same maths with batch means summed in another order.
RTOL, ATOL = 1e-5, 1e-7

# A tiny run of the default config (so that the app, given these flags,
# resolves the same config as Config.from_dict below).
OVERRIDES = {
    'model.latent_dim': 4, 'model.g_width': 16, 'model.g_depth': 1,
    'model.d_width': 16, 'model.d_depth': 1,
    'methods.vgrow.batch_size': 16, 'methods.vgrow.pool_batches': 2,
    'methods.vgrow.particle_steps': 2, 'methods.vgrow.g_passes': 1,
    'training.num_outer_loops': 2, 'training.log_every': 2, 'training.checkpoint_every': 2,
    'training.eval_samples': 200,
}

# VGrow on the toy ring and on an npz file (whose rows the data axis
# splits), and the baselines named here once registered (with their default
# batch sizes): the trainer is the same for all, each costs a compile here
# and one in the 8-device process.
BASELINES = ('gan',)
RUNS = ([('vgrow', 'ring')] + [(m, 'ring') for m in BASELINES if m in method_lib.NAMES]
        + [('vgrow', 'npz')])


def _config(method, data, npz_path):
  c = default_config.get_config()
  for key, value in {**OVERRIDES, 'method': method, 'data.name': data,
                     'data.path': npz_path if data == 'npz' else ''}.items():
    section, _, field = key.rpartition('.')
    setattr(c[section] if section else c, field, value)
  return config_lib.Config.from_dict(c.to_dict())


def _env(devices):
  path = [REPO] + [p for p in os.environ.get('PYTHONPATH', '').split(os.pathsep) if p]
  return dict(os.environ, JAX_PLATFORMS='cpu', PYTHONPATH=os.pathsep.join(path),
              # as tests/conftest.py sets in this process
              JAX_DEFAULT_MATMUL_PRECISION='highest',
              # This process's flags too (e.g. --xla_cpu_max_isa=AVX2): the
              # runs compared must differ in their sharding only.
              XLA_FLAGS=' '.join(filter(None, [
                  os.environ.get('XLA_FLAGS', ''),
                  f'--xla_force_host_platform_device_count={devices}'])))


def _free_port():
  with socket.socket() as s:
    s.bind(('localhost', 0))
    return s.getsockname()[1]


@pytest.fixture(scope='module')
def runs(tmp_path_factory):
  root = tmp_path_factory.mktemp('sharding')
  npz = str(root / 'ring64.npz')
  rng = np.random.default_rng(0)
  angle = 2 * np.pi * rng.integers(0, 8, 64) / 8
  np.savez(npz, x=(np.stack([np.cos(angle), np.sin(angle)], 1)
                   + 0.01 * rng.normal(size=(64, 2))).astype(np.float32))
  cfgs = {run: _config(*run, npz) for run in RUNS}
  wd = lambda kind, run: str(root / f'{kind}_{run[0]}_{run[1]}')

  # The 8-device process: every run, VGrow-ring twice (determinism).
  jobs = [{'config': cfgs[r].to_dict(), 'workdir': wd('dev8', r)} for r in RUNS]
  jobs.append({'config': cfgs['vgrow', 'ring'].to_dict(), 'workdir': wd('dev8again', RUNS[0])})
  with open(root / 'jobs.json', 'w') as f:
    json.dump(jobs, f)
  procs = {'dev8': subprocess.Popen(
      [sys.executable, os.path.join(REPO, 'tests', 'sharded_runs.py'), str(root / 'jobs.json'),
       str(root / 'dev8.json')], env=_env(8), cwd=str(root),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)}
  # The 2-process job: the app, VGrow on the npz file.
  flags = [f'--config.{k}={v}' for k, v in OVERRIDES.items()] + [
      '--config.data.name=npz', f'--config.data.path={npz}', f'--workdir={wd("proc2", RUNS[-1])}',
      '--num_processes=2', f'--coordinator_address=localhost:{_free_port()}']
  for i in range(2):
    procs[f'proc2_{i}'] = subprocess.Popen(
        [sys.executable, '-m', 'experiments.main', f'--process_id={i}'] + flags, env=_env(4),
        cwd=str(root), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
  # Meanwhile, the 1-device references here.
  for r in RUNS:
    train.train_and_evaluate(cfgs[r], wd('dev1', r))
  out = {}
  for name, p in procs.items():
    stdout, stderr = p.communicate(timeout=600)
    out[name] = (p.returncode, stdout, stderr)
  with open(root / 'dev8.json') as f:
    report = json.load(f) if out['dev8'][0] == 0 else {}
  return {'wd': wd, 'cfgs': cfgs, 'out': out, 'report': report}


def _state(workdir):
  return train.restore(workdir)[2]


def _max_abs_diff(a, b):
  return max(float(np.max(np.abs(np.asarray(x, np.float64) - np.asarray(y, np.float64))))
             for x, y in zip(jax.tree.leaves(a), jax.tree.leaves(b)))


@pytest.mark.parametrize('run', RUNS, ids=[f'{m}-{d}' for m, d in RUNS])
def test_eight_devices_give_the_parameters_of_one(runs, run):
  code, _, stderr = runs['out']['dev8']
  assert code == 0, stderr[-3000:]
  assert runs['report']['device_count'] == 8
  one, eight = _state(runs['wd']('dev1', run)), _state(runs['wd']('dev8', run))
  assert int(one.step) == int(eight.step) == 2
  chex.assert_trees_all_close(eight, one, rtol=RTOL, atol=ATOL)
  # Not trivially equal: the 8-device program reduces in another order.
  print(f'{run}: max |8 devices - 1 device| = {_max_abs_diff(eight, one):.3g}')


def test_eight_device_reruns_are_identical(runs):
  chex.assert_trees_all_equal(_state(runs['wd']('dev8', RUNS[0])),
                              _state(runs['wd']('dev8again', RUNS[0])))


def test_two_process_job_completes_and_matches(runs):
  for i in range(2):
    code, _, stderr = runs['out'][f'proc2_{i}']
    assert code == 0, stderr[-3000:]
  # Only process 0 reports. Gloo (the CPU collectives) prints its own
  # connection lines to stdout, worded differently across versions, so keep
  # only our summary lines.
  report = lambda i: [l for l in runs['out'][f'proc2_{i}'][1].splitlines()
                      if l.startswith('vgrow')]
  assert len(report(0)) == 1 and report(0)[0].startswith('vgrow (kl) on ring64.npz: 2 outer loops')
  assert report(1) == []
  run = ('vgrow', 'npz')
  wd = runs['wd']('proc2', run)
  assert train.load_config(wd) == runs['cfgs'][run]
  two, one, eight = _state(wd), _state(runs['wd']('dev1', run)), _state(runs['wd']('dev8', run))
  chex.assert_trees_all_close(two, one, rtol=RTOL, atol=ATOL)
  chex.assert_trees_all_close(two, eight, rtol=RTOL, atol=ATOL)
  print(f'2 processes: max |vs 1 device| = {_max_abs_diff(two, one):.3g}, '
        f'max |vs 8 devices in 1 process| = {_max_abs_diff(two, eight):.3g}')


def test_bad_meshes_are_one_line_errors(runs):
  assert runs['report']['errors'] == {
      'mesh.data=-1, batch 12': 'ConfigError: config field methods.vgrow.batch_size=12: must '
                                'be a multiple of the 8 devices on the data axis (mesh.data=-1 '
                                '(all 8 devices))',
      'mesh.data=16': 'ConfigError: config field mesh.data=16: exceeds the device count of '
                      'this job, 8 (cpu)',
      'shard_batch of 12': 'ValueError: a batch of 12 examples (shape (12, 2)) cannot be split '
                           'over the 8 devices of the data axis: use a multiple of 8',
  }


def test_random_draws_do_not_depend_on_the_sharding(runs):
  assert runs['report']['random_equal'] == {'normal': True, 'choice': True, 'permutation': True}
  assert runs['report']['random_split_over'] == ["P('data',)"] * 3
  assert runs['report']['threefry_partitionable'] is True


def test_without_a_mesh_shard_batch_changes_nothing():
  x = jnp.arange(6.0).reshape(3, 2)
  assert sharding.shard_batch(x) is x
  assert jax.jit(sharding.shard_batch)(x).tolist() == x.tolist()


def test_mesh_config_errors_on_one_device():
  with pytest.raises(config_lib.ConfigError,
                     match=r'^config field mesh\.data=2: exceeds the device count of this job, '
                     r'1 \(cpu\)$'):
    sharding.make_mesh(config_lib.Config(mesh=config_lib.MeshConfig(data=2)))
  with pytest.raises(config_lib.ConfigError,
                     match=r'^config field mesh\.data=0: must be -1 \(all devices\) or >= 1$'):
    config_lib.Config.from_dict({'mesh': {'data': 0}})
