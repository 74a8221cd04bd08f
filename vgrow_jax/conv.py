"""Stride-1 convolutions whose gradients stay fast inside XLA:CPU loops.

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
  input) as matmuls over the pixels, summed over chunks of whole images in a
  ``lax.scan`` so that each chunk's operands stay in cache: g shifted into
  k·k canvases times x̃ where C ≥ O, one matmul per tap where C < O
  (:func:`kernel_grad`).

XLA's own kernel gradient, a 'VALID' convolution of x̃ (batch as channels)
with g as the kernel, runs that shape (a 32×32 kernel, 3×3 outputs) slowly
on XLA:CPU; it cost two thirds of an SN-ResNet D step
(``benchmarks/conv_loop.py --impls=custom_vjp,xla`` compares the nets on
this module and on ``nn.Conv``).

Two resampling convolutions of the SN-ResNet and DCGAN nets are fused into
one convolution each, which does less work and never builds the full-size
tensor: :func:`conv_avgpool2` (a 3×3 convolution then 2×2 average pooling,
a 2×2 convolution on the space-to-depth input, 16/36 of the multiply-adds)
and :func:`upsample2_conv` (nearest ×2 upsampling then a 3×3 convolution,
one 2×2 convolution with four output phases, about half the multiply-adds).

The results equal ``lax.conv_general_dilated``'s autodiff within float32
rounding (tests/conv_test.py). It is reverse-mode only (``custom_vjp``);
use ``conv_impl='xla'`` for forward mode. The convolutions these forms call
run on XLA's own CPU kernels, not YNNPACK's (:mod:`vgrow_jax.xla_flags`).
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

_DN = ('NHWC', 'HWIO', 'NHWC')

# Pixels per chunk of the kernel gradient (summed over chunks of whole images
# in a lax.scan, so each chunk's operands stay in cache). Measured at B = 128,
# one core, over 512–16384: the shifted-g form is flat from 1024 to 4096 and
# best at 4096 for a one-channel g; the per-tap dots are best at 512 (their
# [P, C] and [P, O] slices are small).
_ROWS_PER_CHUNK_SHIFTED_G = 4096
_ROWS_PER_CHUNK_TAPS = 512

# At most this many input or output channels, a 'SAME' convolution is written as
# matmuls: XLA:CPU's convolution library runs a 3×3 convolution from or to one
# channel (an image's first and last layers, and their input gradients) at
# 3–6 GFLOP/s, a twentieth of its speed at 32 channels.
_FEW_CHANNELS = 4


Padding = tuple  # ((top, bottom), (left, right)), static ints


def _same(k: int) -> Padding:
  return ((k // 2, k // 2), (k // 2, k // 2))


def _conv(x, kernel, padding):
  return jax.lax.conv_general_dilated(x, kernel, (1, 1), padding, dimension_numbers=_DN)


def _shifts(xp: jax.Array, k: int, h: int, w: int):
  """The k·k windows ``xp[:, i:i+h, j:j+w]`` of a padded input, in the kernel's (i, j) order."""
  return [xp[:, i:i + h, j:j + w, :] for i in range(k) for j in range(k)]


def _pad(x: jax.Array, padding: Padding) -> jax.Array:
  return jnp.pad(x, ((0, 0),) + tuple(padding) + ((0, 0),))


def _out_size(x: jax.Array, k: int, padding: Padding):
  (t, b), (l, r) = padding
  return x.shape[1] + t + b - k + 1, x.shape[2] + l + r - k + 1


