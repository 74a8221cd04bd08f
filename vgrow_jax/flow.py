"""The variational gradient flow on particles, as pure functions of a logit.

Conventions (docs/math.md §1): the discriminator logit d(x) is trained with
real = 1, so at the optimum d(x) = log p(x)/q(x) and the density ratio is
r(x) = q(x)/p(x) = exp(-d(x)). The particles follow

.. math::

    x \\leftarrow \\mathrm{clip}\\big(x + \\eta_k\\,[s(d(x))\\, \\nabla_x d(x) + b(x)]
        + \\sqrt{2 \\eta_k \\gamma}\\, \\xi_k\\big), \\qquad \\xi_k \\sim N(0, I),

the residual map T(x) = x + η h(x) with h = s(d)∇d (see
:mod:`vgrow_jax.divergences` for s), optionally with an extra drift b (e.g.
the gradient of a log-prior) and Langevin noise of temperature γ ≥ 0 (the
entropy-regularised flow of DGflow, docs/math.md §1 "Refinement"). With the
defaults (b = 0, γ = 0) it is VGrow's particle move.

Everything here is a pure function of ``logit_fn``: any callable mapping a
batch ``[B, ...]`` to logits ``[B]`` (or ``[B, 1]``) — a Flax ``apply`` with
bound parameters, or a hand-written function. ``logit_fn`` must treat the
samples of a batch independently (no batch statistics), because the field of
the whole batch is computed with one backward pass of the summed logit.
The functions work under ``jax.jit``, ``jax.vmap`` and ``jax.grad``.

Example:

>>> import jax, jax.numpy as jnp
>>> from vgrow_jax import flow
>>> logit_fn = lambda x: -0.5 * jnp.sum(x**2, axis=-1)   # d = log p/q up to a constant
>>> x = jnp.ones((4, 2))
>>> flow.flow_particles(logit_fn, x, 'kl', step_size=0.1, num_steps=3).shape
(4, 2)
>>> etas = jnp.array([0.3, 0.2, 0.1])                      # a [K] schedule
>>> flow.flow_particles(logit_fn, x, 'kl', step_size=etas, num_steps=3).shape
(4, 2)
"""

from __future__ import annotations

import math
from typing import Any, Callable, Optional, Tuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from vgrow_jax import divergences

__all__ = [
    'density_ratio',
    'field_and_logit',
    'vector_field',
    'clip_particles',
    'flow_step',
    'flow_particles',
    'latent_flow',
    'metropolis_latent_flow',
    'standard_normal_log_prob',
]

Array = jax.Array
LogitFn = Callable[[Array], Array]
DriftFn = Callable[[Array], Array]
DivergenceLike = Union[str, divergences.Divergence]
Clip = Optional[Tuple[float, float]]
StepSize = Union[float, Array]


def density_ratio(logit: Array) -> Array:
  """r = q/p = exp(-d) from the logit d = log p/q (real = 1)."""
  return jnp.exp(-logit)


def standard_normal_log_prob(z: Array) -> Array:
  """log N(z; 0, I) up to its constant, −½‖z‖², per sample: ``[B, ...] -> [B]``."""
  return -0.5 * jnp.sum(jnp.square(z).reshape(z.shape[0], -1), axis=1)


def _logits(logit_fn: LogitFn, x: Array, caller: str) -> Array:
  d = logit_fn(x)
  if d.ndim == 2 and d.shape[1] == 1:
    d = d[:, 0]
  if d.shape != (x.shape[0],):
    raise ValueError(
        f'{caller}: logit_fn must map a batch {x.shape} to logits of shape '
        f'({x.shape[0]},), got {d.shape}')
  return d


def _check_shapes(logit_fn: LogitFn, x: Array, drift_fn: Optional[DriftFn],
                  caller: str) -> None:
  """One-line errors for a logit or drift of the wrong shape, before any scan or vjp.

  Raised here, outside JAX's transformations, the message stays the one line
  below (JAX appends a note to errors raised inside them).
  """
  d = jax.eval_shape(logit_fn, x)
  if d.shape not in ((x.shape[0],), (x.shape[0], 1)):
    raise ValueError(f'{caller}: logit_fn must map a batch {x.shape} to logits of shape '
                     f'({x.shape[0]},), got {d.shape}')
  if drift_fn is not None:
    b = jax.eval_shape(drift_fn, x)
    if b.shape != x.shape:
      raise ValueError(f'{caller}: drift_fn must map particles {x.shape} to {x.shape}, '
                       f'got {b.shape}')


