"""VGrow's particle phase as pure functions: fit D by logistic regression, then move.

The particle phase of one outer loop (docs/math.md §1) is, K times:

1. U logistic-regression steps of the discriminator, real = 1, particle = 0:

   .. math::

       L(D) = \\mathbb{E}_p \\operatorname{softplus}(-d(y))
            + \\mathbb{E}_q \\operatorname{softplus}(d(\\tilde x))
            \\; [+ \\lambda\\, \\mathrm{GP}],

   on a real batch and a batch drawn without replacement from the particles,
   so that d → log p/q for the current particles q;
2. one move of every particle along the fitted D,
   x ← clip(x + η_k s(d(x)) ∇d(x)) (:mod:`vgrow_jax.flow`).

:func:`refit_flow` is that loop with a step-size schedule η_k. VGrow's outer
loop (:mod:`vgrow_jax.vgrow`) runs it on the pool of G's particles, and its
re-fit sampling (``methods.vgrow.sample_d_steps``) runs it on G's samples with G
frozen; the same functions refine the samples of any generator whose D (or a
fresh one) is given as pure ``train_apply`` / ``eval_apply`` functions.

Nothing here depends on a config: every setting is a keyword.

Example (a linear D, data N(2, I), particles N(0, I)):

>>> import jax, jax.numpy as jnp, optax
>>> train_apply = lambda p, s, x: (x @ p['w'] + p['b'], s)     # [B, 2] -> [B], no state
>>> eval_apply = lambda p, s, x: x @ p['w'] + p['b']
>>> tx = optax.sgd(0.1)
>>> params = {'w': jnp.zeros(2), 'b': jnp.zeros(())}
>>> d = Discriminator(params, {}, tx.init(params))
>>> d_step = make_discriminator_step(
...     train_apply=train_apply, eval_apply=eval_apply, optimizer=tx, batch_size=64,
...     sample_real=lambda data, k, n: data + jax.random.normal(k, (n, 2)))
>>> x = jax.random.normal(jax.random.PRNGKey(0), (256, 2))
>>> d, x, metrics = refit_flow(d, x, jax.random.PRNGKey(1), jnp.full((2,), 2.0),
...                            d_step=d_step, logit_apply=eval_apply, divergence='kl',
...                            d_steps=2, step_size=0.5, num_steps=10)
>>> x.shape, metrics['field_norm'].shape
((256, 2), (10,))
"""

from __future__ import annotations

import math
from typing import Any, Callable, Dict, Mapping, NamedTuple, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from vgrow_jax import adversarial
from vgrow_jax import divergences
from vgrow_jax import flow
from vgrow_jax import sharding

__all__ = [
    'Discriminator',
    'discriminator_loss',
    'make_discriminator_step',
    'refit_flow',
    'watch_discriminator',
]

Array = jax.Array
# (params, state, x [B, ...]) -> (logits [B], new_state): D in training mode.
TrainApply = Callable[[Any, Any, Array], Tuple[Array, Any]]
# (params, state, x [B, ...]) -> logits [B]: D in evaluation mode (state read only).
EvalApply = Callable[[Any, Any, Array], Array]
# (key, x [B, ...]) -> x' [B, ...]: what D is shown (e.g. a random translation).
ViewFn = Callable[[Array, Array], Array]
# (d, particles [N, ...], key, data) -> (d, metrics).
DStep = Callable[['Discriminator', Array, Array, Any], Tuple['Discriminator', Dict[str, Array]]]


class Discriminator(NamedTuple):
  """The discriminator a particle phase fits (a pytree).

  Attributes:
    params: D's parameters.
    state: D's mutable collections (spectral-norm vectors, ...), ``{}`` if none.
    opt_state: the optimiser's state for ``params``.
  """

  params: Any
  state: Any
  opt_state: Any


def discriminator_loss(logit_real: Array, logit_fake: Array) -> Array:
  """Logistic regression, real = 1: E_p softplus(-d) + E_q softplus(d).

  Args:
    logit_real: d on data ``[B]``.
    logit_fake: d on particles ``[B']``.

  Returns:
    ``[]``; minimised by d = log p/q.
  """
  return jnp.mean(jax.nn.softplus(-logit_real)) + jnp.mean(jax.nn.softplus(logit_fake))


def _identity_view(key: Array, x: Array) -> Array:
  del key
  return x


