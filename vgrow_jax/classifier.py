"""A small CNN digit classifier: offline features and class probabilities for metrics.

Inception-v3 weights cannot be downloaded here, so the offline feature
network for MNIST-like data is this classifier, trained by the repo on the
real training digits (``vgrow-classifier``). Its penultimate layer (128
units, after ReLU) gives the features of the Fréchet classifier distance and
KID; its softmax the classifier score (:mod:`vgrow_jax.image_metrics`).

Architecture (input ``[B, S, S, C]`` in [-1, 1]): 2 × (3×3 conv, ReLU, 2×2
average pooling) with ``width`` and 2·``width`` channels (16, 32), dense 128
+ ReLU (features), dense K (logits). Trained with Adam on cross-entropy, in epochs of the seeded
resumable shuffle :func:`vgrow_jax.image_data.epoch_batch`, with random
±``shift`` pixel translations.

A saved classifier is one ``.npz``: the parameters under their
'/'-joined Flax paths plus ``meta/image_shape``, ``meta/num_classes``,
``meta/test_accuracy`` and ``meta/train_data``.
"""

from __future__ import annotations

import os
import zipfile
from typing import Any, Dict, NamedTuple, Tuple

import flax.linen as nn
from flax import traverse_util
import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgrow_jax import augment
from vgrow_jax import config as config_lib
from vgrow_jax import conv as conv_lib
from vgrow_jax import image_data

Array = jax.Array


class DigitNet(nn.Module):
  """x ``[B, S, S, C]`` -> (logits ``[B, K]``, features ``[B, 128]``)."""

  num_classes: int = 10
  width: int = 16
  feature_dim: int = 128

  @nn.compact
  def __call__(self, x):
    h = x
    for ch in (self.width, 2 * self.width):
      h = conv_lib.Conv(ch, 3)(h)
      h = nn.avg_pool(nn.relu(h), (2, 2), strides=(2, 2))
    h = h.reshape(h.shape[0], -1)
    feats = nn.relu(nn.Dense(self.feature_dim)(h))  # [B, 128]
    return nn.Dense(self.num_classes)(feats), feats


class Classifier(NamedTuple):
  """A trained classifier.

  Attributes:
    params: Flax parameters of :class:`DigitNet`.
    image_shape: ``(S, S, C)`` it was trained on.
    num_classes: K.
    test_accuracy: accuracy on the held-out split (NaN if none).
    train_data: what it was trained on (for the metric protocol).
  """

  params: Any
  image_shape: Tuple[int, int, int]
  num_classes: int
  test_accuracy: float
  train_data: str

  def _check(self, x):
    if tuple(x.shape[1:]) != tuple(self.image_shape):
      raise ValueError(f'the classifier was trained on images {tuple(self.image_shape)}, '
                       f'got {tuple(x.shape[1:])}')

  def features(self, x: Any) -> np.ndarray:
    """Penultimate features ``[B, 128]`` of images ``[B, S, S, C]`` in [-1, 1]."""
    self._check(x)
    return np.asarray(_forward(self.params, jnp.asarray(x, jnp.float32))[1])

  def probs(self, x: Any) -> np.ndarray:
    """Class probabilities ``[B, K]``."""
    self._check(x)
    return np.asarray(jax.nn.softmax(_forward(self.params, jnp.asarray(x, jnp.float32))[0]))


@jax.jit
def _forward(params, x):
  # The sizes are read from the parameters' shapes (static under jit).
  net = DigitNet(params['Dense_1']['bias'].shape[0], params['Conv_0']['kernel'].shape[-1],
                 params['Dense_0']['bias'].shape[0])
  return net.apply({'params': params}, x)


