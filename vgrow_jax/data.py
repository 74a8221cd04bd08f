"""Data sources as pure samplers over device arrays.

A :class:`Dataset` carries a small pytree of arrays (``arrays``) and a pure
``sample(arrays, key, n)``, so that drawing real batches happens inside the
compiled outer loop and depends only on the key (exact resume). The arrays
are passed to the jitted step as an argument, never baked in as constants.

Sources:
  * ``ring``: 8 Gaussians on the unit circle, σ = 0.01 (docs/math.md §3).
  * ``grid``: 25 Gaussians at {-4, -2, 0, 2, 4}², σ = 0.05.
  * ``mixture``: any means ``[M, D]`` and one σ, in any dimension.
  * ``npz``: a file holding one array ``[N, ...]``; batches are drawn
    uniformly with replacement (a uint8 ``[N, H, W(, C)]`` array is an image
    set, see :mod:`vgrow_jax.image_data`).
  * images: ``mnist_5k``, ``digits``, ``idx``, ``folder``, ``tfds``
    (:mod:`vgrow_jax.image_data`).

:func:`load` dispatches on ``DataConfig.name``. The modules import in one
direction: this one imports :mod:`vgrow_jax.image_data`, and both build on
:mod:`vgrow_jax.dataset` (:class:`Dataset`, :class:`DataError`,
:func:`read_npz`, re-exported here), which imports neither.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from vgrow_jax import config as config_lib
from vgrow_jax import dataset as dataset_lib
from vgrow_jax import image_data

Array = jax.Array

# The primitives every source shares, defined in vgrow_jax.dataset so that
# image_data needs nothing from this module (data -> image_data -> dataset).
DataError = dataset_lib.DataError
Dataset = dataset_lib.Dataset
check_npz = dataset_lib.check_npz
read_npz = dataset_lib.read_npz


def _sample_mixture(arrays, key, n):
  means, std = arrays['means'], arrays['std']
  k_idx, k_eps = jax.random.split(key)
  idx = jax.random.randint(k_idx, (n,), 0, means.shape[0])
  return means[idx] + std * jax.random.normal(k_eps, (n, means.shape[1]), means.dtype)


def mixture(means: Any, std: float, *, name: str = 'mixture') -> Dataset:
  """An equal-weight isotropic Gaussian mixture.

  Args:
    means: ``[M, D]`` component means.
    std: σ of every component (> 0).
    name: label.
  """
  means = np.asarray(means, np.float32)
  if means.ndim != 2 or means.shape[0] == 0:
    raise DataError(f'mixture means must have shape [M, D] with M >= 1, got {means.shape}')
  if not np.all(np.isfinite(means)):
    raise DataError(f'mixture means contain non-finite values: {means.tolist()}')
  if not std > 0:
    raise DataError(f'mixture std must be > 0, got {std!r}')
  lo = float(means.min() - 4 * std)
  hi = float(means.max() + 4 * std)
  return Dataset(
      name=name,
      arrays={'means': jnp.asarray(means), 'std': jnp.float32(std)},
      sample=_sample_mixture,
      shape=(means.shape[1],),
      value_range=(lo, hi),
      modes=means,
      std=float(std),
  )


def ring(*, num_modes: int = 8, radius: float = 1.0, std: float = 0.01) -> Dataset:
  """Gaussians at (r cos 2πk/M, r sin 2πk/M) (VEEGAN / PacGAN ring)."""
  angles = 2 * np.pi * np.arange(num_modes) / num_modes
  means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
  return mixture(means, std, name='ring')


def grid(*, side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Dataset:
  """Gaussians on a side×side grid centred at 0 ({-4, …, 4}² by default)."""
  ticks = spacing * (np.arange(side) - (side - 1) / 2)
  means = np.stack(np.meshgrid(ticks, ticks, indexing='ij'), axis=-1).reshape(-1, 2)
  return mixture(means, std, name='grid')


def _sample_array(arrays, key, n):
  x = arrays['x']
  idx = jax.random.randint(key, (n,), 0, x.shape[0])
  return x[idx]


def from_array(x: Any, *, name: str = 'array') -> Dataset:
  """Uniform sampling (with replacement) from the rows of ``x`` ``[N, ...]``."""
  x = np.asarray(x)
  if x.ndim < 2:
    raise DataError(f'{name}: data must have shape [N, ...] with one example a row, '
                    f'got shape {x.shape}')
  if x.shape[0] == 0:
    raise DataError(f'{name}: data is empty (shape {x.shape})')
  if not np.issubdtype(x.dtype, np.number) or np.issubdtype(x.dtype, np.complexfloating):
    raise DataError(f'{name}: data must be real numbers, got dtype {x.dtype}')
  x = x.astype(np.float32)
  bad = ~np.isfinite(x)
  if bad.any():
    first = np.argwhere(bad)[0]
    raise DataError(f'{name}: data has {int(bad.sum())} non-finite values, first at index '
                    f'{tuple(int(i) for i in first)}: {x[tuple(first)]}')
  return Dataset(
      name=name,
      arrays={'x': jnp.asarray(x)},
      sample=_sample_array,
      shape=tuple(x.shape[1:]),
      value_range=(float(x.min()), float(x.max())),
  )


def from_npz(path: str, *, key: str = '') -> Dataset:
  """Loads ``[N, ...]`` from an ``.npz`` holding one array (or the one named ``key``)."""
  return from_array(read_npz(path, key=key), name=os.path.basename(path))


def load(cfg: config_lib.DataConfig) -> Dataset:
  """The dataset a :class:`DataConfig` names (images: :mod:`vgrow_jax.image_data`)."""
  std = cfg.std or None
  if cfg.name == 'grid':
    return grid(std=std or 0.05)
  if cfg.name == 'ring':
    return ring(std=std or 0.01)
  if cfg.name == 'mixture':
    rng = np.random.default_rng(cfg.seed)
    means = rng.uniform(-cfg.scale, cfg.scale, size=(cfg.num_modes, cfg.dim))
    return mixture(means, std or 0.05)
  if cfg.name in image_data.NAMES:
    return image_data.load(cfg)
  if cfg.name == 'npz':
    x = read_npz(cfg.path, key=cfg.key)
    if image_data.is_image_array(x):
      return image_data.load(cfg)
    if cfg.image_size:
      raise DataError(f'data.image_size={cfg.image_size} needs uint8 images [N, H, W(, C)] '
                      f'but {cfg.path!r} holds {x.dtype} {x.shape}')
    return from_array(x, name=os.path.basename(cfg.path))
  raise DataError(f'unknown dataset {cfg.name!r}; expected one of {list(config_lib.DATA_NAMES)}')


def _no_samples(arrays, key, n):
  raise DataError('this dataset is a shape-only spec and cannot be sampled; '
                  'load the training data with data.load')


def spec(shape: Tuple[int, ...], value_range: Tuple[float, float], *,
         name: str = 'spec', modes: Optional[np.ndarray] = None,
         std: Optional[float] = None) -> Dataset:
  """A shape-only Dataset: enough to rebuild a model without the training data."""
  return Dataset(name=name, arrays={}, sample=_no_samples, shape=tuple(shape),
                 value_range=tuple(value_range),
                 modes=None if modes is None else np.asarray(modes, np.float32), std=std)