def conv_padded(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  """y = pad(x) ⋆ K, stride 1, 'VALID' after explicit padding; ``[B, H, W, C]`` -> ``[B, H', W', O]``.

  With few input channels (C ≤ ``_FEW_CHANNELS``) it is Σ_{i,j,c} shift_{ij}(x_c)·K_{ijc},
  k·k·C broadcast multiply-adds; with few output channels, y = Σ_{i,j} shift_{ij}(x @ K_{ij}),
  one matmul ``[B·H·W, C] @ [C, k·k·O]`` and k·k shifted adds. Both are the same
  sums as the convolution in another order; elsewhere it is the library convolution.
  """
  k, _, c, o = kernel.shape
  h, w = _out_size(x, k, padding)
  if c <= _FEW_CHANNELS:
    # k·k·C broadcast multiply-adds that XLA fuses into one pass over y; patches
    # [B, H, W, k·k·C] with so few channels cost more to build than to multiply.
    parts = _shifts(_pad(x, padding), k, h, w)  # k·k × [B, H', W', C]
    kr = kernel.reshape(k * k, c, o)
    return sum(part[..., ci:ci + 1] * kr[n, ci] for n, part in enumerate(parts)
               for ci in range(c))
  if o <= _FEW_CHANNELS:
    t = x @ kernel.transpose(2, 0, 1, 3).reshape(c, k * k * o)  # [B, H, W, k·k·O]
    parts = _shifts(_pad(t, padding), k, h, w)  # k·k × [B, H', W', k·k·O]
    return sum(part[..., n * o:(n + 1) * o] for n, part in enumerate(parts))
  return _conv(x, kernel, padding)


def conv_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """y = x ⋆ K, stride 1, 'SAME' (k odd); x ``[B, H, W, C]``, K ``[k, k, C, O]`` -> ``[B, H, W, O]``."""
  return conv_padded(x, kernel, _same(kernel.shape[0]))


def _num_chunks(batch: int, pixels_per_image: int, rows: int) -> int:
  """The most chunks of whole images of about ``rows`` pixels, a divisor of batch."""
  n = max(1, min(batch, batch * pixels_per_image // rows))
  while batch % n:
    n -= 1
  return n


def _sum_over_chunks(fn, xp, g, rows, shape, dtype):
  """Σ over chunks of whole images of fn(xp_chunk, g_chunk), in a lax.scan."""
  b, h, w, _ = g.shape
  n = _num_chunks(b, h * w, rows)
  if n == 1:
    return fn(xp, g)
  xs = xp.reshape((n, b // n) + xp.shape[1:])  # [n, B/n, Hp, Wp, C]
  gs = g.reshape((n, b // n) + g.shape[1:])  # [n, B/n, H', W', O]
  out, _ = jax.lax.scan(lambda acc, a: (acc + fn(*a), None), jnp.zeros(shape, dtype), (xs, gs))
  return out


def _dot_over_pixels(a, b):  # [P, M], [P, N] -> [M, N]
  return jax.lax.dot_general(a, b, (((0,), (0,)), ((), ())))


def kernel_grad(x: jax.Array, g: jax.Array, ksize: int,
                padding: Padding | None = None) -> jax.Array:
  """dL/dK of a stride-1 convolution: dK[i, j, c, o] = Σ_{b,h,w} x̃[b, h+i, w+j, c] g[b, h, w, o].

  x̃ is the padded input. Three forms of the same sums, chosen by shape (each
  measured fastest there inside loops, at B = 128 on one core):

  * C ≤ 4 input channels: the k·k windows of x̃ stacked on a major axis, one
    batched matmul ``[k·k, P, C]ᵀ · [P, O]``.
  * C ≥ O (a D's convolutions, the space-to-depth input of
    :func:`conv_avgpool2`, an image's last layer): g shifted into k·k
    canvases of x̃'s size, one matmul ``x̃ᵀ [C, P̃] · [P̃, k·k·O]``. The copies
    are of the narrower g, and x̃ is read once (2.6× faster than patches of x̃
    at C = 128, O = 32).
  * C < O (the four-phase output of :func:`upsample2_conv`): one matmul
    ``[P, C]ᵀ · [P, O]`` per tap on slices of x̃, with no copy at all.

  Each is summed over chunks of whole images (``_ROWS_PER_CHUNK_*`` pixels).

  Args:
    x: the convolution's input ``[B, H, W, C]``.
    g: dL/dy, the cotangent of its output ``[B, H', W', O]``.
    ksize: the kernel side k.
    padding: ``((top, bottom), (left, right))``; default 'SAME' (k odd).

  Returns:
    ``[k, k, C, O]``, the HWIO layout of the kernel.
  """
  k = ksize
  c = x.shape[-1]
  _, h, w, o = g.shape
  xp = _pad(x, padding or _same(k))  # [B, Hp, Wp, C], Hp = H' + k - 1
  dtype = jnp.result_type(x, g)

  if c <= _FEW_CHANNELS:
    # Windows stacked on a major axis: [k·k, B·H·W, C] is k·k contiguous copies,
    # where interleaving them into k·k·C minor columns is a slow gather.
    windows = jnp.stack(_shifts(xp, k, h, w)).reshape(k * k, -1, c)
    dk = jnp.einsum('npc,po->nco', windows, g.reshape(-1, o))  # [k·k, C, O]
    return dk.reshape(k, k, c, o)

  if c >= o:
    def shifted_g(xc, gc):  # [b, Hp, Wp, C], [b, H', W', O] -> [C, k·k·O]
      # canvas (i, j) holds g at offset (i, j): Σ_p x̃[p] canvas_ij[p] = dK[i, j].
      canvases = jnp.concatenate(
          [jnp.pad(gc, ((0, 0), (i, k - 1 - i), (j, k - 1 - j), (0, 0)))
           for i in range(k) for j in range(k)], axis=-1)  # [b, Hp, Wp, k·k·O]
      return _dot_over_pixels(xc.reshape(-1, c), canvases.reshape(-1, k * k * o))
    dk = _sum_over_chunks(shifted_g, xp, g, _ROWS_PER_CHUNK_SHIFTED_G, (c, k * k * o), dtype)
    return dk.reshape(c, k, k, o).transpose(1, 2, 0, 3)

  def taps(xc, gc):  # -> [k·k, C, O]
    gf = gc.reshape(-1, o)
    return jnp.stack([_dot_over_pixels(xc[:, i:i + h, j:j + w, :].reshape(-1, c), gf)
                      for i in range(k) for j in range(k)])
  dk = _sum_over_chunks(taps, xp, g, _ROWS_PER_CHUNK_TAPS, (k * k, c, o), dtype)
  return dk.reshape(k, k, c, o)


def _transposed_padding(k: int, padding: Padding) -> Padding:
  # y = pad(x) ⋆ K 'VALID'  =>  dL/dx = pad'(g) ⋆ flip(K)ᵀ with k-1-p on each side.
  if any(p > k - 1 for side in padding for p in side):
    raise ValueError(f'conv2d padding {padding} exceeds kernel_size - 1 = {k - 1}')
  return tuple((k - 1 - a, k - 1 - b) for a, b in padding)


def input_grad(g: jax.Array, kernel: jax.Array, padding: Padding | None = None) -> jax.Array:
  """dL/dx ``[B, H, W, C]`` of a stride-1 convolution: pad'(g) ``[B, H', W', O]`` ⋆ flip(K)ᵀ.

  It is itself a :func:`conv2d`, so a gradient of a gradient (WGAN-GP's
  penalty, the field's gradient) runs on these forms too: through XLA's own
  convolution autodiff the penalty's second-order kernel gradient made a
  DCGAN critic step 30× slower inside a loop (2.98 s against 0.09 s).
  """
  k = kernel.shape[0]
  return conv2d(g, jnp.flip(kernel, (0, 1)).transpose(0, 1, 3, 2),
                _transposed_padding(k, padding or _same(k)))


@functools.partial(jax.custom_vjp, nondiff_argnums=(2,))
def conv2d(x: jax.Array, kernel: jax.Array, padding: Padding) -> jax.Array:
  """y = pad(x) ⋆ K, stride 1; x ``[B, H, W, C]``, K ``[k, k, C, O]``, padding ``((t, b), (l, r))``."""
  return conv_padded(x, kernel, padding)


def _fwd(x, kernel, padding):
  return conv_padded(x, kernel, padding), (x, kernel)


def _bwd(padding, res, g):
  x, kernel = res
  dk = kernel_grad(x, g, kernel.shape[0], padding).astype(kernel.dtype)
  return input_grad(g, kernel, padding), dk


conv2d.defvjp(_fwd, _bwd)


def conv2d_same(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """y = x ⋆ K with stride 1 and 'SAME' padding; x ``[B, H, W, C]``, K ``[k, k, C, O]`` (k odd)."""
  return conv2d(x, kernel, _same(kernel.shape[0]))


def conv_avgpool2(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """avgpool₂(x ⋆ K): a 'SAME' k×k convolution, then 2×2 average pooling; H, W even.

  Pooling a convolution is one stride-2 convolution with the (k+1)×(k+1) kernel
  K' = ¼ Σ_{a,b∈{0,1}} shift_{ab}(K); on the space-to-depth input (2×2 pixel
  blocks as 4C channels) that is a stride-1 ((k+1)/2)² convolution, so it needs
  only 4(k+1)²/(4k²) of the multiply-adds (16/36 at k = 3) and never builds the
  full-size output. Same sums, another order: equal within float32 rounding.

  Args:
    x: ``[B, H, W, C]``.
    kernel: ``[k, k, C, O]``, k odd.

  Returns:
    ``[B, H/2, W/2, O]``.
  """
  k, _, c, o = kernel.shape
  b, h, w, _ = x.shape
  if h % 2 or w % 2 or k % 2 == 0:
    raise ValueError(f'conv_avgpool2 needs even H, W and odd k, got {x.shape} and k = {k}')
  p = k // 2
  box = jnp.asarray(_box(k), kernel.dtype)  # [k+1, k]
  k4 = jnp.einsum('up,vq,pqco->uvco', box, box, kernel) / 4  # [k+1, k+1, C, O]
  m = (k + 1) // 2
  # K'[2U+α, 2V+β, c] -> K''[U, V, (α, β, c)], the space-to-depth kernel.
  k2 = k4.reshape(m, 2, m, 2, c, o).transpose(0, 2, 1, 3, 4, 5).reshape(m, m, 4 * c, o)
  xp = _pad(x, ((p, p), (p, p)))  # [B, H+2p, W+2p, C]
  hs, ws = (h + 2 * p) // 2, (w + 2 * p) // 2
  xs = xp.reshape(b, hs, 2, ws, 2, c).transpose(0, 1, 3, 2, 4, 5).reshape(b, hs, ws, 4 * c)
  return conv2d(xs, k2, ((0, 0), (0, 0)))  # [B, H/2, W/2, O]


def _box(k: int):
  """[k+1, k] 0/1: row u sums the kernel taps p with u - p ∈ {0, 1} (a 2-tap box filter)."""
  return [[1.0 if 0 <= u - q <= 1 else 0.0 for q in range(k)] for u in range(k + 1)]


# Nearest ×2 upsampling then a 3×3 tap: output row 2i+a reads input rows
# floor((2i+a+d-1)/2), d ∈ {0, 1, 2}: for a = 0 rows i-1 (d=0) and i (d=1, 2),
# for a = 1 rows i (d=0, 1) and i+1 (d=2). _PHASE[a][U][d] merges the taps.
_PHASE = (((1.0, 0.0, 0.0), (0.0, 1.0, 1.0)), ((1.0, 1.0, 0.0), (0.0, 0.0, 1.0)))


def upsample2_conv(x: jax.Array, kernel: jax.Array) -> jax.Array:
  """up₂(x) ⋆ K: nearest ×2 upsampling, then a 'SAME' 3×3 convolution.

  Each of the four output phases (a, b) ∈ {0, 1}² (pixel (2i+a, 2j+b)) is a
  2×2 convolution of the low-resolution x with the 3×3 taps merged that read
  the same input pixel; all four are one 2×2 convolution of x padded by 1
  with 4·O output channels, read back at offsets (a, b). That is
  16(H+1)(W+1)/(36 HW) of the multiply-adds (0.56 at H = 8, 0.50 at 16) and
  the 4×-size upsampled x is never built. Same sums, another order: equal
  within float32 rounding.

  Args:
    x: ``[B, H, W, C]``.
    kernel: ``[3, 3, C, O]``.

  Returns:
    ``[B, 2H, 2W, O]``.
  """
  k, _, c, o = kernel.shape
  b, h, w, _ = x.shape
  if k != 3:
    raise ValueError(f'upsample2_conv needs a 3×3 kernel, got kernel_size = {k}')
  ph = jnp.asarray(_PHASE, kernel.dtype)  # [a, U, d]
  kp = jnp.einsum('aup,bvq,pqco->uvcabo', ph, ph, kernel).reshape(2, 2, c, 4 * o)
  y = conv2d(x, kp, ((1, 1), (1, 1)))  # [B, H+1, W+1, 4·O], channels (a, b, o)
  y = y.reshape(b, h + 1, w + 1, 2, 2, o)
  rows = [jnp.stack([y[:, a:a + h, bb:bb + w, a, bb] for bb in range(2)], axis=3)
          for a in range(2)]  # 2 × [B, H, W, 2(b), O]
  return jnp.stack(rows, axis=2).reshape(b, 2 * h, 2 * w, o)  # [B, H, 2(a), W, 2(b), O]


class Conv(nn.Module):
  """Drop-in for ``nn.Conv(features, (k, k), padding='SAME', use_bias=False)``.

  Same parameter name and layout (``kernel`` ``[k, k, C, O]``), so spectral
  norm and checkpoints are interchangeable with ``nn.Conv``. ``resample``
  fuses a 2× resampling into the convolution: ``'up2'`` is nearest
  upsampling before it (:func:`upsample2_conv`), ``'pool2'`` 2×2 average
  pooling after it (:func:`conv_avgpool2`); ``'none'`` neither.
  """

  features: int
  kernel_size: int
  kernel_init: nn.initializers.Initializer = nn.initializers.lecun_normal()
  resample: str = 'none'

  @nn.compact
  def __call__(self, x):
    if self.kernel_size % 2 != 1:
      raise ValueError(f'Conv kernel_size must be odd, got {self.kernel_size}')
    if self.resample not in ('none', 'up2', 'pool2'):
      raise ValueError(f"Conv resample must be 'none', 'up2' or 'pool2', got {self.resample!r}")
    kernel = self.param('kernel', self.kernel_init,
                        (self.kernel_size, self.kernel_size, x.shape[-1], self.features))
    if self.resample == 'up2':
      return upsample2_conv(x, kernel)
    if self.resample == 'pool2':
      return conv_avgpool2(x, kernel)
    if self.kernel_size == 1:
      return x @ kernel[0, 0]  # a 1×1 convolution is a matmul (fast in loops too)
    return conv2d_same(x, kernel)
