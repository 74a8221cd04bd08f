"""What the command-line apps share: logging set-up."""

import logging as std_logging
import sys

from absl import flags
from absl import logging

log = std_logging.getLogger('vgrow_jax')


def setup_logging() -> None:
  """Progress lines of vgrow_jax to stderr; other libraries' INFO chatter
  (orbax logs every save) only with an explicit ``--verbosity``."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  if not log.handlers:
    handler = std_logging.StreamHandler(sys.stderr)
    handler.setFormatter(std_logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
    log.addHandler(handler)
  log.setLevel(std_logging.INFO)
  log.propagate = False
