"""The outer training loop: one ``train_and_evaluate(config, workdir)``.

A workdir holds (see WORKSPACE.md):

* ``config.json``    the resolved config of the run;
* ``data_spec.json`` example shape, value range (and mixture modes), so that
  sampling needs no training data;
* ``metrics.jsonl``  one JSON record per log point (``train_*``, ``eval_*``);
* ``samples.png``    generated samples over the data;
* ``flow.png``       particles before/after the last outer loop's flow;
* ``grids/loop_<N>.png``, ``losses.png``  every ``training.figure_every``
  loops: samples from 64 fixed latents (images) and the loss curves;
* ``checkpoints/``   orbax checkpoints (latest + keep N).

Running again with the same workdir resumes from the latest checkpoint; a
larger ``training.num_outer_loops`` continues training. The method is looked
up in the registry (:mod:`vgrow_jax.method`); nothing here depends on which.
"""

from __future__ import annotations

import json
import math
import os
import time
from typing import Any, Dict, Optional, Tuple

import logging
import jax
import numpy as np

from vgrow_jax import checkpoint as checkpoint_lib
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib
from vgrow_jax import metrics as metrics_lib
from vgrow_jax import plotting

CONFIG_FILE = 'config.json'
DATA_SPEC_FILE = 'data_spec.json'
METRICS_FILE = 'metrics.jsonl'
CHECKPOINT_DIR = 'checkpoints'

# A key stream that no training loop uses (training folds in loop indices).
_EVAL_FOLD = 0x7FFFFFFF

log = logging.getLogger('vgrow_jax')


