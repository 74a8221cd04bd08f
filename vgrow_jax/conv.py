"""A stride-1 'SAME' convolution whose gradients stay fast inside XLA:CPU loops.

XLA:CPU runs a convolution's autodiff gradients (the input gradient, a
transposed convolution, and above all the kernel gradient) 30–1000× slower
inside a loop body than at the top level (jax-ml/jax#12868): inside a while
body the gradient convolutions keep their non-canonical dimension labels
(``f01b_i01o->01bf``, ``b01f_01oi->b01f``) and are emitted as naive loops,
while at the top level they are rewritten to the canonical NHWC/HWIO form
and sent to the convolution library. VGrow's outer loop runs every network
inside ``lax.scan`` / ``fori_loop``, so this module writes both gradients
itself, in forms that are fast anywhere:

* dL/dx = conv(g, flip(K)ᵀ), a canonical 'SAME' forward convolution (in and
  out channels swapped), as fast as the forward pass.
* dL/dK[i, j, c, o] = Σ_{b,h,w} x̃[b, h+i, w+j, c] g[b, h, w, o] (x̃ the padded
  input) as patches · g: a matmul ``[k·k·C, P] @ [P, O]`` over the P = B·H·W
  pixels, taken over chunks of whole images (about ``_ROWS_PER_CHUNK``
  pixels each, summed in a ``lax.scan``) so that each chunk's patch matrix
  stays in cache instead of one B·H·W × k·k·C array in memory.

The kernel gradient was first written as a 'VALID' forward convolution of x̃
(batch as channels) with g as the kernel; XLA:CPU's convolution library runs
that shape (a 32×32 kernel, 3×3 outputs) slowly, and it cost two thirds of
an SN-ResNet D step. As patches · g, the B1 D and G steps inside
``lax.scan`` take about half the time (benchmarks/conv_loop.py
``--impls=patches,forward_convs``).

The results equal ``lax.conv_general_dilated``'s autodiff within float32
rounding (tests/conv_test.py). It is reverse-mode only (``custom_vjp``);
use ``conv_impl='xla'`` for forward mode.
"""

from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

_DN = ('NHWC', 'HWIO', 'NHWC')

# Pixels (rows of the patch matrix) per chunk of the kernel gradient: 4096
# rows × 9·32 columns is 4.7 MB at the SN-ResNet's width 32, a cache-sized
# block; 2048–16384 measured alike.
_ROWS_PER_CHUNK = 4096


# At most this many input or output channels, a 'SAME' convolution is written as
# matmuls: XLA:CPU's convolution library runs a 3×3 convolution from or to one
# channel (an image's first and last layers, and their input gradients) at
# 3–6 GFLOP/s, a twentieth of its speed at 32 channels.
_FEW_CHANNELS = 4


def _conv(x, kernel, padding):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DN)


def _shifts(xp: jax.Array, k: int, h: int, w: int):
  """The k·k windows ``xp[:, i:i+h, j:j+w]`` of a padded input, in the kernel's (i, j) order."""
  return [xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)]


def _pad_same(x: jax.Array, k: int) -> jax.Array:
  p = k // 2
  return jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))


def conv_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """y = x ⋆ K, stride 1, 'SAME'; x ``[B, H, W, C]``, K ``[k, k, C, O]`` -> ``[B, H, W, O]``.

  With few input channels (C ≤ ``_FEW_CHANNELS``) it is Σ_{i,j,c} shift_{ij}(x_c)·K_{ijc},
  k·k·C broadcast multiply-adds; with few output channels, y = Σ_{i,j} shift_{ij}(x @ K_{ij}),
  one matmul ``[B·H·W, C] @ [C, k·k·O]`` and k·k shifted adds. Both are the same
  sums as the convolution in another order; elsewhere it is the library convolution.
  """
  k, _, c, o = kernel.shape
  _, h, w, _ = x.shape
  if c <= _FEW_CHANNELS:
    # k·k·C broadcast multiply-adds that XLA fuses into one pass over y; patches
    # [B, H, W, k·k·C] with so few channels cost more to build than to multiply.
    parts = _shifts(_pad_same(x, k), k, h, w)  # k·k × [B, H, W, C]
    kr = kernel.reshape(k * k, c, o)
    return sum(part[..., ci:ci + 1] * kr[n, ci] for n, part in enumerate(parts)
               for ci in range(c))
  if o <= _FEW_CHANNELS:
    t = x @ kernel.transpose(2, 0, 1, 3).reshape(c, k * k * o)  # [B, H, W, k·k·O]
    parts = _shifts(_pad_same(t, k), k, h, w)  # k·k × [B, H, W, k·k·O]
    return sum(part[..., n * o:(n + 1) * o] for n, part in enumerate(parts))
  return _conv(x, kernel, 'SAME')


