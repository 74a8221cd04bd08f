"""A trained run as functions: ``vgrow_jax.load(workdir)``.

>>> run = vgrow_jax.load('workdirs/grid_kl')             # doctest: +SKIP
>>> x = jax.jit(run.generate)(z)                          # G(z), [N, ...]
>>> d = run.logit(x)                                      # D's logit, [N]
>>> x = run.sample(2500, flow_steps=200, d_steps=1)       # VGrow's re-fit sampling

``generate`` and ``logit`` are pure closures over the restored state, so
they jit, vmap and differentiate, and plug into :func:`vgrow_jax.flow_particles`,
:func:`vgrow_jax.latent_flow` and :func:`vgrow_jax.refit_flow`. ``sample``
is the sampling of ``vgrow-sample`` (same latents for the same seed) through
:func:`vgrow_jax.train.restore`'s code.
"""

from __future__ import annotations

import dataclasses
import sys
from typing import Any, Callable, Dict, Optional

import jax
import numpy as np
import optax

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib
from vgrow_jax import models
from vgrow_jax import particle_phase
from vgrow_jax import train

__all__ = ['Run', 'load']

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Run:
  """A trained run restored from its workdir (:func:`load`).

  Attributes:
    workdir: where it was read from.
    config: the run's config (config.json), as trained.
    state: the restored state (``state.step`` outer loops done; G's and, for
      methods with a D, D's ``*_params``, ``*_state``, ``*_opt_state``).
    data_spec: data_spec.json: ``name``, ``shape``, ``value_range``,
      ``modes``, ``std``.
    method: the :class:`~vgrow_jax.method.Method`, built with VGrow's
      sample-time flow off (``generate`` is G alone).
  """

  workdir: str
  config: config_lib.Config
  state: Any
  data_spec: Dict[str, Any]
  method: method_lib.Method

  @property
  def latent_dim(self) -> int:
    """nz, the width of the latents ``generate`` takes."""
    return self.method.latent_dim

  @property
  def generate(self) -> Callable[[Array], Array]:
    """``z [N, nz] -> x [N, ...]``: G in evaluation mode (its EMA where the run keeps one)."""
    method, state = self.method, self.state
    return lambda z: method.generate(state, z)

  @property
  def logit(self) -> Optional[Callable[[Array], Array]]:
    """``x [N, ...] -> [N]``: D's logit in evaluation mode, or None for methods without a D.

    For VGrow (logistic D, real = 1) it estimates log p/q; for other methods
    it is their D's raw output (e.g. a hinge or Wasserstein critic), which
    :func:`vgrow_jax.refit_flow` turns into such an estimate by re-fitting.
    """
    if self.method.logit is None:
      return None
    method, state = self.method, self.state
    return lambda x: method.logit(state, x)

  def dataset(self) -> data_lib.Dataset:
    """The training data (``config.data``), e.g. for ``sample_real=run.dataset().sample``."""
    return data_lib.load(self.config.data)

  def discriminator_net(self) -> models.Net:
    """D as pure ``train_apply`` / ``eval_apply`` functions (for :func:`vgrow_jax.refit_flow`).

    Raises:
      ValueError: the method has no D, or D cannot be rebuilt from the config.
    """
    if self.method.logit is None:
      raise ValueError(f'Run.discriminator_net: method {self.config.method!r} has no '
                       'discriminator')
    # A method module may adjust the model config for its D (SNGAN switches
    # spectral norm on): its ``model_config(cfg, hparams)`` says how.
    module = sys.modules[method_lib.get(self.config.method).__module__]
    adjust = getattr(module, 'model_config', None)
    model_cfg = adjust(self.config, self.config.hparams) if adjust else self.config.model
    _, d_net = models.build(model_cfg, tuple(self.data_spec['shape']))
    example = np.zeros((2,) + tuple(self.data_spec['shape']), np.float32)
    shapes = jax.eval_shape(d_net.init, jax.random.PRNGKey(0), example)
    if (jax.tree.structure(shapes[0]) != jax.tree.structure(self.state.d_params) or
        jax.tree.structure(shapes[1]) != jax.tree.structure(self.state.d_state)):
      raise ValueError(f'Run.discriminator_net: the D built from the config of method '
                       f'{self.config.method!r} does not match the checkpoint\'s D')
    return d_net

  def discriminator(self, optimizer: optax.GradientTransformation
                    ) -> particle_phase.Discriminator:
    """The restored D with a fresh ``optimizer`` state, to re-fit with :func:`vgrow_jax.refit_flow`."""
    self.discriminator_net()  # checks that the run has a D
    return particle_phase.Discriminator(self.state.d_params, self.state.d_state,
                                        optimizer.init(self.state.d_params))

  def sample(self, num: int, *, seed: int = 0, flow_steps: int = 0, d_steps: int = 0,
             step_size: Optional[float] = None, step_schedule: Optional[str] = None,
             flow_space: str = 'data', langevin: float = 0.0) -> np.ndarray:
    """``num`` samples, G(z) with z = N(0, I) from ``PRNGKey(seed)`` (as ``vgrow-sample``).

    Any run can refine them (``vgrow-eval --sample_flow_steps`` ...,
    :mod:`vgrow_jax.refine`): ``flow_steps`` = K > 0 moves them K flow
    steps along the final D (a method whose D is a logistic log-ratio:
    VGrow, GAN), and ``d_steps`` = U > 0 re-fits D (the run's logistic D, or
    a fresh one) for U steps before each move (loads the training data).
    ``flow_space='latent'`` moves the latents instead, ``langevin`` = γ > 0
    adds noise. 0 means off, whatever the run's own
    ``methods.vgrow.sample_*`` settings; η is ``step_size`` (default: the
    run's) over ``step_schedule`` ('constant' or 'linear').

    Returns:
      ``[num, ...]`` numpy samples.

    Raises:
      ValueError: ``d_steps``, ``step_size``, ``step_schedule``, a latent
        flow or noise without ``flow_steps``, or a refinement the run cannot
        take (:func:`vgrow_jax.refine.refined_method`), in one line.
    """
    extras = [f'{k}={v!r}' for k, v, on in (
        ('d_steps', d_steps, d_steps), ('step_size', step_size, step_size is not None),
        ('step_schedule', step_schedule, step_schedule is not None),
        ('flow_space', flow_space, flow_space != 'data'), ('langevin', langevin, langevin))
              if on]
    if not flow_steps and extras:
      raise ValueError(f"Run.sample: {', '.join(extras)} need flow_steps > 0")
    method = self.method
    if flow_steps:
      _, method = train.sampling_method(
          self.config, self.data_spec, sample_flow_steps=flow_steps, sample_d_steps=d_steps,
          sample_step_size=step_size, sample_step_schedule=step_schedule,
          flow_space=flow_space, langevin=langevin)
    return train.sample(method, self.state, num, seed=seed)


def load(workdir: str, step: Optional[int] = None) -> Run:
  """A trained run from its workdir: config, restored state, data spec, G and D as functions.

  Args:
    workdir: a training workdir (config.json, data_spec.json, checkpoints/).
    step: the checkpoint (outer loop) to restore; None: the newest readable.

  Returns:
    A :class:`Run`.

  Raises:
    FileNotFoundError: no config, data spec or checkpoint in ``workdir``.
    config.ConfigError: config.json is not a valid config.
    checkpoint.CheckpointMismatchError: the checkpoint does not fit config.json.
    checkpoint.CheckpointError: the checkpoint cannot be read.
  """
  cfg = train.load_config(workdir)
  spec = train.load_data_spec(workdir)
  # G alone: VGrow's sample-time flow is asked for in Run.sample, not baked in.
  _, method = train.sampling_method(cfg, spec, sample_flow_steps=0, sample_d_steps=0)
  state = train.restore_state(workdir, cfg, method, step)
  return Run(workdir=workdir, config=cfg, state=state, data_spec=spec, method=method)
