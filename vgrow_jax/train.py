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
* ``checkpoints/``   orbax checkpoints (latest + keep N); ``checkpoints/<N>.corrupt``
  is a checkpoint that could not be read, set aside (never deleted).

Running again with the same workdir resumes from the latest readable
checkpoint; a larger ``training.num_outer_loops`` continues training. The
method is looked up in the registry (:mod:`vgrow_jax.method`); nothing here
depends on which.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Callable, Dict, List, Optional, Tuple

import logging
import jax
import numpy as np

from vgrow_jax import checkpoint as checkpoint_lib
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import guard
from vgrow_jax import method as method_lib
from vgrow_jax import metrics as metrics_lib
from vgrow_jax import plotting
from vgrow_jax import preemption
from vgrow_jax import refine
from vgrow_jax import sharding as sharding_lib

CONFIG_FILE = 'config.json'
DATA_SPEC_FILE = 'data_spec.json'
METRICS_FILE = 'metrics.jsonl'
CHECKPOINT_DIR = 'checkpoints'

# A key stream that no training loop uses (training folds in loop indices).
_EVAL_FOLD = 0x7FFFFFFF

log = logging.getLogger('vgrow_jax')


class WatchStop(RuntimeError):
  """The method's watcher warned and ``training.on_watch`` is 'stop'."""


def eval_latents(method: method_lib.Method, seed: int, num: int) -> jax.Array:
  """Fixed latents for evaluation, so that eval metrics are comparable over loops."""
  key = jax.random.fold_in(jax.random.PRNGKey(seed), _EVAL_FOLD)
  return jax.random.normal(key, (num, method.latent_dim))


def generate(method: method_lib.Method, state: Any, z: Any,
             *, batch: int = 4096, aux: bool = False) -> Any:
  """Samples ``G(z)`` in evaluation mode, in batches, as a numpy array.

  ``generate`` is first traced on all of z, so that a method that refuses
  that many latents (more than a generator-free run's particles) raises its
  ``ValueError`` before anything is sampled. A method whose samples do not
  depend on z's values (stored samples, :func:`vgrow_jax.refine.has_generator`)
  is evaluated on all of z at once: in batches every batch would get the
  same first samples. Under a mesh (:func:`vgrow_jax.sharding.use`) the
  latents of a batch are split over its 'data' axis (when they divide) and
  the samples gathered.

  With ``aux`` it returns ``(samples, stats)``: ``stats`` holds the
  per-sample arrays ``[N]`` of ``method.generate_aux`` (e.g. each chain's
  Metropolis acceptance rate), empty for a method without one. The samples
  are the same either way.

  Raises:
    ValueError: the method cannot give ``len(z)`` samples (its message).
  """
  z_spec = jax.ShapeDtypeStruct(np.shape(z), getattr(z, 'dtype', np.float32))
  if not refine.reads_latents(method.generate, state, z_spec):
    batch = max(len(z), 1)
  fn = method.generate_aux if aux and method.generate_aux is not None else (
      lambda s, u: (method.generate(s, u), {}))
  mesh = jax.sharding.get_mesh()
  if mesh.empty:
    gen = jax.jit(fn)
    chunks = [gen(state, z[i:i + batch]) for i in range(0, len(z), batch)]
  else:
    gen = jax.jit(fn, out_shardings=sharding_lib.replicated(mesh))
    n = mesh.shape[sharding_lib.DATA_AXIS]
    z = np.asarray(z)
    chunks = []
    for i in range(0, len(z), batch):
      chunk = z[i:i + batch]
      where = (sharding_lib.batch_sharding(mesh) if len(chunk) % n == 0
               else sharding_lib.replicated(mesh))
      chunks.append(gen(state, sharding_lib.put(chunk, where)))
  samples = np.concatenate([np.asarray(x) for x, _ in chunks])
  if not aux:
    return samples
  stats = {k: np.concatenate([np.asarray(c[1][k]) for c in chunks]) for k in chunks[0][1]}
  return samples, stats


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
  # The method's main switch, where it has one (e.g. VGrow's divergence).
  variant = getattr(cfg.hparams, 'variant', '')
  head = f'{cfg.method} ({variant})' if variant else f'{cfg.method}'
  parts = [f'{head} on {dataset.name}: {loop} outer loops']
  if 'eval_modes' in ev:
    parts.append(f"modes {ev['eval_modes']}/{ev['eval_num_modes']}")
    parts.append(f"high quality {100 * ev['eval_high_quality']:.1f}%")
    parts.append(f"reverse KL {ev['eval_reverse_kl']:.3f}")
  parts.append(f'{seconds:.1f} s')
  return ', '.join(parts)


