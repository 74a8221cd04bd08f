r"""B2: mode coverage and sample quality on the toy suites (docs/benchmarks.md, docs/math.md §3).

  python -m benchmarks.toy_quality                        # every method × ring, grid × 3 seeds
  python -m benchmarks.toy_quality --methods=vgrow:kl,wgan_gp --datasets=grid --seeds=0
  python -m benchmarks.toy_quality --max_seconds=300 --num_outer_loops=1000000
  python -m benchmarks.toy_quality --methods=gan --tag=lr1e-3 \
      --set=methods.gan.g_optimizer.learning_rate=1e-3   # a tuning-round setting
  python -m benchmarks.toy_quality --report=benchmarks/out/toy_quality.jsonl  # table + PNG only
  python -m benchmarks.toy_quality --methods=vgrow:kl --refine_steps=10  # + refined sampling
  python -m benchmarks.toy_quality --methods=vgrow:kl --refine_steps=30,100:1  # + D re-fitted
  python -m benchmarks.toy_quality --methods=gan,sngan --refine_steps=200:1:1:linear  # any method

A method entry is ``METHOD[:VARIANT]`` as in ``experiments/configs/toy.py``
(``vgrow:js``, ``gan:minimax``, ``fgan:reverse_kl``, ``sngan:non_saturating``);
the default list is VGrow with its four divergences and every other
registered method with its published defaults. Each run trains with
``toy.py:ENTRY,DATASET`` through ``train_and_evaluate`` in a fresh workdir,
then scores 2,500 samples.

Budget: ``--max_seconds`` caps every run's training at the same wall-clock
time, counted after the first (compiling) loop (``training.max_seconds``);
the configs' loop counts still cap runs too, so to give every method the
whole budget also pass a large ``--num_outer_loops``. The seconds column is
the whole run (compilation and evaluation included).

Prints a markdown table (mean ± sd over seeds of modes, % high quality,
reverse KL, the spread of the high-quality samples about their means in σ
(``metrics.mode_metrics``: 0.97 for the data itself; a sampler that piles
samples on the means scores high quality with a small spread), seconds per
run; a run that stops on a non-finite value counts
as 0 modes, 0 % and reverse KL inf, and the row says how many did), writes ``toy_quality.png`` with one scatter
panel per (method, dataset) for the first seed that did not diverge, and appends the raw records
(with the loops done, the tag and the overrides) to ``toy_quality.jsonl``, each run's 2,500
samples to ``samples/``. Runs can be split over processes (e.g. one per core with ``taskset``
and a ``--methods`` subset each, same ``--out_dir``); ``--report`` then builds the table
and PNG from the merged records.
"""

import contextlib
import json
import os
import tempfile
import time

from absl import app
from absl import flags
import jax
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments import cli
from experiments.configs import toy
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib
from vgrow_jax import metrics
from vgrow_jax import train

_DEFAULT_METHODS = ['vgrow:kl', 'vgrow:js', 'vgrow:logd', 'vgrow:jeffreys'] + \
    [n for n in method_lib.NAMES if n != 'vgrow']

_METHODS = flags.DEFINE_list('methods', _DEFAULT_METHODS, 'METHOD[:VARIANT] entries.')
_DATASETS = flags.DEFINE_list('datasets', ['ring', 'grid'], 'Toy datasets.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')
_OUT = flags.DEFINE_string('out_dir', 'benchmarks/out', 'Where the table, PNG and records go.')
_LOOPS = flags.DEFINE_integer('num_outer_loops', None, 'Override the configs\' loop count.')
_MAX_SECONDS = flags.DEFINE_float('max_seconds', 0.0,
                                  'Training wall-clock budget per run after compilation (0 = none).')
_SET = flags.DEFINE_multi_string(
    'set', [], 'KEY=VALUE config override for every run (dotted path, value as JSON or a '
    'bare string), e.g. --set=methods.gan.d_optimizer.learning_rate=1e-3; repeatable. '
    'For a tuning round.')
_REFINE = flags.DEFINE_list(
    'refine_steps', [], 'Also score the samples moved by K flow steps at sampling, for each '
    'entry K (along the final D: sample_flow_steps=K; VGrow and GAN, whose D is a logistic '
    'log-ratio) or K:U (a logistic D re-fitted with U steps before each move, a fresh one for '
    'methods without a logistic D: also sample_d_steps=U), K:U:S (η × S) or K:U:S:linear, as '
    'the records\' "refined" list and one extra table row each (e.g. 30,100:1); any method '
    '(vgrow_jax.refine).')
