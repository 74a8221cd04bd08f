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

The loop is assembled from explicit parts: :func:`make_outer_loop` takes G's
and D's pure functions, the optimisers, a D step and every setting as
keywords and never sees a config; :func:`make_refiner` does the same for
refined sampling; :func:`make` is the adapter that reads ``methods.vgrow``
(:class:`HParams`) and builds the nets.

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

import dataclasses
import functools
from typing import Any, Callable, ClassVar, Dict, Optional, Tuple, Union

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
# (params, state, z [B, nz]) -> (x [B, ...], new_state): G in training mode.
GTrainApply = Callable[[Any, Any, Array], Tuple[Array, Any]]
# (params, state, z [B, nz]) -> x [B, ...]: G in evaluation mode.
GEvalApply = Callable[[Any, Any, Array], Array]
# outer loop [] int32 -> learning rate [] float32.
Schedule = Callable[[Array], Array]

# Folded into the run's key for the D steps of refit sampling (outer loops
# fold in their index, which never reaches it).
_SAMPLE_FOLD = 2**31 - 1


@dataclasses.dataclass(frozen=True)
class HParams(config_lib.MethodHParams):
  """VGrow's settings, ``methods.vgrow`` (docs/math.md §1; official defaults in brackets).

  Attributes:
    divergence: 'kl' | 'js' | 'logd' | 'jeffreys' ['kl'].
    batch_size: real and pool minibatch size [64].
    pool_batches: nPool; the pool holds pool_batches × batch_size particles [20].
    particle_steps: T, particle moves per outer loop [20].
    d_steps: U, logistic discriminator steps before each move [1].
    g_passes: L, passes of least-squares generator fitting over the pool [5].
    g_passes_schedule: ((from_loop, passes), ...) raising L with the loop
      index (official: ((200, 10), (1000, 15), (1500, 20))).
    step_size: η [0.5].
    step_size_schedule: ((from_loop, η), ...) changing η with the outer
      loop index, as ``g_passes_schedule`` changes L: from loop ``from_loop``
      on the moves take that η [(): η = step_size throughout, as the
      official code]. A large η early moves particles fast while G is far
      from the data; a smaller η later shrinks the moves G must fit, and
      with them the feedback by which a D that starts to separate the
      particles pushes them further off (benchmarks/RESULTS.md, B3).
    clip: (lo, hi) bounds for the particles [(-1, 1) for images], or None.
    clip_to_data_range: clip to the range of the training data instead.
    jeffreys_max_scale: upper clip of s(d) for Jeffreys [100].
    d_gradient_penalty: λ > 0 adds λ·E(‖∇d(x̂)‖ − c)² at random points x̂
      between the real and the pool batch to every D step [0; the
      progressive-growing code VGrow-Pg: 0.5 = its 0.5 × coef_gp 1].
    d_gradient_penalty_center: c [1, WGAN-GP's two-sided penalty, as
      VGrow-Pg]; 0 is the zero-centred penalty, which leaves a logistic D's
      optimum at p_model = p_data (a constant logit, no field) in place,
      where c = 1 pulls ‖∇d‖, and so the field, toward 1 everywhere.
    d_augment_shift: s > 0 shows D every real and pool image translated by
      its own random offset of up to s pixels each way (images only;
      :func:`vgrow_jax.augment.translate`), so that a D fitted to a few
      thousand images cannot memorise them; the flow reads D through a
      fresh translation of every particle at every move, h(x) =
      s(d(Tx))·∇ₓd(Tx), so that it moves the particles' law to the data's
      rather than to that of translated data (re-fit sampling does the
      same; sampling along the final D reads it as is) [0: off, because
      next to a spectrally normalised D it costs FCD on MNIST].
    g_ema_decay: β > 0 keeps an exponential moving average of G's
      parameters, β·EMA + (1 − β)·θ after every outer loop, and samples
      from it (``generate``) [0; VGrow-Pg: 0.99].
    sample_flow_steps: K > 0 makes ``generate`` return G(z) moved by K flow
      steps (η = step_size, same clipping) along the final discriminator,
      i.e. the particles the next outer loop would fit, instead of G(z)
      [0: plain G(z), as the papers report]. Costs K forward/backward passes
      of D per sample; training is unchanged.
    sample_d_steps: U' > 0 re-fits D during those K steps: U' logistic D
      steps (real batches vs the samples being moved) before each move, the
      outer loop's particle phase with G frozen and the samples of one
      ``generate`` call as the pool [0: along the final D, fixed]. Needs the
      training data at sampling; the D it fits is thrown away.
    sample_d_batch_size: real and sample batch of those D steps [0: all the
      samples of the ``generate`` call, i.e. full-batch logistic regression
      on them, because a minibatch D's noise moves toy samples off their
      modes].
    sample_step_size: η of those K steps [None: the training η at the
      sampled state's loop, ``step_size`` or its schedule's]. Re-fitted, D
      keeps telling the samples from the data by chance, so samples jitter
      by about η·|h| per step; a smaller η with more steps lets them settle
      inside their modes.
    sample_step_schedule: how η changes over those K steps: ``'constant'``
      or ``'linear'``, η_k = η·(1 − k/K) [constant]. With D re-fitted, the
      linear decay lets the jitter above die out, which keeps toy samples
      inside their modes' 3σ.
    g_optimizer: G's optimiser [RMSprop 1e-4, PyTorch semantics].
    d_optimizer: D's optimiser [RMSprop 1e-4].
  """

  method_name: ClassVar[str] = 'vgrow'

  divergence: str = 'kl'
  batch_size: int = 64
  pool_batches: int = 20
  particle_steps: int = 20
  d_steps: int = 1
  g_passes: int = 5
  g_passes_schedule: Tuple[Tuple[int, int], ...] = ()
  step_size: float = 0.5
  step_size_schedule: Tuple[Tuple[int, float], ...] = ()
  clip: Optional[Tuple[float, float]] = None
  clip_to_data_range: bool = False
  jeffreys_max_scale: float = 100.0
  d_gradient_penalty: float = 0.0
  d_gradient_penalty_center: float = 1.0
  d_augment_shift: int = 0
  g_ema_decay: float = 0.0
  sample_flow_steps: int = 0
  sample_d_steps: int = 0
  sample_d_batch_size: int = 0
  sample_step_size: Optional[float] = None
  sample_step_schedule: str = 'constant'
  g_optimizer: config_lib.OptimizerConfig = config_lib.OptimizerConfig()
  d_optimizer: config_lib.OptimizerConfig = config_lib.OptimizerConfig()

  def __post_init__(self):
    self.check_types()
    try:
      divergences.get(self.divergence)
    except ValueError as e:
      self.check(False, 'divergence', str(e))
    for f in ('batch_size', 'pool_batches'):
      self.check(getattr(self, f) >= 1, f, 'must be >= 1')
    for f in ('particle_steps', 'd_steps', 'g_passes', 'sample_flow_steps', 'sample_d_steps',
              'sample_d_batch_size', 'd_augment_shift'):
      self.check(getattr(self, f) >= 0, f, 'must be >= 0')
    self.check(self.step_size > 0, 'step_size', 'must be > 0')
    self.check(self.sample_step_size is None or self.sample_step_size > 0, 'sample_step_size',
               'must be None or > 0')
    self.check(self.sample_step_schedule in config_lib.SAMPLE_STEP_SCHEDULES,
               'sample_step_schedule', f'must be one of {config_lib.SAMPLE_STEP_SCHEDULES}')
    self.check(self.clip is None or (len(self.clip) == 2 and self.clip[0] < self.clip[1]),
               'clip', 'must be None or (lo, hi) with lo < hi')
    self.check(self.jeffreys_max_scale > 1, 'jeffreys_max_scale', 'must be > 1')
    self.check(not (self.clip_to_data_range and self.clip is not None), 'clip_to_data_range',
               f'conflicts with methods.vgrow.clip={self.clip!r}; set one of them')
    self.check(self.d_gradient_penalty >= 0, 'd_gradient_penalty', 'must be >= 0')
    self.check(self.d_gradient_penalty_center >= 0, 'd_gradient_penalty_center',
               'must be >= 0')
    self.check(0 <= self.g_ema_decay < 1, 'g_ema_decay', 'must be in [0, 1)')
    self._check_schedule('g_passes_schedule', 'passes >= 0', lambda p: p >= 0)
    self._check_schedule('step_size_schedule', 'η > 0', lambda eta: eta > 0)

  def _check_schedule(self, field: str, what: str, value_ok: Callable[[Any], bool]):
    """``field`` holds ``(from_loop, value)`` pairs, from_loop >= 0 increasing."""
    schedule = getattr(self, field)
    starts = [s for s, _ in schedule]
    self.check(starts == sorted(starts) and all(s >= 0 and value_ok(v) for s, v in schedule),
               field, f'must be increasing (from_loop >= 0, {what}) pairs')

  @property
  def pool_size(self) -> int:
    return self.batch_size * self.pool_batches

  @property
  def variant(self) -> str:
    return self.divergence

  @property
  def needs_data_at_sampling(self) -> bool:
    return bool(self.sample_flow_steps and self.sample_d_steps)

  @property
  def logistic_d(self) -> bool:
    return True

  @property
  def flow_divergence(self) -> divergences.Divergence:
    return divergence_of(self)


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
  # EMA of g_params when methods.vgrow.g_ema_decay > 0 (VGrow-Pg), else None (no leaves).
  g_ema_params: Any = None


