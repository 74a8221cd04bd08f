r"""B3 on the conv nets: the table and the sample grids of runs made by ``b3_conv.sh``.

  python -m benchmarks.conv_report benchmarks/out_b3c/vgrow_resnet_s0 \
      benchmarks/out_b3c/sngan_resnet_s0 --figure=benchmarks/b3_conv_resnet_60min.png

For every workdir and every ``vgrow-eval`` record with Inception FID in its
``metrics.jsonl`` (the newest record per checkpoint of plain G(z) on the run's
own latents, ``vgrow-eval``'s default), one Markdown row: the spec
(method and nets from the run's config), seed, outer loops and the training
seconds that led to them, FID, Inception KID, FCD, classifier score, class TV,
precision / recall and D's (or the critic's) train / held-out logit gap.

Training seconds are the sum over the run's invocations of each one's last
``elapsed_sec`` (which counts from that invocation's start, so compilation and
the trainer's cheap evaluations are in it) up to the scored loop.

``--figure`` draws one 8×8 grid per workdir from its newest checkpoint, the
first 64 of the fixed latents that ``vgrow-eval`` scores; ``vgrow-eval``'s
refined-sampling flags (``--sample_flow_steps`` ...) draw them refined.

``--by_sampler`` tabulates instead every sampler and latent set scored
(``vgrow-eval --latent_seed=S`` with or without its sampling flags; the newest
record per checkpoint, sampler and latent seed), then each sampler's mean over
the latent sets it was scored on, so that two samplers compare on the same
latents:

  for s in 0 1 2; do vgrow-eval --workdir=W --classifier=C --latent_seed=$s; done
  for s in 0 1 2; do vgrow-eval --workdir=W --classifier=C --latent_seed=$s \
      --sample_flow_steps=1 --sample_d_steps=1 --sample_d_batch_size=64; done
  python -m benchmarks.conv_report W --by_sampler
"""

import json
import os
from typing import Any, Dict, List, Optional

from absl import app
from absl import flags
import matplotlib

matplotlib.use('Agg')
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top
import numpy as np

from experiments import cli
from vgrow_jax import plotting
from vgrow_jax import train

_FIGURE = flags.DEFINE_string('figure', '', 'PNG of one 8x8 sample grid per workdir.')
_BY_SAMPLER = flags.DEFINE_boolean('by_sampler', False, 'One row per checkpoint, sampler and '
                                   'latent seed scored, then the means over latent seeds.')
# vgrow-eval's sampling flags, defined only when this runs as a program: the
# modules of vgrow-eval and vgrow-sample define the same names, and a process
# that imports this module beside them (a test) must not define them twice.
_SAMPLING: Optional[cli.SamplingFlags] = None

PLAIN = 'G(z)'  # the sampler of a record without refined sampling


def _records(workdir: str) -> List[Dict[str, Any]]:
  path = os.path.join(workdir, train.METRICS_FILE)
  if not os.path.isfile(path):
    raise FileNotFoundError(f'{workdir!r} has no {train.METRICS_FILE}: not a training workdir')
  return train.read_metrics(path)


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


def _run_facts(workdir: str) -> Dict[str, Any]:
  """The spec, the note on VGrow's η and penalty, and the seed of a workdir's run."""
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
    # η, then its schedule ('η 30 → 15 from 1,400'), then the penalty.
    if hp.get('step_size'):
      note += f" η {hp['step_size']:g}" + ''.join(
          f' → {eta:g} from {loop:,}' for loop, eta in hp.get('step_size_schedule') or ())
    if hp.get('d_gradient_penalty'):
      note += f" {gp} {hp['d_gradient_penalty']:g}"
  return {'spec': f"{method},{cfg['model']['arch']}", 'note': note, 'seed': cfg['training']['seed']}


def _scored(records: List[Dict[str, Any]], seed: int) -> Dict[Any, Dict[str, Any]]:
  """The newest Inception-scored record per (checkpoint, sampler, latent seed).

  The sampler is the record's ``protocol['sampling']`` (``PLAIN`` without
  one); the latent seed its ``protocol['latent_seed']`` (``seed``, the run's,
  for records that do not name one).
  """
  scored = {}
  for r in records:
    if 'eval_fid' in r:
      p = r.get('protocol', {})
      scored[(r['loop'], p.get('sampling', PLAIN), p.get('latent_seed', seed))] = r
  return scored


def rows(workdir: str) -> List[Dict[str, Any]]:
  """The newest Inception-scored record per checkpoint, with the run's facts.

  Only plain G(z) on the run's own latents (``vgrow-eval``'s default) makes a
  row here; other samplers and latent sets are ``sampler_rows``'.
  """
  records = _records(workdir)
  facts = _run_facts(workdir)
  return [{**facts, 'seconds': training_seconds(records, loop), **r}
          for (loop, sampler, latent_seed), r in sorted(_scored(records, facts['seed']).items())
          if sampler == PLAIN and latent_seed == facts['seed']]


