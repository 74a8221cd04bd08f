"""What the command-line apps share: logging set-up."""

import logging as std_logging
import sys

from absl import flags
from absl import logging
import jax

log = std_logging.getLogger('vgrow_jax')


def setup_logging() -> None:
  """Progress lines of vgrow_jax to stderr; other libraries' INFO chatter
  (orbax logs every save) only with an explicit ``--verbosity``.

  Call it after :func:`vgrow_jax.sharding.initialize`: it asks JAX for the
  process index."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  if not log.handlers:
    handler = std_logging.StreamHandler(sys.stderr)
    handler.setFormatter(std_logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
    log.addHandler(handler)
  # In a multi-process job only process 0 reports progress.
  log.setLevel(std_logging.INFO if jax.process_index() == 0 else std_logging.WARNING)
  log.propagate = False