_REFINE_ETA = flags.DEFINE_float(
    'refine_step_size', 0.0, 'η of --refine_steps (before × S) for methods without a '
    'step_size of their own (0: VGrow\'s toy η for the dataset times c²/10, c its D\'s input '
    "scale, since the baselines' D sees x: grid 0.1·2²/10 = 0.04, ring 0.008·5²/10 = 0.02; "
    'on seed 0 of gan and sngan, 60 s, 200:1:S:linear, S = 0.1 refined best of 1, 0.25, 0.1 '
    'and 0.025 of η·c²).')
_REFINE_SN = flags.DEFINE_boolean(
    'refine_d_spectral_norm', None, 'Spectral norm on the fresh D that --refine_steps fits for '
    'a method without a logistic D (default: the library\'s, '
    'vgrow_jax.refine.FRESH_D_SPECTRAL_NORM).')
_REFINE_SCALE = flags.DEFINE_string(
    'refine_d_input_scale', '', 'Input scale c of that fresh D: a number, \'vgrow\' for '
    'VGrow\'s toy c of the dataset (grid 2, ring 5), or empty for the config\'s (1 for the '
    'baselines). The default η of --refine_step_size scales by 1/c², so that the moves stay '
    'those of c = 1 (model.d_input_scale).')
_KEEP = flags.DEFINE_boolean(
    'keep_workdirs', False, 'Keep each run\'s workdir (checkpoint, config, metrics) under '
    '--out_dir/workdirs/ instead of a temporary directory, e.g. to try other refined '
    'sampling later with vgrow-eval.')
_RESCORE = flags.DEFINE_boolean(
    'rescore', False, 'Train nothing: score --refine_steps on the kept workdirs '
    '(--keep_workdirs) of the runs in --out_dir/toy_quality.jsonl that match the flags, and '
    'append their records with those refined scores in place of the old ones (the table '
    'keeps the last record of a run).')
_TAG = flags.DEFINE_string('tag', '', 'Label stored in each record (e.g. the tuning setting).')
_REPORT = flags.DEFINE_string(
    'report', '', 'Train nothing: build the table and PNG from this toy_quality.jsonl (e.g. '
    'merged from runs in parallel), keeping the records of --methods, --datasets, --seeds, '
    '--max_seconds and --tag; the PNG uses the samples saved beside it.')


def make_config(dataset: str, entry: str):
  return cli.apply_overrides(toy.get_config(f'{entry},{dataset}'), _SET.value)


def _refine_steps():
  """--refine_steps as [cli.RefineEntry]: K flow steps, U D steps before each (0: the final D),
  η·S, η's schedule."""
  return cli.parse_refine_steps('refine_steps', _REFINE.value)


def _refined(r):
  """A record's refined scores as {RefineEntry: metrics} (also from the older flat fields)."""
  if 'refined' in r:
    return {cli.RefineEntry(x['steps'], x.get('d_steps', 0), x.get('step_scale', 1.0),
                            x.get('step_schedule', 'constant')): x for x in r['refined']}
  if 'refined_modes' in r:
    old = {'modes': r['refined_modes'], 'high_quality': r['refined_high_quality'],
           'reverse_kl': r['refined_reverse_kl']}
    if 'refined_spread' in r:
      old['spread'] = r['refined_spread']
    return {cli.RefineEntry(r['refine_steps']): old}
  return {}


def _refine_label(refine: cli.RefineEntry) -> str:
  """The table's long name of a sampler (``RefineEntry.short()`` names files and titles)."""
  k, u = refine.steps, refine.d_steps
  eta = '' if refine.step_scale == 1 else f', η × {refine.step_scale:g}'
  eta += ', η decaying linearly' if refine.schedule == 'linear' else ''
  if not u:
    return f'{k} flow steps along the final D{eta}'
  return f'{k} flow steps re-fitting D ({u} D step{"s" if u > 1 else ""} each{eta})'


def _refined_path(samples_path, refine: cli.RefineEntry):
  return samples_path.replace('.npy', f'_refined{refine.short()}.npy')


def _samples_path(dataset: str, entry: str, seed: int) -> str:
  tag = f'_{_TAG.value}' if _TAG.value else ''
  name = f'{dataset}_{entry.replace(":", "-")}_s{seed}_{_MAX_SECONDS.value:g}s{tag}.npy'
  return os.path.join(_OUT.value, 'samples', name)


