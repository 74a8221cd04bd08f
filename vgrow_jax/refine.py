r"""Refined sampling for any method: its samples moved by the flow along a logistic D.

A trained method's samples x = G(z) are moved K steps (docs/math.md §1,
"Refinement"),

.. math::

    x \leftarrow \mathrm{clip}\big(x + \eta_k\, s(d(x))\, \nabla_x d(x)
        + \sqrt{2 \eta_k \gamma}\, \xi_k\big), \qquad k = 0, …, K-1,

or, with ``flow_space='latent'``, their latents z along ∇_z d(G(z)) with the
prior's drift −z (:func:`vgrow_jax.flow.latent_flow`), returning G(z). The
flow needs d ≈ log p/q for the samples' law q:

* **along the final D** (``d_steps`` = 0): the method's own D, where it is a
  logistic log-ratio (``HParams.logistic_d``: VGrow's D, GAN's D logit);
* **re-fit** (``d_steps`` = U > 0): U logistic-regression steps of D (real =
  1, :func:`vgrow_jax.particle_phase.make_discriminator_step`) on the
  training data against the samples being moved, before each move. D starts
  from the method's own logistic D, or, for a method without one (WGAN's
  critic, SNGAN's hinge D, the VAE, GMMN, Stein-KL), is a fresh D (the
  config's D net, optionally spectrally normalised on c·x, :func:`fresh_d_model`)
  fitted for ``d_warmup_steps`` first. The D fitted is thrown away;
  training is unchanged.
* **fitted once** (``d_steps`` = 0, ``d_warmup_steps`` = W > 0): that D is
  fitted W steps against the plain samples G(z) and then held fixed, so
  d ≈ log p/q₀ for G's own law q₀. In the latent space with noise γ = 1 the
  flow is then Langevin dynamics on N(z)·e^{d(G(z))}, whose image under G is
  p where d is exact (DGflow, DDLS); a re-fitted D instead tends to d = 0 as
  the samples improve, so the same flow drifts back towards the prior.

VGrow's own refined sampling (``methods.vgrow.sample_*``, in the data space
without noise) is its own code (:func:`vgrow_jax.vgrow.make_refiner`), kept as
trained; :func:`plan` says which applies. :func:`make_refined_generate` is
the pure part (no config); :func:`refined_method` is the adapter.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Dict, Optional, Tuple

import jax
import jax.numpy as jnp

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import divergences
from vgrow_jax import flow
from vgrow_jax import method as method_lib
from vgrow_jax import models
from vgrow_jax import optim
from vgrow_jax import particle_phase

Array = jax.Array

FLOW_SPACES = ('data', 'latent')
# The fields of a method's settings that hold its own refined sampling (VGrow's).
OWN_FIELDS = ('sample_flow_steps', 'sample_d_steps', 'sample_step_size', 'sample_step_schedule')
# Folded into the run's key for the draws of refined sampling (outer loops fold in their
# index, which never reaches it; VGrow's own sampler uses the same).
_SAMPLE_FOLD = 2**31 - 1
# A fresh D's initialisation key (fixed: the same latents give the same samples).
_FRESH_D_SEED = 12345
# Logistic D steps a fresh D takes before the first move, unless set: enough for the
# toy nets to tell the samples from the data before they move.
FRESH_D_WARMUP = 200


@dataclasses.dataclass(frozen=True)
class Refinement:
  """How to refine a method's samples (the keywords of ``train.restore``).

  Attributes:
    flow_steps: K, flow steps at sampling (0: plain samples).
    d_steps: U, logistic D steps before each move (0: along the method's final D).
    step_size: η (None: the method's ``step_size``).
    step_schedule: 'constant' or 'linear' η_k = η·(1 − k/K).
    flow_space: 'data' moves x; 'latent' moves z along ∇_z d(G(z)) − z and returns G(z).
    langevin: γ ≥ 0, the temperature of the noise √(2ηγ)ξ added to every move.
    d_batch_size: real and sample batch of the D steps (0: all the samples of a call).
    d_learning_rate: Adam's rate (β = (0.5, 0.999)) of those D steps.
    d_warmup_steps: D steps before the first move (None: 0 from the method's own D,
      ``FRESH_D_WARMUP`` for a fresh one).
    d_spectral_norm: a fresh D's spectral norm (one power iteration per step
      where the config's D has none; None: the config's ``model.d_spectral_norm``).
      A method's own D is kept as trained.
    d_input_scale: c > 0, a fresh MLP D sees c·x (None: the config's
      ``model.d_input_scale``).
    divergence: the f-divergence whose weight s(d) scales the moves (a name of
      :data:`vgrow_jax.divergences.NAMES`; None: the method's flow divergence,
      ``flow_divergence``, 'kl' where it has none). Latent Langevin dynamics
      sample N(z)·e^{d(G(z))} for 'kl' only (s = 1): another s tilts by
      ∫ s(d) dd instead, e.g. Jeffreys' d + e^d.
    metropolis: accept or reject each latent Langevin move (MALA,
      :func:`vgrow_jax.flow.metropolis_latent_flow`), so the chain keeps
      N(z)·e^{F(d(G(z)))} (to the power 1/γ) exactly invariant at any η, F the
      divergence's tilt; needs ``flow_space='latent'`` and γ > 0.
  """

  flow_steps: int = 0
  d_steps: int = 0
  step_size: Optional[float] = None
  step_schedule: str = 'constant'
  flow_space: str = 'data'
  langevin: float = 0.0
  d_batch_size: int = 0
  d_learning_rate: float = 1e-3
  d_warmup_steps: Optional[int] = None
  d_spectral_norm: Optional[bool] = None
  d_input_scale: Optional[float] = None
  divergence: Optional[str] = None
  metropolis: bool = False

  def __post_init__(self):
    for name, value in (('sample_flow_steps', self.flow_steps),
                        ('sample_d_steps', self.d_steps),
                        ('sample_d_batch_size', self.d_batch_size)):
      if not isinstance(value, int) or value < 0:
        raise ValueError(f'{name}={value!r}: must be an int >= 0')
    if self.d_warmup_steps is not None and (not isinstance(self.d_warmup_steps, int)
                                            or self.d_warmup_steps < 0):
      raise ValueError(f'sample_d_warmup_steps={self.d_warmup_steps!r}: must be an int >= 0')
    if self.step_size is not None and not self.step_size > 0:
      raise ValueError(f'sample_step_size={self.step_size!r}: must be > 0')
    if self.step_schedule not in config_lib.SAMPLE_STEP_SCHEDULES:
      raise ValueError(f'sample_step_schedule={self.step_schedule!r}: expected one of '
                       f'{list(config_lib.SAMPLE_STEP_SCHEDULES)}')
    if self.flow_space not in FLOW_SPACES:
      raise ValueError(f'flow_space={self.flow_space!r}: expected one of {list(FLOW_SPACES)}')
    if not self.langevin >= 0:
      raise ValueError(f'langevin={self.langevin!r}: must be >= 0')
    if self.d_spectral_norm is not None and not isinstance(self.d_spectral_norm, bool):
      raise ValueError(f'sample_d_spectral_norm={self.d_spectral_norm!r}: must be a bool')
    if self.d_input_scale is not None and not (isinstance(self.d_input_scale, (int, float))
                                               and 0 < self.d_input_scale < float('inf')):
      raise ValueError(f'sample_d_input_scale={self.d_input_scale!r}: must be finite and > 0')
    if not self.d_learning_rate > 0:
      raise ValueError(f'sample_d_learning_rate={self.d_learning_rate!r}: must be > 0')
    if self.divergence is not None:
      try:
        known = isinstance(self.divergence, str) and bool(divergences.get(self.divergence))
      except ValueError:
        known = False
      if not known:
        raise ValueError(f'sample_divergence={self.divergence!r}: expected one of '
                         f'{list(divergences.NAMES)}')
    if not isinstance(self.metropolis, bool):
      raise ValueError(f'sample_metropolis={self.metropolis!r}: must be a bool')
    if self.metropolis and self.flow_steps and not (self.flow_space == 'latent'
                                                    and self.langevin > 0):
      raise ValueError(f'sample_metropolis=True accepts or rejects latent Langevin moves: it '
                       f'needs flow_space=\'latent\' and langevin > 0, got '
                       f'flow_space={self.flow_space!r}, langevin={self.langevin!r}')
    if not self.flow_steps:
      for name, on in (('sample_d_steps', self.d_steps), ('langevin', self.langevin),
                       ('flow_space', self.flow_space != 'data'),
                       ('sample_divergence', self.divergence is not None),
                       ('sample_metropolis', self.metropolis)):
        if on:
          value = getattr(self, {'sample_d_steps': 'd_steps', 'sample_divergence': 'divergence',
                                 'sample_metropolis': 'metropolis'}.get(name, name))
          raise ValueError(f'{name}={value!r} refines samples: it needs sample_flow_steps > 0')
    if self.d_warmup_steps and not self.flow_steps:
      raise ValueError(f'sample_d_warmup_steps={self.d_warmup_steps!r} fits the D of refined '
                       'sampling: it needs sample_flow_steps > 0')
    for name, value in self.fresh_d_options().items():
      if not (self.flow_steps and self.fits_d):
        raise ValueError(f'{name}={value!r} sets the fresh D fitted at sampling: it needs '
                         'sample_flow_steps > 0 and sample_d_steps > 0 or '
                         'sample_d_warmup_steps > 0')

  @property
  def fits_d(self) -> bool:
    """Whether a D is fitted at sampling (U > 0, or W > 0 warm-up steps then a fixed D)."""
    return bool(self.d_steps or self.d_warmup_steps)

  def fresh_d_options(self) -> Dict[str, Any]:
    """The fresh-D keywords given (``sample_d_spectral_norm``, ``sample_d_input_scale``)."""
    return {k: v for k, v in (('sample_d_spectral_norm', self.d_spectral_norm),
                              ('sample_d_input_scale', self.d_input_scale)) if v is not None}


def step_sizes(step_size: float, num_steps: int, schedule: str) -> Array:
  """η_k ``[K]``: constant, or 'linear' η·(1 − k/K) (VGrow's :func:`~vgrow_jax.vgrow.sample_step_sizes`)."""
  if schedule == 'constant':
    return jnp.full((num_steps,), step_size, jnp.float32)
  if schedule == 'linear':
    return step_size * (1.0 - jnp.arange(num_steps, dtype=jnp.float32) / num_steps)
  raise ValueError(f'sample_step_schedule={schedule!r}: expected one of '
                   f'{list(config_lib.SAMPLE_STEP_SCHEDULES)}')


def make_refined_generate(
    *,
    generate: Callable[[Any, Array], Array],
    divergence: flow.DivergenceLike,
    num_steps: int,
    step_size: float,
    step_schedule: str = 'constant',
    flow_space: str = 'data',
    langevin: float = 0.0,
    metropolis: bool = False,
    logit: Optional[Callable[[Any, Array], Array]] = None,
    d_steps: int = 0,
    start_d: Optional[Callable[[Any], particle_phase.Discriminator]] = None,
    d_eval_apply: Optional[particle_phase.EvalApply] = None,
    make_d_step: Optional[Callable[[int], particle_phase.DStep]] = None,
    d_batch_size: int = 0,
    d_warmup_steps: int = 0,
    data: Any = None,
    clip: flow.Clip = None,
    aux: bool = False,
) -> Callable[[Any, Array], Any]:
  """``generate`` followed by K flow steps, as a pure ``(state, z [N, nz]) -> x [N, ...]``.

  Args:
    generate: the method's ``(state, z) -> x``; for ``flow_space='latent'``
      differentiable in z (G in evaluation mode).
    divergence: name or Divergence (sets s).
    num_steps: K ≥ 1.
    step_size: η.
    step_schedule: 'constant' or 'linear'.
    flow_space: 'data' or 'latent'.
    langevin: γ ≥ 0.
    metropolis: accept or reject each latent move (needs 'latent' and γ > 0).
    logit: ``(state, x) -> [N]``, the final D (with ``d_steps`` = 0).
    d_steps: U ≥ 0; U > 0 re-fits D before each move.
    start_d: ``state -> Discriminator``, the D re-fitting starts from.
    d_eval_apply: ``(params, state, x) -> [N]`` of that D.
    make_d_step: ``batch_size -> d_step`` (:func:`vgrow_jax.particle_phase.make_discriminator_step`).
    d_batch_size: real and sample batch of the D steps (0: the N samples).
    d_warmup_steps: D steps on G(z) before the first move.
    data: the real-data pytree the D steps draw from.
    clip: optional ``(lo, hi)`` after every move in the data space.
    aux: return ``(x, stats)`` instead of x, ``stats`` a dict of ``[N]``
      arrays: with ``metropolis``, ``'acceptance'``, the fraction of each
      chain's K moves accepted; else empty.

  Returns:
    ``refined(state, z) -> x`` (``-> (x, stats)`` with ``aux``). Its draws come
    from ``fold_in(state.key, 2**31 − 1)``, so the same latents give the same samples.
  """
  latent = flow_space == 'latent'
  div = divergences.get(divergence)

  def move(logit_fn, u, g, eta, n_steps, key):
    """n_steps moves of u (latents or samples) along logit_fn -> (u, accepted moves [N])."""
    if latent and metropolis:
      u, rate = flow.metropolis_latent_flow(logit_fn, g, u, div, step_size=eta,
                                            num_steps=n_steps, noise=langevin, key=key)
      return u, rate * n_steps
    if latent:
      u = flow.latent_flow(logit_fn, g, u, div, step_size=eta, num_steps=n_steps,
                           noise=langevin, key=key)
    else:
      u = flow.flow_particles(logit_fn, u, div, step_size=eta, num_steps=n_steps,
                              clip=clip, noise=langevin, key=key)
    return u, jnp.zeros(u.shape[:1])

  def refined_aux(state: Any, z: Array) -> Tuple[Array, Dict[str, Array]]:
    g = lambda u: generate(state, u)
    x = g(z)  # [N, ...]
    etas = step_sizes(step_size, num_steps, step_schedule)  # [K]
    key = jax.random.fold_in(state.key, _SAMPLE_FOLD)
    u0 = z if latent else x  # what moves: the latents or the samples
    out = lambda u: g(u) if latent else u
    if not d_steps and not d_warmup_steps:
      u, accepted = move(lambda y: logit(state, y), u0, g, etas, num_steps, key)
    else:
      n = x.shape[0]
      d_step = make_d_step(min(d_batch_size, n) if d_batch_size else n)
      k_warm, k_loop = jax.random.split(key)
      d = start_d(state)
      if d_warmup_steps:
        d, _ = jax.lax.scan(lambda dc, kd: d_step(dc, x, kd, data), d,
                            jax.random.split(k_warm, d_warmup_steps))
      if not d_steps:
        # D fitted once against the plain samples, then fixed: d ≈ log p/q₀ for G's own
        # law q₀, the tilt that a latent Langevin flow samples exactly (DGflow, DDLS).
        u, accepted = move(lambda v: d_eval_apply(d.params, d.state, v), u0, g, etas,
                           num_steps, k_loop)
      else:

        def one_step(carry, xs):
          d, u, accepted = carry
          k, eta = xs
          y = out(u)  # the samples D is fitted against stay put for U steps
          d, _ = jax.lax.scan(lambda dc, kd: d_step(dc, y, kd, data), d,
                              jax.random.split(k, d_steps))
          logit_fn = lambda v: d_eval_apply(d.params, d.state, v)
          u, acc = move(logit_fn, u, g, eta, 1, jax.random.fold_in(k, 1))
          return (d, u, accepted + acc), None

        (_, u, accepted), _ = jax.lax.scan(
            one_step, (d, u0, jnp.zeros(x.shape[:1])),
            (jax.random.split(k_loop, num_steps), etas))
    stats = {'acceptance': accepted / num_steps} if latent and metropolis else {}
    return out(u), stats

  if aux:
    return refined_aux
  return lambda state, z: refined_aux(state, z)[0]


def has_own_sampling(cfg: config_lib.Config) -> bool:
  """Whether the method's settings hold its own refined sampling (VGrow's ``sample_*``)."""
  names = {f.name for f in dataclasses.fields(cfg.hparams)}
  return all(f in names for f in OWN_FIELDS)


def plan(cfg: config_lib.Config, **overrides: Any
         ) -> Tuple[config_lib.Config, Optional[Refinement]]:
  """Which refined sampling ``train.restore``'s keywords ask for.

  Args:
    cfg: the run's config.
    **overrides: ``sample_flow_steps``, ``sample_d_steps``, ``sample_step_size``,
      ``sample_step_schedule``, ``flow_space``, ``langevin``,
      ``sample_d_batch_size``, ``sample_d_learning_rate``,
      ``sample_d_warmup_steps``, ``sample_d_spectral_norm``,
      ``sample_d_input_scale``, ``sample_divergence``, ``sample_metropolis``;
      None = not given.

  Returns:
    ``(cfg, None)`` where the method's own refined sampling applies (VGrow
    in the data space without noise: ``cfg`` with its ``sample_*`` fields
    replaced), else ``(cfg, refinement)`` for :func:`refined_method`
    (``refinement.flow_steps`` = 0: plain samples).

  Raises:
    ValueError: a bad or unknown keyword, or a combination that cannot run
      (one line naming it).
  """
  known = set(OWN_FIELDS) | {'flow_space', 'langevin', 'sample_d_batch_size',
                             'sample_d_learning_rate', 'sample_d_warmup_steps',
                             'sample_d_spectral_norm', 'sample_d_input_scale',
                             'sample_divergence', 'sample_metropolis'}
  for k in overrides:
    if k not in known:
      raise ValueError(f'unknown refined-sampling keyword {k}; expected one of {sorted(known)}')
  given = {k: v for k, v in overrides.items() if v is not None}
  hp = cfg.hparams
  own = has_own_sampling(cfg)
  # VGrow's own sampler has no warm-up, D rate or divergence of its own: asking for one takes
  # the generic refiner (starting from the run's D) rather than dropping the keyword.
  generic = (given.get('flow_space', 'data') != 'data' or bool(given.get('langevin', 0))
             or 'sample_d_warmup_steps' in given or 'sample_d_learning_rate' in given
             or 'sample_divergence' in given or bool(given.get('sample_metropolis')))
  if own and not generic:
    for k in ('sample_d_spectral_norm', 'sample_d_input_scale'):
      if k in given:
        raise ValueError(_own_d_message(k, given[k], cfg.method))
    fields = {k: v for k, v in given.items() if k in OWN_FIELDS}
    if 'sample_d_batch_size' in given:
      fields['sample_d_batch_size'] = given['sample_d_batch_size']
    if fields:
      cfg = cfg.with_hparams(**fields)
    if cfg.hparams.sample_d_steps and not cfg.hparams.sample_flow_steps and fields.get(
        'sample_d_steps'):
      raise ValueError(f"sample_d_steps={cfg.hparams.sample_d_steps} refines samples: it "
                       'needs sample_flow_steps > 0')
    return cfg, None
  default = lambda field, value: getattr(hp, field) if own else value
  r = Refinement(
      flow_steps=given.get('sample_flow_steps', default('sample_flow_steps', 0)),
      d_steps=given.get('sample_d_steps', default('sample_d_steps', 0)),
      step_size=given.get('sample_step_size', default('sample_step_size', None)),
      step_schedule=given.get('sample_step_schedule', default('sample_step_schedule',
                                                              'constant')),
      flow_space=given.get('flow_space', 'data'), langevin=float(given.get('langevin', 0.0)),
      d_batch_size=given.get('sample_d_batch_size', default('sample_d_batch_size', 0)),
      d_learning_rate=float(given.get('sample_d_learning_rate', 1e-3)),
      d_warmup_steps=given.get('sample_d_warmup_steps'),
      d_spectral_norm=given.get('sample_d_spectral_norm'),
      d_input_scale=given.get('sample_d_input_scale'),
      divergence=given.get('sample_divergence'),
      metropolis=given.get('sample_metropolis', False))
  return cfg, r


def _own_d_message(name: str, value: Any, method: str) -> str:
  return (f'{name}={value!r} sets the fresh D fitted for a method without a logistic D, but '
          f'method {method!r} is refined along its own logistic D; drop it')


def reads_latents(generate: Callable[[Any, Array], Array], state: Any, z: Any) -> bool:
  """Whether ``generate(state, z)`` reads z's values (a G(z)), not only its shape (stored samples).

  Traces ``generate`` once on ``z`` (an array or ``jax.ShapeDtypeStruct``),
  computing nothing.

  Raises:
    ValueError: what ``generate`` raises at trace time for that z (e.g. more
      samples asked for than a generator-free run holds).
  """
  jaxpr = jax.make_jaxpr(generate)(state, z).jaxpr
  z_var = jaxpr.invars[-1]
  return any(z_var in eqn.invars for eqn in jaxpr.eqns) or z_var in jaxpr.outvars


def has_generator(method: method_lib.Method, seed: int = 0) -> bool:
  """Whether ``method.generate``'s samples depend on its latents (a G(z), not stored samples)."""
  state = jax.eval_shape(method.init, jax.random.PRNGKey(seed))
  z = jax.ShapeDtypeStruct((2, method.latent_dim), jnp.float32)
  return reads_latents(method.generate, state, z)


def _d_model(cfg: config_lib.Config) -> config_lib.ModelConfig:
  """The model config of the method's own D (a method module's ``model_config`` may adjust it)."""
  module = sys.modules[method_lib.get(cfg.method).__module__]
  adjust = getattr(module, 'model_config', None)
  return adjust(cfg, cfg.hparams) if adjust else cfg.model


def fresh_d_model(model: config_lib.ModelConfig, r: Refinement) -> config_lib.ModelConfig:
  """The model config of the fresh D that refinement ``r`` fits for a method without a logistic D.

  Unset keywords keep the config's D net as it is, not spectral norm on c·x:
  that gain needs an input scale c the library cannot pick, and it does not
  hold for every method. On the toys (60 s runs, seeds 0-2), spectral norm on
  VGrow's c·x (grid 2, ring 5) with VGrow's η took the ring's SNGAN from 3.8%
  high quality (plain D) to 92% and its VAE from 5.0% to 50% (the plain D's
  unbounded field threw near-mode samples a median 0.9-1.2 across the ring,
  seed 0), but carried WGAN-GP's samples, collapsed at the ring's centre, too
  slowly to settle in the modes (61% -> 3%).

  Raises:
    config.ConfigError: an input scale other than 1 for a non-MLP D (one line).
  """
  fields: Dict[str, Any] = {}
  if r.d_spectral_norm is not None:
    fields['d_spectral_norm'] = r.d_spectral_norm
    if r.d_spectral_norm and not model.d_spectral_norm:
      # One power iteration per D step, as VGrow's toy D: the steps are many and small.
      fields['sn_power_iterations'] = 1
  if r.d_input_scale is not None:
    fields['d_input_scale'] = float(r.d_input_scale)
  return dataclasses.replace(model, **fields)


def refined_method(cfg: config_lib.Config, method: method_lib.Method,
                   dataset: data_lib.Dataset, r: Refinement) -> method_lib.Method:
  """``method`` with ``generate`` refined as ``r`` says (the adapter of :func:`make_refined_generate`).

  Args:
    cfg: the run's config (the method's settings say whether its D is a
      logistic log-ratio, ``logistic_d``, its flow's divergence and η).
    method: the method, with its own refined sampling off.
    dataset: the training data (``r.d_steps`` > 0), else its shape-only spec.
    r: the refinement.

  Raises:
    ValueError: a combination that cannot run, in one line naming it: K > 0
      with U = 0 for a method without a logistic D; ``flow_space='latent'``
      for a method without a generator; no η.
  """
  if not r.flow_steps:
    return method
  hp = cfg.hparams
  name = cfg.method
  logistic = bool(getattr(hp, 'logistic_d', False)) and method.logit is not None
  fits_d = r.fits_d
  if not fits_d and not logistic:
    raise ValueError(f'sample_flow_steps={r.flow_steps} with sample_d_steps=0 flows along the '
                     f"final D, but method {name!r} has no logistic D (d = log p/q); set "
                     '--sample_d_steps=U > 0 or --sample_d_warmup_steps=W > 0 to fit a fresh '
                     'logistic D at sampling')
  if fits_d and logistic:
    for k, v in r.fresh_d_options().items():
      raise ValueError(_own_d_message(k, v, name))
  if r.flow_space == 'latent' and not has_generator(method, cfg.training.seed):
    raise ValueError(f"flow_space='latent' moves latents z of G(z), but method {name!r} has "
                     "no generator (its samples do not depend on z); use flow_space='data'")
  eta = r.step_size if r.step_size is not None else getattr(hp, 'step_size', None)
  if eta is None:
    raise ValueError(f'sample_flow_steps={r.flow_steps}: method {name!r} has no step_size to '
                     'move by; set --sample_step_size')
  clip = tuple(dataset.value_range) if len(dataset.shape) == 3 else None
  kw: Dict[str, Any] = {}
  if fits_d:
    tx = optim.make(config_lib.OptimizerConfig(name='adam', learning_rate=r.d_learning_rate,
                                               b1=0.5, b2=0.999))
    if logistic:
      _, d_net = models.build(_d_model(cfg), dataset.shape)

      def start_d(state):
        return particle_phase.Discriminator(state.d_params, state.d_state,
                                            tx.init(state.d_params))
      warmup = 0
    else:
      # The config's D net, fitted from scratch at sampling.
      _, d_net = models.build(fresh_d_model(cfg.model, r), dataset.shape)

      def start_d(state):
        del state
        params, d_state = d_net.init(jax.random.PRNGKey(_FRESH_D_SEED),
                                     jnp.zeros((2,) + tuple(dataset.shape)))
        return particle_phase.Discriminator(params, d_state, tx.init(params))
      warmup = FRESH_D_WARMUP
    kw = dict(
        d_steps=r.d_steps, start_d=start_d, d_eval_apply=d_net.eval_apply,
        make_d_step=lambda b: particle_phase.make_discriminator_step(
            train_apply=d_net.train_apply, eval_apply=d_net.eval_apply, optimizer=tx,
            sample_real=dataset.sample, batch_size=b),
        d_batch_size=r.d_batch_size,
        d_warmup_steps=warmup if r.d_warmup_steps is None else r.d_warmup_steps,
        data=dataset.arrays)
  kw.update(
      generate=method.generate,
      divergence=r.divergence or getattr(hp, 'flow_divergence', 'kl'),
      num_steps=r.flow_steps, step_size=eta, step_schedule=r.step_schedule,
      flow_space=r.flow_space, langevin=r.langevin, metropolis=r.metropolis,
      logit=method.logit, clip=clip)
  refined_aux = make_refined_generate(aux=True, **kw)
  return method._replace(
      generate=lambda state, z: refined_aux(state, z)[0], sampling=describe(cfg, r),
      generate_aux=refined_aux if r.metropolis else None)


def _fresh_kind(r: Refinement) -> str:
  """What the keywords change of a fresh D (without them it is the config's D net)."""
  kind = [] if r.d_spectral_norm is None else [
      'spectrally normalised' if r.d_spectral_norm else 'no spectral norm']
  if r.d_input_scale is not None:
    kind.append(f'on {r.d_input_scale:g}·x')
  return f" ({', '.join(kind)})" if kind else ''


def describe(cfg: config_lib.Config, r: Refinement) -> str:
  """The protocol's words for refinement ``r`` of a run of ``cfg`` (e.g. in ``vgrow-eval``'s record)."""
  hp = cfg.hparams
  eta = r.step_size if r.step_size is not None else getattr(hp, 'step_size', None)
  how = [] if eta is None else [f'η = {eta:g}']
  if r.step_schedule == 'linear':
    how.append('decaying linearly')
  if r.flow_space == 'latent':
    text = f'G(z), z moved by {r.flow_steps} flow steps in latent space (prior drift −z)'
  else:
    text = f'G(z) + {r.flow_steps} flow steps'
  own = getattr(hp, 'logistic_d', False)
  if not r.fits_d:
    text += ' along the final D'
  elif not r.d_steps:
    text += (", the run's D" if own else f', a fresh logistic D{_fresh_kind(r)}')
    text += (f' fitted on the training data with {r.d_warmup_steps} step(s) against the plain '
             'samples, then fixed')
  elif own:
    text += f', D re-fitted on the training data with {r.d_steps} logistic step(s) before each'
  else:
    text += (f', a fresh logistic D{_fresh_kind(r)} fitted on the training data with '
             f'{r.d_steps} step(s) before each')
  if r.d_steps and r.d_warmup_steps is not None:
    text += f' after {r.d_warmup_steps} warm-up step(s)'
  if r.divergence is not None:
    how.append(f'{divergences.get(r.divergence).name} weight s(d)')
  if r.langevin:
    how.append(f'Langevin noise γ = {r.langevin:g}')
  if r.metropolis:
    how.append('each move Metropolis-adjusted (MALA)')
  return text + (f" ({', '.join(how)})" if how else '')
