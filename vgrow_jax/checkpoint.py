"""Orbax checkpoints of a training state: latest + keep N, auto-resume.

Atomicity: orbax (``AtomicRenameTemporaryPath``, its default on local and
POSIX file systems) writes checkpoint ``N`` into ``N.orbax-checkpoint-tmp-*``
and renames it to ``N`` only once every file is written, so a save that is
interrupted leaves a temporary directory that ``all_steps`` ignores and never
replaces a good checkpoint. Saves are synchronous because the trainer donates
the state buffers to the next outer loop right after saving.

Restoring tells two failures apart:

* the checkpoint was written for another config (its tree of array shapes,
  read from orbax's metadata, differs from the state this config builds):
  :class:`CheckpointMismatchError`, naming the first differing array;
* the checkpoint is corrupt or partial (metadata or data unreadable):
  :meth:`Checkpointer.restore_latest` warns naming it, optionally moves it
  aside to ``N.corrupt`` (nothing is deleted) and falls back to the previous
  one.

In a multi-process job every process calls save and restore (orbax writes
collectively: the primary process writes replicated arrays and the
metadata); only process 0 moves a corrupt checkpoint aside.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
from typing import Any, Dict, Optional, Tuple

import jax
from jax.experimental import multihost_utils
import numpy as np
import orbax.checkpoint as ocp

log = logging.getLogger('vgrow_jax')

# What orbax and tensorstore raise on unreadable, truncated or missing files
# (json.JSONDecodeError and tensorstore's errors are ValueErrors).
_READ_ERRORS = (ValueError, OSError, KeyError, TypeError, IndexError)


class CheckpointError(ValueError):
  """A checkpoint cannot be used."""


class CheckpointMismatchError(CheckpointError):
  """A checkpoint holds a different tree of arrays than the config builds."""


def leaf_specs(tree: Any) -> Dict[str, Tuple[Tuple[int, ...], str]]:
  """``{'g_params/Dense_0/kernel': (shape, dtype name), ...}`` of a tree of arrays.

  Names ignore the container types (a dataclass field, a dict key and a
  named-tuple field print alike), so a state compares with orbax's metadata
  tree, which stores every container as a dict.
  """
  return {jax.tree_util.keystr(p, simple=True, separator='/'):
              (tuple(leaf.shape), np.dtype(leaf.dtype).name)
          for p, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]}


def describe_mismatch(stored: Dict[str, Any], wanted: Dict[str, Any]) -> Optional[str]:
  """The first difference between two :func:`leaf_specs`, or None if equal."""
  diffs = []
  for name in sorted(set(stored) | set(wanted)):
    if name not in stored:
      diffs.append(f'{name} {wanted[name][0]} is missing from it')
    elif name not in wanted:
      diffs.append(f'it has {name} {stored[name][0]}, which this config does not')
    elif stored[name] != wanted[name]:
      diffs.append(f'{name} is {stored[name][1]}{list(stored[name][0])} there but '
                   f'{wanted[name][1]}{list(wanted[name][0])} here')
  if not diffs:
    return None
  return diffs[0] + (f' (and {len(diffs) - 1} more differences)' if len(diffs) > 1 else '')


@contextlib.contextmanager
def _quiet_orbax():
  """Silences orbax's own error logs while probing a possibly corrupt checkpoint;
  the caller reports the failure in one line."""
  loggers = [logging.getLogger(n) for n in ('absl', 'asyncio')]
  levels = [l.level for l in loggers]
  for l in loggers:
    l.setLevel(logging.CRITICAL)
  try:
    yield
  finally:
    for l, lvl in zip(loggers, levels):
      l.setLevel(lvl)


def _drop_closed_loop_callbacks() -> None:
  """Silences the leftovers of a failed orbax read, for the rest of the process.

  When one array of a checkpoint cannot be read, orbax's event loop ends
  while tensorstore still completes the other reads; each completion then
  calls into the closed loop and prints a 'RuntimeError: Event loop is
  closed' traceback (through ``sys.unraisablehook``), possibly much later.
  Only exactly those are dropped; the failure itself is reported once.
  """
  previous = sys.unraisablehook
  if getattr(previous, 'drops_closed_loop_callbacks', False):
    return

  def hook(unraisable):
    if (isinstance(unraisable.exc_value, RuntimeError)
        and str(unraisable.exc_value) == 'Event loop is closed'):
      return
    previous(unraisable)

  hook.drops_closed_loop_callbacks = True
  sys.unraisablehook = hook


def _first_line(e: BaseException, limit: int = 160) -> str:
  text = str(e).strip().splitlines()[0] if str(e).strip() else ''
  text = text if len(text) <= limit else text[:limit] + '...'
  return f'{type(e).__name__}: {text}'


class Checkpointer:
  """Saves and restores one pytree (the method's state) under ``directory``."""

  def __init__(self, directory: str, *, max_to_keep: int = 3, create: bool = True):
    """Opens (and with ``create``, makes) the checkpoint directory.

    Raises:
      FileNotFoundError: ``create`` is False and ``directory`` does not exist.
    """
    self.directory = os.path.abspath(directory)
    if not create and not os.path.isdir(self.directory):
      raise FileNotFoundError(f'no checkpoint in {self.directory}: train first')
    self._max_to_keep = max_to_keep
    self._create = create
    self._manager = self._open()

  def _open(self) -> ocp.CheckpointManager:
    # The handler is named up front so that a fresh manager can read a
    # checkpoint's metadata before any restore.
    return ocp.CheckpointManager(
        self.directory, item_handlers=ocp.StandardCheckpointHandler(),
        options=ocp.CheckpointManagerOptions(
            max_to_keep=self._max_to_keep, create=self._create,
            enable_async_checkpointing=False))

  def latest_step(self) -> Optional[int]:
    return self._manager.latest_step()

  def all_steps(self):
    return list(self._manager.all_steps())

  def save(self, step: int, state: Any) -> None:
    """Writes ``state`` as checkpoint ``step`` (overwrites nothing existing)."""
    if step in self._manager.all_steps():
      return
    self._manager.save(step, args=ocp.args.StandardSave(state))
    self._manager.wait_until_finished()

  def _restore_checked(self, abstract: Any, step: int) -> Any:
    """Restores ``step``; a tree that differs from ``abstract`` is a mismatch, not corruption."""
    stored = self._manager.item_metadata(step)
    stored = getattr(stored, 'tree', stored)
    if stored is None:
      raise ValueError('no metadata')
    diff = describe_mismatch(leaf_specs(stored), leaf_specs(abstract))
    if diff is not None:
      raise CheckpointMismatchError(
          f'checkpoint {step} in {self.directory} does not match this config (was it '
          f'written with another one?): {diff}')
    return self._manager.restore(step, args=ocp.args.StandardRestore(abstract))

  def restore(self, template: Any, step: Optional[int] = None) -> Tuple[Any, int]:
    """Restores checkpoint ``step`` (default latest) into ``template``'s structure.

    ``template``'s leaves may be arrays or ``jax.ShapeDtypeStruct``; their
    shardings are those of the restored arrays.

    Raises:
      FileNotFoundError: no checkpoint exists, or none at ``step``.
      CheckpointMismatchError: the checkpoint holds other arrays than ``template``.
      CheckpointError: the checkpoint cannot be read.
    """
    steps = self.all_steps()
    if not steps:
      raise FileNotFoundError(f'no checkpoint in {self.directory}: train first')
    step = max(steps) if step is None else step
    if step not in steps:
      raise FileNotFoundError(f'no checkpoint at outer loop {step} in {self.directory}; '
                              f'there are {sorted(steps)}')
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    _drop_closed_loop_callbacks()  # before: they can fire while the read fails
    try:
      with _quiet_orbax():
        return self._restore_checked(abstract, step), step
    except CheckpointMismatchError:
      raise
    except _READ_ERRORS as e:
      raise CheckpointError(f'checkpoint {step} in {self.directory} cannot be read '
                            f'({_first_line(e)})') from None

  def restore_latest(self, template: Any, *,
                     set_aside_corrupt: bool = False) -> Tuple[Any, Optional[int]]:
    """The newest checkpoint that can be read, skipping corrupt ones with a warning.

    Args:
      template: the state's structure (arrays or ``jax.ShapeDtypeStruct``).
      set_aside_corrupt: rename a corrupt checkpoint ``N`` to ``N.corrupt``
        (the trainer does, so that training can write a good ``N`` again;
        nothing is deleted). Read-only users (sampling) leave it in place.

    Returns:
      ``(state, step)``, or ``(template, None)`` when there is no checkpoint.

    Raises:
      CheckpointMismatchError: a checkpoint holds other arrays than ``template``
        (another config), which falling back would not cure.
      CheckpointError: checkpoints exist but none can be read.
    """
    steps = sorted(self.all_steps(), reverse=True)
    if not steps:
      return template, None
    failures = []
    for i, step in enumerate(steps):
      try:
        return self.restore(template, step)
      except CheckpointMismatchError:
        raise
      except CheckpointError as e:
        failures.append(step)
        where = self._set_aside(step) if set_aside_corrupt else None
        nxt = (f'trying checkpoint {steps[i + 1]}' if i + 1 < len(steps)
               else 'no older checkpoint left')
        log.warning('%s; %s%s', e, f'moved it to {where}; ' if where else '', nxt)
    remedy = ('they were moved aside: run again to start afresh' if set_aside_corrupt
              else 'move them away to start afresh')
    raise CheckpointError(f'none of the checkpoints {failures} in {self.directory} can be '
                          f'read (see the warnings above); {remedy}')

  def _set_aside(self, step: int) -> str:
    if jax.process_count() > 1:  # every process picks the name before any rename
      multihost_utils.sync_global_devices(f'vgrow_jax corrupt checkpoint {step}')
    src = os.path.join(self.directory, str(step))
    dst, n = f'{src}.corrupt', 1
    while os.path.exists(dst):
      n += 1
      dst = f'{src}.corrupt{n}'
    if jax.process_index() == 0:
      os.rename(src, dst)
    if jax.process_count() > 1:
      multihost_utils.sync_global_devices(f'vgrow_jax set aside checkpoint {step}')
    self._manager.reload()
    return dst

  def close(self) -> None:
    self._manager.close()