def _kept_workdir(dataset: str, entry: str, seed: int) -> str:
  name = os.path.basename(_samples_path(dataset, entry, seed))[:-len('.npy')]
  return os.path.join(_OUT.value, 'workdirs', name)


@contextlib.contextmanager
def _workdir(dataset: str, entry: str, seed: int):
  if not _KEEP.value:
    with tempfile.TemporaryDirectory() as wd:
      yield wd
    return
  wd = _kept_workdir(dataset, entry, seed)
  if os.path.exists(wd):
    raise app.UsageError(f'{wd} exists: remove it or pick another --tag or --out_dir')
  yield wd


def run_one(dataset: str, entry: str, seed: int):
  c = make_config(dataset, entry)
  c.training.seed = seed
  c.training.log_every = 10**9  # only the final evaluation
  c.training.checkpoint_every = 10**9
  c.training.max_seconds = _MAX_SECONDS.value
  if _LOOPS.value:
    c.training.num_outer_loops = _LOOPS.value
  cfg = config_lib.Config.from_dict(c.to_dict())
  rec = {'dataset': dataset, 'method': entry, 'seed': seed, 'max_seconds': _MAX_SECONDS.value,
         'tag': _TAG.value, 'set': list(_SET.value)}
  t0 = time.time()
  with _workdir(dataset, entry, seed) as wd:
    try:
      out = train.train_and_evaluate(cfg, wd)
    except FloatingPointError as e:
      # A run that blows up scores nothing (no checkpoint is kept in between).
      num_modes = len(data_lib.load(cfg.data).modes)
      rec.update(loops=None, diverged=str(e), modes=0, num_modes=num_modes, high_quality=0.0,
                 spread=float('nan'),
                 reverse_kl=float('inf'), seconds=time.time() - t0)
      return rec, np.zeros((0, 2))
    _, method, state = train.restore(wd)
    samples = train.generate(method, state, train.eval_latents(method, seed, 2500))
    if _refine_steps():
      rec['refined'] = refine_scores(wd, dataset, entry, seed)
  rec.update(loops=out['loop'], modes=out['eval_modes'], num_modes=out['eval_num_modes'],
             high_quality=out['eval_high_quality'], reverse_kl=out['eval_reverse_kl'],
             spread=out['eval_spread'], seconds=out['seconds'])
  return rec, samples


def _fresh_d_input_scale(dataset: str):
  """--refine_d_input_scale for ``dataset``: c, or None for the config's."""
  value = _REFINE_SCALE.value
  if not value:
    return None
  if value == 'vgrow':
    return toy.get_config(f'vgrow,{dataset}').model.d_input_scale
  try:
    c = float(value)
  except ValueError:
    raise app.UsageError(f"--refine_d_input_scale={value!r}: expected a number, 'vgrow' or "
                         'empty') from None
  if not 0 < c < float('inf'):
    raise app.UsageError(f'--refine_d_input_scale={value!r}: must be finite and > 0')
  return c


def _base_step_size(cfg, dataset: str) -> float:
  """η that --refine_steps' S scales: the method's own, else --refine_step_size (or η·c²/c'²)."""
  own = getattr(cfg.hparams, 'step_size', None)
  if own is not None:
    return own
  if _REFINE_ETA.value:
    return _REFINE_ETA.value
  vg = toy.get_config(f'vgrow,{dataset}')
  # A method's own logistic D is refined with as trained; only a fresh D takes the flag's c.
  fresh = None if getattr(cfg.hparams, 'logistic_d', False) else _fresh_d_input_scale(dataset)
  c = fresh or cfg.model.d_input_scale
  return vg.methods.vgrow.step_size * vg.model.d_input_scale**2 / 10 / c**2


def _fresh_d(dataset: str):
  """The train.restore keywords of --refine_d_spectral_norm and --refine_d_input_scale."""
  return {'sample_d_spectral_norm': _REFINE_SN.value,
          'sample_d_input_scale': _fresh_d_input_scale(dataset)}


