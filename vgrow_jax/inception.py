"""Inception-v3 pool features (the FID network), from a weights file you supply.

Inception weights cannot be downloaded on these machines, so this module
ships the network but no weights, and no Inception number is reported
without a user's file. The network is the FID variant of Inception-v3
(``mseitzer/pytorch-fid``'s ``FIDInceptionA/C/E``: average pools that do
not count padding, a max pool in the last block), run in inference mode;
the features are the 2,048 global-average-pooled activations before the
classifier.

**Weights file format**: one ``.npz`` whose keys are the PyTorch
``state_dict`` names of pytorch-fid's ``FIDInceptionV3`` (torchvision
layout), e.g. ``Conv2d_1a_3x3.conv.weight`` ``[O, I, kh, kw]`` and
``Conv2d_1a_3x3.bn.{weight, bias, running_mean, running_var}``; extra keys
(``fc.*``, ``AuxLogits.*``, ``num_batches_tracked``) are ignored. Made from
pytorch-fid's ``pt_inception-2015-12-05-6726825d.pth`` with::

    sd = torch.load('pt_inception-2015-12-05-6726825d.pth', map_location='cpu')
    np.savez('inception_fid.npz', **{k: v.numpy() for k, v in sd.items()})

Inputs are images ``[N, H, W, C]`` in [-1, 1] (C = 1 is repeated to RGB),
resized bilinearly to 299 × 299 as pytorch-fid does.
"""

from __future__ import annotations

import os
from typing import Dict, Optional, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Params = Dict[str, jax.Array]
_BN_EPS = 1e-3


class _Builder:
  """Holds the parameters; with a key, creates missing ones (random weights)."""

  def __init__(self, params: Params, key: Optional[jax.Array] = None):
    self.params = params
    self.key = key

  def conv(self, name: str, x: jax.Array, out: int, kernel: Tuple[int, int],
           stride: int = 1, pad: Tuple[int, int] = (0, 0)) -> jax.Array:
    """torchvision's BasicConv2d: conv (no bias), BatchNorm (eps 1e-3), ReLU."""
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
                                     dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
    p = lambda s: self.params[f'{name}.bn.{s}']
    y = (y - p('running_mean')) / jnp.sqrt(p('running_var') + _BN_EPS) * p('weight') + p('bias')
    return nn.relu(y)


def _avg3(x):  # 3x3, stride 1, padding 1, not counting the padding (FID blocks)
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
  pool = (nn.max_pool(x, (3, 3), (1, 1), ((1, 1), (1, 1))) if max_pool else _avg3(x))
  return jnp.concatenate([b.conv(f'{n}.branch1x1', x, 320, (1, 1)), h, d,
                          b.conv(f'{n}.branch_pool', pool, 192, (1, 1))], axis=-1)


def _forward(b: _Builder, x: jax.Array, size: int) -> jax.Array:
  if x.shape[-1] == 1:
    x = jnp.repeat(x, 3, axis=-1)
  x = jax.image.resize(x, (x.shape[0], size, size, 3), 'bilinear', antialias=False)
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
  return x.mean(axis=(1, 2))  # [N, 2048]


def param_shapes() -> Dict[str, jax.ShapeDtypeStruct]:
  """The name and shape of every weight (traced, nothing computed)."""

  def build(key):
    b = _Builder({}, key)
    _forward(b, jnp.zeros((1, 75, 75, 3)), 75)
    return b.params

  return jax.eval_shape(build, jax.random.PRNGKey(0))


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


def load_params(path: str) -> Params:
  """The weights in an ``.npz`` of PyTorch state_dict names (see the module docstring).

  Raises:
    FileNotFoundError: no such file. ValueError: a weight is missing or mis-shaped.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'Inception weights file not found: {path!r}')
  shapes = param_shapes()
  with np.load(path, allow_pickle=False) as f:
    missing = [k for k in shapes if k not in f.files]
    if missing:
      raise ValueError(f'{path!r} lacks {len(missing)} Inception weights, first {missing[0]!r}; '
                       'expected pytorch-fid FIDInceptionV3 state_dict names')
    params = {k: jnp.asarray(f[k], jnp.float32) for k in shapes}
  for k, s in shapes.items():
    if params[k].shape != s.shape:
      raise ValueError(f'{path!r}: {k} has shape {params[k].shape}, expected {s.shape}')
  return params


def feature_fn(params: Params, *, size: int = 299):
  """``images [N, H, W, C] in [-1, 1] -> pool features [N, 2048]`` (jitted, numpy out)."""
  # The weights are an argument, not constants baked into the executable.
  fwd = jax.jit(lambda p, x: _forward(_Builder(dict(p)), x, size))
  return lambda x: np.asarray(fwd(params, jnp.asarray(x, jnp.float32)))