# D's logistic loss (real = 1), defined with the particle phase.
discriminator_loss = particle_phase.discriminator_loss


# What the trainer's warning suggests when D starts to win (particle_phase.watch_discriminator).
D_WON_REMEDY = ('resume the last checkpoint before this loop with a smaller '
                'methods.vgrow.step_size (or a step_size_schedule), or with '
                'methods.vgrow.d_gradient_penalty=10 and d_gradient_penalty_center=0')


def generator_fit_loss(pred: Array, target: Array) -> Array:
  """Least squares fit of G(z) ``[B, ...]`` to the moved particles (mean over all entries)."""
  return jnp.mean(jnp.square(pred - jax.lax.stop_gradient(target)))


def num_g_passes(outer_loop: Array, *, g_passes: int,
                 g_passes_schedule: Tuple[Tuple[int, int], ...] = ()) -> Array:
  """L at an outer loop: ``g_passes`` raised by ``g_passes_schedule``, ``[]`` int32."""
  return _piecewise(outer_loop, g_passes, g_passes_schedule, jnp.int32)


def step_size_at(outer_loop: Array, *, step_size: float,
                 step_size_schedule: Tuple[Tuple[int, float], ...] = ()) -> Array:
  """η at an outer loop: ``step_size`` changed by ``step_size_schedule``, ``[]`` float32."""
  return _piecewise(outer_loop, step_size, step_size_schedule, jnp.float32)


