"""What every data source builds on: :class:`Dataset`, :class:`DataError`, the npz reader.

A leaf module (it imports no other vgrow_jax module), so that the sources,
:mod:`vgrow_jax.data` (points, vectors, the dispatcher ``data.load``) and
:mod:`vgrow_jax.image_data` (images), import it in one direction:
``data → image_data → dataset`` and ``data → dataset``. ``data`` re-exports
these names.
"""

from __future__ import annotations

import os
from typing import Any, Callable, NamedTuple, Optional, Tuple
import zipfile

import jax
import numpy as np

__all__ = ['DataError', 'Dataset', 'check_npz', 'read_npz']

Array = jax.Array


class DataError(ValueError):
  """The data cannot be used (missing, malformed, empty, non-finite)."""


class Dataset(NamedTuple):
  """A training distribution.

  Attributes:
    name: label.
    arrays: pytree of arrays handed to ``sample`` (passed into jit).
    sample: ``(arrays, key, n) -> [n, *shape]``, pure and jittable.
    shape: the shape of one example.
    value_range: (min, max) of the data, for clipping particles.
    modes: means ``[M, D]`` of a Gaussian mixture (for the mode metrics), or None.
    std: the mixture's σ, or None.
  """

  name: str
  arrays: Any
  sample: Callable[[Any, Array, int], Array]
  shape: Tuple[int, ...]
  value_range: Tuple[float, float]
  modes: Optional[np.ndarray] = None
  std: Optional[float] = None


def check_npz(path: str) -> None:
  """Raises :class:`DataError` unless ``path`` is an existing zip file (an ``.npz``).

  ``np.load(allow_pickle=False)`` takes any file that is neither a zip nor an
  ``.npy`` for a pickle and says "This file contains pickled (object) data",
  which misleads: a text file or random bytes named ``x.npz`` has no pickle in
  it. Checking the zip structure first names the real problem.
  """
  if not os.path.isfile(path):
    raise DataError(f'npz data file not found: {path!r}')
  if not zipfile.is_zipfile(path):
    raise DataError(f'{path!r} is not a valid .npz (zip) file')


def read_npz(path: str, *, key: str = '') -> np.ndarray:
  """The array in an ``.npz`` holding one array (or the one named ``key``)."""
  check_npz(path)
  try:
    with np.load(path, allow_pickle=False) as f:
      names = list(f.files)
      if key:
        if key not in names:
          raise DataError(f'npz file {path!r} has no array {key!r}; it holds {names}')
        return f[key]
      if len(names) == 1:
        return f[names[0]]
      raise DataError(f'npz file {path!r} holds {len(names)} arrays {names}; '
                      'name one with data.key')
  except DataError:
    raise
  except Exception as e:  # np.load raises several types for a corrupt file
    raise DataError(f'cannot read npz file {path!r}: {type(e).__name__}: {e}') from None
