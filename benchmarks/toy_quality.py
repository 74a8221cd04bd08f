r"""B2: mode coverage and sample quality on the toy suites (BENCHMARKS.md, MATH.md §3).

  python -m benchmarks.toy_quality                       # all divergences × ring, grid × 3 seeds
  python -m benchmarks.toy_quality --divergences=kl --datasets=grid --seeds=0

Each run trains with the bundled config (``experiments/configs/default.py``
for the grid, ``ring.py`` for the ring, the divergence after the colon)
through ``train_and_evaluate`` in a fresh workdir, then scores 2,500 samples.
Prints a markdown table (mean ± sd over seeds of modes, % high quality,
reverse KL, seconds per run) and writes ``toy_quality.png`` with one
scatter panel per (divergence, dataset) for the first seed, and the raw
records to ``toy_quality.jsonl``.
"""

import json
import os
import tempfile

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments.configs import default as default_config
from experiments.configs import ring as ring_config
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import train

_DIVS = flags.DEFINE_list('divergences', ['kl', 'js', 'logd', 'jeffreys'], 'Divergences.')
_DATASETS = flags.DEFINE_list('datasets', ['ring', 'grid'], 'Toy datasets.')
_SEEDS = flags.DEFINE_list('seeds', ['0', '1', '2'], 'Seeds.')
_OUT = flags.DEFINE_string('out_dir', 'benchmarks/out', 'Where the table, PNG and records go.')
_LOOPS = flags.DEFINE_integer('num_outer_loops', None, 'Override the configs\' loop count.')

_CONFIGS = {'grid': default_config.get_config, 'ring': ring_config.get_config}


def run_one(dataset: str, div: str, seed: int):
  c = _CONFIGS[dataset](div)
  c.training.seed = seed
  c.training.log_every = 10**6  # only the final evaluation
  c.training.checkpoint_every = 10**6
  if _LOOPS.value:
    c.training.num_outer_loops = _LOOPS.value
  cfg = config_lib.Config.from_dict(c.to_dict())
  with tempfile.TemporaryDirectory() as wd:
    out = train.train_and_evaluate(cfg, wd)
    _, method, state = train.restore(wd)
    samples = train.generate(method, state, train.eval_latents(method, seed, 2500))
  rec = {'dataset': dataset, 'divergence': div, 'seed': seed, 'loops': out['loop'],
         'modes': out['eval_modes'], 'num_modes': out['eval_num_modes'],
         'high_quality': out['eval_high_quality'], 'reverse_kl': out['eval_reverse_kl'],
         'seconds': out['seconds']}
  return rec, samples


def main(argv):
  del argv
  os.makedirs(_OUT.value, exist_ok=True)
  records, panels = [], {}
  with open(os.path.join(_OUT.value, 'toy_quality.jsonl'), 'a') as f:
    for dataset in _DATASETS.value:
      for div in _DIVS.value:
        for seed in map(int, _SEEDS.value):
          rec, samples = run_one(dataset, div, seed)
          print(json.dumps(rec), flush=True)
          f.write(json.dumps(rec) + '\n')
          f.flush()
          records.append(rec)
          panels.setdefault((dataset, div), samples)

  lines = ['| data | divergence | modes | % high quality | reverse KL | seconds/run | seeds |',
           '|---|---|---|---|---|---|---|']
  for dataset in _DATASETS.value:
    for div in _DIVS.value:
      rs = [r for r in records if r['dataset'] == dataset and r['divergence'] == div]
      ms = lambda k, s=1.0: (np.mean([r[k] for r in rs]) * s, np.std([r[k] for r in rs]) * s)
      m, hq, kl, sec = ms('modes'), ms('high_quality', 100), ms('reverse_kl'), ms('seconds')
      lines.append(f'| {dataset} | {div} | {m[0]:.1f} ± {m[1]:.1f} / {rs[0]["num_modes"]} | '
                   f'{hq[0]:.1f} ± {hq[1]:.1f} | {kl[0]:.4f} ± {kl[1]:.4f} | '
                   f'{sec[0]:.0f} ± {sec[1]:.0f} | {len(rs)} |')
  table = '\n'.join(lines)
  print(table)
  with open(os.path.join(_OUT.value, 'toy_quality.md'), 'w') as f:
    f.write(table + '\n')

  fig, axes = plt.subplots(len(_DATASETS.value), len(_DIVS.value),
                           figsize=(3.2 * len(_DIVS.value), 3.2 * len(_DATASETS.value)),
                           squeeze=False)
  for i, dataset in enumerate(_DATASETS.value):
    ds = data_lib.load(config_lib.DataConfig(name=dataset))
    real = np.asarray(ds.sample(ds.arrays, __import__('jax').random.PRNGKey(0), 2500))
    for j, div in enumerate(_DIVS.value):
      ax = axes[i, j]
      ax.scatter(real[:, 0], real[:, 1], s=2, c='0.7')
      s = panels[(dataset, div)]
      ax.scatter(s[:, 0], s[:, 1], s=1, c='tab:red', alpha=0.5)
      r = [r for r in records if r['dataset'] == dataset and r['divergence'] == div][0]
      ax.set_title(f'VGrow-{div} {dataset}: {r["modes"]}/{r["num_modes"]}, '
                   f'{100 * r["high_quality"]:.1f}%', fontsize=8)
      ax.set_aspect('equal')
      ax.set_xticks([])
      ax.set_yticks([])
  fig.tight_layout()
  fig.savefig(os.path.join(_OUT.value, 'toy_quality.png'), dpi=110)


if __name__ == '__main__':
  app.run(main)
