"""The image sets ``vgrow-fid`` compares, and the comparison (no flags: tests and benchmarks
import it).

A set is a ``.npz`` of images or of statistics, an image folder, or a training workdir
(see ``experiments/fid.py``); :func:`read_source` turns a path into a :class:`Source`,
:func:`score` computes FID and KID of two sources in Inception-v3 features
(:mod:`vgrow_jax.inception`, :mod:`vgrow_jax.image_metrics`), :func:`save_stats` writes a
statistics file that :func:`read_source` reads back.
"""

from __future__ import annotations

import os
from typing import Any, Dict, NamedTuple, Optional, Tuple

import numpy as np

from vgrow_jax import data as data_lib
from vgrow_jax import image_data
from vgrow_jax import image_metrics
from vgrow_jax import inception
from vgrow_jax import train

DEFAULT_WORKDIR_N = 10_000


class Source(NamedTuple):
  """One side of the comparison: images to embed, or statistics already computed.

  Attributes:
    name: what it is, for the protocol line.
    n: number of images.
    images: ``[N, H, W, C]`` pixels, or None for statistics.
    data_range: the range of ``images``: (0, 255) for files, the model's for workdirs.
    features: ``[N, 2048]`` float64 (statistics files that have them), or None.
    mu: ``[2048]`` mean (statistics files), or None.
    sigma: ``[2048, 2048]`` covariance (statistics files), or None.
  """

  name: str
  n: int
  images: Optional[np.ndarray] = None
  data_range: Tuple[float, float] = (0.0, 255.0)
  features: Optional[np.ndarray] = None
  mu: Optional[np.ndarray] = None
  sigma: Optional[np.ndarray] = None


def as_pixels(x: np.ndarray, name: str) -> np.ndarray:
  """``x`` as >= 2 images of pixels 0..255, ``[N, H, W, C]`` (uint8 kept, else float32).

  Raises:
    ValueError: a bad shape or dtype, fewer than 2 images, non-finite values or values
      outside [0, 255].
  """
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
    raise ValueError(f'{name}: images must have shape [N, H, W] or [N, H, W, C] with C in '
                     f'(1, 3, 4), got {x.shape}')
  if len(x) < 2:
    raise ValueError(f'{name}: FID needs at least 2 images, got {len(x)}')
  if x.dtype == np.uint8:
    return x
  if not (np.issubdtype(x.dtype, np.floating) or np.issubdtype(x.dtype, np.integer)):
    raise ValueError(f'{name}: images must be uint8 or float pixels, got dtype {x.dtype}')
  if np.issubdtype(x.dtype, np.floating) and not np.all(np.isfinite(x)):
    raise ValueError(f'{name}: {int((~np.isfinite(x)).sum())} non-finite pixel values')
  lo, hi = float(x.min()), float(x.max())
  if lo < 0 or hi > 255:
    hint = '; map [-1, 1] images with (x + 1) * 127.5' if lo >= -1 and hi <= 1 else ''
    raise ValueError(f'{name}: pixel values must lie in [0, 255], got [{lo:g}, {hi:g}]{hint}')
  return x.astype(np.float32)


def is_workdir(path: str) -> bool:
  return os.path.isdir(path) and (os.path.isfile(os.path.join(path, train.DATA_SPEC_FILE))
                                  or os.path.isfile(os.path.join(path, 'config.json')))


def _read_npz(path: str, weights_sha1: str) -> Source:
  try:
    with np.load(path, allow_pickle=False) as f:
      arrays = {k: f[k] for k in f.files}
  except (OSError, ValueError, EOFError) as e:
    raise ValueError(f'cannot read {path!r} as a .npz: {e}') from None
  if 'mu' in arrays and 'sigma' in arrays:
    return _stats_source(path, arrays, weights_sha1)
  for key in ('images', 'samples'):
    if key in arrays:
      break
  else:
    if len(arrays) != 1:
      raise ValueError(f'{path!r}: no array named images or samples among {sorted(arrays)}')
    key = next(iter(arrays))
  x = as_pixels(arrays[key], f'{path}[{key}]')
  return Source(f'{path}[{key}]', len(x), images=x)


def _stats_source(path: str, arrays: Dict[str, np.ndarray], weights_sha1: str) -> Source:
  mu, sigma = arrays['mu'].astype(np.float64), arrays['sigma'].astype(np.float64)
  d = inception.NUM_FEATURES
  if mu.shape != (d,) or sigma.shape != (d, d):
    raise ValueError(f'{path!r}: statistics mu {mu.shape} and sigma {sigma.shape} are not of '
                     f'{d} Inception pool features')
  saved = str(arrays['weights_sha1']) if 'weights_sha1' in arrays else ''
  if saved and weights_sha1 and saved != weights_sha1:
    raise ValueError(f'{path!r}: statistics of weights with SHA-1 {saved[:12]}, not of the '
                     f'weights in use ({weights_sha1[:12]})')
  feats = arrays.get('features')
  if feats is not None and (feats.ndim != 2 or feats.shape[1] != d):
    raise ValueError(f'{path!r}: features have shape {feats.shape}, expected [N, {d}]')
  n = int(arrays['n']) if 'n' in arrays else (len(feats) if feats is not None else 0)
  return Source(f'statistics {path}', n, mu=mu, sigma=sigma,
                features=None if feats is None else feats.astype(np.float64))


