"""Random translations of image batches, for what a discriminator is shown.

A discriminator fitted to a few thousand images can learn the images rather
than their distribution: VGrow's MLP D on the 4,000 offline MNIST digits
scores them far above held-out digits after a few minutes, and its field then pulls particles toward the
memorised images. Showing D every real *and* generated image shifted by a
random integer offset, independently per image, is the translation of
DiffAugment (Zhao et al. 2020) and ADA (Karras et al. 2020): the same
transformation on both sides, so D still compares the two distributions (of
translated images), and no image is ever seen twice in the same place.

The map is linear in the pixels, so gradients flow through it (``jax.grad``
of a logit of translated particles is the translated-back gradient).

References:
  Zhao, Liu, Lin, Zhu, Han. "Differentiable Augmentation for Data-Efficient
  GAN Training." NeurIPS 2020.
  Karras, Aittala, Hellsten, Laine, Lehtinen, Aila. "Training Generative
  Adversarial Networks with Limited Data." NeurIPS 2020.
"""

from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp

Array = jax.Array


def translate(key: Array, x: Array, *, max_shift: int, fill: Optional[float] = None) -> Array:
  """Each image moved by its own random offset (dy, dx) ∈ {−s, …, s}².

  .. math:: y_b[i, j] = x_b[\\mathrm{clamp}(i + dy_b), \\mathrm{clamp}(j + dx_b)]

  Pixels that come in from outside the image repeat its border (edge
  padding), which for digits on a blank background is that background, or
  are ``fill``.

  Args:
    key: PRNG key; the offsets are uniform and independent per image.
    x: images ``[B, H, W, C]`` (any array when ``max_shift`` is 0).
    max_shift: s >= 0 pixels; 0 returns ``x`` (the key is then unused).
    fill: the value of pixels from outside [None: the nearest border pixel].

  Returns:
    ``[B, H, W, C]``, the translated images.

  Raises:
    ValueError: ``x`` is not ``[B, H, W, C]`` or ``max_shift`` is negative.

  >>> x = jnp.zeros((1, 5, 5, 1)).at[0, 2, 2, 0].set(1.0)
  >>> y = translate(jax.random.PRNGKey(0), x, max_shift=2)
  >>> float(y.sum())  # the bright pixel moved, nothing was lost
  1.0
  """
  if max_shift < 0:
    raise ValueError(f'translate: max_shift={max_shift} must be >= 0')
  if max_shift == 0:
    return x
  if x.ndim != 4:
    raise ValueError(f'translate needs images [B, H, W, C], got shape {tuple(x.shape)}')
  b, h, w, c = x.shape
  s = max_shift
  offsets = jax.random.randint(key, (b, 2), -s, s + 1)  # [B, 2]
  pads = ((0, 0), (s, s), (s, s), (0, 0))
  padded = (jnp.pad(x, pads, mode='edge') if fill is None
            else jnp.pad(x, pads, constant_values=fill))  # [B, H+2s, W+2s, C]

  def crop(image, offset):
    return jax.lax.dynamic_slice(image, (s + offset[0], s + offset[1], 0), (h, w, c))

  return jax.vmap(crop)(padded, offsets)