def _field(logit_fn: LogitFn, x: Array, div: divergences.Divergence,
           caller: str) -> Tuple[Array, Array]:
  # One backward pass for the batch: the samples are independent, so the
  # gradient of the summed logit is the per-sample gradient.
  d, vjp = jax.vjp(lambda y: _logits(logit_fn, y, caller), x)
  (grad_d,) = vjp(jnp.ones_like(d))
  s = div.scale(d)  # [B]
  h = s.reshape((-1,) + (1,) * (x.ndim - 1)) * grad_d  # [B, ...]
  return h, d


def field_and_logit(
    logit_fn: LogitFn, x: Array, divergence: DivergenceLike
) -> Tuple[Array, Array]:
  """The vector field h(x) = s(d(x)) ∇ₓd(x) and the logit d(x).

  Args:
    logit_fn: batch ``[B, ...]`` -> logits ``[B]``.
    x: particles ``[B, ...]``.
    divergence: a name from :mod:`vgrow_jax.divergences` or a Divergence.

  Returns:
    ``(h, d)`` with h ``[B, ...]`` and d ``[B]``.
  """
  _check_shapes(logit_fn, x, None, 'field_and_logit')
  return _field(logit_fn, x, divergences.get(divergence), 'field_and_logit')


def vector_field(logit_fn: LogitFn, x: Array, divergence: DivergenceLike) -> Array:
  """h(x) = -f''(r)∇r = s(d(x)) ∇ₓ d(x) for every particle of ``x`` ``[B, ...]``.

  >>> import jax.numpy as jnp
  >>> vector_field(lambda x: 2.0 * x[:, 0], jnp.zeros((3, 2)), 'kl')[0].tolist()
  [2.0, 0.0]
  """
  _check_shapes(logit_fn, x, None, 'vector_field')
  return _field(logit_fn, x, divergences.get(divergence), 'vector_field')[0]


def clip_particles(x: Array, clip: Clip) -> Array:
  """x clipped to ``(lo, hi)``, or unchanged when ``clip`` is None."""
  if clip is None:
    return x
  lo, hi = clip
  return jnp.clip(x, lo, hi)


def _has_noise(noise: Any, key: Optional[Array], caller: str) -> bool:
  """Whether the Langevin term is on; a bad γ or a missing key is a one-line error."""
  try:
    value = float(noise)
  except TypeError:  # a traced γ (e.g. under jax.grad): on, and it needs a key
    value = None
  if value is not None:
    if not value >= 0 or not math.isfinite(value):
      raise ValueError(f'{caller}: noise={noise!r} must be a finite γ >= 0')
    if value == 0:
      return False
  if key is None:
    raise ValueError(f'{caller}: noise={noise!r} > 0 needs a key '
                     '(e.g. key=jax.random.PRNGKey(0))')
  return True


def _step(logit_fn: LogitFn, x: Array, div: divergences.Divergence, eta: StepSize,
          clip: Clip, drift_fn: Optional[DriftFn], noise: Any, key: Optional[Array],
          caller: str) -> Array:
  """clip(x + η[h(x) + b(x)] + √(2ηγ) ξ); the extras are skipped when absent."""
  h, _ = _field(logit_fn, x, div, caller)  # [B, ...]
  if drift_fn is not None:
    h = h + drift_fn(x)  # [B, ...] (_check_shapes)
  x_new = x + eta * h
  if key is not None:
    xi = jax.random.normal(key, x.shape, x.dtype)  # [B, ...]
    x_new = x_new + jnp.sqrt(2.0 * eta * noise) * xi
  return clip_particles(x_new, clip)


def flow_step(
    logit_fn: LogitFn,
    x: Array,
    divergence: DivergenceLike,
    *,
    step_size: StepSize,
    clip: Clip = None,
    drift_fn: Optional[DriftFn] = None,
    noise: float = 0.0,
    key: Optional[Array] = None,
) -> Array:
  """One step x ← clip(x + η[h(x) + b(x)] + √(2ηγ) ξ), h = s(d)∇d.

  Args:
    logit_fn: batch ``[B, ...]`` -> logits ``[B]``.
    x: particles ``[B, ...]``.
    divergence: name or Divergence.
    step_size: η > 0 (a scalar).
    clip: optional ``(lo, hi)``: keep particles inside the data range
      (the official code clips images to [-1, 1]).
    drift_fn: optional extra drift b, ``[B, ...] -> [B, ...]`` (e.g. ∇ log prior).
    noise: Langevin temperature γ ≥ 0; with γ > 0 ``key`` is required.
    key: PRNG key of ξ ~ N(0, I).

  Returns:
    Moved particles ``[B, ...]``.

  Raises:
    ValueError: a non-scalar ``step_size``, γ < 0, or γ > 0 without a key.
  """
  if np.ndim(step_size) != 0:
    raise ValueError(f'flow_step: step_size must be a scalar, got shape '
                     f'{np.shape(step_size)} (use flow_particles for a schedule)')
  on = _has_noise(noise, key, 'flow_step')
  _check_shapes(logit_fn, x, drift_fn, 'flow_step')
  return _step(logit_fn, x, divergences.get(divergence), step_size, clip, drift_fn,
               noise, key if on else None, 'flow_step')


