"""Generators and discriminators (Flax Linen) and a functional wrapper.

Every module is called as ``module.apply(variables, x, train=...)``; the
mutable collection ``batch_stats`` holds BatchNorm running statistics and the
spectral-norm power-iteration vectors. :class:`Net` hides that behind two
pure functions, ``train_apply`` (updates the state) and ``eval_apply`` (does
not), so the training step never needs to know which layers a net has.

Nets:
  * :class:`MLPGenerator` / :class:`MLPDiscriminator`: vectors (any example
    shape, flattened), configurable width and depth, optional spectral norm.
  * :class:`DCGANGenerator` / :class:`DCGANDiscriminator`: DCGAN-style
    conv nets for square images of side s0·2^k (8, 16, 28, 32, 64, ...),
    BatchNorm in G (batch statistics in ``train_apply``, running averages in
    ``eval_apply``), none in D.
  * :class:`ResNetGenerator` / :class:`ResNetDiscriminator`: the official
    VGrow SN-ResNet pair for 32×32 images (``xjtuygao/VGrow`` network.py),
    at any width, in NHWC layout. Spectral norm on every weight with
    ``sn_power_iterations`` steps, BatchNorm in G only, N(0, 0.02) init.
    The official code applies ``ReLU(inplace=True)`` to a block's input, so
    its shortcut branch also sees the activated input; we compute that same
    function (``shortcut(relu(x))``) and say so here. Convolutions are
    :class:`vgrow_jax.conv.Conv` on CPU (gradients that stay fast inside
    loops) and ``nn.Conv`` elsewhere (``ModelConfig.conv_impl``).
"""

from __future__ import annotations

import math
from typing import Any, Callable, NamedTuple, Tuple

import flax.linen as nn
import jax
import jax.numpy as jnp

from vgrow_jax import config as config_lib
from vgrow_jax import conv as conv_lib

Array = jax.Array

_normal002 = nn.initializers.normal(0.02)


def _activation(name: str) -> Callable[[Array], Array]:
  if name == 'relu':
    return nn.relu
  if name == 'leaky_relu':
    return lambda x: nn.leaky_relu(x, 0.2)
  raise ValueError(f'unknown activation {name!r}; expected relu or leaky_relu')


class _MaybeSN(nn.Module):
  """A layer, spectrally normalised when ``sn_steps`` > 0."""

  layer: nn.Module
  sn_steps: int

  @nn.compact
  def __call__(self, x, *, train: bool):
    if self.sn_steps <= 0:
      return self.layer(x)
    return nn.SpectralNorm(self.layer, n_steps=self.sn_steps)(x, update_stats=train)


class MLPGenerator(nn.Module):
  """z ``[B, nz]`` -> x ``[B, *out_shape]`` through ``depth`` hidden layers."""

  out_shape: Tuple[int, ...]
  width: int = 256
  depth: int = 3
  activation: str = 'relu'
  output_tanh: bool = False

  @nn.compact
  def __call__(self, z, *, train: bool = False):
    del train
    act = _activation(self.activation)
    h = z
    for _ in range(self.depth):
      h = act(nn.Dense(self.width)(h))
    h = nn.Dense(math.prod(self.out_shape))(h)
    if self.output_tanh:
      h = jnp.tanh(h)
    return h.reshape((z.shape[0],) + tuple(self.out_shape))


class MLPDiscriminator(nn.Module):
  """x ``[B, ...]`` -> logit ``[B]`` (real = 1), computed on ``input_scale · x``."""

  width: int = 256
  depth: int = 3
  activation: str = 'relu'
  sn_steps: int = 0
  input_scale: float = 1.0

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    act = _activation(self.activation)
    h = self.input_scale * x.reshape((x.shape[0], -1))
    for _ in range(self.depth):
      h = act(_MaybeSN(nn.Dense(self.width), self.sn_steps)(h, train=train))
    return _MaybeSN(nn.Dense(1), self.sn_steps)(h, train=train)[:, 0]


def _upsample2(x):  # nearest neighbour, [B, H, W, C] -> [B, 2H, 2W, C]
  return jnp.repeat(jnp.repeat(x, 2, axis=1), 2, axis=2)


def _avgpool2(x):
  return nn.avg_pool(x, (2, 2), strides=(2, 2))