def read_metrics(metrics_path: str) -> List[Dict[str, Any]]:
  """The records of a ``metrics.jsonl``, in file order.

  Blank lines and a line cut off by a kill (not JSON) are skipped, so that a
  run killed while appending can still be resumed, plotted and reported.
  """
  records = []
  with open(metrics_path) as f:
    for line in f:
      try:
        r = json.loads(line)
      except json.JSONDecodeError:
        continue
      if isinstance(r, dict):
        records.append(r)
  return records


def _replay_watch(check: Callable[[int, Dict[str, Any]], str], metrics_path: str,
                  upto: int) -> None:
  """Feeds a method's watcher the training records logged up to loop ``upto``.

  The newest record of each loop counts (a run resumed from an earlier
  checkpoint logs those loops again), in loop order. What the watcher returns
  is dropped: those warnings were logged when their loops ran.
  """
  if not os.path.isfile(metrics_path):
    return
  by_loop: Dict[int, Dict[str, Any]] = {}
  for r in read_metrics(metrics_path):
    loop = r.get('loop')
    if isinstance(loop, int) and loop <= upto and any(k.startswith('train_') for k in r):
      by_loop[loop] = r
  for loop in sorted(by_loop):
    check(loop, by_loop[loop])


def _kept(last_saved: Optional[int]) -> str:
  """The checkpoint a stopped run keeps, in words."""
  return f'outer loop {last_saved}' if last_saved is not None else 'none yet'


def _stopped(cfg: config_lib.Config, ckpt: checkpoint_lib.Checkpointer, signal_name: str,
             done: int, t_start: float, metrics: Dict[str, Any]) -> Dict[str, Any]:
  summary = (f'{signal_name} received: stopped after outer loop {done}/'
             f'{cfg.training.num_outer_loops}, checkpoint saved in {ckpt.directory}; '
             'run the same command again to resume')
  return {'loop': done, 'seconds': time.time() - t_start, **_scalars(metrics),
          'interrupted': signal_name, 'summary': summary}


def train_and_evaluate(cfg: config_lib.Config, workdir: str) -> Dict[str, Any]:
  """Trains ``cfg.method`` in ``workdir`` (resuming if possible) and evaluates it.

  Runs data-parallel over the devices of ``cfg.mesh`` (:mod:`vgrow_jax.sharding`),
  in every process of a multi-process job (process 0 writes the files).
  SIGTERM or SIGINT stops it after the current outer loop with a checkpoint
  saved (the result then has ``interrupted``: the signal's name).

  Args:
    cfg: the run's config.
    workdir: output directory; created if needed.

  Returns:
    The last metrics record plus ``summary`` (the printed one-line summary).

  Raises:
    config.ConfigError: the mesh does not fit the devices or the batch sizes.
    checkpoint.CheckpointMismatchError: the workdir's checkpoints were written
      with another config (config.json is then left as it was).
    checkpoint.CheckpointError: checkpoints exist but none can be read.
    FloatingPointError: with ``training.on_nonfinite='stop'``, a non-finite
      loss, particle or parameter, naming the outer loop and the quantity;
      the last good checkpoint is kept.
    WatchStop: with ``training.on_watch='stop'``, the method's watcher
      warned (its warning and the checkpoint kept in the message); that
      loop's checkpoint is not saved.
  """
  # --- Mesh: a device count that does not fit is a config error, before any compile.
  mesh = sharding_lib.make_mesh(cfg)
  with sharding_lib.use(mesh), preemption.StopRequest() as stop:
    return _train_and_evaluate(cfg, workdir, mesh, stop)


