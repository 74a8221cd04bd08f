r"""WGAN with weight clipping (Arjovsky, Chintala, Bottou 2017).

The critic f (D's raw output) maximises E_p f(x) − E_q f(x), the dual form
of the Wasserstein-1 distance over 1-Lipschitz f, with the Lipschitz
constraint replaced by clipping every weight of f (biases included, as the
reference code's ``p.data.clamp_``) to [−c, c]. G minimises −E_q f(G(z)).

* critic loss:  E_q f − E_p f  (its negative estimates W₁ up to scale);
* generator loss:  −E_q f.

Published defaults (Algorithm 1): c = 0.01, RMSprop lr 5e-5, n_critic = 5,
batch 64. Difference from the paper, stated: the clip is applied at init and
after every critic update (the reference code clamps before each critic
update), so the critic is never evaluated outside the box, the G step
included; the paper's 100 critic steps for the first 25 generator
iterations are not reproduced.

References:
  Arjovsky, Chintala, Bottou. "Wasserstein Generative Adversarial
  Networks." ICML 2017.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar

import jax
import jax.numpy as jnp

from vgrow_jax import adversarial
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib

Array = jax.Array

WGAN_RMSPROP = config_lib.OptimizerConfig(name='rmsprop', learning_rate=5e-5)


@dataclasses.dataclass(frozen=True)
class HParams(adversarial.AdversarialHParams):
  """WGAN settings (published defaults).

  Attributes:
    clip: c, the box [−c, c] for every critic parameter.
  """

  method_name: ClassVar[str] = 'wgan'

  n_critic: int = 5
  g_optimizer: config_lib.OptimizerConfig = WGAN_RMSPROP
  d_optimizer: config_lib.OptimizerConfig = WGAN_RMSPROP
  clip: float = 0.01

  def __post_init__(self):
    super().__post_init__()
    self.check(self.clip > 0, 'clip', 'must be > 0')


def critic_loss(f_real: Array, f_fake: Array) -> Array:
  """E_q f − E_p f (the critic maximises the W₁ dual objective)."""
  return jnp.mean(f_fake) - jnp.mean(f_real)


def generator_loss(f_fake: Array) -> Array:
  """−E_q f(G(z))."""
  return -jnp.mean(f_fake)


LOSSES = adversarial.Losses(d_loss=critic_loss, g_loss=generator_loss)


def clip_weights(params: Any, c: float) -> Any:
  """Every leaf of ``params`` clipped to [−c, c]."""
  return jax.tree.map(lambda p: jnp.clip(p, -c, c), params)


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The WGAN :class:`~vgrow_jax.method.Method` with ``cfg.hparams`` settings."""
  hp = cfg.hparams
  return adversarial.make_method('wgan', cfg, dataset, hp, LOSSES,
                                 d_param_transform=lambda p: clip_weights(p, hp.clip))