def check_schedule(step_size: StepSize, num_steps: Any, caller: str) -> Tuple[int, ...]:
  """The shape of η, after one-line errors for K < 0 or an η neither scalar nor ``[K]``."""
  if not isinstance(num_steps, (int, np.integer)) or num_steps < 0:
    raise ValueError(f'{caller}: num_steps={num_steps!r} must be an int >= 0')
  shape = np.shape(step_size)
  if len(shape) > 1 or (len(shape) == 1 and shape[0] != num_steps):
    raise ValueError(f'{caller}: step_size of shape {shape} must be a scalar or a '
                     f'[num_steps] = [{num_steps}] schedule')
  return shape


def _flow(logit_fn: LogitFn, x: Array, div: divergences.Divergence, *, step_size: StepSize,
          num_steps: int, clip: Clip, drift_fn: Optional[DriftFn], noise: Any,
          key: Optional[Array], return_trajectory: bool, caller: str) -> Array:
  shape = check_schedule(step_size, num_steps, caller)
  keys = jax.random.split(key, num_steps) if _has_noise(noise, key, caller) else None
  _check_shapes(logit_fn, x, drift_fn, caller)
  etas = None if len(shape) == 0 else jnp.asarray(step_size)  # [K]

  def body(y, xs):
    k, eta = xs
    # A scalar η stays a constant of the step (VGrow's move, bit for bit).
    y = _step(logit_fn, y, div, step_size if eta is None else eta, clip, drift_fn,
              noise, k, caller)
    return y, (y if return_trajectory else None)

  out, traj = jax.lax.scan(body, x, (keys, etas), length=num_steps)
  if return_trajectory:
    return jnp.concatenate([x[None], traj], axis=0)
  return out


def flow_particles(
    logit_fn: LogitFn,
    x: Array,
    divergence: DivergenceLike,
    *,
    step_size: StepSize,
    num_steps: int,
    clip: Clip = None,
    drift_fn: Optional[DriftFn] = None,
    noise: float = 0.0,
    key: Optional[Array] = None,
    return_trajectory: bool = False,
) -> Array:
  """K steps of :func:`flow_step` with a fixed logit, by ``lax.scan``.

  .. math::

      x_{k+1} = \\mathrm{clip}\\big(x_k + \\eta_k [s(d(x_k)) \\nabla d(x_k) + b(x_k)]
          + \\sqrt{2 \\eta_k \\gamma}\\, \\xi_k\\big), \\quad k = 0, …, K-1.

  With ``drift_fn`` = ∇log π and γ = 1 (and s∇d = 0) this is the unadjusted
  Langevin algorithm for π; with the defaults it is VGrow's particle move.

  Args:
    logit_fn: batch ``[B, ...]`` -> logits ``[B]``.
    x: particles ``[B, ...]``.
    divergence: name or Divergence.
    step_size: η, a scalar, or η_k as a ``[K]`` schedule.
    num_steps: K ≥ 0 (static).
    clip: optional ``(lo, hi)``, applied after every step.
    drift_fn: optional extra drift b, ``[B, ...] -> [B, ...]`` (e.g. ∇ log prior).
    noise: Langevin temperature γ ≥ 0; with γ > 0 ``key`` is required and
      ξ_k comes from ``jax.random.split(key, K)[k]``.
    key: PRNG key of the noise.
    return_trajectory: return every state, not only the last.

  Returns:
    The particles after K steps ``[B, ...]``, or, with
    ``return_trajectory``, the K + 1 states ``[K + 1, B, ...]`` (the input
    ``x`` first, the result last).

  Raises:
    ValueError: ``num_steps`` < 0, a ``step_size`` that is neither a scalar
      nor ``[num_steps]``, γ < 0, or γ > 0 without a key.
  """
  return _flow(logit_fn, x, divergences.get(divergence), step_size=step_size,
               num_steps=num_steps, clip=clip, drift_fn=drift_fn, noise=noise, key=key,
               return_trajectory=return_trajectory, caller='flow_particles')