def _sn_conv(features, kernel, sn_steps, conv_impl, resample='none'):
  """A (spectrally normalised) 'SAME' conv; ``resample`` 'up2' upsamples before it, 'pool2' pools after.

  The custom convolution fuses the resampling into the convolution (fewer
  multiply-adds, :mod:`vgrow_jax.conv`); XLA's is the plain composition, the
  reference the tests compare it with. Both hold the same ``kernel``.
  """
  if conv_impl != 'xla':
    return _MaybeSN(conv_lib.Conv(features, kernel, kernel_init=_normal002, resample=resample),
                    sn_steps)
  sn = _MaybeSN(nn.Conv(features, (kernel, kernel), padding='SAME', use_bias=False,
                        kernel_init=_normal002), sn_steps)
  if resample == 'up2':
    return lambda x, *, train: sn(_upsample2(x), train=train)
  if resample == 'pool2':
    return lambda x, *, train: _avgpool2(sn(x, train=train))
  return sn


class _ResBlockUp(nn.Module):
  width: int
  sn_steps: int
  conv_impl: str

  @nn.compact
  def __call__(self, x, *, train: bool):
    x = nn.relu(x)
    # conv1×1(upsample(x)) = upsample(conv1×1(x)) for nearest-neighbour upsampling:
    # a quarter of the multiply-adds, and no second full-size copy of the upsampled x.
    shortcut = _upsample2(_sn_conv(self.width, 1, self.sn_steps, self.conv_impl)(x, train=train))
    # upsample-then-conv as one convolution per output phase (16/36 of the multiply-adds).
    h = _sn_conv(self.width, 3, self.sn_steps, self.conv_impl, 'up2')(x, train=train)
    h = nn.BatchNorm(use_running_average=not train, momentum=0.9, epsilon=1e-5,
                     scale_init=lambda k, s, d=jnp.float32: 1 + 0.02 * jax.random.normal(k, s, d))(h)
    h = _sn_conv(self.width, 3, self.sn_steps, self.conv_impl)(nn.relu(h), train=train)
    return h + shortcut


class ResNetGenerator(nn.Module):
  """Official SN-ResNet G: z ``[B, nz]`` -> images ``[B, 32, 32, C]`` in [-1, 1]."""

  channels: int = 3
  width: int = 128
  sn_steps: int = 5
  conv_impl: str = 'custom_vjp'

  @nn.compact
  def __call__(self, z, *, train: bool = False):
    dense = nn.Dense(16 * self.width, kernel_init=_normal002,
                     bias_init=nn.initializers.zeros)
    h = _MaybeSN(dense, self.sn_steps)(z, train=train)
    # PyTorch views the 16·ngf vector as [ngf, 4, 4]; keep that order, then NHWC.
    h = h.reshape(z.shape[0], self.width, 4, 4).transpose(0, 2, 3, 1)  # [B, 4, 4, W]
    for _ in range(3):
      h = _ResBlockUp(self.width, self.sn_steps, self.conv_impl)(h, train=train)  # -> [B, 32, 32, W]
    h = _sn_conv(self.channels, 3, self.sn_steps, self.conv_impl)(nn.relu(h), train=train)
    return jnp.tanh(h)


class _ResBlockDown(nn.Module):
  width: int
  sn_steps: int
  down: bool
  first: bool
  conv_impl: str

  @nn.compact
  def __call__(self, x, *, train: bool):
    if not self.first:
      x = nn.relu(x)
    h = _sn_conv(self.width, 3, self.sn_steps, self.conv_impl)(x, train=train)
    # conv-then-pool as one stride-2 convolution (16/36 of the multiply-adds).
    h = _sn_conv(self.width, 3, self.sn_steps, self.conv_impl,
                 'pool2' if self.down else 'none')(nn.relu(h), train=train)
    if self.down:
      # avgpool(conv1×1(x)) = conv1×1(avgpool(x)): both are linear, one mixes pixels,
      # the other channels; pooling first is a quarter of the multiply-adds.
      shortcut = _sn_conv(self.width, 1, self.sn_steps, self.conv_impl)(_avgpool2(x), train=train)
    else:
      shortcut = x
    return h + shortcut


class ResNetDiscriminator(nn.Module):
  """Official SN-ResNet D: images ``[B, 32, 32, C]`` -> logit ``[B]``."""

  width: int = 128
  sn_steps: int = 5
  conv_impl: str = 'custom_vjp'

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    h = x
    for i, down in enumerate((True, True, False, False)):
      h = _ResBlockDown(self.width, self.sn_steps, down=down, first=i == 0,
                        conv_impl=self.conv_impl)(h, train=train)
    h = nn.relu(h).sum(axis=(1, 2))  # [B, W]
    dense = nn.Dense(1, kernel_init=_normal002, bias_init=nn.initializers.zeros)
    return _MaybeSN(dense, self.sn_steps)(h, train=train)[:, 0]