def train(images: np.ndarray, labels: np.ndarray, *, num_classes: int = 10, steps: int = 1000,
          batch_size: int = 64, learning_rate: float = 1e-3, shift: int = 2,
          seed: int = 0, width: int = 16) -> Any:
  """Trains :class:`DigitNet` on uint8 images ``[N, S, S, C]`` and labels ``[N]``.

  Returns:
    The parameters.
  """
  x_all = image_data.to_unit_range(jnp.asarray(images))  # [N, S, S, C]
  y_all = jnp.asarray(labels, jnp.int32)
  if int(y_all.max()) >= num_classes or int(y_all.min()) < 0:
    raise ValueError(f'labels must be in [0, {num_classes}), got [{int(y_all.min())}, '
                     f'{int(y_all.max())}]')
  net = DigitNet(num_classes, width)
  key = jax.random.PRNGKey(seed)
  params = net.init(jax.random.fold_in(key, 1), x_all[:1])['params']
  tx = optax.adam(optax.cosine_decay_schedule(learning_rate, steps))
  opt_state = tx.init(params)
  n = len(images)

  def step(carry, i):
    params, opt_state = carry
    idx = image_data.epoch_batch(key, i, batch_size, n)
    x = augment.translate(jax.random.fold_in(jax.random.fold_in(key, 2), i), x_all[idx],
                          max_shift=shift, fill=-1.0)  # background -1 comes in

    def loss_fn(p):
      logits, _ = net.apply({'params': p}, x)
      return optax.softmax_cross_entropy_with_integer_labels(logits, y_all[idx]).mean()

    loss, grads = jax.value_and_grad(loss_fn)(params)
    updates, opt_state = tx.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), opt_state), loss

  run = jax.jit(lambda c, idx: jax.lax.scan(step, c, idx))
  carry = (params, opt_state)
  for start in range(0, steps, 250):
    carry, _ = run(carry, jnp.arange(start, min(start + 250, steps)))
  return carry[0]


def accuracy(clf: Classifier, images: np.ndarray, labels: np.ndarray) -> float:
  x = np.asarray(image_data.to_unit_range(jnp.asarray(images)))
  pred = np.concatenate([clf.probs(x[i:i + 500]).argmax(1) for i in range(0, len(x), 500)])
  return float((pred == np.asarray(labels)).mean())


def fit(train_set: image_data.Images, test_set: image_data.Images, **kw) -> Classifier:
  """Trains on ``train_set`` and measures the accuracy on ``test_set``."""
  if train_set.labels is None:
    raise ValueError(f'{train_set.name} has no labels: a classifier needs labelled data')
  num_classes = int(max(train_set.labels.max(), test_set.labels.max()) + 1)
  params = train(train_set.images, train_set.labels, num_classes=num_classes, **kw)
  clf = Classifier(params, tuple(train_set.images.shape[1:]), num_classes, float('nan'),
                   train_set.name)
  return clf._replace(test_accuracy=accuracy(clf, test_set.images, test_set.labels))


def save(path: str, clf: Classifier) -> None:
  flat = {'/'.join(k): np.asarray(v) for k, v in traverse_util.flatten_dict(clf.params).items()}
  meta = {'meta/image_shape': np.asarray(clf.image_shape), 'meta/num_classes': clf.num_classes,
          'meta/test_accuracy': clf.test_accuracy, 'meta/train_data': clf.train_data}
  os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
  np.savez(path, **flat, **meta)


def load(path: str) -> Classifier:
  """A classifier saved by :func:`save`.

  Raises:
    FileNotFoundError: no such file. ValueError: not a classifier file.
  """
  if not os.path.isfile(path):
    raise FileNotFoundError(f'classifier file not found: {path!r} (train one with '
                            'vgrow-classifier --out=PATH)')
  if not zipfile.is_zipfile(path):
    # np.load would call any non-zip file "pickled (object) data", which misleads.
    raise ValueError(f'{path!r} is not a valid .npz (zip) file, so not a vgrow_jax classifier')
  with np.load(path, allow_pickle=False) as f:
    if 'meta/image_shape' not in f.files:
      raise ValueError(f'{path!r} is not a vgrow_jax classifier (no meta/image_shape)')
    params: Dict[Tuple[str, ...], Any] = {tuple(k.split('/')): jnp.asarray(f[k])
                                          for k in f.files if not k.startswith('meta/')}
    return Classifier(traverse_util.unflatten_dict(params),
                      tuple(int(v) for v in f['meta/image_shape']),
                      int(f['meta/num_classes']), float(f['meta/test_accuracy']),
                      str(f['meta/train_data']))


def fit_on_config(data_cfg: config_lib.DataConfig, **kw) -> Classifier:
  """Trains on the config's training split, tests on its held-out split ('test').

  Raises:
    ValueError: the source has no held-out split or no labels.
  """
  if not image_data.has_held_out_split(data_cfg):
    raise ValueError(f'data.name={data_cfg.name!r} has no held-out split to test a classifier '
                     "on; use 'mnist_5k', 'digits' or 'tfds'")
  return fit(image_data.load_arrays(data_cfg, 'train'), image_data.load_arrays(data_cfg, 'test'),
             **kw)