def refine_scores(wd: str, dataset: str, entry: str, seed: int):
  """Mode metrics of the run in ``wd`` under each --refine_steps entry (samples saved)."""
  cfg, method, state = train.restore(wd)
  ds = data_lib.load(cfg.data)
  z = train.eval_latents(method, seed, 2500)
  out = []
  for refine in _refine_steps():
    t1 = time.time()
    fresh = (_fresh_d(dataset) if refine.d_steps and not getattr(cfg.hparams, 'logistic_d', False)
             else {})
    _, refining, _ = train.restore(wd, **refine.sampling(_base_step_size(cfg, dataset)),
                                   **fresh)
    moved = np.asarray(train.generate(refining, state, z), np.float32)
    m = metrics.mode_metrics(moved, ds.modes, ds.std)
    path = _refined_path(_samples_path(dataset, entry, seed), refine)
    np.save(path, moved)
    out.append({'steps': refine.steps, 'd_steps': refine.d_steps,
                'step_scale': refine.step_scale, 'step_schedule': refine.schedule,
                'samples': path, 'seconds': time.time() - t1, 'sampling': refining.sampling,
                **{k: v for k, v in fresh.items() if v is not None}, **m})
  return out


def rescore(records):
  """Records of kept runs with their refined scores replaced by --refine_steps'."""
  out = []
  for r in records:
    wd = _kept_workdir(r['dataset'], r['method'], r['seed'])
    if not os.path.isdir(wd):
      raise app.UsageError(f'no kept workdir {wd} for {r["dataset"]} {r["method"]} seed '
                           f'{r["seed"]}: train it with --keep_workdirs')
    out.append({**r, 'refined': refine_scores(wd, r['dataset'], r['method'], r['seed']),
                'rescored': True})
  return out


def _table(records):
  lines = ['| data | method | modes | % high quality | reverse KL | spread (data 0.97) | '
           'seconds/run | seeds |',
           '|---|---|---|---|---|---|---|---|']

  def spread(rs, key):
    vals = [r[key] for r in rs if key in r and np.isfinite(r[key])]
    if len(vals) < len(rs):  # records from before the column existed, or no HQ sample
      return '–'
    return f'{np.mean(vals):.2f} ± {np.std(vals):.2f}'

  def worst(rs):  # the targets hold per run, so the worst run decides
    return f'{100 * min(r["high_quality"] for r in rs):.1f}'

  def refine_seconds(ref):
    if not all('seconds' in x for x in ref):
      return '(same runs)'
    return f'+{np.mean([x["seconds"] for x in ref]):.0f}'

  for dataset in _DATASETS.value:
    for entry in _METHODS.value:
      rs = [r for r in records if r['dataset'] == dataset and r['method'] == entry]
      if not rs:
        continue
      def ms(k, scale=1.0, recs=rs):
        return np.mean([r[k] for r in recs]) * scale, np.std([r[k] for r in recs]) * scale
      m, hq, kl, sec = ms('modes'), ms('high_quality', 100), ms('reverse_kl'), ms('seconds')
      diverged = sum('diverged' in r for r in rs)
      label = entry + (f' ({diverged}/{len(rs)} diverged: scored 0 modes)' if diverged else '')
      lines.append(f'| {dataset} | {label} | {m[0]:.1f} ± {m[1]:.1f} / {rs[0]["num_modes"]} | '
                   f'{hq[0]:.1f} ± {hq[1]:.1f} (min {worst(rs)}) | {kl[0]:.4f} ± {kl[1]:.4f} | '
                   f'{spread(rs, "spread")} | {sec[0]:.0f} ± {sec[1]:.0f} | {len(rs)} |')
      for k in sorted(set.intersection(*(set(_refined(r)) for r in rs))):
        ref = [_refined(r)[k] for r in rs]
        rm, rhq, rkl = (ms(key, scale, ref) for key, scale in
                        (('modes', 1.0), ('high_quality', 100), ('reverse_kl', 1.0)))
        lines.append(f'| {dataset} | {entry} + {_refine_label(k)} | '
                     f'{rm[0]:.1f} ± {rm[1]:.1f} / {rs[0]["num_modes"]} | '
                     f'{rhq[0]:.1f} ± {rhq[1]:.1f} (min {worst(ref)}) | '
                     f'{rkl[0]:.4f} ± {rkl[1]:.4f} | '
                     f'{spread(ref, "spread")} | {refine_seconds(ref)} | {len(rs)} |')
  return '\n'.join(lines)


