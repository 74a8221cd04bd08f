r"""GAN (Goodfellow et al. 2014): minimax and non-saturating generator losses.

With D's logit d (real = 1) and D = σ(d), written with softplus so that no
log of a saturated sigmoid is ever taken (log σ(d) = −softplus(−d),
log(1 − σ(d)) = −softplus(d)):

* D minimises  E_p softplus(−d(x)) + E_q softplus(d(x))
  (= −E_p log D − E_q log(1 − D)); its optimum is d* = log p/q, where
  max_D V = −log 4 + 2·JS(p, q) (:func:`minimax_value`).
* G, ``minimax``: minimises E_z log(1 − D(G(z))) = −E softplus(d(G(z))).
* G, ``non_saturating`` (the logD trick, the paper's practical choice):
  minimises −E_z log D(G(z)) = E softplus(−d(G(z))).

One outer loop = ``g_steps_per_loop`` × (n_critic D steps + 1 G step)
(:mod:`vgrow_jax.adversarial`). Defaults: k = 1 D step per G step
(Goodfellow et al.'s experiments), DCGAN's Adam(2e-4, β = (0.5, 0.999)) for
both nets, batch 64.

References:
  Goodfellow et al. "Generative Adversarial Nets." NeurIPS 2014.
  Radford, Metz, Chintala. "Unsupervised Representation Learning with Deep
  Convolutional Generative Adversarial Networks." ICLR 2016.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from vgrow_jax import adversarial
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib

Array = jax.Array

GENERATOR_LOSSES = ('non_saturating', 'minimax')


@dataclasses.dataclass(frozen=True)
class HParams(adversarial.AdversarialHParams):
  """GAN settings (published defaults).

  Attributes:
    generator_loss: 'non_saturating' (−log D(G(z)), default) or 'minimax'
      (log(1 − D(G(z)))).
  """

  method_name: ClassVar[str] = 'gan'

  generator_loss: str = 'non_saturating'

  def __post_init__(self):
    super().__post_init__()
    self.check_choice('generator_loss', GENERATOR_LOSSES)

  @property
  def logistic_d(self) -> bool:
    return True  # D minimises the logistic loss, real = 1: d* = log p/q


def discriminator_loss(logit_real: Array, logit_fake: Array) -> Array:
  """E_p softplus(−d) + E_q softplus(d) = −(E_p log D + E_q log(1 − D))."""
  return jnp.mean(jax.nn.softplus(-logit_real)) + jnp.mean(jax.nn.softplus(logit_fake))


def minimax_generator_loss(logit_fake: Array) -> Array:
  """E log(1 − D(G(z))) = −E softplus(d)."""
  return -jnp.mean(jax.nn.softplus(logit_fake))


def non_saturating_generator_loss(logit_fake: Array) -> Array:
  """−E log D(G(z)) = E softplus(−d)."""
  return jnp.mean(jax.nn.softplus(-logit_fake))


def minimax_value(logit_real: Array, logit_fake: Array) -> Array:
  r"""V(D, G) = E_p log D + E_q log(1 − D) = −(D's loss).

  At d = log p/q this is C(G) = −log 4 + 2·JS(p, q) (Goodfellow et al., Thm 1).
  """
  return -discriminator_loss(logit_real, logit_fake)


def losses(hp: HParams) -> adversarial.Losses:
  g_loss = (non_saturating_generator_loss if hp.generator_loss == 'non_saturating'
            else minimax_generator_loss)
  return adversarial.Losses(d_loss=discriminator_loss, g_loss=g_loss)


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The GAN :class:`~vgrow_jax.method.Method` with ``cfg.hparams`` settings."""
  hp = cfg.hparams
  return adversarial.make_method('gan', cfg, dataset, hp, losses(hp))