def eval_latents(method: method_lib.Method, seed: int, num: int) -> jax.Array:
  """Fixed latents for evaluation, so that eval metrics are comparable over loops."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), _EVAL_FOLD)
  return jax.random.normal(key, (num, method.latent_dim))


def generate(method: method_lib.Method, state: Any, z: jax.Array,
             *, batch: int = 4096) -> np.ndarray:
  """Samples ``G(z)`` in evaluation mode, in batches, as a numpy array."""
  gen = jax.jit(method.generate)
  return np.concatenate([np.asarray(gen(state, z[i:i + batch]))
                         for i in range(0, len(z), batch)])


def evaluate(method: method_lib.Method, state: Any, dataset: data_lib.Dataset,
             cfg: config_lib.Config) -> Tuple[Dict[str, float], np.ndarray]:
  """``eval_*`` metrics on ``training.eval_samples`` samples, and the samples."""
  samples = generate(method, state, eval_latents(method, cfg.training.seed,
                                                 cfg.training.eval_samples))
  out = {'eval_finite_fraction': float(np.isfinite(samples).all(
      axis=tuple(range(1, samples.ndim))).mean())}
  if dataset.modes is not None:
    m = metrics_lib.mode_metrics(samples, dataset.modes, dataset.std)
    out.update({f'eval_{k}': v for k, v in m.items()})
  return out, samples


def _scalars(metrics: Dict[str, Any]) -> Dict[str, float]:
  return {f'train_{k}': float(v) for k, v in metrics.items() if np.ndim(v) == 0}


def _check_finite(tree: Any, what: str, loop: int) -> None:
  for path, leaf in jax.tree_util.tree_leaves_with_path(tree):
    leaf = np.asarray(leaf)
    if np.issubdtype(leaf.dtype, np.floating) and not np.all(np.isfinite(leaf)):
      raise FloatingPointError(
          f'non-finite {what} {jax.tree_util.keystr(path)} at outer loop {loop}; '
          'the last good checkpoint is kept')


def _write_json(path: str, obj: Any) -> None:
  tmp = path + '.tmp'
  with open(tmp, 'w') as f:
    json.dump(obj, f, indent=2, sort_keys=True)
  os.replace(tmp, path)


def _data_spec(dataset: data_lib.Dataset) -> Dict[str, Any]:
  return {
      'name': dataset.name,
      'shape': list(dataset.shape),
      'value_range': list(dataset.value_range),
      'modes': None if dataset.modes is None else np.asarray(dataset.modes).tolist(),
      'std': dataset.std,
  }


def _summary(cfg: config_lib.Config, dataset: data_lib.Dataset, loop: int,
             ev: Dict[str, float], seconds: float) -> str:
  head = f'{cfg.method}'
  if cfg.method == 'vgrow':
    head += f' ({cfg.vgrow.divergence})'
  parts = [f'{head} on {dataset.name}: {loop} outer loops']
  if 'eval_modes' in ev:
    parts.append(f"modes {ev['eval_modes']}/{ev['eval_num_modes']}")
    parts.append(f"high quality {100 * ev['eval_high_quality']:.1f}%")
    parts.append(f"reverse KL {ev['eval_reverse_kl']:.3f}")
  parts.append(f'{seconds:.1f} s')
  return ', '.join(parts)


def train_and_evaluate(cfg: config_lib.Config, workdir: str) -> Dict[str, Any]:
  """Trains ``cfg.method`` in ``workdir`` (resuming if possible) and evaluates it.

  Args:
    cfg: the run's config.
    workdir: output directory; created if needed.

  Returns:
    The last metrics record plus ``summary`` (the printed one-line summary).

  Raises:
    FloatingPointError: a non-finite loss, particle or parameter, naming the
      outer loop and the quantity; the last good checkpoint is kept.
  """
  t_start = time.time()
  # --- Config and workdir.
  os.makedirs(workdir, exist_ok=True)
  _write_json(os.path.join(workdir, CONFIG_FILE), cfg.to_dict())
  tc = cfg.training

  # --- Data.
  dataset = data_lib.load(cfg.data)
  _write_json(os.path.join(workdir, DATA_SPEC_FILE), _data_spec(dataset))
  real_show = np.asarray(dataset.sample(dataset.arrays, jax.random.PRNGKey(1), 2500)) \
      if len(dataset.shape) == 1 else None

  # --- Method and state (resume from the latest checkpoint if any).
  method = method_lib.get(cfg.method)(cfg, dataset)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, CHECKPOINT_DIR),
                                     max_to_keep=tc.keep_checkpoints)
  state = method.init(jax.random.PRNGKey(tc.seed))
  if ckpt.latest_step() is not None:
    state, at = ckpt.restore(state)
    log.info('Resumed from checkpoint at outer loop %d in %s', at, ckpt.directory)
  start = int(state.step)
  total = tc.num_outer_loops
  log.info('Training %s on %s: outer loops %d -> %d, devices %s', cfg.method,
               dataset.name, start, total, jax.devices())

  # --- Compiled outer loop, state donated.
  step_fn = jax.jit(method.step, donate_argnums=0)
  metrics_path = os.path.join(workdir, METRICS_FILE)
  last_metrics: Dict[str, Any] = {}
  t_mark, loop_mark, compile_s = None, start, None

  # --- Loop.
  for loop in range(start, total):
    t0 = time.time()
    state, last_metrics = step_fn(state, dataset.arrays)
    done = loop + 1
    if compile_s is None:
      jax.block_until_ready(state)
      compile_s = time.time() - t0  # the first loop includes compilation
      t_mark, loop_mark = time.time(), done
      t_budget = t_mark  # the budget counts training after compilation
    out_of_time = False
    if tc.max_seconds:
      jax.block_until_ready(state.step)  # time the work done, not the work queued
      out_of_time = time.time() - t_budget >= tc.max_seconds
    last = done == total or out_of_time
    if done % tc.log_every == 0 or last:
      scalars = _scalars(last_metrics)
      for k, v in scalars.items():
        if not math.isfinite(v):
          raise FloatingPointError(f'non-finite {k}={v} at outer loop {done}; '
                                   'the last good checkpoint is kept')
      _check_finite(state, 'state', done)
      now = time.time()
      rate = (done - loop_mark) / (now - t_mark) if done > loop_mark else float('nan')
      ev, _ = evaluate(method, state, dataset, cfg)
      record = {'loop': done, 'loops_per_sec': rate,
                'eta_sec': (total - done) / rate if rate and rate == rate else None,
                'elapsed_sec': now - t_start, 'compile_sec': compile_s, **scalars, **ev}
      with open(metrics_path, 'a') as f:
        f.write(json.dumps(record) + '\n')
      msg = f'loop {done}/{total} ({100 * done / total:.0f}%) {rate:.2f} loops/s'
      if record['eta_sec'] is not None:
        msg += f", ETA {record['eta_sec']:.0f} s"
      msg += ' | ' + ' '.join(f'{k[6:]} {v:.4g}' for k, v in scalars.items()
                              if k in ('train_d_loss', 'train_field_norm', 'train_g_loss'))
      if 'eval_modes' in ev:
        msg += (f" | modes {ev['eval_modes']}/{ev['eval_num_modes']}"
                f" hq {100 * ev['eval_high_quality']:.1f}%"
                f" rkl {ev['eval_reverse_kl']:.3f}")
      log.info(msg)
      t_mark, loop_mark = time.time(), done
    if tc.figure_every and (done % tc.figure_every == 0 or last):
      grid = (generate(method, state, eval_latents(method, tc.seed, 64))
              if len(dataset.shape) == 3 else None)
      plotting.progress_figures(workdir, done, grid, metrics_path)
    if done % tc.checkpoint_every == 0 or last:
      _check_finite(state, 'state', done)
      ckpt.save(done, state)
    if out_of_time:
      log.info('Stopping at outer loop %d: the %.0f s budget (training.max_seconds) is spent',
               done, tc.max_seconds)
      break

  # --- Final evaluation, figures, summary.
  ev, samples = evaluate(method, state, dataset, cfg)
  plotting.samples_figure(os.path.join(workdir, 'samples.png'), samples, real_show,
                          title=f'{cfg.method} samples after {int(state.step)} loops')
  if 'particles_before' in last_metrics:
    plotting.flow_figure(os.path.join(workdir, 'flow.png'),
                         np.asarray(last_metrics['particles_before']),
                         np.asarray(last_metrics['particles_after']), real_show,
                         title=f'one outer loop of the flow (loop {int(state.step)})')
  ckpt.close()
  seconds = time.time() - t_start
  summary = _summary(cfg, dataset, int(state.step), ev, seconds)
  return {'loop': int(state.step), 'seconds': seconds, **_scalars(last_metrics), **ev,
          'summary': summary}


def load_config(workdir: str) -> config_lib.Config:
  """The config a workdir was trained with.

  Raises:
    FileNotFoundError: ``workdir`` has no config.json.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no {CONFIG_FILE} in workdir {workdir!r}: is it a training workdir?')
  with open(path) as f:
    return config_lib.Config.from_dict(json.load(f))


def restore(workdir: str, step: Optional[int] = None):
  """``(config, method, state)`` from a workdir's checkpoint, without the training data.

  Raises:
    FileNotFoundError: no config or no checkpoint in ``workdir``.
  """
  cfg = load_config(workdir)
  with open(os.path.join(workdir, DATA_SPEC_FILE)) as f:
    spec = json.load(f)
  dataset = data_lib.spec(spec['shape'], spec['value_range'], name=spec['name'],
                          modes=spec['modes'], std=spec['std'])
  method = method_lib.get(cfg.method)(cfg, dataset)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, CHECKPOINT_DIR),
                                     max_to_keep=cfg.training.keep_checkpoints)
  if ckpt.latest_step() is None:
    raise FileNotFoundError(f'no checkpoint in {ckpt.directory}: train first')
  state, _ = ckpt.restore(method.init(jax.random.PRNGKey(cfg.training.seed)), step)
  ckpt.close()
  return cfg, method, state


def sample(method: method_lib.Method, state: Any, num: int, *, seed: int = 0) -> np.ndarray:
  """``num`` samples from the generator of ``state``."""
  z = jax.random.normal(jax.random.PRNGKey(seed), (num, method.latent_dim))
  return generate(method, state, z)