def _figure(records, path):
  """One scatter panel per (dataset, method): the first seed that did not diverge.

  Where runs scored refined sampling, a second row per dataset shows the
  samples of the last --refine_steps entry (of the last one scored when the
  flag names none of them).
  """
  entries = [e for e in _METHODS.value if any(r['method'] == e for r in records)]
  rows = []  # (dataset, refine key or None)
  flag = _refine_steps()
  for d in _DATASETS.value:
    rs = [r for r in records if r['dataset'] == d]
    if not rs:
      continue
    rows.append((d, None))
    keys = [k for r in rs for k, x in _refined(r).items() if os.path.exists(x.get('samples', ''))]
    if keys:
      flagged = [k for k in keys if k in flag]
      rows.append((d, (flagged or keys)[-1]))
  fig, axes = plt.subplots(len(rows), len(entries),
                           figsize=(3.2 * len(entries), 3.2 * len(rows)), squeeze=False)
  for i, (dataset, key) in enumerate(rows):
    ds = data_lib.load(config_lib.DataConfig(name=dataset))
    real = np.asarray(ds.sample(ds.arrays, jax.random.PRNGKey(0), 2500))
    for j, entry in enumerate(entries):
      ax = axes[i, j]
      ax.scatter(real[:, 0], real[:, 1], s=2, c='0.7')
      rs = sorted((r for r in records if r['dataset'] == dataset and r['method'] == entry
                   and 'diverged' not in r and os.path.exists(r.get('samples', ''))),
                  key=lambda r: r['seed'])
      scored = [(r, _refined(r)[key] if key else r) for r in rs
                if not key or key in _refined(r)]
      if scored and os.path.exists(scored[0][1].get('samples', '')):
        r, x = scored[0]
        s = np.load(x['samples'])
        ax.scatter(s[:, 0], s[:, 1], s=1, c='tab:red', alpha=0.5)
        how = f' +{key.short()}' if key else ''
        ax.set_title(f'{entry}{how} {dataset} s{r["seed"]}: {x["modes"]}/{r["num_modes"]}, '
                     f'{100 * x["high_quality"]:.1f}%', fontsize=8)
      else:
        ax.set_title(f'{entry} {dataset}: no samples', fontsize=8)
      ax.set_aspect('equal')
      ax.set_xticks([])
      ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(path, dpi=110)


def _selected(records):
  """The records matching the flags, the last one of each run (after a --rescore)."""
  seeds = set(map(int, _SEEDS.value))
  last = {}
  for r in records:
    if (r['dataset'] in _DATASETS.value and r['method'] in _METHODS.value
        and r['seed'] in seeds and r['max_seconds'] == _MAX_SECONDS.value
        and r.get('tag', '') == _TAG.value):
      last[(r['dataset'], r['method'], r['seed'])] = r
  return list(last.values())


def main(argv):
  del argv
  cli.setup_logging()
  _refine_steps()  # fail on a bad value before any training
  for dataset in _DATASETS.value:
    _fresh_d_input_scale(dataset)
  for entry in _METHODS.value:  # fail on a bad entry or override before any training
    for dataset in _DATASETS.value:
      config_lib.Config.from_dict(make_config(dataset, entry).to_dict())
  if _RESCORE.value:
    if not _refine_steps():
      raise app.UsageError('--rescore needs --refine_steps')
    path = os.path.join(_OUT.value, 'toy_quality.jsonl')
    with open(path) as f:
      records = _selected([json.loads(line) for line in f if line.strip()])
    if not records:
      raise app.UsageError(f'no records in {path} match the flags')
    records = rescore(records)
    with open(path, 'a') as f:
      for r in records:
        f.write(json.dumps(r) + '\n')
    out_dir = _OUT.value
  elif _REPORT.value:
    with open(_REPORT.value) as f:
      records = _selected([json.loads(line) for line in f if line.strip()])
    if not records:
      raise app.UsageError(f'no records in {_REPORT.value} match the flags')
    out_dir = os.path.dirname(_REPORT.value)
  else:
    out_dir = _OUT.value
    os.makedirs(os.path.join(out_dir, 'samples'), exist_ok=True)
    records = []
    with open(os.path.join(out_dir, 'toy_quality.jsonl'), 'a') as f:
      for dataset in _DATASETS.value:
        for entry in _METHODS.value:
          for seed in map(int, _SEEDS.value):
            rec, samples = run_one(dataset, entry, seed)
            if len(samples):
              rec['samples'] = _samples_path(dataset, entry, seed)
              np.save(rec['samples'], np.asarray(samples, np.float32))
            print(json.dumps(rec), flush=True)
            f.write(json.dumps(rec) + '\n')
            f.flush()
            records.append(rec)
  table = _table(records)
  print(table)
  tag = f'_{_TAG.value}' if _TAG.value else ''
  with open(os.path.join(out_dir, f'toy_quality{tag}.md'), 'w') as f:
    f.write(table + '\n')
  _figure(records, os.path.join(out_dir, f'toy_quality{tag}.png'))


if __name__ == '__main__':
  app.run(main)
