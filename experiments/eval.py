"""Scores a trained model: ``vgrow-eval --workdir=W [--classifier=PATH]``.

On mixture data (ring, grid, 'mixture') it prints the mode metrics of docs/math.md §3
for ``--num_samples`` samples (default 2,500): modes covered, % high quality,
reverse KL and the spread of the high-quality samples (``eval_*`` records in
``W/metrics.jsonl``). On images:

Generates ``--num_samples`` images from the latest checkpoint (fixed latents), takes as many
reference images (the held-out split when the source has one, else the training data; a
seeded subset when larger) and prints, with the protocol, the Fréchet distance and KID in the
classifier's features, the classifier score of both sets, and precision/recall. The record is
appended to ``W/metrics.jsonl`` (``eval_fcd``, ``eval_kid``, ...; its ``protocol`` says how).

The feature network is the repo's digit classifier: ``--classifier`` (from
``vgrow-classifier``), else ``W/classifier.npz``, else one is trained on the run's training
split (labelled sources only), saved there and its test accuracy printed. FID (Inception-v3
features) only with ``--inception_weights`` (a file you supply; format in
``vgrow_jax/inception.py``): no Inception number is printed without one.
"""

import sys

from absl import app
from absl import flags

from experiments import cli
from experiments import evaluate

_WORKDIR = flags.DEFINE_string('workdir', None, 'A training workdir.', required=True)
_CLASSIFIER = flags.DEFINE_string('classifier', '', 'Classifier .npz (vgrow-classifier).')
_NUM = flags.DEFINE_integer('num_samples', None, 'Images: N generated = N reference (at most; '
                            'default 1,000). Mixture data: N generated (default 2,500).',
                            lower_bound=10)
_SPLIT = flags.DEFINE_string('reference_split', '', "Reference split (default: 'test' where "
                             'the source has a held-out split, else the training split).')
_KID_SUBSETS = flags.DEFINE_integer('kid_subsets', 100, 'KID subsets.', lower_bound=1)
_KID_SIZE = flags.DEFINE_integer('kid_subset_size', 500, 'KID subset size.', lower_bound=2)
_SAMPLING = cli.define_sampling_flags()
_STEP = flags.DEFINE_integer('step', None, 'Checkpoint (outer loop); default latest.')
_INCEPTION = flags.DEFINE_string('inception_weights', '', 'Inception-v3 FID weights .npz '
                                 '(format: vgrow_jax/inception.py); adds FID and KID in '
                                 'Inception features. Without it no Inception number is given.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cli.setup_logging()
  try:
    if evaluate.has_modes(_WORKDIR.value):
      r = evaluate.evaluate_mode_workdir(_WORKDIR.value, num_samples=_NUM.value or 2500,
                                         step=_STEP.value, **_SAMPLING.overrides())
      print(evaluate.format_mode_record(r), flush=True)
      return
    r = evaluate.evaluate_workdir(_WORKDIR.value, classifier_path=_CLASSIFIER.value,
                                  num_samples=_NUM.value or 1000, reference_split=_SPLIT.value,
                                  kid_subsets=_KID_SUBSETS.value,
                                  kid_subset_size=_KID_SIZE.value, step=_STEP.value,
                                  inception_weights=_INCEPTION.value,
                                  **_SAMPLING.overrides())
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'vgrow-eval: {e}')
  print(evaluate.format_record(r), flush=True)


def run():
  app.run(main)


if __name__ == '__main__':
  run()
