"""The interface every training method implements, and the method registry.

A method is one module with a ``make(cfg, dataset) -> Method`` factory and a
frozen ``HParams`` dataclass of its settings (published defaults as the
field defaults, its optimisers included), plus one line in ``_REGISTRY``
below. ``cfg.hparams`` gives the running method's settings; a config's
``methods`` section holds one ``HParams`` per method (VGrow's too), so one
field (``method``) switches methods. The config (:mod:`vgrow_jax.config`)
and the trainer (:mod:`vgrow_jax.train`) only call the fields of
:class:`Method` and of ``HParams`` (:class:`vgrow_jax.config.MethodHParams`),
so they never branch on method names.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, NamedTuple, Optional, Tuple

import jax

Array = jax.Array


class Method(NamedTuple):
  """Pure functions of a training method.

  Attributes:
    name: registry name.
    init: ``key -> state``; ``state.step`` counts outer loops done.
    step: ``(state, data_arrays) -> (state, metrics)``, one outer loop, pure
      and jittable (the trainer jits it with the state donated). Scalar
      metrics are logged; array metrics (e.g. ``particles_before``) feed
      figures.
    generate: ``(state, z [N, nz]) -> samples [N, ...]`` in evaluation mode.
    latent_dim: nz.
    logit: ``(state, x [N, ...]) -> [N]``, the discriminator's (or critic's)
      output in evaluation mode, for diagnostics such as
      :func:`vgrow_jax.image_metrics.logit_gap`; None for methods without one.
    sampling: how ``generate`` refines its samples, in words for the
      protocols of ``vgrow-eval`` ('' = it does not; :mod:`vgrow_jax.refine`).
    generate_aux: ``(state, z [N, nz]) -> (samples [N, ...], {name: [N]})``,
      ``generate`` with what refined sampling measured per sample (with
      Metropolis-adjusted moves, ``'acceptance'``: the fraction of each
      chain's moves accepted); None where it measures nothing.
    watch: ``() -> check``, a fresh watcher for one training run;
      ``check(loop, scalars) -> str`` is called at each log point with the
      logged scalars (``train_*``) and returns a one-line warning for the
      log ('' = none), e.g. that D has started to win
      (:func:`vgrow_jax.particle_phase.watch_discriminator`); None: no watch.
  """

  name: str
  init: Callable[[Array], Any]
  step: Callable[[Any, Any], Tuple[Any, Dict[str, Array]]]
  generate: Callable[[Any, Array], Array]
  latent_dim: int
  logit: Optional[Callable[[Any, Array], Array]] = None
  sampling: str = ''
  generate_aux: Optional[Callable[[Any, Array], Tuple[Array, Dict[str, Array]]]] = None
  watch: Optional[Callable[[], Callable[[int, Dict[str, float]], str]]] = None


# name -> 'module:factory'; imported lazily so that a method's dependencies
# load only when it is used.
_REGISTRY: Dict[str, str] = {
    'vgrow': 'vgrow_jax.vgrow:make',
    'gan': 'vgrow_jax.gan:make',
    'wgan': 'vgrow_jax.wgan:make',
    'wgan_gp': 'vgrow_jax.wgan_gp:make',
    'sngan': 'vgrow_jax.sngan:make',
    'fgan': 'vgrow_jax.fgan:make',
    'mmd': 'vgrow_jax.mmd:make',
    'vae': 'vgrow_jax.vae:make',
    'stein_kl': 'vgrow_jax.stein_kl:make',
    'particles': 'vgrow_jax.particles:make',
}

NAMES = tuple(sorted(_REGISTRY))

# The method a Config runs unless it names one.
DEFAULT = 'vgrow'

# Top-level config sections of older releases that are now (a field of) a
# method's section: old key -> (method, field; '' = the whole section).
# Config.from_dict moves them, so that old config.json files still load.
LEGACY_SECTIONS: Dict[str, Tuple[str, str]] = {
    'vgrow': ('vgrow', ''),
    'g_optimizer': ('vgrow', 'g_optimizer'),
    'd_optimizer': ('vgrow', 'd_optimizer'),
}


def get(name: str) -> Callable[..., Method]:
  """The factory ``make(cfg, dataset) -> Method`` of a registered method."""
  if name not in _REGISTRY:
    raise ValueError(f'unknown method {name!r}; expected one of {list(NAMES)}')
  module, attr = _REGISTRY[name].split(':')
  return getattr(importlib.import_module(module), attr)


def hparams_class(name: str) -> type:
  """The ``HParams`` dataclass of a registered method."""
  get(name)  # validates the name
  module = _REGISTRY[name].split(':')[0]
  return getattr(importlib.import_module(module), 'HParams')