def dcgan_plan(size: int) -> Tuple[int, int]:
  """(s0, k): a DCGAN grows s0×s0 → size×size by k doublings, 4 ≤ s0 < 8 (or s0 odd).

  32 → (4, 3), 64 → (4, 4), 28 → (7, 2), 8 → (4, 1).
  """
  s0, k = size, 0
  while s0 % 2 == 0 and s0 // 2 >= 4:
    s0, k = s0 // 2, k + 1
  return s0, k


def _bn():
  # PyTorch's BatchNorm2d defaults (momentum 0.1 there is 0.9 here).
  return nn.BatchNorm(momentum=0.9, epsilon=1e-5)


class DCGANGenerator(nn.Module):
  """DCGAN-style G: z ``[B, nz]`` -> images ``[B, S, S, C]`` in [-1, 1].

  Dense to ``[s0, s0, width·2^(k-1)]``, then k × (nearest ×2 upsampling,
  3×3 conv, BatchNorm, ReLU) halving the channels down to ``width``, then a
  3×3 conv to C and tanh (``dcgan_plan`` gives s0, k). Upsampling by
  resize-convolution instead of DCGAN's fractionally-strided convolutions
  (no checkerboard artefacts, and the convolutions stay stride-1 so their
  gradients are fast inside XLA:CPU loops, :mod:`vgrow_jax.conv`).
  """

  out_shape: Tuple[int, int, int]
  width: int = 64
  conv_impl: str = 'custom_vjp'

  @nn.compact
  def __call__(self, z, *, train: bool = False):
    size, _, channels = self.out_shape
    s0, k = dcgan_plan(size)
    ch = self.width * 2 ** max(k - 1, 0)
    h = nn.Dense(s0 * s0 * ch, kernel_init=_normal002)(z).reshape(z.shape[0], s0, s0, ch)
    h = nn.relu(_bn()(h, use_running_average=not train))  # [B, s0, s0, ch]
    for i in range(k):
      ch = self.width * 2 ** (k - 1 - i)
      h = _sn_conv(ch, 3, 0, self.conv_impl, 'up2')(h, train=train)
      h = nn.relu(_bn()(h, use_running_average=not train))
    h = _sn_conv(channels, 3, 0, self.conv_impl)(h, train=train)  # [B, S, S, C]
    return jnp.tanh(h)


class DCGANDiscriminator(nn.Module):
  """DCGAN-style D: images ``[B, S, S, C]`` -> logit ``[B]`` (real = 1).

  k × (3×3 conv, LeakyReLU 0.2, 2×2 average pooling) doubling the channels
  from ``width``, then a dense logit, computed on ``input_scale · x``. No
  BatchNorm: the flow needs each sample's logit to depend on that sample
  only. Spectral norm optional.
  """

  width: int = 64
  sn_steps: int = 0
  conv_impl: str = 'custom_vjp'
  input_scale: float = 1.0

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    _, k = dcgan_plan(x.shape[1])
    h = x if self.input_scale == 1.0 else self.input_scale * x
    for i in range(k):
      h = _sn_conv(self.width * 2 ** i, 3, self.sn_steps, self.conv_impl)(h, train=train)
      h = _avgpool2(nn.leaky_relu(h, 0.2))
    h = h.reshape(h.shape[0], -1)  # [B, s0·s0·width·2^(k-1)]
    dense = nn.Dense(1, kernel_init=_normal002)
    return _MaybeSN(dense, self.sn_steps)(h, train=train)[:, 0]


class Net(NamedTuple):
  """A module as pure functions of (params, state).

  Attributes:
    module: the Flax module.
    init: ``key, example -> (params, state)``.
    train_apply: ``params, state, x -> (y, new_state)`` (batch statistics,
      power iterations updated).
    eval_apply: ``params, state, x -> y`` (state read only).
  """

  module: nn.Module
  init: Callable[..., Tuple[Any, Any]]
  train_apply: Callable[..., Tuple[Array, Any]]
  eval_apply: Callable[..., Array]


def as_net(module: nn.Module) -> Net:
  """Wraps a module taking ``(x, *, train)`` into a :class:`Net`."""

  def init(key, example):
    variables = module.init({'params': key}, example, train=False)
    params = variables['params']
    state = {k: v for k, v in variables.items() if k != 'params'}
    return params, state

  def train_apply(params, state, x):
    y, new_state = module.apply({'params': params, **state}, x, train=True,
                                mutable=list(state.keys()))
    return y, dict(new_state)

  def eval_apply(params, state, x):
    return module.apply({'params': params, **state}, x, train=False)

  return Net(module, init, train_apply, eval_apply)


