"""Stop training cleanly on SIGTERM / SIGINT (preemption, Ctrl-C).

Inside :class:`StopRequest` the first SIGTERM or SIGINT only records a
request; the trainer finishes the outer loop under way, saves a checkpoint
and returns, so the next start resumes exactly. A second signal aborts at
once (KeyboardInterrupt). In a multi-process job the processes agree every
loop (a tiny all-gather), so all stop after the same loop even when only one
of them was signalled.
"""

from __future__ import annotations

import logging
import signal
import threading
from typing import Optional

import jax
from jax.experimental import multihost_utils
import numpy as np

log = logging.getLogger('vgrow_jax')

SIGNALS = (signal.SIGTERM, signal.SIGINT)


class StopRequest:
  """A context that turns SIGTERM/SIGINT into a stop request."""

  def __init__(self):
    self._signum = 0
    self._previous = {}

  def __enter__(self) -> 'StopRequest':
    # Python delivers signals to the main thread only; elsewhere (a notebook
    # worker thread) the default behaviour stays.
    if threading.current_thread() is threading.main_thread():
      for s in SIGNALS:
        self._previous[s] = signal.signal(s, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for s, handler in self._previous.items():
      signal.signal(s, handler)
    self._previous = {}

  def _handle(self, signum, frame) -> None:
    del frame
    if self._signum:
      raise KeyboardInterrupt(f'second {signal.Signals(signum).name}: aborting')
    self._signum = signum
    log.warning('%s received: finishing this outer loop, then saving a checkpoint '
                '(send it again to abort at once)', signal.Signals(signum).name)

  def requested(self) -> Optional[str]:
    """The signal's name if any process got one, else None.

    In a multi-process job this is a collective: every process must call it
    once per loop.
    """
    signum = self._signum
    if jax.process_count() > 1:
      signum = int(np.max(multihost_utils.process_allgather(np.int32(signum))))
    return signal.Signals(signum).name if signum else None


def any_process(flag: bool) -> bool:
  """Whether ``flag`` holds in any process (a collective in a multi-process job),
  so that all processes leave a loop together."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(multihost_utils.process_allgather(np.bool_(flag))))
