"""VGrow: the official outer loop as one compiled, pure function.

One outer loop (docs/math.md §1, ``xjtuygao/VGrow`` main.py):

1. z ~ N(0, I) for a pool of N = pool_batches × batch_size particles;
   X = G(z) with G in evaluation mode.
2. T times: U logistic discriminator steps (a real batch and a batch drawn
   without replacement from the pool, real = 1), then every particle moves
   X ← clip(X + η s(d(X)) ∇d(X)). This step is
   :func:`vgrow_jax.particle_phase.refit_flow`, which re-fit sampling calls too.
3. L passes of least-squares fitting of G to the moved particles on the same
   z, in shuffled minibatches of batch_size: MSE(G(z), X).

Every random draw comes from ``fold_in(PRNGKey(seed), outer_loop)`` (the key
is carried in the state), so a run
resumed from a checkpoint is identical to an uninterrupted one. The pool and
every batch keep a leading example axis, split over the devices of a mesh
with :func:`vgrow_jax.sharding.shard_batch`.

Differences from the official code, all immaterial to the maths: the real
and the pool batch go through D in one call (D has no batch statistics);
during a particle move D's spectral-norm vectors are read, not updated
(they are updated at every D step); the learning rate halves *at* each
boundary outer loop (PyTorch's MultiStepLR, stepped first, does it one loop
earlier); L follows ``g_passes_schedule`` (official: 5, 10, 15, 20 from
loops 0, 200, 1000, 1500).

References:
  Gao, Jiao, Wang, Wang, Yang, Zhang. "Deep Generative Learning via
  Variational Gradient Flow." ICML 2019.
"""

from __future__ import annotations

from typing import Any, Dict, Tuple

import flax
import jax
import jax.numpy as jnp
import optax

from vgrow_jax import augment
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import divergences
from vgrow_jax import flow
from vgrow_jax import method as method_lib
from vgrow_jax import models
from vgrow_jax import optim
from vgrow_jax import particle_phase
from vgrow_jax import sharding

Array = jax.Array

# Folded into the run's key for the D steps of refit sampling (outer loops
# fold in their index, which never reaches it).
_SAMPLE_FOLD = 2**31 - 1


@flax.struct.dataclass
class VGrowState:
  """Everything a VGrow run carries between outer loops (a pytree)."""

  step: Array  # [] int32, outer loops done
  key: Array  # [2] uint32, PRNGKey(seed): loop keys are fold_in(key, step)
  g_params: Any
  g_state: Any
  g_opt_state: Any
  d_params: Any
  d_state: Any
  d_opt_state: Any
  # EMA of g_params when vgrow.g_ema_decay > 0 (VGrow-Pg), else None (no leaves).
  g_ema_params: Any = None


# D's logistic loss (real = 1), defined with the particle phase.
discriminator_loss = particle_phase.discriminator_loss


def generator_fit_loss(pred: Array, target: Array) -> Array:
  """Least squares fit of G(z) ``[B, ...]`` to the moved particles (mean over all entries)."""
  return jnp.mean(jnp.square(pred - jax.lax.stop_gradient(target)))


def num_g_passes(cfg: config_lib.VGrowConfig, outer_loop: Array) -> Array:
  """L at an outer loop: ``g_passes`` raised by ``g_passes_schedule``."""
  passes = jnp.asarray(cfg.g_passes, jnp.int32)
  for start, value in cfg.g_passes_schedule:
    passes = jnp.where(outer_loop >= start, value, passes)
  return passes


def loop_keys(base_key: Array, outer_loop: Array) -> Tuple[Array, Array, Array]:
  """(pool, move, fit) keys of an outer loop: fold_in(base_key, loop) split in 3."""
  return tuple(jax.random.split(jax.random.fold_in(base_key, outer_loop), 3))


def divergence_of(cfg: config_lib.VGrowConfig) -> divergences.Divergence:
  div = divergences.get(cfg.divergence)
  if div.name == 'jeffreys':
    div = divergences.jeffreys(max_scale=cfg.jeffreys_max_scale)
  return div


def sample_step_sizes(step_size: float, num_steps: int, schedule: str) -> Array:
  """η_k of the K sample-time flow steps, ``[K]``.

  ``'constant'``: η_k = η. ``'linear'``: η_k = η·(1 − k/K), k = 0 … K−1, from η
  down to η/K, so the total move Σ η_k = η·(K + 1)/2. Re-fitted, D keeps
  telling the samples from the data by chance, and a sample jitters by about
  η_k·|h| per step; a decaying η lets that jitter die out (simulated
  annealing's cooling, applied to the step) while the early steps still
  move samples the whole way.

  Raises:
    ValueError: an unknown schedule (the config checks it first).
  """
  if schedule == 'constant':
    return jnp.full((num_steps,), step_size, jnp.float32)
  if schedule == 'linear':
    return step_size * (1.0 - jnp.arange(num_steps, dtype=jnp.float32) / num_steps)
  raise ValueError(f'sample step schedule {schedule!r}: expected one of '
                   f'{config_lib.SAMPLE_STEP_SCHEDULES}')


