r"""WGAN-GP: the Wasserstein critic with a gradient penalty (Gulrajani et al. 2017).

Critic loss (minimised):

.. math::
   E_q f(\tilde x) - E_p f(y)
   + \lambda\, E_{\hat x} (\lVert \nabla_{\hat x} f(\hat x) \rVert_2 - 1)^2,
   \quad \hat x = t y + (1 - t) \tilde x,\ t \sim U[0, 1] \text{ per example},

generator loss −E_q f(G(z)) (:mod:`vgrow_jax.wgan`'s losses plus
:func:`vgrow_jax.adversarial.gradient_penalty`). Published defaults
(Algorithm 1): λ = 10, n_critic = 5, Adam(1e-4, β = (0, 0.9)), batch 64.
The critic must not use batch statistics (the paper's advice); the nets here
have none in D.

References:
  Gulrajani, Ahmed, Arjovsky, Dumoulin, Courville. "Improved Training of
  Wasserstein GANs." NeurIPS 2017.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar

from vgrow_jax import adversarial
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib
from vgrow_jax import wgan

GP_ADAM = config_lib.OptimizerConfig(name='adam', learning_rate=1e-4, b1=0.0, b2=0.9)


@dataclasses.dataclass(frozen=True)
class HParams(adversarial.AdversarialHParams):
  """WGAN-GP settings (published defaults).

  Attributes:
    gp_weight: λ, the gradient-penalty coefficient.
  """

  method_name: ClassVar[str] = 'wgan_gp'

  n_critic: int = 5
  g_optimizer: config_lib.OptimizerConfig = GP_ADAM
  d_optimizer: config_lib.OptimizerConfig = GP_ADAM
  gp_weight: float = 10.0

  def __post_init__(self):
    super().__post_init__()
    self.check(self.gp_weight > 0, 'gp_weight', 'must be > 0')


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The WGAN-GP :class:`~vgrow_jax.method.Method` with ``cfg.hparams`` settings."""
  hp = cfg.hparams
  return adversarial.make_method('wgan_gp', cfg, dataset, hp, wgan.LOSSES,
                                 gradient_penalty_weight=hp.gp_weight)
