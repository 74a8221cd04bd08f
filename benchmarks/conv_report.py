r"""B3 on the conv nets: the table and the sample grids of runs made by ``b3_conv.sh``.

  python -m benchmarks.conv_report benchmarks/out_b3c/vgrow_resnet_s0 \
      benchmarks/out_b3c/sngan_resnet_s0 --figure=benchmarks/b3_conv_resnet_60min.png

For every workdir and every ``vgrow-eval`` record with Inception FID in its
``metrics.jsonl`` (the newest record per checkpoint), one Markdown row: the spec
(method and nets from the run's config), seed, outer loops and the training
seconds that led to them, FID, Inception KID, FCD, classifier score, class TV,
precision / recall and D's (or the critic's) train / held-out logit gap.

Training seconds are the sum over the run's invocations of each one's last
``elapsed_sec`` (which counts from that invocation's start, so compilation and
the trainer's cheap evaluations are in it) up to the scored loop.

``--figure`` draws one 8×8 grid per workdir from its newest checkpoint, the
first 64 of the fixed latents that ``vgrow-eval`` scores.
"""

import json
import os
from typing import Any, Dict, List

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from vgrow_jax import plotting
from vgrow_jax import train

_FIGURE = flags.DEFINE_string('figure', '', 'PNG of one 8x8 sample grid per workdir.')


def _records(workdir: str) -> List[Dict[str, Any]]:
  path = os.path.join(workdir, train.METRICS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{workdir!r} has no {train.METRICS_FILE}: not a training workdir')
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]


def training_seconds(records: List[Dict[str, Any]], loop: int) -> float:
  """Training time up to ``loop``, summed over invocations (``elapsed_sec`` restarts)."""
  total, last = 0.0, 0.0
  for r in records:
    if 'elapsed_sec' not in r or r['loop'] > loop:
      continue
    if r['elapsed_sec'] < last:  # a new invocation (a resume)
      total += last
    last = r['elapsed_sec']
  return total + last


def rows(workdir: str) -> List[Dict[str, Any]]:
  """The newest Inception-scored eval record per checkpoint, with the run's facts."""
  records = _records(workdir)
  with open(os.path.join(workdir, 'config.json')) as f:
    cfg = json.load(f)
  method = cfg['method']
  note = ''
  if method == 'vgrow':
    hp = cfg['methods']['vgrow']
    method += ':' + hp['divergence']
    # The settings the conv runs vary: η, and a gradient penalty on D.
    # GP₀: the zero-centred penalty (d_gradient_penalty_center 0).
    gp = 'GP₀' if hp.get('d_gradient_penalty_center', 1.0) == 0 else 'GP'
    note = ''.join(f' {name} {hp[key]:g}' for key, name in (('step_size', 'η'),
                                                              ('d_gradient_penalty', gp))
                   if hp.get(key))
  scored = {}
  for r in records:
    if 'eval_fid' in r and 'sampling' not in r.get('protocol', {}):
      scored[r['loop']] = r
  return [{'spec': f"{method},{cfg['model']['arch']}", 'note': note, 'seed': cfg['training']['seed'],
           'seconds': training_seconds(records, loop), **r}
          for loop, r in sorted(scored.items())]


def markdown(table: List[Dict[str, Any]]) -> str:
  out = ['| spec | seed | outer loops, training s | FID | Inception KID | FCD | score '
         '| class TV | precision / recall | D gap |',
         '|---|---|---|---|---|---|---|---|---|---|']
  for r in table:
    gap = f"{r['eval_d_gap']:.2f}" if 'eval_d_gap' in r else '—'
    out.append(
        f"| `{r['spec']}`{r['note']} | {r['seed']} | {r['loop']:,}, {r['seconds']:,.0f} "
        f"| {r['eval_fid']:.1f} | {r['eval_inception_kid']:.4f} ± "
        f"{r['eval_inception_kid_std']:.4f} | {r['eval_fcd']:.2f} "
        f"| {r['eval_classifier_score']:.2f} | {r['eval_class_tv']:.3f} "
        f"| {r['eval_precision']:.2f} / {r['eval_recall']:.2f} | {gap} |")
  return '\n'.join(out)


def figure(path: str, workdirs: List[str]) -> None:
  fig, axes = plt.subplots(1, len(workdirs), figsize=(2.6 * len(workdirs), 2.9), squeeze=False)
  for ax, w in zip(axes[0], workdirs):
    cfg, method, state = train.restore(w)
    x = train.generate(method, state, train.eval_latents(method, cfg.training.seed, 64))
    ax.imshow(plotting._image_grid(x), cmap='gray', vmin=0, vmax=1)  # pylint: disable=protected-access
    ax.set_title(f'{os.path.basename(os.path.normpath(w))}, loop {int(state.step)}', fontsize=8)
    ax.axis('off')
  fig.tight_layout()
  fig.savefig(path, dpi=100)
  plt.close(fig)


def main(argv):
  workdirs = argv[1:]
  if not workdirs:
    raise app.UsageError('give one or more training workdirs')
  table = [row for w in workdirs for row in rows(w)]
  print(markdown(table))
  if _FIGURE.value:
    figure(_FIGURE.value, workdirs)
    print(f'sample grids: {_FIGURE.value}')


if __name__ == '__main__':
  app.run(main)
