r"""f-GAN: variational divergence minimisation (Nowozin et al. 2016).

With V the discriminator's raw output and the table of
:mod:`vgrow_jax.fgan_divergences` (P = data, Q = model):

* D maximises F = E_P[g_f(V(x))] − E_Q[f*(g_f(V(x)))] (a lower bound on
  D_f(P‖Q), tight at g_f(V) = f'(p/q)); its loss is −F.
* G, ``minimax``: minimises F, i.e. its Q-part −E_Q[f*(g_f(V(G(z))))].
* G, ``non_saturating`` (default; the paper's §3.2 practical update, the
  generalised logD trick): maximises E_Q[g_f(V(G(z)))], loss
  −E_Q[g_f(V(G(z)))].

For ``divergence='gan'`` these are exactly the GAN's D loss and its
minimax / non-saturating G losses (:mod:`vgrow_jax.gan`).

One outer loop = ``g_steps_per_loop`` × (n_critic D steps + 1 G step)
(:mod:`vgrow_jax.adversarial`; the paper's single-step algorithm is
n_critic = 1). Defaults: DCGAN's Adam(2e-4, β = (0.5, 0.999)), batch 64.

References:
  Nowozin, Cseke, Tomioka. "f-GAN: Training Generative Neural Samplers
  using Variational Divergence Minimization." NeurIPS 2016.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

import jax
import jax.numpy as jnp

from vgrow_jax import adversarial
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import fgan_divergences
from vgrow_jax import method as method_lib

Array = jax.Array

GENERATOR_LOSSES = ('non_saturating', 'minimax')


@dataclasses.dataclass(frozen=True)
class HParams(adversarial.AdversarialHParams):
  """f-GAN settings (published defaults).

  Attributes:
    divergence: one of :data:`vgrow_jax.fgan_divergences.NAMES`. The default
      is reverse KL: KL (the table's first row) went non-finite within 60 loops
      on the toy grid with the published optimiser, so it is opt-in.
    generator_loss: 'non_saturating' (max E_Q g_f(V)) or 'minimax'.
  """

  method_name: ClassVar[str] = 'fgan'

  divergence: str = 'reverse_kl'
  generator_loss: str = 'non_saturating'

  def __post_init__(self):
    super().__post_init__()
    self.check_choice('divergence', fgan_divergences.NAMES)
    self.check_choice('generator_loss', GENERATOR_LOSSES)


def losses(div: fgan_divergences.FDivergence, generator_loss: str) -> adversarial.Losses:
  """D's loss −F and the chosen G loss, on raw outputs V ``[B]``."""

  def d_loss(v_real: Array, v_fake: Array) -> Array:
    return -fgan_divergences.variational_bound(div, v_real, v_fake)

  def g_loss(v_fake: Array) -> Array:
    if generator_loss == 'minimax':
      return -jnp.mean(div.conjugate_of_activation(v_fake))
    return -jnp.mean(div.activation(v_fake))

  return adversarial.Losses(d_loss=d_loss, g_loss=g_loss)


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The f-GAN :class:`~vgrow_jax.method.Method` with ``cfg.hparams`` settings."""
  hp = cfg.hparams
  return adversarial.make_method(
      'fgan', cfg, dataset, hp,
      losses(fgan_divergences.get(hp.divergence), hp.generator_loss))
