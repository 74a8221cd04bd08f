"""GMMN: a generator trained by minimising MMD to the data (Li et al., 2015).

Each step draws B latents and B real examples and takes one optimiser step
on G to minimise

.. math::

  L(\\theta) = \\widehat{\\mathrm{MMD}}^2(G_\\theta(z_{1:B}), x_{1:B})
  \\quad\\text{or}\\quad \\sqrt{\\max(\\widehat{\\mathrm{MMD}}^2, 10^{-12})}

with a mixture-of-kernels statistic (U or V, :func:`vgrow_jax.kernels.mmd2`).
GMMN minimised the square root of the V-statistic with a mixture of RBF
kernels exp(−‖x − y‖²/(2σ²)), σ ∈ {2, 5, 10, 20, 40, 80} (pixels in [0, 1]):
those are the defaults. With the U-statistic the square root is taken of
max(MMD², 10⁻¹²), so a negative estimate gives no gradient.

Defaults that the paper does not fix, or that this library cannot express,
are stated: Adam(1e-3) instead of the paper's SGD with momentum (the
optimisers here have no momentum SGD); batch 1000 (GMMN trained with large
minibatches). On the toy suites the bandwidths must match the data scale:
see ``experiments/configs/mmd.py``.

``median_factors`` replaces the fixed bandwidths by the median heuristic of
each step's batches: σ_n² = median_{i<j} ‖w_i − w_j‖² over W = X ∪ Y, times
each factor (a constant for the gradient), as Li & Turner (2018) set MMD's
kernel against their Stein-gradient KL descent (IMQ, factors 0.5, 1, 2, 4).

References:
  Li, Swersky, Zemel. "Generative Moment Matching Networks." ICML 2015.
  Dziugaite, Roy, Ghahramani. "Training generative neural networks via
  Maximum Mean Discrepancy optimization." UAI 2015.
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

KERNELS = ('rbf', 'imq')


@dataclasses.dataclass(frozen=True)
class HParams(config_lib.MethodHParams):
  """GMMN settings (published defaults; see the module docstring).

  Attributes:
    kernel: 'rbf' (Σ exp(−d²/(2σ²))) or 'imq' (Σ (1 + d²/σ²)^(−1/2)).
    bandwidths: the σ of each mixture component (unused with ``median_factors``).
    median_factors: when non-empty, σ_n² = median squared distance of the step's
      generated ∪ real batch × each factor, instead of ``bandwidths``; () keeps
      the fixed bandwidths (GMMN).
    estimator: 'u' (unbiased) or 'v' (biased, ≥ 0; GMMN's).
    sqrt_loss: minimise √MMD² (GMMN) instead of MMD².
    batch_size: generated and real examples per step.
    steps_per_loop: optimiser steps per outer loop.
    g_optimizer: the generator's optimiser.
  """

  method_name: ClassVar[str] = 'mmd'

  kernel: str = 'rbf'
  bandwidths: Tuple[float, ...] = (2.0, 5.0, 10.0, 20.0, 40.0, 80.0)
  median_factors: Tuple[float, ...] = ()
  estimator: str = 'v'
  sqrt_loss: bool = True
  batch_size: int = 1000
  steps_per_loop: int = 1
  g_optimizer: config_lib.OptimizerConfig = config_lib.OptimizerConfig(
      name='adam', learning_rate=1e-3)

  def __post_init__(self):
    self.check_choice('kernel', KERNELS, sort=False)
    self.check(len(self.bandwidths) >= 1 and all(b > 0 for b in self.bandwidths),
               'bandwidths', 'must be one or more values > 0')
    self.check(all(f > 0 for f in self.median_factors), 'median_factors',
               'must be values > 0 (or empty for the fixed bandwidths)')
    self.check_choice('estimator', kernels.ESTIMATORS, sort=False)
    self.check(self.batch_size >= 2, 'batch_size', 'must be >= 2')
    self.check(self.steps_per_loop >= 1, 'steps_per_loop', 'must be >= 1')


def profile_of(hp: HParams, x: jax.Array | None = None, y: jax.Array | None = None
               ) -> kernels.Profile:
  """The kernel profile that ``hp`` names.

  Args:
    hp: the settings.
    x: generated batch ``[N, ...]``; needed (with y) when ``hp.median_factors`` is set.
    y: real batch ``[M, ...]``.
  """
  if hp.median_factors:
    if x is None or y is None:
      raise ValueError('median_factors: the bandwidths need the batches x and y')
    w = jnp.concatenate([x.reshape(x.shape[0], -1), y.reshape(y.shape[0], -1)])  # [N+M, D]
    med = jnp.maximum(jax.lax.stop_gradient(kernels.median_squared_distance(w)), 1e-8)
    sigmas_sq = med * jnp.asarray(hp.median_factors, jnp.float32)  # [n]
    if hp.kernel == 'imq':
      return kernels.imq(sigmas_sq)
    return kernels.rbf(jnp.sqrt(sigmas_sq))
  if hp.kernel == 'rbf':
    return kernels.rbf(hp.bandwidths)
  return kernels.imq(tuple(b * b for b in hp.bandwidths))


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The GMMN :class:`~vgrow_jax.method.Method` (settings: ``cfg.methods['mmd']``)."""
  hp = cfg.methods.get('mmd', HParams())
  fixed = None if hp.median_factors else profile_of(hp)

  def loss_fn(fake, real):
    profile = fixed if fixed is not None else profile_of(hp, fake, real)
    mmd2 = kernels.mmd2(fake, real, profile, estimator=hp.estimator)
    loss = jnp.sqrt(jnp.maximum(mmd2, 1e-12)) if hp.sqrt_loss else mmd2
    return loss, {'mmd2': jax.lax.stop_gradient(mmd2)}

  return generator_loss.make('mmd', cfg, dataset, loss_fn, batch_size=hp.batch_size,
                             steps_per_loop=hp.steps_per_loop, optimizer=hp.g_optimizer)
