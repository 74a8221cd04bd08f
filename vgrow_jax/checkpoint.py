"""Orbax checkpoints of a training state: latest + keep N, auto-resume.

Orbax writes each checkpoint into a temporary directory and renames it only
once complete, so an interrupted save never replaces a good checkpoint.
Saves are synchronous because the trainer donates the state buffers to the
next outer loop right after saving.
"""

from __future__ import annotations

import os
from typing import Any, Optional, Tuple

import jax
import orbax.checkpoint as ocp


class Checkpointer:
  """Saves and restores one pytree (the method's state) under ``directory``."""

  def __init__(self, directory: str, *, max_to_keep: int = 3):
    self.directory = os.path.abspath(directory)
    self._manager = ocp.CheckpointManager(
        self.directory,
        options=ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep, create=True, enable_async_checkpointing=False))

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

  def restore(self, template: Any, step: Optional[int] = None) -> Tuple[Any, int]:
    """Restores checkpoint ``step`` (default latest) into ``template``'s structure.

    Raises:
      FileNotFoundError: no checkpoint exists.
    """
    step = self.latest_step() if step is None else step
    if step is None:
      raise FileNotFoundError(f'no checkpoint in {self.directory}')
    abstract = jax.tree.map(ocp.utils.to_shape_dtype_struct, template)
    state = self._manager.restore(step, args=ocp.args.StandardRestore(abstract))
    return state, step

  def close(self) -> None:
    self._manager.close()