def latent_flow(
    logit_fn: LogitFn,
    generator_fn: Callable[[Array], Array],
    z: Array,
    divergence: DivergenceLike,
    *,
    step_size: StepSize,
    num_steps: int,
    log_prior: Optional[Callable[[Array], Array]] = standard_normal_log_prob,
    noise: float = 0.0,
    key: Optional[Array] = None,
    return_trajectory: bool = False,
) -> Array:
  """The flow in a generator's latent space (DGflow, Ansari et al. 2021).

  .. math::

      z_{k+1} = z_k + \\eta_k \\big[s(d(G(z_k)))\\, \\nabla_z d(G(z_k))
          + \\nabla_z \\log p_Z(z_k)\\big] + \\sqrt{2 \\eta_k \\gamma}\\, \\xi_k

  i.e. :func:`flow_particles` on z with the pulled-back logit d∘G and the
  drift ∇log p_Z. Why the prior term: for the KL (s = 1) the drift is then
  ∇_z log[p_Z(z) e^{d(G(z))}], and with γ = 1 the chain's stationary law is
  p_Z(z) e^{d(G(z))} / Z, whose image under G is the data law p when
  d = log p/q_G is exact (the energy of Che et al. 2020's DDLS); with
  γ < 1 it concentrates on that law's modes. DGflow's released code
  (clear-nus/DGflow, dgflow.py) has no prior term: ``log_prior=None``
  reproduces it (z ← z + η s∇_z d(G(z)) + √(2ηγ) ξ; DGflow's defaults are
  η = 0.1, γ = 0.01, 25 steps). It follows the first variation of D_f at the
  latent law the logit was fitted to, so it suits a few steps, not a chain
  run to stationarity.

  Args:
    logit_fn: samples ``[B, ...]`` -> logits ``[B]`` (d = log p/q, real = 1).
    generator_fn: latents ``[B, nz]`` -> samples ``[B, ...]`` (no batch
      statistics: G in evaluation mode).
    z: latents ``[B, nz]``.
    divergence: name or Divergence.
    step_size: η, a scalar or a ``[K]`` schedule.
    num_steps: K ≥ 0 (static).
    log_prior: ``[B, nz] -> [B]``, log p_Z up to a constant; the default
      is N(0, I) (−½‖z‖²); None drops the prior term.
    noise: γ ≥ 0; with γ > 0 ``key`` is required.
    key: PRNG key of the noise.
    return_trajectory: return ``[K + 1, B, nz]`` (the input first).

  Returns:
    The moved latents ``[B, nz]`` (samples are ``generator_fn`` of them), or
    the trajectory ``[K + 1, B, nz]``.

  Raises:
    ValueError: as :func:`flow_particles`, naming ``latent_flow``.
  """
  drift_fn = None
  if log_prior is not None:
    drift_fn = jax.grad(lambda y: jnp.sum(log_prior(y)))  # [B, nz]: samples are independent
  return _flow(lambda y: logit_fn(generator_fn(y)), z, divergences.get(divergence),
               step_size=step_size, num_steps=num_steps, clip=None, drift_fn=drift_fn,
               noise=noise, key=key, return_trajectory=return_trajectory,
               caller='latent_flow')


