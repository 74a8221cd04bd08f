r"""The f-GAN divergence table: f, its conjugate f*, f' and the output activation g_f.

f-GAN (Nowozin et al. 2016) estimates D_f(P‖Q) = ∫ q f(p/q) (P = data,
Q = model) from below by the Fenchel–Legendre bound

.. math::
   D_f(P \Vert Q) \ge \sup_T\ E_P[T(x)] - E_Q[f^*(T(x))],
   \qquad f^*(t) = \sup_u\ ut - f(u),

tight at T*(x) = f'(p(x)/q(x)). The variational function is
T = g_f(V(x)) with V the discriminator's raw output and g_f an activation
onto the domain of f* (docs/math.md §2):

==========  ===============================  =====================  ===========================
name        f(u)                             f*(t)                  g_f(v)
==========  ===============================  =====================  ===========================
kl          u log u                          exp(t − 1)             v
reverse_kl  −log u                           −1 − log(−t)           −exp(−v)
pearson     (u − 1)²                         t²/4 + t               v
hellinger   (√u − 1)²                        t/(1 − t)              1 − exp(−v)
js          u log u − (u + 1) log((1+u)/2)   −log(2 − exp(t))       log 2 − log(1 + exp(−v))
gan         u log u − (u + 1) log(u + 1)     −log(1 − exp(t))       −log(1 + exp(−v))
==========  ===============================  =====================  ===========================

``conjugate_of_activation(v)`` = f*(g_f(v)) in a form that neither overflows
nor takes the log of 0 (e.g. softplus(v) for gan, v − 1 for reverse_kl).
'hellinger' is the squared Hellinger distance ∫(√p − √q)²; 'js' gives
KL(P‖M) + KL(Q‖M) = 2·JS(P, Q) with M = (P + Q)/2 (the table's f has no ½);
'gan' gives 2·JS(P, Q) − log 4, the GAN's C(G).

References:
  Nowozin, Cseke, Tomioka. "f-GAN: Training Generative Neural Samplers
  using Variational Divergence Minimization." NeurIPS 2016 (Tables 1, 2).
"""

from __future__ import annotations

import math
from typing import Callable, Dict, NamedTuple, Tuple

import jax
import jax.numpy as jnp
from jax.scipy.special import xlogy

Array = jax.Array
Fn = Callable[[Array], Array]

_LOG2 = math.log(2.0)


class FDivergence(NamedTuple):
  """One row of the table (all functions elementwise).

  Attributes:
    name: registry name.
    f: the generator f(u), u > 0, convex with f(1) = 0 (for 'gan',
      f(1) = −log 4: D_gan = 2·JS − log 4).
    f_prime: f'(u); T* = f'(p/q) attains the bound.
    conjugate: f*(t) on its domain.
    activation: g_f(v), ℝ → domain of f*.
    conjugate_of_activation: f*(g_f(v)), numerically stable.
    domain: (lo, hi), the open interval dom f* that g_f maps onto.
  """

  name: str
  f: Fn
  f_prime: Fn
  conjugate: Fn
  activation: Fn
  conjugate_of_activation: Fn
  domain: Tuple[float, float]


_INF = math.inf

_TABLE: Dict[str, FDivergence] = {
    'kl': FDivergence(
        'kl', f=lambda u: xlogy(u, u), f_prime=lambda u: 1.0 + jnp.log(u),
        conjugate=lambda t: jnp.exp(t - 1.0), activation=lambda v: v,
        conjugate_of_activation=lambda v: jnp.exp(v - 1.0), domain=(-_INF, _INF)),
    'reverse_kl': FDivergence(
        'reverse_kl', f=lambda u: -jnp.log(u), f_prime=lambda u: -1.0 / u,
        conjugate=lambda t: -1.0 - jnp.log(-t), activation=lambda v: -jnp.exp(-v),
        conjugate_of_activation=lambda v: v - 1.0, domain=(-_INF, 0.0)),
    'pearson': FDivergence(
        'pearson', f=lambda u: jnp.square(u - 1.0), f_prime=lambda u: 2.0 * (u - 1.0),
        conjugate=lambda t: 0.25 * t * t + t, activation=lambda v: v,
        conjugate_of_activation=lambda v: 0.25 * v * v + v, domain=(-_INF, _INF)),
    'hellinger': FDivergence(
        'hellinger', f=lambda u: jnp.square(jnp.sqrt(u) - 1.0),
        f_prime=lambda u: 1.0 - jax.lax.rsqrt(u),
        conjugate=lambda t: t / (1.0 - t), activation=lambda v: -jnp.expm1(-v),
        conjugate_of_activation=jnp.expm1, domain=(-_INF, 1.0)),
    'js': FDivergence(
        'js', f=lambda u: xlogy(u, u) - xlogy(u + 1.0, (u + 1.0) / 2.0),
        f_prime=lambda u: jnp.log(2.0 * u / (1.0 + u)),
        conjugate=lambda t: -jnp.log(2.0 - jnp.exp(t)),
        activation=lambda v: _LOG2 - jax.nn.softplus(-v),
        # 2 − exp(g(v)) = 2σ(−v), so f*(g(v)) = softplus(v) − log 2.
        conjugate_of_activation=lambda v: jax.nn.softplus(v) - _LOG2,
        domain=(-_INF, _LOG2)),
    'gan': FDivergence(
        'gan', f=lambda u: xlogy(u, u) - xlogy(u + 1.0, u + 1.0),
        f_prime=lambda u: jnp.log(u / (u + 1.0)),
        conjugate=lambda t: -jnp.log1p(-jnp.exp(t)),
        activation=lambda v: -jax.nn.softplus(-v),
        # 1 − exp(g(v)) = σ(−v), so f*(g(v)) = softplus(v).
        conjugate_of_activation=jax.nn.softplus, domain=(-_INF, 0.0)),
}

NAMES = tuple(_TABLE)


def get(name: str) -> FDivergence:
  """The table row called ``name``.

  Raises:
    ValueError: unknown name.
  """
  if name not in _TABLE:
    raise ValueError(f'unknown f-GAN divergence {name!r}; expected one of {list(NAMES)}')
  return _TABLE[name]


def variational_bound(div: FDivergence, v_real: Array, v_fake: Array) -> Array:
  r"""E_P[g_f(V)] − E_Q[f*(g_f(V))] from raw outputs on P- and Q-samples.

  Args:
    div: the divergence.
    v_real: ``[B]`` V(x) at samples of P (data).
    v_fake: ``[B']`` V(x) at samples of Q (model).

  Returns:
    ``[]`` a lower bound on D_f(P‖Q) (in expectation), tight at V = g_f⁻¹(f'(p/q)).
  """
  return jnp.mean(div.activation(v_real)) - jnp.mean(div.conjugate_of_activation(v_fake))
