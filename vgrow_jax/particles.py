r"""Generator-free VGrow: the particles are the model (docs/math.md §1, "Generator-free").

The state holds N particles x₁ … x_N (no generator). One outer loop is
VGrow's particle phase on all of them,
:func:`vgrow_jax.particle_phase.refit_flow`: K times,

1. U logistic-regression steps of D on a real batch and a batch of B
   particles drawn without replacement (real = 1), so that
   d → log p/q for the current particles q;
2. every particle moves along the re-fitted D,

   .. math::

       x \leftarrow \mathrm{clip}\big(x + \eta_k\, s(d(x))\, \nabla_x d(x)\big),

   with s from the divergence (docs/math.md §1) and η_k the step of move k
   (``step_schedule``).

D and its optimiser state are carried from loop to loop, so D keeps
tracking the particles instead of being fitted from scratch each time. The
particles' law is then the discretised gradient flow of D_f(q‖p) started at
the prior, which is exactly what VGrow's generator is fitted to between
flows; here nothing is fitted, so no generator capacity, latent space or
fitting error stands between the flow and the samples. The price: only the
N particles exist, so ``generate`` returns at most N samples.

**Initialisation.** ``init='uniform'`` (default) draws every coordinate
uniformly over the data's value range [lo, hi] (``Dataset.value_range``),
``init='normal'`` from N((lo + hi)/2, ((hi − lo)/4)²). Uniform is the
default because it puts particles next to every mode of a mixture in
proportion to the area each mode holds, so that little mass must cross the
empty space between modes (slow for a flow whose field ∇d is small where D
sees no particles); a Gaussian piles particles on the central modes for the
flow to carry outward. On the grid (its toy recipe, 100 outer loops, seeds
0 and 1) both reach 97.5–98.2% high quality, but the modes' reverse KL is
0.007–0.008 from uniform and 0.011–0.015 from the Gaussian. Both are cheap,
seed-determined and need no data.

**Sampling.** ``generate(state, z)`` returns the first M = z.shape[0]
particles; z's values are ignored, so ``latent_dim`` is 1 (the trainer and
the apps draw z ~ N(0, I) of shape [M, latent_dim] and only M is read).
M > N is a ``ValueError`` at trace time, before anything is computed,
naming M and ``methods.particles.num_particles``. Since ``generate`` does
not read z's values, :func:`vgrow_jax.train.generate` hands it all M latents
at once instead of in chunks, so any N can be sampled in full. The trainer scores
``training.eval_samples`` samples, so :func:`make` requires
N ≥ ``training.eval_samples`` (a one-line ``ConfigError`` otherwise); the
defaults agree (N = 2,500 = the toy protocol's 2,500 scored samples,
docs/math.md §3). ``logit`` is the re-fitted D (``vgrow-eval``'s D gap).

Every draw is ``fold_in(PRNGKey(seed), outer_loop)`` (the key is in the
state), so a resumed run equals an uninterrupted one bit for bit.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Dict, Tuple

import flax
import jax
import jax.numpy as jnp

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import divergences
from vgrow_jax import method as method_lib
from vgrow_jax import models
from vgrow_jax import optim
from vgrow_jax import particle_phase
from vgrow_jax import sharding

Array = jax.Array

INITS = ('uniform', 'normal')
STEP_SCHEDULES = ('constant', 'linear')


@dataclasses.dataclass(frozen=True)
class HParams(config_lib.MethodHParams):
  """Generator-free VGrow settings (toy-scale defaults; see the module docstring).

  Nothing is published for a generator-free VGrow flow, so the defaults
  are the grid's recipe (``experiments/configs/particles.py``, which also
  sets the D: spectrally normalised MLP on 20·x, and the ring's η and U);
  VGrow's MNIST particle phase is in ``experiments/configs/mnist.py``.

  Attributes:
    num_particles: N ≥ 1, the particles that are the model
      (≥ ``training.eval_samples``).
    init: 'uniform' over the data's value range or 'normal' around its middle.
    divergence: 'kl' | 'js' | 'logd' | 'jeffreys' (sets s(d), docs/math.md §1).
    flow_steps: K, moves per outer loop.
    d_steps: U, logistic D steps before each move.
    step_size: η of a move.
    step_schedule: η_k within an outer loop: 'constant', or 'linear'
      η_k = η·(1 − k/K), k = 0 … K−1, so that the jitter a re-fitted D
      causes dies out by the end of every loop (samples are read then).
    step_decay_boundaries: outer-loop indices at which η is multiplied by
      ``step_decay_factor`` (sorted, ≥ 0; () keeps η). Once the particles sit
      in their modes, a smaller η stops the first, largest move of every
      loop from shaking them out along a noisy D.
    step_decay_factor: that multiplier, in (0, 1].
    batch_size: B, real and particle examples per D step (≤ N).
    d_gradient_penalty: λ ≥ 0 of a gradient penalty on D at interpolates.
    d_gradient_penalty_center: the norm c it pulls ‖∇d‖ toward (1: WGAN-GP's
      two-sided penalty; 0: zero-centred, as ``vgrow.HParams``).
    clip_to_data_range: clip particles to the data's value range after
      every move (images: [-1, 1], as VGrow's official clip).
    d_optimizer: D's optimiser; its learning-rate schedule counts outer loops.
  """

  method_name: ClassVar[str] = 'particles'

  num_particles: int = 2500
  init: str = 'uniform'
  divergence: str = 'kl'
  flow_steps: int = 20
  d_steps: int = 3
  step_size: float = 0.02
  step_schedule: str = 'linear'
  step_decay_boundaries: Tuple[int, ...] = ()
  step_decay_factor: float = 0.3
  batch_size: int = 256
  d_gradient_penalty: float = 0.0
  d_gradient_penalty_center: float = 1.0
  clip_to_data_range: bool = True
  d_optimizer: config_lib.OptimizerConfig = config_lib.OptimizerConfig(
      name='adam', learning_rate=3e-3, b1=0.5, lr_decay_boundaries=(30, 50),
      lr_decay_factor=0.3)

  def __post_init__(self):
    self.check_types()
    self.check(self.num_particles >= 1, 'num_particles', 'must be >= 1')
    self.check_choice('init', INITS, sort=False)
    try:
      divergences.get(self.divergence)
    except ValueError:
      self.check(False, 'divergence', f'expected one of {list(divergences.NAMES)}')
    for f in ('flow_steps', 'd_steps'):
      self.check(getattr(self, f) >= 1, f, 'must be >= 1')
    self.check(self.step_size > 0, 'step_size', 'must be > 0')
    self.check_choice('step_schedule', STEP_SCHEDULES, sort=False)
    b = tuple(self.step_decay_boundaries)
    self.check(list(b) == sorted(b) and all(isinstance(i, int) and i >= 0 for i in b),
               'step_decay_boundaries', 'must be sorted integers >= 0')
    self.check(0 < self.step_decay_factor <= 1, 'step_decay_factor', 'must be in (0, 1]')
    self.check(1 <= self.batch_size <= self.num_particles, 'batch_size',
               f'must be in [1, num_particles={self.num_particles}] (particles are drawn '
               'without replacement)')
    self.check(self.d_gradient_penalty >= 0, 'd_gradient_penalty', 'must be >= 0')
    self.check(self.d_gradient_penalty_center >= 0, 'd_gradient_penalty_center',
               'must be >= 0')

  @property
  def variant(self) -> str:
    return self.divergence

  @property
  def logistic_d(self) -> bool:
    return True  # D is fitted by logistic regression, real = 1: d ≈ log p/q

  @property
  def flow_divergence(self) -> str:
    return self.divergence


@flax.struct.dataclass
class ParticlesState:
  """Everything a generator-free run carries between outer loops (a pytree)."""

  step: Array  # [] int32, outer loops done
  key: Array  # [2] uint32, PRNGKey(seed): loop keys are fold_in(key, step)
  particles: Array  # [N, ...] the model
  d_params: Any
  d_state: Any
  d_opt_state: Any


def step_sizes(step_size: float, num_steps: int, schedule: str) -> Array:
  """η_k of the K moves of an outer loop, ``[K]``.

  ``'constant'``: η_k = η. ``'linear'``: η_k = η·(1 − k/K), from η down to
  η/K (total move η·(K + 1)/2).

  Raises:
    ValueError: an unknown schedule (HParams checks it first).
  """
  if schedule == 'constant':
    return jnp.full((num_steps,), step_size, jnp.float32)
  if schedule == 'linear':
    return step_size * (1.0 - jnp.arange(num_steps, dtype=jnp.float32) / num_steps)
  raise ValueError(f'step schedule {schedule!r}: expected one of {list(STEP_SCHEDULES)}')


def initial_particles(key: Array, num: int, shape: Tuple[int, ...],
                      value_range: Tuple[float, float], init: str) -> Array:
  """N particles ``[num, *shape]`` from the prior ``init`` over ``value_range`` = (lo, hi).

  'uniform': U[lo, hi] per coordinate; 'normal': N((lo + hi)/2, ((hi − lo)/4)²).
  """
  lo, hi = (float(v) for v in value_range)
  full = (num,) + tuple(shape)
  if init == 'uniform':
    return jax.random.uniform(key, full, jnp.float32, lo, hi)
  if init == 'normal':
    return (lo + hi) / 2 + (hi - lo) / 4 * jax.random.normal(key, full, jnp.float32)
  raise ValueError(f'particle init {init!r}: expected one of {list(INITS)}')


def make(cfg: config_lib.Config, dataset: data_lib.Dataset,
         *, num_show: int = 512) -> method_lib.Method:
  """The generator-free :class:`~vgrow_jax.method.Method` (settings: ``cfg.hparams``).

  D is the discriminator of ``cfg.model`` (its G is never built).

  Args:
    cfg: the run's config (``methods.particles``, ``model``, ``training``).
    dataset: the training distribution (its value range sets the prior and the clip).
    num_show: particles before and after the flow each step returns for
      figures (64 at most for images).

  Raises:
    config.ConfigError: ``num_particles`` < ``training.eval_samples``.
  """
  hp = cfg.methods.get('particles', HParams())
  n = hp.num_particles
  if n < cfg.training.eval_samples:
    raise config_lib.ConfigError(
        f'config field methods.particles.num_particles={n!r}: must be >= '
        f'training.eval_samples={cfg.training.eval_samples} (the trainer scores that many '
        'particles); lower training.eval_samples or raise num_particles')
  _, d_net = models.build(cfg.model, dataset.shape)
  d_tx = optim.make(hp.d_optimizer)
  div = divergences.get(hp.divergence)
  clip = dataset.value_range if hp.clip_to_data_range else None
  etas = step_sizes(hp.step_size, hp.flow_steps, hp.step_schedule)  # [K]
  step_boundaries = jnp.asarray(hp.step_decay_boundaries, jnp.int32)  # [B], B ≥ 0
  num_show = min(n, num_show if len(dataset.shape) == 1 else 64)
  d_step = particle_phase.make_discriminator_step(
      train_apply=d_net.train_apply, eval_apply=d_net.eval_apply, optimizer=d_tx,
      sample_real=dataset.sample, batch_size=hp.batch_size,
      gradient_penalty=hp.d_gradient_penalty,
      gradient_penalty_center=hp.d_gradient_penalty_center)

  def init(key: Array) -> ParticlesState:
    kd, kx = jax.random.split(key)
    d_params, d_state = d_net.init(kd, jnp.zeros((2,) + tuple(dataset.shape)))
    x = initial_particles(kx, n, dataset.shape, dataset.value_range, hp.init)
    # The key is state, not a compile-time constant: other seeds reuse the compiled step.
    return ParticlesState(
        step=jnp.zeros((), jnp.int32), key=jax.random.PRNGKey(cfg.training.seed),
        particles=x, d_params=d_params, d_state=d_state, d_opt_state=d_tx.init(d_params))

  def generate(state: ParticlesState, z: Array) -> Array:
    m = z.shape[0]
    if m > n:
      raise ValueError(f'particles: num={m} samples asked for, but the run holds '
                       f'methods.particles.num_particles={n}; ask for at most {n}')
    return state.particles[:m]

  def logit(state: ParticlesState, x: Array) -> Array:
    return d_net.eval_apply(state.d_params, state.d_state, x)  # [N]

  def step(state: ParticlesState, data_arrays: Any) -> Tuple[ParticlesState, Dict[str, Array]]:
    d_lr = optim.learning_rate(hp.d_optimizer, state.step)
    eta_scale = hp.step_decay_factor ** jnp.sum(
        state.step >= step_boundaries).astype(jnp.float32)
    d = particle_phase.Discriminator(state.d_params, state.d_state,
                                     optim.with_learning_rate(state.d_opt_state, d_lr))
    x0 = sharding.shard_batch(state.particles)  # [N, ...]
    d, x, move_metrics = particle_phase.refit_flow(
        d, x0, jax.random.fold_in(state.key, state.step), data_arrays, d_step=d_step,
        logit_apply=d_net.eval_apply, divergence=div, d_steps=hp.d_steps,
        step_size=etas * eta_scale, num_steps=hp.flow_steps, clip=clip)
    shift = jnp.sqrt(jnp.sum((x - x0).reshape(n, -1) ** 2, axis=1))  # [N]
    metrics = {**jax.tree.map(jnp.mean, move_metrics), 'particle_shift': jnp.mean(shift),
               'd_lr': d_lr, 'step_scale': eta_scale,
               'particles_before': x0[:num_show], 'particles_after': x[:num_show]}
    new_state = ParticlesState(step=state.step + 1, key=state.key, particles=x,
                               d_params=d.params, d_state=d.state, d_opt_state=d.opt_state)
    return new_state, metrics

  return method_lib.Method(name='particles', init=init, step=step, generate=generate,
                           latent_dim=1, logit=logit)
