"""The interface every training method implements, and the method registry.

A method is one module with a ``make(cfg, dataset) -> Method`` factory plus
one line in ``_REGISTRY`` below. The trainer (:mod:`vgrow_jax.train`) only
calls the fields of :class:`Method`, so it never branches on method names.
"""

from __future__ import annotations

import importlib
from typing import Any, Callable, Dict, NamedTuple, Tuple

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
  """

  name: str
  init: Callable[[Array], Any]
  step: Callable[[Any, Any], Tuple[Any, Dict[str, Array]]]
  generate: Callable[[Any, Array], Array]
  latent_dim: int


# name -> 'module:factory'; imported lazily so that a method's dependencies
# load only when it is used.
_REGISTRY: Dict[str, str] = {
    'vgrow': 'vgrow_jax.vgrow:make',
}

NAMES = tuple(sorted(_REGISTRY))


def get(name: str) -> Callable[..., Method]:
  """The factory ``make(cfg, dataset) -> Method`` of a registered method."""
  if name not in _REGISTRY:
    raise ValueError(f'unknown method {name!r}; expected one of {list(NAMES)}')
  module, attr = _REGISTRY[name].split(':')
  return getattr(importlib.import_module(module), attr)