def _num_chunks(batch: int, pixels_per_image: int) -> int:
  """The most chunks of whole images of about ``_ROWS_PER_CHUNK`` pixels, a divisor of batch."""
  n = max(1, min(batch, batch * pixels_per_image // _ROWS_PER_CHUNK))
  while batch % n:
    n -= 1
  return n


def kernel_grad(x: jax.Array, g: jax.Array, ksize: int) -> jax.Array:
  """dL/dK of a stride-1 'SAME' convolution, as patches(x)ᵀ · g over chunks of images.

  Args:
    x: the convolution's input ``[B, H, W, C]``.
    g: dL/dy, the cotangent of its output ``[B, H, W, O]``.
    ksize: the (odd) kernel side k.

  Returns:
    ``[k, k, C, O]``, the HWIO layout of the kernel.
  """
  b, h, w, c = x.shape
  o = g.shape[-1]
  p = ksize // 2
  xp = jnp.pad(x, ((0, 0), (p, p), (p, p), (0, 0)))  # [B, H+2p, W+2p, C]

  if c <= _FEW_CHANNELS:
    # Windows stacked on a major axis: [k·k, B·H·W, C] is k·k contiguous copies,
    # where interleaving them into k·k·C minor columns is a slow gather.
    windows = jnp.stack(_shifts(xp, ksize, h, w)).reshape(ksize * ksize, -1, c)
    dk = jnp.einsum('npc,po->nco', windows, g.reshape(-1, o))  # [k·k, C, O]
    return dk.reshape(ksize, ksize, c, o)

  def chunk(xc, gc):  # xc [b, H+2p, W+2p, C], gc [b, H, W, O] -> [k·k·C, O]
    patches = jnp.concatenate(
        [xc[:, i:i + h, j:j + w, :] for i in range(ksize) for j in range(ksize)],
        axis=-1)  # [b, H, W, k·k·C], (i, j, c) order = the kernel's HWI order
    return jax.lax.dot_general(patches.reshape(-1, ksize * ksize * c), gc.reshape(-1, o),
                               (((0,), (0,)), ((), ())))

  n = _num_chunks(b, h * w)
  if n == 1:
    dk = chunk(xp, g)
  else:
    xs = xp.reshape((n, b // n) + xp.shape[1:])  # [n, B/n, H+2p, W+2p, C]
    gs = g.reshape((n, b // n) + g.shape[1:])  # [n, B/n, H, W, O]
    dk, _ = jax.lax.scan(lambda acc, a: (acc + chunk(*a), None),
                         jnp.zeros((ksize * ksize * c, o), jnp.result_type(x, g)), (xs, gs))
  return dk.reshape(ksize, ksize, c, o)


def input_grad(g: jax.Array, kernel: jax.Array) -> jax.Array:
  """dL/dx ``[B, H, W, C]`` of a stride-1 'SAME' convolution: g ``[B, H, W, O]`` ⋆ flip(K)ᵀ."""
  return conv_same(g, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2))


@jax.custom_vjp
def conv2d_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """y = x ⋆ K with stride 1 and 'SAME' padding; x ``[B, H, W, C]``, K ``[k, k, C, O]`` (k odd)."""
  return conv_same(x, kernel)


def _fwd(x, kernel):
  return conv_same(x, kernel), (x, kernel)


def _bwd(res, g):
  x, kernel = res
  dk = kernel_grad(x, g, kernel.shape[0]).astype(kernel.dtype)
  return input_grad(g, kernel), dk


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