def _piecewise(outer_loop: Array, value, schedule, dtype) -> Array:
  """``value``, replaced by each ``(from_loop, v)`` of ``schedule`` from its loop on; ``[]``."""
  out = jnp.asarray(value, dtype)
  for start, v in schedule:
    out = jnp.where(outer_loop >= start, jnp.asarray(v, dtype), out)
  return out


def loop_keys(base_key: Array, outer_loop: Array) -> Tuple[Array, Array, Array]:
  """(pool, move, fit) keys of an outer loop: fold_in(base_key, loop) split in 3."""
  return tuple(jax.random.split(jax.random.fold_in(base_key, outer_loop), 3))


def divergence_of(hp: HParams) -> divergences.Divergence:
  div = divergences.get(hp.divergence)
  if div.name == 'jeffreys':
    div = divergences.jeffreys(max_scale=hp.jeffreys_max_scale)
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


def particle_clip(hp: HParams, dataset: data_lib.Dataset):
  if hp.clip_to_data_range:
    return dataset.value_range
  return hp.clip


def _apply_updates(tx, grads, opt_state, params):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make_outer_loop(
    *,
    g_train_apply: GTrainApply,
    g_eval_apply: GEvalApply,
    g_optimizer: optax.GradientTransformation,
    g_learning_rate: Schedule,
    d_step: particle_phase.DStep,
    d_eval_apply: particle_phase.EvalApply,
    d_learning_rate: Schedule,
    divergence: flow.DivergenceLike,
    latent_dim: int,
    batch_size: int,
    pool_size: int,
    particle_steps: int,
    d_steps: int,
    step_size: float,
    g_passes: int,
    g_passes_schedule: Tuple[Tuple[int, int], ...] = (),
    step_size_schedule: Tuple[Tuple[int, float], ...] = (),
    clip: flow.Clip = None,
    view_fn: Optional[particle_phase.ViewFn] = None,
    g_ema_decay: float = 0.0,
    num_show: int = 512,
) -> Callable[[VGrowState, Any], Tuple[VGrowState, Dict[str, Array]]]:
  """VGrow's outer loop (the module docstring's steps 1–3) as one pure function.

  Nothing here reads a config: :func:`make` is the adapter that builds the
  nets and optimisers from one and calls this.

  Args:
    g_train_apply: ``(params, state, z [B, nz]) -> (x [B, ...], state)``, G in
      training mode (the least-squares fit).
    g_eval_apply: ``(params, state, z [N, nz]) -> x [N, ...]``, G in evaluation
      mode (the pool).
    g_optimizer: G's optax transformation, with an injectable learning rate
      (:func:`vgrow_jax.optim.make`).
    g_learning_rate: outer loop ``[]`` -> G's learning rate ``[]``.
    d_step: one logistic D step on ``batch_size`` real and pool examples,
      ``(d, x, key, data) -> (d, metrics)``
      (:func:`vgrow_jax.particle_phase.make_discriminator_step`).
    d_eval_apply: ``(params, state, x [N, ...]) -> logits [N]``, D in
      evaluation mode (the moves).
    d_learning_rate: outer loop ``[]`` -> D's learning rate ``[]``.
    divergence: name or Divergence (sets s).
    latent_dim: nz.
    batch_size: the least-squares fit's minibatch (``pool_size`` is a multiple).
    pool_size: N, particles per outer loop.
    particle_steps: T, moves per outer loop.
    d_steps: U, D steps before each move.
    step_size: η of the moves.
    g_passes: L, passes of the fit over the pool.
    g_passes_schedule: ``((from_loop, passes), ...)`` raising L.
    step_size_schedule: ``((from_loop, η), ...)`` changing η.
    clip: optional ``(lo, hi)`` for the particles after every move.
    view_fn: ``(key, x) -> x'``, what D is shown (default: identity).
    g_ema_decay: β > 0 keeps ``g_ema_params`` = β·EMA + (1 − β)·θ.
    num_show: particles (before and after the flow) returned for figures.

  Returns:
    ``step(state, data) -> (state, metrics)``: one outer loop on a
    :class:`VGrowState`, pure and jittable; ``data`` is the pytree ``d_step``
    draws real batches from.
  """
  nz, batch, pool = latent_dim, batch_size, pool_size

  def fit_generator(key, num_passes, g_params, g_state, g_opt_state, z, x):
    def minibatch(carry, idx):
      g_params, g_state, g_opt_state = carry

      def loss_fn(p):
        pred, new_state = g_train_apply(p, g_state, sharding.shard_batch(z[idx]))
        return generator_fit_loss(pred, sharding.shard_batch(x[idx])), new_state

      (loss, g_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(g_params)
      g_params, g_opt_state = _apply_updates(g_optimizer, grads, g_opt_state, g_params)
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

  def step(state: VGrowState, data_arrays: Any) -> Tuple[VGrowState, Dict[str, Array]]:
    k_pool, k_move, k_fit = loop_keys(state.key, state.step)
    g_lr = g_learning_rate(state.step)
    d_lr = d_learning_rate(state.step)
    eta = step_size_at(state.step, step_size=step_size, step_size_schedule=step_size_schedule)
    g_opt_state = optim.with_learning_rate(state.g_opt_state, g_lr)
    d_opt_state = optim.with_learning_rate(state.d_opt_state, d_lr)

    # The pool and every batch are split over the devices of the 'data' mesh
    # axis (a no-op on one device); the random values do not depend on it.
    z = sharding.shard_batch(jax.random.normal(k_pool, (pool, nz)))  # [N, nz]
    x0 = sharding.shard_batch(g_eval_apply(state.g_params, state.g_state, z))  # [N, ...]
    d, x, move_metrics = particle_phase.refit_flow(
        particle_phase.Discriminator(state.d_params, state.d_state, d_opt_state), x0, k_move,
        data_arrays, d_step=d_step, logit_apply=d_eval_apply, divergence=divergence,
        d_steps=d_steps, step_size=eta, num_steps=particle_steps, clip=clip,
        view_fn=view_fn)
    d_params, d_state, d_opt_state = d

    num_passes = num_g_passes(state.step, g_passes=g_passes,
                              g_passes_schedule=g_passes_schedule)
    g_params, g_state, g_opt_state, g_loss = fit_generator(
        k_fit, num_passes, state.g_params, state.g_state, g_opt_state, z, x)

    shift = jnp.sqrt(jnp.sum((x - x0).reshape(pool, -1) ** 2, axis=1))
    metrics = {
        **(jax.tree.map(jnp.mean, move_metrics) if particle_steps else {}),
        'g_loss': g_loss,
        'g_passes': num_passes,
        'particle_shift': jnp.mean(shift),
        'g_lr': g_lr,
        'd_lr': d_lr,
        'step_size': eta,
        'particles_before': x0[:num_show],
        'particles_after': x[:num_show],
    }
    g_ema_params = None
    if g_ema_decay:
      g_ema_params = optax.incremental_update(g_params, state.g_ema_params, 1.0 - g_ema_decay)
    new_state = VGrowState(
        step=state.step + 1, key=state.key, g_params=g_params, g_state=g_state,
        g_opt_state=g_opt_state, d_params=d_params, d_state=d_state, d_opt_state=d_opt_state,
        g_ema_params=g_ema_params)
    return new_state, metrics

  return step


def make_refiner(
    *,
    d_eval_apply: particle_phase.EvalApply,
    make_d_step: Callable[[int], particle_phase.DStep],
    divergence: flow.DivergenceLike,
    num_steps: int,
    step_size: Union[float, Schedule],
    step_schedule: str = 'constant',
    d_steps: int = 0,
    d_batch_size: int = 0,
    d_learning_rate: Optional[Schedule] = None,
    data: Any = None,
    clip: flow.Clip = None,
    view_fn: Optional[particle_phase.ViewFn] = None,
) -> Callable[[Any, Array], Array]:
  """VGrow's refined sampling: samples moved by K flow steps, D fixed or re-fitted.

  With ``d_steps`` = 0 the samples follow the state's final D
  (:func:`vgrow_jax.flow.flow_particles`); with U > 0 they follow the outer
  loop's particle phase with G frozen (:func:`vgrow_jax.particle_phase.refit_flow`
  on the samples of one call, from the state's D and optimiser state at its
  learning rate, with a key fixed by the state), and the D fitted is thrown
  away.

  Args:
    d_eval_apply: ``(params, state, x [N, ...]) -> logits [N]``.
    make_d_step: ``batch_size -> d_step`` for the re-fit D steps
      (:func:`vgrow_jax.particle_phase.make_discriminator_step`).
    divergence: name or Divergence.
    num_steps: K ≥ 1.
    step_size: η, or outer loop ``[]`` -> η ``[]`` (read at the state's loop).
    step_schedule: η over the K steps (:func:`sample_step_sizes`).
    d_steps: U ≥ 0.
    d_batch_size: real and sample batch of the D steps (0: all the samples).
    d_learning_rate: outer loop -> D's learning rate (needed with U > 0).
    data: the real-data pytree ``make_d_step``'s steps draw from (with U > 0).
    clip: optional ``(lo, hi)`` after every move.
    view_fn: what a re-fitted D is shown (default: identity).

  Returns:
    ``refine(state, x [N, ...]) -> x [N, ...]`` for a state with ``d_params``,
    ``d_state``, ``d_opt_state``, ``step`` and ``key``.
  """
  def refine(state: Any, x: Array) -> Array:
    eta = step_size(state.step) if callable(step_size) else step_size
    etas = sample_step_sizes(eta, num_steps, step_schedule)  # [K]
    if not d_steps:
      logit = lambda y: d_eval_apply(state.d_params, state.d_state, y)
      return flow.flow_particles(logit, x, divergence, step_size=etas, num_steps=num_steps,
                                 clip=clip)
    # The outer loop's particle phase with G frozen: D keeps being fitted to
    # the moving samples against real data, so it stays a density-ratio
    # estimate where the samples are instead of being extrapolated past them.
    d_opt_state = optim.with_learning_rate(state.d_opt_state, d_learning_rate(state.step))
    # A fixed key per state: the same latents give the same samples.
    key = jax.random.fold_in(state.key, _SAMPLE_FOLD)
    n = x.shape[0]
    d_batch = min(d_batch_size, n) if d_batch_size else n
    d = particle_phase.Discriminator(state.d_params, state.d_state, d_opt_state)
    _, x, _ = particle_phase.refit_flow(
        d, x, key, data, d_step=make_d_step(d_batch), logit_apply=d_eval_apply,
        divergence=divergence, d_steps=d_steps, step_size=etas, num_steps=num_steps,
        clip=clip, view_fn=view_fn)
    return x

  return refine


def make(cfg: config_lib.Config, dataset: data_lib.Dataset,
         *, num_show: int = 512) -> method_lib.Method:
  """Builds the VGrow :class:`~vgrow_jax.method.Method` for a config and dataset.

  The adapter from a config to :func:`make_outer_loop` and
  :func:`make_refiner`: it reads ``cfg.hparams`` (``methods.vgrow``),
  ``cfg.model`` and ``training.seed``, and builds the nets and optimisers.

  Args:
    cfg: the run's config.
    dataset: the training distribution.
    num_show: how many particles (before and after the flow) each step
      returns for figures (64 at most for images).

  Returns:
    A Method whose ``step`` is one whole outer loop.
  """
  hp = cfg.hparams
  if hp.d_augment_shift and len(dataset.shape) != 3:
    raise ValueError(f'methods.vgrow.d_augment_shift={hp.d_augment_shift} needs image data '
                     f'[H, W, C], got example shape {tuple(dataset.shape)}')
  g_net, d_net = models.build(cfg.model, dataset.shape)
  g_tx, d_tx = optim.make(hp.g_optimizer), optim.make(hp.d_optimizer)
  div = divergence_of(hp)
  clip = particle_clip(hp, dataset)
  nz = cfg.model.latent_dim
  d_learning_rate = functools.partial(optim.learning_rate, hp.d_optimizer)

  def d_view(key: Array, x: Array) -> Array:
    """The images D is shown: ``x`` randomly translated, or ``x`` (d_augment_shift 0)."""
    return augment.translate(key, x, max_shift=hp.d_augment_shift)

  def make_d_step(batch_size: int) -> particle_phase.DStep:
    """One logistic D step on ``batch_size`` real and particle examples (particle_phase)."""
    return particle_phase.make_discriminator_step(
        train_apply=d_net.train_apply, eval_apply=d_net.eval_apply, optimizer=d_tx,
        sample_real=dataset.sample, batch_size=batch_size,
        gradient_penalty=hp.d_gradient_penalty,
        gradient_penalty_center=hp.d_gradient_penalty_center, view_fn=d_view)

  step = make_outer_loop(
      g_train_apply=g_net.train_apply, g_eval_apply=g_net.eval_apply, g_optimizer=g_tx,
      g_learning_rate=functools.partial(optim.learning_rate, hp.g_optimizer),
      d_step=make_d_step(hp.batch_size), d_eval_apply=d_net.eval_apply,
      d_learning_rate=d_learning_rate, divergence=div, latent_dim=nz,
      batch_size=hp.batch_size, pool_size=hp.pool_size, particle_steps=hp.particle_steps,
      d_steps=hp.d_steps, step_size=hp.step_size, g_passes=hp.g_passes,
      g_passes_schedule=hp.g_passes_schedule, step_size_schedule=hp.step_size_schedule,
      clip=clip, view_fn=d_view,
      g_ema_decay=hp.g_ema_decay,
      num_show=min(hp.pool_size, num_show if len(dataset.shape) == 1 else 64))

  refine = None
  train_step_size = hp.step_size
  if hp.step_size_schedule:
    train_step_size = functools.partial(step_size_at, step_size=hp.step_size,
                                        step_size_schedule=hp.step_size_schedule)
  if hp.sample_flow_steps:
    refine = make_refiner(
        d_eval_apply=d_net.eval_apply, make_d_step=make_d_step, divergence=div,
        num_steps=hp.sample_flow_steps,
        step_size=train_step_size if hp.sample_step_size is None else hp.sample_step_size,
        step_schedule=hp.sample_step_schedule, d_steps=hp.sample_d_steps,
        d_batch_size=hp.sample_d_batch_size, d_learning_rate=d_learning_rate,
        data=dataset.arrays, clip=clip, view_fn=d_view)

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
        g_ema_params=g_params if hp.g_ema_decay else None)

  def logit(state: VGrowState, x: Array) -> Array:
    return d_net.eval_apply(state.d_params, state.d_state, x)  # [N]

  def generate(state: VGrowState, z: Array) -> Array:
    g_params = state.g_ema_params if hp.g_ema_decay else state.g_params
    x = g_net.eval_apply(g_params, state.g_state, z)
    return x if refine is None else refine(state, x)

  return method_lib.Method(
      name='vgrow', init=init, step=step, generate=generate, latent_dim=nz,
      logit=logit, sampling=sampling_description(hp),
      watch=functools.partial(particle_phase.watch_discriminator, remedy=D_WON_REMEDY))


def sampling_description(hp: HParams) -> str:
  """The protocol's words for the refined sampling of ``hp`` ('' = plain G(z))."""
  if not hp.sample_flow_steps:
    return ''
  if hp.sample_step_size is None and hp.step_size_schedule:
    eta = "η = the training schedule's at the sampled loop"
  else:
    eta = f'η = {hp.step_size if hp.sample_step_size is None else hp.sample_step_size:g}'
  eta += (', decaying linearly' if hp.sample_step_schedule == 'linear' else '')
  if hp.sample_d_steps:
    return (f'G(z) + {hp.sample_flow_steps} flow steps ({eta}), D re-fitted on the training '
            f'data with {hp.sample_d_steps} logistic step(s) before each')
  return f'G(z) + {hp.sample_flow_steps} flow steps along the final D ({eta})'
