"""The variational gradient flow on particles, as pure functions of a logit.

Conventions (MATH.md §1): the discriminator logit d(x) is trained with
real = 1, so at the optimum d(x) = log p(x)/q(x) and the density ratio is
r(x) = q(x)/p(x) = exp(-d(x)). The particles follow

.. math::

    x \\leftarrow x + \\eta\\, s(d(x))\\, \\nabla_x d(x),

the residual map T(x) = x + η h(x) (see :mod:`vgrow_jax.divergences` for s).

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
>>> flow.flow(logit_fn, x, 'kl', step_size=0.1, num_steps=3).shape
(4, 2)
"""

from __future__ import annotations

from typing import Callable, Optional, Tuple, Union

import jax
import jax.numpy as jnp

from vgrow_jax import divergences

Array = jax.Array
LogitFn = Callable[[Array], Array]
DivergenceLike = Union[str, divergences.Divergence]
Clip = Optional[Tuple[float, float]]


def density_ratio(logit: Array) -> Array:
  """r = q/p = exp(-d) from the logit d = log p/q (real = 1)."""
  return jnp.exp(-logit)


def _logits(logit_fn: LogitFn, x: Array) -> Array:
  d = logit_fn(x)
  if d.ndim == 2 and d.shape[1] == 1:
    d = d[:, 0]
  if d.shape != (x.shape[0],):
    raise ValueError(
        f'logit_fn must map a batch {x.shape} to logits of shape '
        f'({x.shape[0]},), got {d.shape}')
  return d


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
  div = divergences.get(divergence)
  # One backward pass for the batch: the samples are independent, so the
  # gradient of the summed logit is the per-sample gradient.
  d, vjp = jax.vjp(lambda y: _logits(logit_fn, y), x)
  (grad_d,) = vjp(jnp.ones_like(d))
  s = div.scale(d)  # [B]
  h = s.reshape((-1,) + (1,) * (x.ndim - 1)) * grad_d  # [B, ...]
  return h, d


def vector_field(logit_fn: LogitFn, x: Array, divergence: DivergenceLike) -> Array:
  """h(x) = -f''(r)∇r = s(d(x)) ∇ₓ d(x) for every particle of ``x`` ``[B, ...]``.

  >>> import jax.numpy as jnp
  >>> vector_field(lambda x: 2.0 * x[:, 0], jnp.zeros((3, 2)), 'kl')[0].tolist()
  [2.0, 0.0]
  """
  return field_and_logit(logit_fn, x, divergence)[0]


def clip_particles(x: Array, clip: Clip) -> Array:
  """x clipped to ``(lo, hi)``, or unchanged when ``clip`` is None."""
  if clip is None:
    return x
  lo, hi = clip
  return jnp.clip(x, lo, hi)


def flow_step(
    logit_fn: LogitFn,
    x: Array,
    divergence: DivergenceLike,
    *,
    step_size: float,
    clip: Clip = None,
) -> Array:
  """One residual map T(x) = clip(x + η h(x)).

  Args:
    logit_fn: batch ``[B, ...]`` -> logits ``[B]``.
    x: particles ``[B, ...]``.
    divergence: name or Divergence.
    step_size: η > 0.
    clip: optional ``(lo, hi)``: keep particles inside the data range
      (the official code clips images to [-1, 1]).

  Returns:
    Moved particles ``[B, ...]``.
  """
  h = vector_field(logit_fn, x, divergence)
  return clip_particles(x + step_size * h, clip)


def flow(
    logit_fn: LogitFn,
    x: Array,
    divergence: DivergenceLike,
    *,
    step_size: float,
    num_steps: int,
    clip: Clip = None,
    return_trajectory: bool = False,
) -> Array:
  """K steps of :func:`flow_step` with a fixed logit, by ``lax.scan``.

  Args:
    logit_fn: batch ``[B, ...]`` -> logits ``[B]``.
    x: particles ``[B, ...]``.
    divergence: name or Divergence.
    step_size: η.
    num_steps: K ≥ 0 (static).
    clip: optional ``(lo, hi)``.
    return_trajectory: also return every intermediate state.

  Returns:
    The particles after K steps ``[B, ...]``, or, with
    ``return_trajectory``, the states ``[K + 1, B, ...]`` (the input first).
  """
  if num_steps < 0:
    raise ValueError(f'num_steps must be >= 0, got {num_steps!r}')
  div = divergences.get(divergence)

  def body(y, _):
    y = flow_step(logit_fn, y, div, step_size=step_size, clip=clip)
    return y, (y if return_trajectory else None)

  out, traj = jax.lax.scan(body, x, None, length=num_steps)
  if return_trajectory:
    return jnp.concatenate([x[None], traj], axis=0)
  return out
