"""GMMN (``mmd``) on the toy suites: ``--config=experiments/configs/mmd.py[:ring]``.

GMMN's published bandwidths (2 … 80, pixels in [0, 1]) do not resolve modes
σ = 0.05 apart by 2 (grid) or σ = 0.01 on a unit ring: the toy configs use a
mixture from the mode width up to the data's spread, scaled to each suite.
"""

from experiments.configs import common

# Bandwidths σ of the RBF mixture per toy dataset (mode σ … data spread).
_BANDWIDTHS = {
    'grid': (0.05, 0.1, 0.2, 0.5, 1.0, 2.0),
    'ring': (0.01, 0.02, 0.05, 0.1, 0.25, 0.5),
}


def get_config(dataset: str = 'grid'):
  c = common.toy_baseline('mmd', dataset)
  hp = c.methods.mmd
  hp.kernel = 'rbf'
  hp.bandwidths = _BANDWIDTHS[c.data.name]
  hp.estimator = 'v'
  hp.sqrt_loss = True
  hp.batch_size = 500
  hp.steps_per_loop = 20
  return c
