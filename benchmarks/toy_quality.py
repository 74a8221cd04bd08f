r"""B2: mode coverage and sample quality on the toy suites (BENCHMARKS.md, MATH.md §3).

  python -m benchmarks.toy_quality                        # every method × ring, grid × 3 seeds
  python -m benchmarks.toy_quality --methods=vgrow:kl,wgan_gp --datasets=grid --seeds=0
  python -m benchmarks.toy_quality --max_seconds=300 --num_outer_loops=1000000

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
reverse KL, seconds per run; a run that stops on a non-finite value counts
as 0 modes, 0 % and reverse KL inf, and the row says how many did), writes ``toy_quality.png`` with one scatter
panel per (method, dataset) for the first seed that did not diverge, and appends the raw records
(with the loops done) to ``toy_quality.jsonl``.
"""

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


def run_one(dataset: str, entry: str, seed: int):
  c = toy.get_config(f'{entry},{dataset}')
  c.training.seed = seed
  c.training.log_every = 10**9  # only the final evaluation
  c.training.checkpoint_every = 10**9
  c.training.max_seconds = _MAX_SECONDS.value
  if _LOOPS.value:
    c.training.num_outer_loops = _LOOPS.value
  cfg = config_lib.Config.from_dict(c.to_dict())
  rec = {'dataset': dataset, 'method': entry, 'seed': seed, 'max_seconds': _MAX_SECONDS.value}
  t0 = time.time()
  with tempfile.TemporaryDirectory() as wd:
    try:
      out = train.train_and_evaluate(cfg, wd)
    except FloatingPointError as e:
      # A run that blows up scores nothing (no checkpoint is kept in between).
      num_modes = len(data_lib.load(cfg.data).modes)
      rec.update(loops=None, diverged=str(e), modes=0, num_modes=num_modes, high_quality=0.0,
                 reverse_kl=float('inf'), seconds=time.time() - t0)
      return rec, np.zeros((0, 2))
    _, method, state = train.restore(wd)
    samples = train.generate(method, state, train.eval_latents(method, seed, 2500))
  rec.update(loops=out['loop'], modes=out['eval_modes'], num_modes=out['eval_num_modes'],
             high_quality=out['eval_high_quality'], reverse_kl=out['eval_reverse_kl'],
             seconds=out['seconds'])
  return rec, samples


def main(argv):
  del argv
  cli.setup_logging()
  for entry in _METHODS.value:  # fail on a bad entry before any training
    for dataset in _DATASETS.value:
      config_lib.Config.from_dict(toy.get_config(f'{entry},{dataset}').to_dict())
  os.makedirs(_OUT.value, exist_ok=True)
  records, panels = [], {}
  with open(os.path.join(_OUT.value, 'toy_quality.jsonl'), 'a') as f:
    for dataset in _DATASETS.value:
      for entry in _METHODS.value:
        for seed in map(int, _SEEDS.value):
          rec, samples = run_one(dataset, entry, seed)
          print(json.dumps(rec), flush=True)
          f.write(json.dumps(rec) + '\n')
          f.flush()
          records.append(rec)
          if not len(panels.get((dataset, entry), (None, ()))[1]):  # first non-diverged seed
            panels[(dataset, entry)] = (rec, samples)

  lines = ['| data | method | modes | % high quality | reverse KL | seconds/run | seeds |',
           '|---|---|---|---|---|---|---|']
  for dataset in _DATASETS.value:
    for entry in _METHODS.value:
      rs = [r for r in records if r['dataset'] == dataset and r['method'] == entry]
      ms = lambda k, s=1.0: (np.mean([r[k] for r in rs]) * s, np.std([r[k] for r in rs]) * s)
      m, hq, kl, sec = ms('modes'), ms('high_quality', 100), ms('reverse_kl'), ms('seconds')
      diverged = sum('diverged' in r for r in rs)
      label = entry + (f' ({diverged}/{len(rs)} diverged: scored 0 modes)' if diverged else '')
      lines.append(f'| {dataset} | {label} | {m[0]:.1f} ± {m[1]:.1f} / {rs[0]["num_modes"]} | '
                   f'{hq[0]:.1f} ± {hq[1]:.1f} | {kl[0]:.4f} ± {kl[1]:.4f} | '
                   f'{sec[0]:.0f} ± {sec[1]:.0f} | {len(rs)} |')
  table = '\n'.join(lines)
  print(table)
  with open(os.path.join(_OUT.value, 'toy_quality.md'), 'w') as f:
    f.write(table + '\n')

  fig, axes = plt.subplots(len(_DATASETS.value), len(_METHODS.value),
                           figsize=(3.2 * len(_METHODS.value), 3.2 * len(_DATASETS.value)),
                           squeeze=False)
  for i, dataset in enumerate(_DATASETS.value):
    ds = data_lib.load(config_lib.DataConfig(name=dataset))
    real = np.asarray(ds.sample(ds.arrays, jax.random.PRNGKey(0), 2500))
    for j, entry in enumerate(_METHODS.value):
      ax = axes[i, j]
      ax.scatter(real[:, 0], real[:, 1], s=2, c='0.7')
      r, s = panels[(dataset, entry)]
      ax.scatter(s[:, 0], s[:, 1], s=1, c='tab:red', alpha=0.5)
      ax.set_title(f'{entry} {dataset}: {r["modes"]}/{r["num_modes"]}, '
                   f'{100 * r["high_quality"]:.1f}%', fontsize=8)
      ax.set_aspect('equal')
      ax.set_xticks([])
      ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, 'toy_quality.png'), dpi=110)


if __name__ == '__main__':
  app.run(main)
