"""KL(q‖p) descent by Stein gradient estimates (``stein_kl``) on the toy suites.

``--config=experiments/configs/stein_kl.py[:ring]``. The seed's estimator
settings (IMQ mixture, median × (0.5, 1, 2, 4), η = 1); a toy-sized batch and
a faster Adam than the seed's MNIST 5e-5.
"""

from experiments.configs import common


def get_config(dataset: str = 'grid'):
  c = common.toy_baseline('stein_kl', dataset)
  hp = c.methods.stein_kl
  hp.batch_size = 200
  hp.steps_per_loop = 20
  return c
