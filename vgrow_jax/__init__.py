"""vgrow_jax: deep generative learning by Variational Gradient Flow, in JAX.

The flow itself (:mod:`vgrow_jax.flow`: ``flow_step``, ``flow_particles``,
``latent_flow``, ``metropolis_latent_flow``), the particle phase (:mod:`vgrow_jax.particle_phase`:
``make_discriminator_step``, ``refit_flow``) and the divergence table
(:mod:`vgrow_jax.divergences`) are pure functions usable on their own; the
rest is a trainer around them. ``load(workdir)`` gives a trained run's G and
D as functions.

``vg.flow`` is the module; the function that runs the flow is
``vg.flow_particles``. The trainer's modules (``vg.train``, ``vg.checkpoint``,
``vg.plotting``) and ``vg.load`` are imported on first use, which keeps
``import vgrow_jax`` free of orbax and matplotlib.

On import it adds XLA:CPU flags that the compiled loops need for speed to
``XLA_FLAGS`` (:mod:`vgrow_jax.xla_flags`; ``VGROW_JAX_XLA_FLAGS=0`` opts out).
"""

import importlib as _importlib

# First: XLA reads its flags when JAX starts a backend (vgrow_jax/xla_flags.py).
from vgrow_jax import xla_flags as _xla_flags

_xla_flags.apply()

from vgrow_jax import config  # pylint: disable=g-import-not-at-top,wrong-import-position
from vgrow_jax import data
from vgrow_jax import divergences
from vgrow_jax import flow
from vgrow_jax import image_data
from vgrow_jax import image_metrics
from vgrow_jax import method
from vgrow_jax import metrics
from vgrow_jax import models
from vgrow_jax import particle_phase
from vgrow_jax.config import Config
from vgrow_jax.flow import clip_particles
from vgrow_jax.flow import density_ratio
from vgrow_jax.flow import field_and_logit
from vgrow_jax.flow import flow_particles
from vgrow_jax.flow import flow_step
from vgrow_jax.flow import latent_flow
from vgrow_jax.flow import metropolis_latent_flow
from vgrow_jax.flow import standard_normal_log_prob
from vgrow_jax.flow import vector_field
from vgrow_jax.particle_phase import Discriminator
from vgrow_jax.particle_phase import discriminator_loss
from vgrow_jax.particle_phase import make_discriminator_step
from vgrow_jax.particle_phase import refit_flow

__version__ = '0.1.0'

# name -> module of the lazily imported attributes.
_LAZY = {
    'train': 'vgrow_jax.train',
    'checkpoint': 'vgrow_jax.checkpoint',
    'plotting': 'vgrow_jax.plotting',
    'loader': 'vgrow_jax.loader',
    'load': 'vgrow_jax.loader',
    'Run': 'vgrow_jax.loader',
}

__all__ = [
    # modules
    'config', 'data', 'divergences', 'flow', 'image_data', 'image_metrics', 'method',
    'metrics', 'models', 'particle_phase', 'train', 'checkpoint', 'plotting', 'loader',
    # the flow
    'density_ratio', 'field_and_logit', 'vector_field', 'clip_particles', 'flow_step',
    'flow_particles', 'latent_flow', 'metropolis_latent_flow', 'standard_normal_log_prob',
    # the particle phase
    'Discriminator', 'discriminator_loss', 'make_discriminator_step', 'refit_flow',
    # runs
    'Config', 'load', 'Run',
]


def __getattr__(name):
  if name in _LAZY:
    module = _importlib.import_module(_LAZY[name])
    value = module if module.__name__.endswith('.' + name) else getattr(module, name)
    globals()[name] = value
    return value
  raise AttributeError(f'module {__name__!r} has no attribute {name!r}')


def __dir__():
  return sorted(set(globals()) | set(_LAZY))