def build(cfg: config_lib.ModelConfig, data_shape: Tuple[int, ...]) -> Tuple[Net, Net]:
  """The (generator, discriminator) pair a :class:`ModelConfig` names.

  Raises:
    ValueError: resnet_sn with data that is not ``[32, 32, C]``; dcgan with
      data that is not square ``[S, S, C]``, S = s0·2^k.
  """
  if cfg.arch == 'mlp':
    g = MLPGenerator(tuple(data_shape), cfg.g_width, cfg.g_depth, cfg.activation,
                     cfg.output_tanh)
    d = MLPDiscriminator(cfg.d_width, cfg.d_depth, cfg.activation,
                         cfg.sn_power_iterations if cfg.d_spectral_norm else 0,
                         cfg.d_input_scale)
    return as_net(g), as_net(d)
  impl = cfg.conv_impl
  if impl == 'auto':
    impl = 'custom_vjp' if jax.default_backend() == 'cpu' else 'xla'
  if cfg.arch == 'resnet_sn':
    if len(data_shape) != 3 or tuple(data_shape[:2]) != (32, 32):
      raise ValueError(f'model.arch=resnet_sn needs 32x32 images [32, 32, C], '
                       f'got example shape {tuple(data_shape)}')
    g = ResNetGenerator(data_shape[2], cfg.g_width, cfg.sn_power_iterations, impl)
    d = ResNetDiscriminator(cfg.d_width, cfg.sn_power_iterations, impl)
    return as_net(g), as_net(d)
  if cfg.arch == 'dcgan':
    if (len(data_shape) != 3 or data_shape[0] != data_shape[1]
        or dcgan_plan(data_shape[0])[1] == 0):
      raise ValueError(f'model.arch=dcgan needs square images [S, S, C] with S = s0·2^k, '
                       f'k >= 1 (8, 16, 28, 32, 64, ...), got example shape {tuple(data_shape)}')
    g = DCGANGenerator(tuple(data_shape), cfg.g_width, impl)
    d = DCGANDiscriminator(cfg.d_width, cfg.sn_power_iterations if cfg.d_spectral_norm else 0,
                           impl, cfg.d_input_scale)
    return as_net(g), as_net(d)
  raise ValueError(f'unknown model.arch {cfg.arch!r}; expected dcgan, mlp or resnet_sn')


  raise ValueError(f'model.arch={cfg.arch!r} has no VAE encoder; use mlp or resnet_sn')



# --- Encoders (VAE). Kept apart from the G/D nets above: x [B, ...] -> [B, 2·nz]
# (the posterior mean and log-variance, concatenated). They reuse D's
# structural settings (d_width, d_depth; the ResNet D trunk, without spectral norm).


class MLPEncoder(nn.Module):
  """x ``[B, ...]`` -> ``[B, 2·latent_dim]`` through ``depth`` hidden layers."""

  latent_dim: int
  width: int = 256
  depth: int = 3
  activation: str = 'relu'

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    del train
    act = _activation(self.activation)
    h = x.reshape((x.shape[0], -1))
    for _ in range(self.depth):
      h = act(nn.Dense(self.width)(h))
    return nn.Dense(2 * self.latent_dim)(h)


class ResNetEncoder(nn.Module):
  """Images ``[B, 32, 32, C]`` -> ``[B, 2·latent_dim]``: the ResNet D trunk, no spectral norm."""

  latent_dim: int
  width: int = 128
  conv_impl: str = 'custom_vjp'

  @nn.compact
  def __call__(self, x, *, train: bool = False):
    h = x
    for i, down in enumerate((True, True, False, False)):
      h = _ResBlockDown(self.width, 0, down=down, first=i == 0,
                        conv_impl=self.conv_impl)(h, train=train)
    h = nn.relu(h).sum(axis=(1, 2))  # [B, W]
    return nn.Dense(2 * self.latent_dim, kernel_init=_normal002)(h)


def build_encoder(cfg: config_lib.ModelConfig, data_shape: Tuple[int, ...]) -> Net:
  """The encoder that pairs with :func:`build`'s generator in a VAE (2·nz outputs).

  Raises:
    ValueError: resnet_sn with data that is not ``[32, 32, C]``.
  """
  if cfg.arch == 'mlp':
    return as_net(MLPEncoder(cfg.latent_dim, cfg.d_width, cfg.d_depth, cfg.activation))
  if cfg.arch == 'resnet_sn':
    build(cfg, data_shape)  # validates the image shape
    impl = cfg.conv_impl
    if impl == 'auto':
      impl = 'custom_vjp' if jax.default_backend() == 'cpu' else 'xla'
    return as_net(ResNetEncoder(cfg.latent_dim, cfg.d_width, impl))
  raise ValueError(f'model.arch={cfg.arch!r} has no VAE encoder; use mlp or resnet_sn')