def metropolis_latent_flow(
    logit_fn: LogitFn,
    generator_fn: Callable[[Array], Array],
    z: Array,
    divergence: DivergenceLike = 'kl',
    *,
    step_size: StepSize,
    num_steps: int,
    key: Array,
    noise: float = 1.0,
    log_prior: Callable[[Array], Array] = standard_normal_log_prob,
) -> Tuple[Array, Array]:
  """:func:`latent_flow` with noise, each move accepted or rejected (MALA).

  The target is π(z)^{1/γ} with π(z) ∝ p_Z(z)·e^{F(d(G(z)))}, F the
  divergence's tilt (F' = s; F(d) = d for the KL). A move proposes latent
  Langevin's step and accepts it with probability

  .. math::

      \\alpha = \\min\\Big(1, \\exp\\Big[\\frac{U(z') - U(z)}{\\gamma}
          - \\frac{\\lVert z - \\mu(z')\\rVert^2 - \\lVert z' - \\mu(z)\\rVert^2}
                 {4 \\eta_k \\gamma}\\Big]\\Big),
      \\quad U = \\log p_Z + F(d \\circ G),\\quad
      \\mu(z) = z + \\eta_k \\nabla U(z),

  z' = μ(z) + √(2η_kγ) ξ_k (Roberts and Tweedie 1996). Unadjusted, the same
  chain samples π^{1/γ} only as η → 0: on N(0, I) alone (d ≡ 0) its
  stationary variance is 2γ/(2 − η); the accept step makes π^{1/γ}
  exactly invariant for any η, and its rate says how far the unadjusted
  chain is from it.

  Args:
    logit_fn: samples ``[B, ...]`` -> logits ``[B]`` (d = log p/q, real = 1).
    generator_fn: latents ``[B, nz]`` -> samples ``[B, ...]`` (no batch
      statistics: each chain must not see the others).
    z: latents ``[B, nz]``, B independent chains.
    divergence: name or Divergence with a ``tilt``.
    step_size: η > 0, a scalar or a ``[K]`` schedule.
    num_steps: K ≥ 0 (static).
    key: PRNG key of the proposals and the accept draws.
    noise: γ > 0, the temperature.
    log_prior: ``[B, nz] -> [B]``, log p_Z up to a constant (default N(0, I)).

  Returns:
    ``(z, accepted)``: the latents after K steps ``[B, nz]`` and the
    fraction of each chain's K proposals accepted ``[B]``.

  Raises:
    ValueError: a divergence without a tilt, γ <= 0, or as
      :func:`flow_particles` (naming ``metropolis_latent_flow``).
  """
  caller = 'metropolis_latent_flow'
  div = divergences.get(divergence)
  if div.tilt is None:
    raise ValueError(f'{caller}: divergence {div.name!r} has no tilt F (F\' = s) for the '
                     f'accept step; use one of {list(divergences.NAMES)}')
  try:
    gamma = float(noise)
  except TypeError:
    raise ValueError(f'{caller}: noise={noise!r} must be a concrete γ > 0') from None
  if not (gamma > 0 and math.isfinite(gamma)):
    raise ValueError(f'{caller}: noise={noise!r} must be a finite γ > 0')
  check_schedule(step_size, num_steps, caller)
  if key is None:
    raise ValueError(f'{caller}: needs a key (e.g. key=jax.random.PRNGKey(0))')
  logit = lambda y: logit_fn(generator_fn(y))
  _check_shapes(logit, z, None, caller)
  etas = jnp.broadcast_to(jnp.asarray(step_size, z.dtype), (num_steps,))  # [K]
  flat = lambda a: a.reshape(a.shape[0], -1)

  def potential(y):
    """U(y) ``[B]`` and ∇U(y) ``[B, nz]``: the chains are independent, one backward pass."""
    u, vjp = jax.vjp(lambda v: log_prior(v) + div.tilt(_logits(logit, v, caller)), y)
    (grad,) = vjp(jnp.ones_like(u))
    return u, grad

  def body(carry, xs):
    y, u, g, n_acc = carry
    k, eta = xs
    k_prop, k_acc = jax.random.split(k)
    mean = y + eta * g
    y_new = mean + jnp.sqrt(2.0 * eta * gamma) * jax.random.normal(k_prop, y.shape, y.dtype)
    u_new, g_new = potential(y_new)
    back = jnp.sum(jnp.square(flat(y - y_new - eta * g_new)), axis=1)  # [B]
    fwd = jnp.sum(jnp.square(flat(y_new - mean)), axis=1)  # [B]
    log_alpha = (u_new - u) / gamma - (back - fwd) / (4.0 * eta * gamma)
    # A NaN proposal (e.g. an overflowing tilt) is rejected, never accepted.
    accept = jnp.log(jax.random.uniform(k_acc, u.shape)) < jnp.nan_to_num(log_alpha, nan=-jnp.inf)
    pick = lambda a, b: jnp.where(accept.reshape((-1,) + (1,) * (a.ndim - 1)), a, b)
    return (pick(y_new, y), pick(u_new, u), pick(g_new, g), n_acc + accept), None

  u0, g0 = potential(z)
  (out, _, _, n_acc), _ = jax.lax.scan(
      body, (z, u0, g0, jnp.zeros(z.shape[0], jnp.int32)),
      (jax.random.split(key, num_steps), etas), length=num_steps)
  return out, n_acc / max(num_steps, 1)
