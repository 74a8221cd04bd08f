"""A stride-1 'SAME' convolution whose gradients are forward convolutions.

XLA:CPU runs a convolution's autodiff gradients (the input gradient, a
transposed convolution, and above all the kernel gradient) 30–150× slower
inside a loop body than at the top level (jax-ml/jax#12868), while a plain
forward NHWC/HWIO convolution stays fast. VGrow's outer loop runs every
network inside ``lax.scan`` / ``fori_loop``, so this module rewrites both
gradients as forward convolutions:

* dL/dx = conv(g, flip(K)ᵀ) with 'SAME' padding (swap in/out channels);
* dL/dK[i, j, c, o] = Σ_{b,h,w} x̃[b, h+i, w+j, c] g[b, h, w, o], a 'VALID'
  convolution of the padded input (batch as channels) with g as the kernel.

The results equal ``lax.conv_general_dilated``'s autodiff (tested). It is
reverse-mode only (``custom_vjp``); use ``conv_impl='xla'`` for forward mode.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_DN = ('NHWC', 'HWIO', 'NHWC')


def _conv(x, kernel, padding):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DN)


@jax.custom_vjp
def conv2d_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """y = x ⋆ K with stride 1 and 'SAME' padding; x ``[B, H, W, C]``, K ``[k, k, C, O]`` (k odd)."""
  return _conv(x, kernel, 'SAME')


def _fwd(x, kernel):
  return _conv(x, kernel, 'SAME'), (x, kernel)


def _bwd(res, g):
  x, kernel = res
  k = kernel.shape[0]
  dx = _conv(g, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2), 'SAME')  # [B, H, W, C]
  p = k // 2
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))
  dk = _conv(xp.transpose(3, 1, 2, 0), g.transpose(1, 2, 0, 3), 'VALID')  # [C, k, k, O]
  return dx, dk.transpose(1, 2, 0, 3)


conv2d_same.defvjp(_fwd, _bwd)


class Conv(nn.Module):
  """Drop-in for ``nn.Conv(features, (k, k), padding='SAME', use_bias=False)``.

  Same parameter name and layout (``kernel`` ``[k, k, C, O]``), so spectral
  norm and checkpoints are interchangeable with ``nn.Conv``.
  """

  features: int
  kernel_size: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()

  @nn.compact
  def __call__(self, x):
    if self.kernel_size % 2 != 1:
      raise ValueError(f'Conv kernel_size must be odd, got {self.kernel_size}')
    kernel = self.param('kernel', self.kernel_init,
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    if self.kernel_size == 1:
      return x @ kernel[0, 0]  # a 1×1 convolution is a matmul (fast in loops too)
    return conv2d_same(x, kernel)
