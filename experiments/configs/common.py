"""Turns the library's typed defaults into an ml_collections ConfigDict."""

import dataclasses

from ml_collections import config_dict

from vgrow_jax import config as config_lib
from vgrow_jax import method as method_lib

# Fields whose default is None get a typed placeholder, so that they can
# still be set from the command line (--config.vgrow.clip='(-1., 1.)').
_OPTIONAL = {('vgrow', 'clip'): tuple}


def library_defaults() -> config_dict.ConfigDict:
  """A ConfigDict with exactly the fields (and defaults) of vgrow_jax.Config."""
  d = config_lib.Config().to_dict()
  # One section per registered method with its published defaults, so that
  # --config.method=NAME alone switches methods.
  d['methods'] = {name: dataclasses.asdict(method_lib.hparams_class(name)())
                  for name in method_lib.NAMES if name != 'vgrow'}
  for (section, field), tp in _OPTIONAL.items():
    if d[section][field] is None:
      d[section][field] = config_dict.placeholder(tp)
  return config_dict.ConfigDict(d)
