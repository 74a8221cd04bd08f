r"""Metropolis-adjusted latent refinement of a checkpoint: its metrics and acceptance rate.

  python -m benchmarks.refine_acceptance --workdir=W --classifier=C.npz \
      [--step_size=0.1 --flow_steps=50 --d_warmup_steps=1000 --d_batch_size=64] \
      [--fresh_d]          # a method without a logistic D (SNGAN): fresh SN D on 2·x

Scores (FCD, classifier score, class balance, precision / recall; no Inception
FID, to keep it to a few minutes on one core) the samples of ``vgrow-eval``'s
latent refinement recipe with ``--sample_metropolis``: a logistic D fitted once
(``d_warmup_steps`` at ``d_batch_size``), then ``flow_steps`` MALA moves at η
with γ = 1 and the KL weight, on the run's fixed latents. The record (appended
to the workdir's ``metrics.jsonl`` as ``vgrow-eval`` does) holds the fraction of
moves accepted (mean, and the range over the chains): a low rate means the
unadjusted chain of the same η is far from the law N(z)·e^{d(G(z))} it is
meant to sample.
"""

import json

from absl import app
from absl import flags

from experiments import evaluate

_WORKDIR = flags.DEFINE_string('workdir', None, 'The run to refine.', required=True)
_CLASSIFIER = flags.DEFINE_string('classifier', '', 'Digit classifier (.npz) of vgrow-eval.')
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint (default: the newest).')
_STEP_SIZE = flags.DEFINE_float('step_size', 0.1, 'η of each move.')
_FLOW_STEPS = flags.DEFINE_integer('flow_steps', 50, 'MALA moves.', lower_bound=1)
_D_WARMUP = flags.DEFINE_integer('d_warmup_steps', 1000, 'Logistic D steps before the moves.',
                                 lower_bound=1)
_D_BATCH = flags.DEFINE_integer('d_batch_size', 64, 'Batch of those D steps.', lower_bound=1)
_FRESH_D = flags.DEFINE_boolean('fresh_d', False, 'The method has no logistic D: fit a fresh '
                                'spectrally normalised one on 2·x.')


def main(argv):
  del argv
  kw = dict(sample_flow_steps=_FLOW_STEPS.value, sample_d_steps=0,
            sample_d_warmup_steps=_D_WARMUP.value, sample_d_batch_size=_D_BATCH.value,
            sample_step_size=_STEP_SIZE.value, flow_space='latent', langevin=1.0,
            sample_divergence='kl', sample_metropolis=True)
  if _FRESH_D.value:
    kw.update(sample_d_spectral_norm=True, sample_d_input_scale=2.0)
  r = evaluate.evaluate_workdir(_WORKDIR.value, classifier_path=_CLASSIFIER.value,
                                step=_STEP.value, inception_weights='', **kw)
  print(evaluate.format_record(r))
  print(json.dumps({'workdir': _WORKDIR.value, 'loop': r['loop'],
                    'acceptance_mean': round(r['eval_sample_acceptance'], 3),
                    'acceptance_min': round(r['eval_sample_acceptance_min'], 3),
                    'acceptance_max': round(r['eval_sample_acceptance_max'], 3),
                    'fcd': round(r['eval_fcd'], 2), 'score': round(r['eval_classifier_score'], 2),
                    'class_tv': round(r['eval_class_tv'], 3)}))


if __name__ == '__main__':
  app.run(main)