def particle_clip(cfg: config_lib.VGrowConfig, dataset: data_lib.Dataset):
  if cfg.clip_to_data_range:
    return dataset.value_range
  return cfg.clip


def _apply_updates(tx, grads, opt_state, params):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make(cfg: config_lib.Config, dataset: data_lib.Dataset,
         *, num_show: int = 512) -> method_lib.Method:
  """Builds the VGrow :class:`~vgrow_jax.method.Method` for a config and dataset.

  Args:
    cfg: the run's config (uses ``model``, ``vgrow``, ``g_optimizer``,
      ``d_optimizer``, ``training.seed``).
    dataset: the training distribution.
    num_show: how many particles (before and after the flow) each step
      returns for figures (64 at most for images).

  Returns:
    A Method whose ``step`` is one whole outer loop.
  """
  vc = cfg.vgrow
  if vc.d_augment_shift and len(dataset.shape) != 3:
    raise ValueError(f'vgrow.d_augment_shift={vc.d_augment_shift} needs image data [H, W, C], '
                     f'got example shape {tuple(dataset.shape)}')
  g_net, d_net = models.build(cfg.model, dataset.shape)
  g_tx, d_tx = optim.make(cfg.g_optimizer), optim.make(cfg.d_optimizer)
  div = divergence_of(vc)
  clip = particle_clip(vc, dataset)
  nz = cfg.model.latent_dim
  batch, pool = vc.batch_size, vc.pool_size
  num_show = min(pool, num_show if len(dataset.shape) == 1 else 64)

  def init(key: Array) -> VGrowState:
    kg, kd = jax.random.split(key)
    g_params, g_state = g_net.init(kg, jnp.zeros((2, nz)))
    d_params, d_state = d_net.init(kd, jnp.zeros((2,) + tuple(dataset.shape)))
    # The key is part of the state (not a compile-time constant), so runs
    # with other seeds reuse the compiled step.
    return VGrowState(
        step=jnp.zeros((), jnp.int32), key=jax.random.PRNGKey(cfg.training.seed),
        g_params=g_params, g_state=g_state, g_opt_state=g_tx.init(g_params),
        d_params=d_params, d_state=d_state, d_opt_state=d_tx.init(d_params),
        g_ema_params=g_params if vc.g_ema_decay else None)

  def particles(state: VGrowState, z: Array) -> Array:
    return g_net.eval_apply(state.g_params, state.g_state, z)

  def d_view(key: Array, x: Array) -> Array:
    """The images D is shown: ``x`` randomly translated, or ``x`` (d_augment_shift 0)."""
    return augment.translate(key, x, max_shift=vc.d_augment_shift)

  def logit(state: VGrowState, x: Array) -> Array:
    return d_net.eval_apply(state.d_params, state.d_state, x)  # [N]

  def generate(state: VGrowState, z: Array) -> Array:
    g_params = state.g_ema_params if vc.g_ema_decay else state.g_params
    return refine(state, g_net.eval_apply(g_params, state.g_state, z))

  def d_step(batch_size: int):
    """One logistic D step on ``batch_size`` real and particle examples (particle_phase)."""
    return particle_phase.make_discriminator_step(
        train_apply=d_net.train_apply, eval_apply=d_net.eval_apply, optimizer=d_tx,
        sample_real=dataset.sample, batch_size=batch_size,
        gradient_penalty=vc.d_gradient_penalty, view_fn=d_view)

  def particle_phase_of(d, x, key, data_arrays, *, d_steps, d_batch, step_size, num_steps):
    """K × (U D steps, one move): :func:`vgrow_jax.particle_phase.refit_flow`."""
    return particle_phase.refit_flow(
        d, x, key, data_arrays, d_step=d_step(d_batch), logit_apply=d_net.eval_apply,
        divergence=div, d_steps=d_steps, step_size=step_size, num_steps=num_steps,
        clip=clip, view_fn=d_view)

  def fit_generator(key, num_passes, g_params, g_state, g_opt_state, z, x):
    def minibatch(carry, idx):
      g_params, g_state, g_opt_state = carry

      def loss_fn(p):
        pred, new_state = g_net.train_apply(p, g_state, sharding.shard_batch(z[idx]))
        return generator_fit_loss(pred, sharding.shard_batch(x[idx])), new_state

      (loss, g_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(g_params)
      g_params, g_opt_state = _apply_updates(g_tx, grads, g_opt_state, g_params)
      return (g_params, g_state, g_opt_state), loss

    def one_pass(i, carry):
      g_params, g_state, g_opt_state, _ = carry
      order = jax.random.permutation(jax.random.fold_in(key, i), pool)
      (g_params, g_state, g_opt_state), losses = jax.lax.scan(
          minibatch, (g_params, g_state, g_opt_state), order.reshape(-1, batch))
      return g_params, g_state, g_opt_state, jnp.mean(losses)

    # A while loop, because L may change with the outer loop: one compile.
    # g_loss stays 0 when L = 0 (nothing was fitted).
    return jax.lax.fori_loop(0, num_passes, one_pass,
                             (g_params, g_state, g_opt_state, jnp.float32(0.0)))

  def refine(state: VGrowState, x: Array) -> Array:
    """G(z) ``[N, ...]`` moved by K sample-time flow steps (``sample_flow_steps``)."""
    num_steps = vc.sample_flow_steps
    if not num_steps:
      return x
    eta = vc.step_size if vc.sample_step_size is None else vc.sample_step_size
    etas = sample_step_sizes(eta, num_steps, vc.sample_step_schedule)  # [K]
    if not vc.sample_d_steps:
      return flow.flow_particles(lambda y: logit(state, y), x, div, step_size=etas,
                                 num_steps=num_steps, clip=clip)
    # The outer loop's particle phase with G frozen: D keeps being fitted to
    # the moving samples against real data, so it stays a density-ratio
    # estimate where the samples are instead of being extrapolated past them.
    d_opt_state = optim.with_learning_rate(
        state.d_opt_state, optim.learning_rate(cfg.d_optimizer, state.step))
    # A fixed key per state: the same latents give the same samples.
    key = jax.random.fold_in(state.key, _SAMPLE_FOLD)
    n = x.shape[0]
    d_batch = min(vc.sample_d_batch_size, n) if vc.sample_d_batch_size else n
    d = particle_phase.Discriminator(state.d_params, state.d_state, d_opt_state)
    _, x, _ = particle_phase_of(d, x, key, dataset.arrays, d_steps=vc.sample_d_steps,
                                d_batch=d_batch, step_size=etas, num_steps=num_steps)
    return x

  def step(state: VGrowState, data_arrays: Any) -> Tuple[VGrowState, Dict[str, Array]]:
    k_pool, k_move, k_fit = loop_keys(state.key, state.step)
    g_lr = optim.learning_rate(cfg.g_optimizer, state.step)
    d_lr = optim.learning_rate(cfg.d_optimizer, state.step)
    g_opt_state = optim.with_learning_rate(state.g_opt_state, g_lr)
    d_opt_state = optim.with_learning_rate(state.d_opt_state, d_lr)

    # The pool and every batch are split over the devices of the 'data' mesh
    # axis (a no-op on one device); the random values do not depend on it.
    z = sharding.shard_batch(jax.random.normal(k_pool, (pool, nz)))  # [N, nz]
    x0 = sharding.shard_batch(particles(state, z))  # [N, ...]
    d, x, move_metrics = particle_phase_of(
        particle_phase.Discriminator(state.d_params, state.d_state, d_opt_state), x0, k_move,
        data_arrays, d_steps=vc.d_steps, d_batch=batch, step_size=vc.step_size,
        num_steps=vc.particle_steps)
    d_params, d_state, d_opt_state = d

    num_passes = num_g_passes(vc, state.step)
    g_params, g_state, g_opt_state, g_loss = fit_generator(
        k_fit, num_passes, state.g_params, state.g_state, g_opt_state, z, x)

    shift = jnp.sqrt(jnp.sum((x - x0).reshape(pool, -1) ** 2, axis=1))
    metrics = {
        **(jax.tree.map(jnp.mean, move_metrics) if vc.particle_steps else {}),
        'g_loss': g_loss,
        'g_passes': num_passes,
        'particle_shift': jnp.mean(shift),
        'g_lr': g_lr,
        'd_lr': d_lr,
        'particles_before': x0[:num_show],
        'particles_after': x[:num_show],
    }
    g_ema_params = None
    if vc.g_ema_decay:
      g_ema_params = optax.incremental_update(g_params, state.g_ema_params,
                                              1.0 - vc.g_ema_decay)
    new_state = VGrowState(
        step=state.step + 1, key=state.key, g_params=g_params, g_state=g_state, g_opt_state=g_opt_state,
        d_params=d_params, d_state=d_state, d_opt_state=d_opt_state, g_ema_params=g_ema_params)
    return new_state, metrics

  return method_lib.Method(
      name='vgrow', init=init, step=step, generate=generate, latent_dim=nz,
      logit=logit)
