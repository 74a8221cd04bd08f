"""Inception-v3 (FID variant) plumbing with random weights: no real weights exist here."""

import numpy as np
import pytest

from vgrow_jax import inception


def test_architecture_has_inception_v3s_weights():
  shapes = inception.param_shapes()
  # Keras' InceptionV3 (same convolutions): 21,751,136 conv weights and
  # 17,216 BatchNorm channels (its 34,432 non-trainable moving statistics / 2).
  assert sum(int(np.prod(s.shape)) for k, s in shapes.items()
             if k.endswith('conv.weight')) == 21_751_136
  assert sum(s.shape[0] for k, s in shapes.items() if k.endswith('bn.running_mean')) == 17_216
  assert shapes['Conv2d_1a_3x3.conv.weight'].shape == (32, 3, 3, 3)  # PyTorch OIHW
  assert shapes['Mixed_7c.branch_pool.conv.weight'].shape == (192, 2048, 1, 1)


def test_weights_file_round_trip_and_features(tmp_path):
  params = inception.random_params(0)
  path = str(tmp_path / 'inception.npz')
  np.savez(path, **{k: np.asarray(v) for k, v in params.items()},
           **{'fc.weight': np.zeros((1008, 2048), np.float32)})  # extra keys are ignored
  loaded = inception.load_params(path)
  feats = inception.feature_fn(loaded, size=75)  # 299 in use; 75 is the smallest input
  x = np.random.default_rng(0).uniform(-1, 1, (3, 28, 28, 1)).astype(np.float32)
  f = feats(x)
  assert f.shape == (3, 2048) and np.all(np.isfinite(f)) and np.all(f >= 0)  # after ReLU
  del params['Mixed_6b.branch1x1.bn.running_var']
  np.savez(path, **{k: np.asarray(v) for k, v in params.items()})
  with pytest.raises(ValueError, match=r"lacks 1 Inception weights, first "
                     r"'Mixed_6b\.branch1x1\.bn\.running_var'"):
    inception.load_params(path)
