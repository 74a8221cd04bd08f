"""The f-divergence table of VGrow: the scale s(d) of the particle vector field.

VGrow moves particles along h(x) = -f''(r) ∇r with r = q/p = exp(-d), d the
discriminator logit (real = 1). Because ∇r = -r ∇d this is

.. math::

    h(x) = s(d(x)) \\nabla_x d(x), \\qquad s(d) = r f''(r), \\quad r = e^{-d}.

The four named divergences use closed forms of s that never overflow:

=========  ==============================  ===============  =====================
name       f(u)                            f''(u)           s(d)
=========  ==============================  ===============  =====================
kl         u log u                         1/u              1
js         u log u - (u+1) log((u+1)/2)    1/(u(u+1))       sigmoid(d)
logd       (u+1) log(u+1) - 2 log 2        1/(1+u)          sigmoid(-d)
jeffreys   (u-1) log u                     (u+1)/u²         1 + e^d (clipped)
=========  ==============================  ===============  =====================

Any other divergence can be given by its f'' alone (:func:`from_f_second`).

References:
  Gao et al., "Deep Generative Learning via Variational Gradient Flow", ICML 2019.
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple, Optional, Union

import jax
import jax.numpy as jnp

Array = jax.Array
ScaleFn = Callable[[Array], Array]


class Divergence(NamedTuple):
  """An f-divergence D_f(q‖p) = ∫ p f(q/p), as VGrow needs it.

  Attributes:
    name: registry name.
    scale: s(d), elementwise on logits ``[B]`` -> ``[B]``.
    f: the generator f(u) (for evaluating D_f itself), or None if unknown.
    f_second: f''(u), elementwise.
    tilt: F(d) with F' = s up to a constant, elementwise, or None if unknown.
      A latent Langevin flow with weight s(d) and the prior's drift samples
      p_Z(z)·e^{F(d(G(z)))} (:func:`vgrow_jax.flow.metropolis_latent_flow`
      needs F for its accept step).
  """

  name: str
  scale: ScaleFn
  f: Optional[Callable[[Array], Array]]
  f_second: Callable[[Array], Array]
  tilt: Optional[ScaleFn] = None


def _xlogx(u: Array) -> Array:
  return jnp.where(u > 0, u * jnp.log(jnp.where(u > 0, u, 1.0)), 0.0)


def kl() -> Divergence:
  """KL(q‖p): f(u) = u log u, s(d) = 1 (the field is the plain ∇d); tilt F(d) = d."""
  return Divergence(
      name='kl',
      scale=jnp.ones_like,
      f=_xlogx,
      f_second=lambda u: 1.0 / u,
      tilt=lambda d: d,
  )


def js() -> Divergence:
  """Jensen–Shannon: s(d) = 1/(1 + r) = sigmoid(d); tilt F(d) = log(1 + e^d)."""
  return Divergence(
      name='js',
      scale=jax.nn.sigmoid,
      f=lambda u: _xlogx(u) - (u + 1) * jnp.log((u + 1) / 2),
      f_second=lambda u: 1.0 / (u * (u + 1)),
      tilt=jax.nn.softplus,
  )


def logd() -> Divergence:
  """The 'logD trick' divergence: s(d) = r/(1 + r) = sigmoid(-d); tilt −log(1 + e^{−d})."""
  return Divergence(
      name='logd',
      scale=lambda d: jax.nn.sigmoid(-d),
      f=lambda u: (u + 1) * jnp.log(u + 1) - 2 * math.log(2.0),
      f_second=lambda u: 1.0 / (1 + u),
      tilt=lambda d: -jax.nn.softplus(-d),
  )


def jeffreys(*, max_scale: Optional[float] = 100.0) -> Divergence:
  """Jeffreys (symmetrised KL): s(d) = 1 + e^d; tilt F(d) = d + e^d.

  Args:
    max_scale: upper clip of s, as in the official code ([1, 100]); None
      leaves s unclipped (it overflows to inf for d > ~88 in float32).
      The tilt is the integral of the clipped s, d + min(e^d, e^c) + e^c·max(d − c, 0)
      with c = log(max_scale − 1), so F' = s everywhere.
  """
  if max_scale is not None and not max_scale > 1:
    raise ValueError(f'jeffreys max_scale must be > 1, got {max_scale!r}')

  def scale(d: Array) -> Array:
    if max_scale is None:
      return 1 + jnp.exp(d)
    # Clip d before exp so that neither the value nor its gradient overflows.
    return 1 + jnp.exp(jnp.minimum(d, math.log(max_scale - 1)))

  def tilt(d: Array) -> Array:
    if max_scale is None:
      return d + jnp.exp(d)
    c = math.log(max_scale - 1)
    return d + jnp.exp(jnp.minimum(d, c)) + (max_scale - 1) * jnp.maximum(d - c, 0.0)

  return Divergence(
      name='jeffreys',
      scale=scale,
      f=lambda u: (u - 1) * jnp.log(u),
      f_second=lambda u: (u + 1) / u**2,
      tilt=tilt,
  )


def from_f_second(
    f_second: Callable[[Array], Array],
    *,
    name: str = 'custom',
    f: Optional[Callable[[Array], Array]] = None,
) -> Divergence:
  """A divergence given only by f''(u) > 0: s(d) = e^{-d} f''(e^{-d}).

  Args:
    f_second: elementwise f''.
    name: a label for logs.
    f: optionally f itself, to evaluate D_f.

  Returns:
    A :class:`Divergence`.

  >>> import jax.numpy as jnp
  >>> div = from_f_second(lambda u: 1.0 / u)   # KL again
  >>> round(float(div.scale(jnp.array(0.3))), 5)
  1.0
  """

  def scale(d: Array) -> Array:
    r = jnp.exp(-d)
    return r * f_second(r)

  return Divergence(name=name, scale=scale, f=f, f_second=f_second)


_REGISTRY: dict[str, Callable[[], Divergence]] = {
    'kl': kl,
    'js': js,
    'logd': logd,
    'jeffreys': jeffreys,
}
_ALIASES = {'jeffrey': 'jeffreys', 'log_d': 'logd', 'jensen_shannon': 'js'}

NAMES = tuple(sorted(_REGISTRY))


def get(name: Union[str, Divergence]) -> Divergence:
  """Looks a divergence up by name (case-insensitive); passes Divergence through.

  Raises:
    ValueError: for an unknown name, naming it and the known ones.
  """
  if isinstance(name, Divergence):
    return name
  if not isinstance(name, str):
    raise TypeError(f'divergence must be a name or a Divergence, got {name!r}')
  key = name.strip().lower()
  key = _ALIASES.get(key, key)
  if key not in _REGISTRY:
    raise ValueError(
        f'unknown divergence {name!r}; expected one of {list(NAMES)}')
  return _REGISTRY[key]()


def f_divergence(div: Divergence, ratio: Array, weights: Optional[Array] = None) -> Array:
  """Monte Carlo D_f(q‖p) = E_p f(r) from ratios r = q/p at samples of p.

  Args:
    div: a divergence with ``f``.
    ratio: r(x) at samples x ~ p, ``[N]``.
    weights: optional normalised quadrature weights ``[N]`` (default uniform).
  """
  if div.f is None:
    raise ValueError(f'divergence {div.name!r} has no f; pass f= to from_f_second')
  vals = div.f(ratio)
  if weights is None:
    return jnp.mean(vals)
  return jnp.sum(weights * vals)
