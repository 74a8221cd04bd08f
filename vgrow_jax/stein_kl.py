"""Reverse-KL descent with Stein gradient estimates of both scores (docs/math.md §2; Li & Turner, 2018).

The generator q_θ (x = G_θ(z)) minimises KL(q‖p) to the data p. By the
reparameterisation x = G_θ(z) and E_q[∇_θ log q_θ] = 0,

.. math::

  \\nabla_\\theta \\mathrm{KL}(q_\\theta \\| p)
  = \\mathbb{E}_z\\big[(\\nabla_x \\log q(x) - \\nabla_x \\log p(x))^\\top
                      \\partial x / \\partial \\theta\\big]
  \\approx \\frac1K \\sum_k [\\hat g_q(x_k) - \\hat g_p(x_k)]^\\top \\partial x_k / \\partial \\theta,

where, with X = (x_1..x_K) a generated batch and Y a real batch of the same size:

* ĝ_q(X) = −(K_XX + ηI)⁻¹⟨∇, K_XX⟩, the Stein gradient estimator on X
  (:func:`vgrow_jax.stein.stein_score`);
* ĝ_p(x_k) is the estimator fitted on Y and extended out of sample to each
  x_k (:func:`vgrow_jax.stein.stein_score_out_of_sample`; the equation is in
  :mod:`vgrow_jax.stein`).

Both use one kernel, a mixture of IMQ kernels Σ_n (1 + ‖x − y‖²/σ_n²)^(−1/2)
with σ_n² = median pairwise squared distance of X ∪ Y × (0.5, 1, 2, 4).
The step minimises the surrogate (1/K) Σ_k ⟨sg[ĝ_q − ĝ_p](x_k), x_k⟩ (sg =
stop-gradient), whose θ-gradient is the estimate above; its value is not
the KL and means nothing, so the logged ``g_loss`` is instead the score gap
mean_k ‖ĝ_q(x_k) − ĝ_p(x_k)‖, a (Fisher-divergence-like) progress signal that
vanishes when q = p.

Seed MNIST setup: DCGAN generator, nz = 50, Adam lr 5e-5, batch 100 (the
defaults here; the generator is whatever ``cfg.model`` builds). η is not
given by the seed: η = 1 (for a 4-kernel mixture, whose k(x, x) = 4) was the
best of {0.1, 0.3, 1, 3, 10} for the score of N(0, I) at K = 100 in 10-D
(relative error 0.17) and second to η = 3 in 2-D (0.13 vs 0.09); smaller η
is much noisier (0.69 at η = 0.1 in 2-D), larger η shrinks the estimate.
On the 1,024-pixel digits that choice is too small: with the seed's MNIST
setting (``benchmarks/li_stein_mmd.py``, 540 s on one shared CPU core) η = 1
reached classifier score 2.85 (2 seeds) against MMD's 3.48, η = 0.001 2.59,
η = 10 3.72 and η = 1 with σ² factors ÷ 10 3.43 (1 seed each). For η ≫ ‖K‖
the direction tends to (N²/2η)·∇ₓMMD²_V with the same kernel, and η = 10
(cos 0.84 with it) sits between the two.
The default stays η = 1 so that existing runs are unchanged.

References:
  Li, Turner. "Gradient Estimators for Implicit Models." ICLR 2018.
"""

from __future__ import annotations

import dataclasses
from typing import ClassVar, Tuple

import jax
import jax.numpy as jnp

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import generator_loss
from vgrow_jax import kernels
from vgrow_jax import method as method_lib
from vgrow_jax import stein


@dataclasses.dataclass(frozen=True)
class HParams(config_lib.MethodHParams):
  """Settings of KL(q‖p) descent by the Stein gradient estimator.

  Attributes:
    eta: ridge regulariser η of the estimator.
    bandwidth_factors: σ_n² = median sq. distance of X ∪ Y × each factor.
    batch_size: K, generated and real examples per step.
    steps_per_loop: optimiser steps per outer loop.
    g_optimizer: the generator's optimiser (seed: Adam 5e-5).
  """

  method_name: ClassVar[str] = 'stein_kl'

  eta: float = 1.0
  bandwidth_factors: Tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)
  batch_size: int = 100
  steps_per_loop: int = 1
  g_optimizer: config_lib.OptimizerConfig = config_lib.OptimizerConfig(
      name='adam', learning_rate=5e-5)

  def __post_init__(self):
    self.check(self.eta > 0, 'eta', 'must be > 0')
    self.check(len(self.bandwidth_factors) >= 1 and all(f > 0 for f in self.bandwidth_factors),
               'bandwidth_factors', 'must be one or more values > 0')
    self.check(self.batch_size >= 2, 'batch_size', 'must be >= 2')
    self.check(self.steps_per_loop >= 1, 'steps_per_loop', 'must be >= 1')


def kl_direction(x: jax.Array, y: jax.Array, hp: HParams) -> jax.Array:
  """ĝ_q(x_k) − ĝ_p(x_k) ``[K, D]``: the estimated ∇ log q − ∇ log p at generated x ``[K, D]``.

  Args:
    x: generated samples (of q), one a row.
    y: data samples (of p), one a row.
    hp: the estimator's settings.
  """
  profile = kernels.imq_median(jnp.concatenate([x, y]), hp.bandwidth_factors)
  score_q = stein.stein_score(x, profile, eta=hp.eta)
  score_p = stein.stein_score_out_of_sample(x, y, profile, eta=hp.eta)
  return score_q - score_p


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The Stein-KL :class:`~vgrow_jax.method.Method` (settings: ``cfg.methods['stein_kl']``)."""
  hp = cfg.methods.get('stein_kl', HParams())

  def loss_fn(fake, real):
    x = fake.reshape(fake.shape[0], -1)  # [K, D]
    direction = jax.lax.stop_gradient(
        kl_direction(jax.lax.stop_gradient(x), real.reshape(real.shape[0], -1), hp))
    surrogate = jnp.mean(jnp.sum(direction * x, axis=1))
    # Logged as g_loss (it overrides the surrogate's meaningless value).
    return surrogate, {'g_loss': jnp.mean(jnp.linalg.norm(direction, axis=1))}

  return generator_loss.make('stein_kl', cfg, dataset, loss_fn, batch_size=hp.batch_size,
                             steps_per_loop=hp.steps_per_loop, optimizer=hp.g_optimizer)