def _train_and_evaluate(cfg: config_lib.Config, workdir: str, mesh: jax.sharding.Mesh,
                        stop: preemption.StopRequest) -> Dict[str, Any]:
  t_start = time.time()
  tc = cfg.training
  main = sharding_lib.is_main_process()

  # --- Data: global arrays, each process holding only its devices' rows.
  dataset = data_lib.load(cfg.data)
  data_arrays, data_shardings = sharding_lib.shard_data(mesh, dataset.arrays)
  real_show = np.asarray(dataset.sample(dataset.arrays, jax.random.PRNGKey(1), 2500)) \
      if len(dataset.shape) == 1 else None

  # --- Method and state (resume from the newest readable checkpoint if any).
  method = method_lib.get(cfg.method)(cfg, dataset)
  if main:
    os.makedirs(workdir, exist_ok=True)
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, CHECKPOINT_DIR),
                                     max_to_keep=tc.keep_checkpoints)
  state = sharding_lib.init_state(method.init, mesh, tc.seed)
  state, last_saved = ckpt.restore_latest(state, set_aside_corrupt=True)
  if last_saved is not None:
    log.info('Resumed from checkpoint at outer loop %d in %s', last_saved, ckpt.directory)
  # Written after the restore: a config that does not fit the checkpoints
  # (an error above) leaves the workdir's config.json as it was.
  if main:
    _write_json(os.path.join(workdir, CONFIG_FILE), cfg.to_dict())
    _write_json(os.path.join(workdir, DATA_SPEC_FILE), _data_spec(dataset))
  start = int(state.step)
  total = tc.num_outer_loops
  log.info('Training %s on %s: outer loops %d -> %d, %d devices on the data axis '
           '(%d processes): %s', cfg.method, dataset.name, start, total,
           mesh.shape[sharding_lib.DATA_AXIS], jax.process_count(), jax.devices())

  # --- Compiled outer loop: state donated and replicated, batches split inside.
  guarded = guard.guarded(method.step, skip=tc.on_nonfinite == 'skip')
  step_fn = sharding_lib.jit_step(guarded, mesh, data_shardings)
  names = guard.quantity_names(method.step, state, data_arrays)
  metrics_path = os.path.join(workdir, METRICS_FILE)
  last_metrics: Dict[str, Any] = {}
  t_mark, loop_mark, compile_s, skipped = None, start, None, 0
  check = method.watch() if method.watch else None
  if check and start:
    # The watcher warns only after D has been balanced. Without the run's
    # logged history a break already under way at the restored checkpoint
    # (no balanced log point after it) would pass without a warning. Every
    # process reads the same file (the workdir is shared, as for orbax), so
    # all of them decide alike.
    _replay_watch(check, metrics_path, start)

  # --- Loop.
  # A stop by error closes the checkpointer first, so that a save still in
  # flight finishes and the checkpoint the message names is on disk.
  try:
    for loop in range(start, total):
      t0 = time.time()
      state, last_metrics, finite = step_fn(state, data_arrays)
      done = loop + 1
      bad = guard.non_finite(names, finite)  # waits for the loop to finish
      if bad and tc.on_nonfinite == 'stop':
        raise FloatingPointError(
            f'non-finite {guard.describe(bad)} at outer loop {done}; stopped, the last '
            f'good checkpoint ({_kept(last_saved)}) is kept in {ckpt.directory} '
            "(training.on_nonfinite='skip' skips such loops instead)")
      if bad:
        skipped += 1
        log.warning("outer loop %d: non-finite %s; skipped its update "
                    "(training.on_nonfinite='skip')", done, guard.describe(bad))
      if compile_s is None:
        compile_s = time.time() - t0  # the first loop includes compilation
        t_mark, loop_mark = time.time(), done
        t_budget = t_mark  # the budget counts training after compilation
      out_of_time = False
      if tc.max_seconds:
        jax.block_until_ready(state.step)  # time the work done, not the work queued
        # Processes' clocks differ: all stop when any is out of time.
        out_of_time = preemption.any_process(time.time() - t_budget >= tc.max_seconds)
      last = done == total or out_of_time
      if done % tc.log_every == 0 or last:
        scalars = _scalars(last_metrics)
        now = time.time()
        rate = (done - loop_mark) / (now - t_mark) if done > loop_mark else float('nan')
        ev, _ = evaluate(method, state, dataset, cfg)
        record = {'loop': done, 'loops_per_sec': rate,
                  'eta_sec': (total - done) / rate if rate and rate == rate else None,
                  'elapsed_sec': now - t_start, 'compile_sec': compile_s,
                  'skipped_loops': skipped, **scalars, **ev}
        if main:
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
        warning = check(done, scalars) if check else ''
        if warning:
          log.warning(warning)
          if tc.on_watch == 'stop':
            raise WatchStop(f"{warning}. Stopped before saving loop {done} (training.on_watch="
                            f"'stop'); the last checkpoint ({_kept(last_saved)}) is kept in "
                            f'{ckpt.directory}')
        t_mark, loop_mark = time.time(), done
      if tc.figure_every and (done % tc.figure_every == 0 or last):
        # Every process generates (a collective); process 0 draws.
        grid = (generate(method, state, eval_latents(method, tc.seed, 64))
                if len(dataset.shape) == 3 else None)
        if main:
          plotting.progress_figures(workdir, done, grid, read_metrics(metrics_path)
                                    if os.path.isfile(metrics_path) else [])
      signal_name = stop.requested()
      if done % tc.checkpoint_every == 0 or last or signal_name:
        ckpt.save(done, state)
        last_saved = done
      if signal_name:
        ckpt.close()
        result = _stopped(cfg, ckpt, signal_name, done, t_start, last_metrics)
        log.warning(result['summary'])
        return result
      if out_of_time:
        log.info('Stopping at outer loop %d: the %.0f s budget (training.max_seconds) is spent',
                 done, tc.max_seconds)
        break
  except (FloatingPointError, WatchStop):
    ckpt.close()
    raise

  # --- Final evaluation, figures, summary.
  ev, samples = evaluate(method, state, dataset, cfg)
  if main:
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
    config.ConfigError: config.json cannot be read or holds a bad config.
  """
  path = os.path.join(workdir, CONFIG_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'no {CONFIG_FILE} in workdir {workdir!r}: is it a training workdir?')
  try:
    with open(path) as f:
      return config_lib.Config.from_dict(json.load(f))
  except (ValueError, UnicodeDecodeError) as e:  # JSONDecodeError and ConfigError included
    raise config_lib.ConfigError(f'cannot use {path}: {e}') from None


def load_data_spec(workdir: str) -> Dict[str, Any]:
  """The data spec a workdir was trained with (data_spec.json: name, shape, value range, modes).

  Raises:
    FileNotFoundError: ``workdir`` has no data_spec.json.
  """
  spec_path = os.path.join(workdir, DATA_SPEC_FILE)
  if not os.path.isfile(spec_path):
    raise FileNotFoundError(f'no {DATA_SPEC_FILE} in workdir {workdir!r}: is it a training '
                            'workdir?')
  with open(spec_path) as f:
    return json.load(f)


def sampling_method(cfg: config_lib.Config, spec: Dict[str, Any], **sampling: Any
                    ) -> Tuple[config_lib.Config, method_lib.Method]:
  """``(config, method)`` to sample a trained run with, without its checkpoint.

  ``sampling`` asks for refined sampling, for any method
  (:func:`vgrow_jax.refine.plan`'s keywords: ``sample_flow_steps``,
  ``sample_d_steps``, ``sample_step_size``, ``sample_step_schedule``,
  ``flow_space``, ``langevin``, ...; None or absent = the run's own
  setting; the state does not depend on them). A method whose settings hold
  its own refined sampling (VGrow's ``methods.vgrow.sample_*``) keeps it in
  the data space without noise, with those fields replaced in the returned
  config; otherwise :func:`vgrow_jax.refine.refined_method` wraps
  ``generate``. ``method.sampling`` describes what applies. The method is
  built on the data spec, or on the training data (``config.data``) when
  the sampling reads it (a D fitted at sampling).

  Raises:
    ValueError: a bad refined-sampling keyword or a combination that cannot
      run (one line naming it).
  """
  cfg, refinement = refine.plan(cfg, **sampling)
  if refinement is None:
    needs_data = getattr(cfg.hparams, 'needs_data_at_sampling', False)
  else:
    needs_data = bool(refinement.flow_steps and refinement.fits_d)
  if needs_data:
    dataset = data_lib.load(cfg.data)
  else:
    dataset = data_lib.spec(spec['shape'], spec['value_range'], name=spec['name'],
                            modes=spec['modes'], std=spec['std'])
  if refinement is None:
    return cfg, method_lib.get(cfg.method)(cfg, dataset)
  # The method's own refined sampling off; the refinement wraps its generate.
  base = cfg.with_hparams(sample_flow_steps=0) if refine.has_own_sampling(cfg) else cfg
  method = method_lib.get(cfg.method)(base, dataset)
  return cfg, refine.refined_method(cfg, method, dataset, refinement)


def restore_state(workdir: str, cfg: config_lib.Config, method: method_lib.Method,
                  step: Optional[int] = None) -> Any:
  """The state of ``method`` in checkpoint ``step`` of a workdir (None: the newest readable).

  Raises:
    FileNotFoundError: no checkpoint in ``workdir``.
    checkpoint.CheckpointMismatchError: the checkpoint does not fit ``cfg``.
    checkpoint.CheckpointError: the checkpoint cannot be read.
  """
  ckpt = checkpoint_lib.Checkpointer(os.path.join(workdir, CHECKPOINT_DIR),
                                     max_to_keep=cfg.training.keep_checkpoints, create=False)
  template = method.init(jax.random.PRNGKey(cfg.training.seed))
  try:
    if step is None:
      state, at = ckpt.restore_latest(template)
      if at is None:
        raise FileNotFoundError(f'no checkpoint in {ckpt.directory}: train first')
    else:
      state, _ = ckpt.restore(template, step)
  finally:
    ckpt.close()
  return state


def restore(workdir: str, step: Optional[int] = None, **sampling: Any):
  """``(config, method, state)`` from a workdir's checkpoint, without the training data.

  With ``step`` None the newest readable checkpoint is used; corrupt ones
  are skipped with a warning (and left in place). ``sampling`` asks for
  refined sampling of any method (:func:`sampling_method`; e.g.
  ``sample_flow_steps=200, sample_d_steps=1, flow_space='latent',
  langevin=0.01``); refined sampling that fits a D reads the training data
  from ``config.data``. :func:`vgrow_jax.load` wraps this as G and D
  functions.

  Raises:
    FileNotFoundError: no config, data spec or checkpoint in ``workdir``.
    ValueError: a bad refined-sampling keyword or combination.
    checkpoint.CheckpointMismatchError: the checkpoint does not fit config.json.
    checkpoint.CheckpointError: the checkpoint cannot be read.
  """
  cfg, method = sampling_method(load_config(workdir), load_data_spec(workdir), **sampling)
  return cfg, method, restore_state(workdir, cfg, method, step)


def sample(method: method_lib.Method, state: Any, num: int, *, seed: int = 0) -> np.ndarray:
  """``num`` samples from the generator of ``state``."""
  z = jax.random.normal(jax.random.PRNGKey(seed), (num, method.latent_dim))
  return generate(method, state, z)
