"""Turns the library's typed defaults into an ml_collections ConfigDict."""

import dataclasses

from ml_collections import config_dict

from vgrow_jax import config as config_lib
from vgrow_jax import method as method_lib

# Fields whose default is None get a typed placeholder, so that they can
# still be set from the command line (--config.methods.vgrow.clip='(-1., 1.)').
_OPTIONAL = {('methods', 'vgrow', 'clip'): tuple}


def library_defaults() -> config_dict.ConfigDict:
  """A ConfigDict with exactly the fields (and defaults) of vgrow_jax.Config."""
  d = config_lib.Config().to_dict()
  # One section per registered method with its published defaults, so that
  # --config.method=NAME alone switches methods.
  d['methods'] = {name: dataclasses.asdict(method_lib.hparams_class(name)())
                  for name in method_lib.NAMES}
  for (*path, field), tp in _OPTIONAL.items():
    node = d
    for name in path:
      node = node[name]
    if node[field] is None:
      node[field] = config_dict.placeholder(tp)
  return config_dict.ConfigDict(d)


def toy_baseline(method: str, dataset: str = 'grid', *, learning_rate: float = 1e-3,
                 b1: float = 0.5) -> config_dict.ConfigDict:
  """A baseline on a toy suite with VGrow's toy nets (default.py) and a toy Adam.

  The method's own section (``c.methods[method]``) is returned for the caller
  to tune; 300 outer loops, logged every 25.
  """
  c = library_defaults()
  c.method = method
  c.data.name = dataset or 'grid'
  c.model.latent_dim = 16
  for f in ('g_width', 'd_width'):
    c.model[f] = 256
  for f in ('g_depth', 'd_depth'):
    c.model[f] = 3
  opt = c.methods[method].g_optimizer
  opt.name = 'adam'
  opt.learning_rate = learning_rate
  opt.b1 = b1
  c.training.num_outer_loops = 300
  c.training.log_every = 25
  c.training.checkpoint_every = 100
  return c