def make_discriminator_step(
    *,
    train_apply: TrainApply,
    eval_apply: EvalApply,
    optimizer: optax.GradientTransformation,
    sample_real: Callable[[Any, Array, int], Array],
    batch_size: int,
    gradient_penalty: float = 0.0,
    gradient_penalty_center: float = 1.0,
    view_fn: Optional[ViewFn] = None,
) -> DStep:
  """One logistic-regression step of D against the particles, as a pure function.

  The returned ``d_step(d, x, key, data) -> (d, metrics)`` draws a real batch
  ``sample_real(data, k_real, B)`` and B particles of ``x`` ``[N, ...]``
  without replacement (B ≤ N), shows D ``view_fn`` of both, and takes one
  ``optimizer`` step on :func:`discriminator_loss` (+ λ·GP at random
  interpolates of the shown batches, :func:`vgrow_jax.adversarial.gradient_penalty`,
  when ``gradient_penalty`` = λ > 0). Real and particle batch go through D in
  one call (D must have no batch statistics), so a spectrally normalised D
  does one power iteration per step. Keys: ``split(key)`` for the two
  batches, ``fold_in(key, 1)`` for the penalty, ``fold_in(key, 2)`` for the
  views.

  Args:
    train_apply: ``(params, state, x) -> (logits [B], state)``.
    eval_apply: ``(params, state, x) -> logits [B]`` (the penalty's D).
    optimizer: an optax transformation for ``params``.
    sample_real: ``(data, key, n) -> [n, ...]`` real examples (e.g.
      :attr:`vgrow_jax.data.Dataset.sample`); ``data`` is the pytree the
      step is called with, so it can be a jit argument.
    batch_size: B, real and particle examples per step.
    gradient_penalty: λ ≥ 0.
    gradient_penalty_center: the norm c the penalty pulls ‖∇d‖ toward: 1 is
      WGAN-GP's two-sided penalty, 0 the zero-centred one.
    view_fn: ``(key, x) -> x'`` applied to both batches (default: identity).

  Returns:
    ``d_step(d, x, key, data) -> (d, metrics)``; metrics ``d_loss``,
    ``logit_real``, ``logit_fake`` (scalars).
  """
  view = view_fn or _identity_view
  b = batch_size

  def d_step(d: Discriminator, x: Array, key: Array,
             data: Any) -> Tuple[Discriminator, Dict[str, Array]]:
    n = x.shape[0]
    k_real, k_fake = jax.random.split(key)
    real = sharding.shard_batch(sample_real(data, k_real, b))  # [B, ...]
    pick = jax.random.choice(k_fake, n, (b,), replace=False)
    fake = sharding.shard_batch(x[pick])  # [B, ...]
    # fold_in leaves the batch draws as they are with or without views/penalty.
    k_real_view, k_fake_view = jax.random.split(jax.random.fold_in(key, 2))
    real = view(k_real_view, real)
    fake = view(k_fake_view, fake)

    def loss_fn(p):
      logits, new_state = train_apply(p, d.state, jnp.concatenate([real, fake]))
      loss = discriminator_loss(logits[:b], logits[b:])
      if gradient_penalty:
        loss += gradient_penalty * adversarial.interpolated_gradient_penalty(
            lambda y: eval_apply(p, new_state, y), real, fake, jax.random.fold_in(key, 1),
            gradient_penalty_center)
      return loss, (new_state, logits)

    (loss, (state, logits)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
    updates, opt_state = optimizer.update(grads, d.opt_state, d.params)
    params = optax.apply_updates(d.params, updates)
    metrics = {'d_loss': loss, 'logit_real': logits[:b].mean(),
               'logit_fake': logits[b:].mean()}
    return Discriminator(params, state, opt_state), metrics

  return d_step


def refit_flow(
    d: Discriminator,
    x: Array,
    key: Array,
    data: Any,
    *,
    d_step: DStep,
    logit_apply: EvalApply,
    divergence: flow.DivergenceLike,
    d_steps: int,
    step_size: flow.StepSize,
    num_steps: int,
    clip: flow.Clip = None,
    view_fn: Optional[ViewFn] = None,
) -> Tuple[Discriminator, Array, Dict[str, Array]]:
  """K times: U steps of D on the current particles, then one move along it.

  .. math::

      D \\leftarrow \\text{U steps of } L(D) \\text{ on } (p, q_k), \\qquad
      x \\leftarrow \\mathrm{clip}(x + \\eta_k\\, s(d(x))\\, \\nabla_x d(x)),
      \\quad k = 0, …, K-1.

  Re-fitted, D stays a density-ratio estimate where the particles are,
  instead of being extrapolated past them as a fixed D is by
  :func:`vgrow_jax.flow.flow_particles`. With U = 0 this is that fixed-D flow
  (except that the move reads D through ``view_fn``).

  Args:
    d: the discriminator to start from.
    x: particles ``[N, ...]``.
    key: PRNG key; step k uses ``split(key, K)[k]``: its ``split(·, U)`` for
      the D steps and ``fold_in(·, 1)`` for the move's view.
    data: the pytree handed to ``d_step`` (real data).
    d_step: one D step, ``(d, x, key, data) -> (d, metrics)``
      (:func:`make_discriminator_step`).
    logit_apply: ``(params, state, x) -> logits [N]``, D in evaluation mode
      for the move.
    divergence: name or Divergence (sets s).
    d_steps: U ≥ 0 (static).
    step_size: η, a scalar, or η_k as a ``[K]`` schedule.
    num_steps: K ≥ 0 (static).
    clip: optional ``(lo, hi)``, applied after every move.
    view_fn: ``(key, x) -> x'``: the move reads d(view(x)), the view D was
      fitted on (default: identity).

  Returns:
    ``(d, x, metrics)``: the fitted D, the moved particles ``[N, ...]`` and
    per-step metrics ``[K]``: ``field_norm`` (mean ‖h‖) and, with U > 0, the
    mean over the U steps of ``d_step``'s metrics.

  Raises:
    ValueError: a ``step_size`` that is neither a scalar nor ``[num_steps]``,
      or ``d_steps`` / ``num_steps`` < 0.
  """
  if not isinstance(d_steps, (int, np.integer)) or d_steps < 0:
    raise ValueError(f'refit_flow: d_steps={d_steps!r} must be an int >= 0')
  shape = flow.check_schedule(step_size, num_steps, 'refit_flow')
  div = divergences.get(divergence)
  view = view_fn or _identity_view

  def one_step(carry, xs):
    d, x = carry
    k, eta = xs
    # The particles stay where they are during the U steps of D.
    d, d_metrics = jax.lax.scan(lambda dc, kd: d_step(dc, x, kd, data), d,
                                jax.random.split(k, d_steps))
    # D tells shown data from shown particles, so the move reads it through a fresh
    # view too: the field then moves the particles' law to the data's, not to the law
    # of the views (DiffAugment's rule for G).
    k_view = jax.random.fold_in(k, 1)
    logit_fn = lambda y: logit_apply(d.params, d.state, view(k_view, y))
    h, _ = flow.field_and_logit(logit_fn, x, div)  # [N, ...]
    # flow_step, written out to keep h for the metrics; a scalar η stays a constant.
    x = sharding.shard_batch(flow.clip_particles(x + (step_size if eta is None else eta) * h,
                                                 clip))
    metrics = {'field_norm': jnp.mean(jnp.sqrt(jnp.sum(h.reshape(x.shape[0], -1) ** 2,
                                                       axis=1)))}
    if d_steps:
      metrics.update(jax.tree.map(jnp.mean, d_metrics))
    return (d, x), metrics

  etas = None if len(shape) == 0 else jnp.asarray(step_size)  # [K]
  (d, x), metrics = jax.lax.scan(one_step, (d, x), (jax.random.split(key, num_steps), etas))
  return d, x, metrics


# Logistic loss of a D that cannot tell real from particle: 2·softplus(0).
BALANCED_D_LOSS = 2 * math.log(2.0)


def watch_discriminator(*, balanced: float = 0.9, won: float = 0.25,
                        remedy: str = '') -> Callable[[int, Mapping[str, float]], str]:
  """A watcher that tells when the logistic D starts to separate the particles.

  While the particles follow the data, D's loss (the mean of the particle
  phase's ``d_loss``, logged as ``train_d_loss``) stays near log 4 = 1.386
  and the field is small. When D finds a feature that tells the particles
  apart, its loss falls toward 0 within a few hundred outer loops, the field
  grows (``train_field_norm``), the moves take the particles further off, and
  G, fitted to them, can collapse; the last checkpoint before that point is
  the one to resume with a change (benchmarks/RESULTS.md, B3). At the start
  of a run D separates the particles legitimately (G is still far from the
  data), so the watcher warns only after the loss has once been balanced.

  Args:
    balanced: the loss counts as balanced from ``balanced`` × log 4 up.
    won: D has won below ``won`` × log 4 (at 0.25 a mean logistic loss of
      0.17 a side: D gives the right class a geometric-mean probability of
      0.84).
    remedy: what to do, appended to the warning.

  Returns:
    ``check(loop, scalars) -> str``, called at each log point in loop order
    with the logged scalars (``train_d_loss``, ``train_field_norm``); a
    one-line warning when the loss first falls below ``won`` × log 4 after
    being balanced, '' otherwise (again only after the loss is balanced again).
    It holds the run's history in Python, outside any compiled code.
  """
  if not 0 < won < balanced:
    raise ValueError(f'watch_discriminator: need 0 < won < balanced, got won={won}, '
                     f'balanced={balanced}')
  balanced_at = None  # (loop, loss) of the last balanced log point since a warning

  def check(loop: int, scalars: Mapping[str, float]) -> str:
    nonlocal balanced_at
    loss = scalars.get('train_d_loss')
    if loss is None or not math.isfinite(loss):
      return ''
    if loss >= balanced * BALANCED_D_LOSS:
      balanced_at = (loop, loss)
      return ''
    if balanced_at is None or loss >= won * BALANCED_D_LOSS:
      return ''
    (then, before), balanced_at = balanced_at, None
    field = scalars.get('train_field_norm')
    field = f', field norm {field:.3g}' if field is not None else ''
    return (f'outer loop {loop}: D separates the particles from the data (D loss {loss:.3g}, '
            f'{before:.3g} at loop {then}; log 4 = {BALANCED_D_LOSS:.3f} is balanced{field}); '
            f'the moves grow and G may collapse'
            + (f'; {remedy}' if remedy else ''))

  return check
