r"""SNGAN: a spectrally normalised discriminator (Miyato et al. 2018).

Every weight W of D (dense kernels; conv kernels reshaped to
(k·k·in, out), which has the singular values of the paper's (out, in·k·k))
is used as W / σ(W), with σ(W) ≈ uᵀWv from power iteration on a persistent
u: v ← Wᵀu/‖Wᵀu‖, u ← Wv/‖Wv‖, ``power_iterations`` times per D step
(:class:`flax.linen.SpectralNorm` via :mod:`vgrow_jax.models`). u and σ live
in D's ``batch_stats`` collection, i.e. in ``state.d_state``: they persist
across steps and outer loops and are checkpointed with the rest of the
state. Works on every D architecture of :mod:`vgrow_jax.models` (this method
switches ``model.d_spectral_norm`` on and sets ``model.sn_power_iterations``;
with ``arch=resnet_sn``, whose G also has spectral norm, G gets the same
iteration count).

Losses (``loss``):

* ``hinge`` (default; the authors' code for their ResNet CIFAR-10 results):
  D minimises E_p relu(1 − d) + E_q relu(1 + d); G minimises −E_q d.
* ``non_saturating``: the paper's "standard" objective: GAN D loss and the
  −log D(G(z)) generator loss (:mod:`vgrow_jax.gan`).

Published defaults (``pfnet-research/sngan_projection``
configs/sn_cifar10_unconditional.yml): hinge, n_critic = 5,
Adam(2e-4, β = (0, 0.9)), batch 64, one power iteration per step. Not
reproduced: that config's linear decay of the learning rate to 0. The G step
reads u (evaluation mode) rather than iterating it again.

References:
  Miyato, Kataoka, Koyama, Yoshida. "Spectral Normalization for Generative
  Adversarial Networks." ICLR 2018.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from vgrow_jax import adversarial
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import gan
from vgrow_jax import method as method_lib

Array = jax.Array

SN_ADAM = config_lib.OptimizerConfig(name='adam', learning_rate=2e-4, b1=0.0, b2=0.9)
LOSS_NAMES = ('hinge', 'non_saturating')


@dataclasses.dataclass(frozen=True)
class HParams(adversarial.AdversarialHParams):
  """SNGAN settings (published defaults).

  Attributes:
    loss: 'hinge' or 'non_saturating'.
    power_iterations: power iterations per D step (persistent u).
  """

  method_name: ClassVar[str] = 'sngan'

  n_critic: int = 5
  g_optimizer: config_lib.OptimizerConfig = SN_ADAM
  d_optimizer: config_lib.OptimizerConfig = SN_ADAM
  loss: str = 'hinge'
  power_iterations: int = 1

  def __post_init__(self):
    super().__post_init__()
    self.check_choice('loss', LOSS_NAMES)
    self.check(self.power_iterations >= 1, 'power_iterations', 'must be >= 1')


def hinge_discriminator_loss(logit_real: Array, logit_fake: Array) -> Array:
  """E_p relu(1 − d) + E_q relu(1 + d)."""
  return jnp.mean(jax.nn.relu(1.0 - logit_real)) + jnp.mean(jax.nn.relu(1.0 + logit_fake))


def hinge_generator_loss(logit_fake: Array) -> Array:
  """−E_q d(G(z))."""
  return -jnp.mean(logit_fake)


def losses(hp: HParams) -> adversarial.Losses:
  if hp.loss == 'hinge':
    return adversarial.Losses(hinge_discriminator_loss, hinge_generator_loss)
  return adversarial.Losses(gan.discriminator_loss, gan.non_saturating_generator_loss)


def model_config(cfg: config_lib.Config, hp: HParams) -> config_lib.ModelConfig:
  """``cfg.model`` with spectral norm on D and ``hp.power_iterations``."""
  return dataclasses.replace(cfg.model, d_spectral_norm=True,
                             sn_power_iterations=hp.power_iterations)


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The SNGAN :class:`~vgrow_jax.method.Method` with ``cfg.hparams`` settings."""
  hp = cfg.hparams
  return adversarial.make_method('sngan', cfg, dataset, hp, losses(hp),
                                 model_cfg=model_config(cfg, hp))