def sampler_rows(workdir: str) -> List[Dict[str, Any]]:
  """Every record of ``_scored`` with the run's facts, by checkpoint, sampler, latent seed."""
  facts = _run_facts(workdir)
  return [{**facts, 'sampler': k[1], 'latent_seed': k[2], **r}
          for k, r in sorted(_scored(_records(workdir), facts['seed']).items())]


_METRICS = ('eval_fid', 'eval_fcd', 'eval_classifier_score', 'eval_class_tv')


def sampler_means(table: List[Dict[str, Any]]) -> List[Dict[str, Any]]:
  """Per (spec, seed, checkpoint, sampler): the latent seeds and the mean of each metric."""
  groups: Dict[Any, List[Dict[str, Any]]] = {}
  for r in table:
    groups.setdefault((r['spec'], r['note'], r['seed'], r['loop'], r['sampler']), []).append(r)
  return [{'spec': k[0], 'note': k[1], 'seed': k[2], 'loop': k[3], 'sampler': k[4],
           'latent_seeds': [r['latent_seed'] for r in g],
           **{m: float(np.mean([r[m] for r in g])) for m in _METRICS}}
          for k, g in groups.items()]


def _metric_cells(r: Dict[str, Any]) -> str:
  """FID, Inception KID ± std, FCD, score, class TV and precision / recall, as table cells."""
  return (f"{r['eval_fid']:.1f} | {r['eval_inception_kid']:.4f} ± "
          f"{r['eval_inception_kid_std']:.4f} | {r['eval_fcd']:.2f} "
          f"| {r['eval_classifier_score']:.2f} | {r['eval_class_tv']:.3f} "
          f"| {r['eval_precision']:.2f} / {r['eval_recall']:.2f}")


def sampler_markdown(table: List[Dict[str, Any]]) -> str:
  out = ['| spec | seed | outer loop | sampler | latent seed | FID | Inception KID | FCD '
         '| score | class TV | precision / recall |',
         '|---|---|---|---|---|---|---|---|---|---|---|']
  for r in table:
    out.append(
        f"| `{r['spec']}`{r['note']} | {r['seed']} | {r['loop']:,} | {r['sampler']} "
        f"| {r['latent_seed']} | {_metric_cells(r)} |")
  out += ['', '| spec | seed | outer loop | sampler | latent seeds | mean FID | mean FCD '
          '| mean score | mean class TV |', '|---|---|---|---|---|---|---|---|---|']
  for r in sampler_means(table):
    out.append(
        f"| `{r['spec']}`{r['note']} | {r['seed']} | {r['loop']:,} | {r['sampler']} "
        f"| {', '.join(map(str, r['latent_seeds']))} | {r['eval_fid']:.2f} "
        f"| {r['eval_fcd']:.2f} | {r['eval_classifier_score']:.2f} "
        f"| {r['eval_class_tv']:.3f} |")
  return '\n'.join(out)


def markdown(table: List[Dict[str, Any]]) -> str:
  out = ['| spec | seed | outer loops, training s | FID | Inception KID | FCD | score '
         '| class TV | precision / recall | D gap |',
         '|---|---|---|---|---|---|---|---|---|---|']
  for r in table:
    gap = f"{r['eval_d_gap']:.2f}" if 'eval_d_gap' in r else '—'
    out.append(
        f"| `{r['spec']}`{r['note']} | {r['seed']} | {r['loop']:,}, {r['seconds']:,.0f} "
        f"| {_metric_cells(r)} | {gap} |")
  return '\n'.join(out)


def figure(path: str, workdirs: List[str], **sampling: Any) -> None:
  """One 8×8 grid per workdir's newest checkpoint (``sampling``: ``train.restore``'s)."""
  fig, axes = plt.subplots(1, len(workdirs), figsize=(2.6 * len(workdirs), 2.9), squeeze=False)
  for ax, w in zip(axes[0], workdirs):
    cfg, method, state = train.restore(w, **sampling)
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
  sampling = {k: v for k, v in (_SAMPLING.overrides() if _SAMPLING else {}).items()
              if v is not None}
  if sampling and not _FIGURE.value:
    raise app.UsageError(f'the sampling flags ({", ".join(sorted(sampling))}) draw the '
                         '--figure grids; give --figure=PNG (the tables read the scored records)')
  if _BY_SAMPLER.value:
    print(sampler_markdown([row for w in workdirs for row in sampler_rows(w)]))
  else:
    print(markdown([row for w in workdirs for row in rows(w)]))
  if _FIGURE.value:
    figure(_FIGURE.value, workdirs, **sampling)
    print(f'sample grids: {_FIGURE.value}')


if __name__ == '__main__':
  _SAMPLING = cli.define_sampling_flags()
  app.run(main)