def read_source(path: str, *, num_samples: Optional[int] = None, weights_sha1: str = '',
                step: Optional[int] = None, **sampling: Any) -> Source:
  """A :class:`Source` from a ``.npz`` (images or statistics), an image folder or a workdir.

  Args:
    path: the set.
    num_samples: images generated from a workdir (default :data:`DEFAULT_WORKDIR_N`).
    weights_sha1: a statistics file made with other weights is refused.
    step: a workdir's checkpoint (default latest).
    **sampling: a workdir's refined-sampling overrides (``train.restore``'s keywords).

  Raises:
    FileNotFoundError: no such path (or a workdir without a checkpoint).
    ValueError: unreadable or bad images (:func:`as_pixels`), mixed sizes in a folder, a
      workdir of non-image data.
  """
  if not os.path.exists(path):
    raise FileNotFoundError(f'no such file or folder: {path!r}')
  if is_workdir(path):
    from experiments import evaluate  # pylint: disable=g-import-not-at-top
    images, value_range, info = evaluate.generated_images(
        path, num_samples or DEFAULT_WORKDIR_N, step=step, **sampling)
    how = f", {info['sampling']}" if 'sampling' in info else ''
    if 'acceptance' in info:
      how += f", {info['acceptance']:.3f} of the moves accepted"
    return Source(f"workdir {path} (outer loop {info['loop']}{how})", len(images),
                  images=np.asarray(images, np.float32), data_range=value_range)
  if os.path.isdir(path):
    try:
      imgs = image_data.read_folder(path)
    except data_lib.DataError as e:
      raise ValueError(str(e)) from None
    x = as_pixels(imgs.images, path)
    return Source(f'folder {path}', len(x), images=x)
  if path.endswith('.npz'):
    return _read_npz(path, weights_sha1)
  raise ValueError(f'{path!r} is not a .npz, an image folder or a workdir')


def features(src: Source, params: inception.Params, *, batch_size: int = 32
             ) -> Optional[np.ndarray]:
  """``[N, 2048]`` Inception features of ``src`` (its own for statistics; None if it has none)."""
  if src.images is None:
    return src.features
  fn = inception.feature_fn(params, data_range=src.data_range, batch_size=batch_size)
  return image_metrics.features(fn, src.images, batch_size=batch_size)


def score(a: Source, b: Source, params: inception.Params, *, batch_size: int = 32,
          kid_subsets: int = 100, kid_subset_size: int = 1000) -> Dict[str, Any]:
  """FID and (when both sides have features) KID of ``a`` vs ``b``.

  Returns:
    ``{'fid': float, 'kid': float | None, 'kid_std': ..., 'kid_subset_size': int | None}``.
  """
  fa, fb = (features(s, params, batch_size=batch_size) for s in (a, b))
  if fa is not None and fb is not None:  # no 2,048 x 2,048 matrix needed
    fid = image_metrics.frechet_distance_of_features(fa, fb)
  else:
    stats = [(s.mu, s.sigma) if s.mu is not None else image_metrics.gaussian_stats(f)
             for s, f in ((a, fa), (b, fb))]
    fid = image_metrics.frechet_distance(*stats[0], *stats[1])
  out = {'fid': fid, 'kid': None, 'kid_std': None, 'kid_subset_size': None}
  if fa is not None and fb is not None:
    m = min(kid_subset_size, len(fa), len(fb))
    out['kid'], out['kid_std'] = image_metrics.kernel_inception_distance(
        fa, fb, num_subsets=kid_subsets, subset_size=m)
    out['kid_subset_size'] = m
  return out


def save_stats(path: str, feats: np.ndarray, *, weights_path: str, weights_sha1: str) -> None:
  """Writes ``mu``, ``sigma``, ``features`` [N, 2048], ``n`` and the protocol to ``path``."""
  if not path.endswith('.npz'):
    raise ValueError(f'statistics are written to a .npz, got {path!r}')
  mu, sigma = image_metrics.gaussian_stats(feats)
  np.savez(path, mu=mu, sigma=sigma, features=np.asarray(feats, np.float32),
           n=np.array(len(feats)), protocol=np.array(inception.PROTOCOL),
           weights=np.array(inception.describe_weights(weights_path, weights_sha1)),
           weights_sha1=np.array(weights_sha1))
