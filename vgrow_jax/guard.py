"""Guards any method's outer loop against non-finite values.

:func:`guarded` wraps ``step(state, data) -> (state, metrics)`` so that it
also returns one finiteness flag per floating-point quantity (every metric,
the moved particles among them, and every leaf of the new state), computed
inside the compiled step: the trainer fetches one small boolean vector per
outer loop. With ``skip=True`` a loop with any non-finite quantity returns
the previous state with only its loop counter advanced, so the next loop
draws fresh randomness (keys are ``fold_in(key, step)``) instead of
repeating the failure.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, List, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

Step = Callable[[Any, Any], Tuple[Any, Any]]


def _float_leaves(metrics: Any, state: Any) -> List[Tuple[str, Any]]:
  """``(name, leaf)`` of every floating-point metric (``train_<name>``) and state leaf."""
  out = []
  for prefix, tree in (('train_', metrics), ('state/', state)):
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
      if jnp.issubdtype(leaf.dtype, jnp.floating):
        out.append((prefix + jax.tree_util.keystr(path, simple=True, separator='/'), leaf))
  return out


def guarded(step: Step, *, skip: bool) -> Callable[[Any, Any], Tuple[Any, Any, jax.Array]]:
  """``(state, data) -> (state, metrics, finite [K] bool)``, jittable.

  Args:
    step: a method's outer loop. Its state must be a dataclass with an
      int ``step`` field (every :class:`vgrow_jax.method.Method` state is).
    skip: on a non-finite quantity keep the previous state (``step`` + 1).

  Returns:
    The wrapped step; ``finite[k]`` says whether quantity ``k`` of
    :func:`quantity_names` is finite everywhere.
  """
  def wrapped(state, data):
    new_state, metrics = step(state, data)
    leaves = _float_leaves(metrics, new_state)
    finite = jnp.stack([jnp.all(jnp.isfinite(x)) for _, x in leaves]) if leaves \
        else jnp.ones((0,), bool)  # [K]
    if skip:
      kept = dataclasses.replace(state, step=state.step + 1)
      ok = jnp.all(finite)
      new_state = jax.tree.map(lambda new, old: jnp.where(ok, new, old), new_state, kept)
    return new_state, metrics, finite

  return wrapped


def quantity_names(step: Step, state: Any, data: Any) -> List[str]:
  """The names of the flags of :func:`guarded`, e.g. ``train_g_loss`` or
  ``state/g_params/Dense_0/kernel`` (traced abstractly, nothing is run)."""
  new_state, metrics = jax.eval_shape(step, state, data)
  return [name for name, _ in _float_leaves(metrics, new_state)]


def non_finite(names: Sequence[str], finite: Any) -> List[str]:
  """The names whose flag is False."""
  return [n for n, ok in zip(names, np.asarray(finite)) if not ok]


def describe(bad: Sequence[str], limit: int = 6) -> str:
  """``'train_g_loss, state/g_params/... (and 3 more)'``: metrics first, then state."""
  text = ', '.join(bad[:limit])
  return text + (f' (and {len(bad) - limit} more)' if len(bad) > limit else '')
