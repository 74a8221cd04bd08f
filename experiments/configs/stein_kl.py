"""KL(q‖p) descent by Stein gradient estimates (``stein_kl``) on the toy suites.

``--config=experiments/configs/stein_kl.py[:ring]``. The seed's estimator
settings (IMQ mixture, median × (0.5, 1, 2, 4), η = 1); a toy-sized batch and
a faster Adam than the seed's MNIST 5e-5.
"""

from experiments.configs import common


def get_config(dataset: str = 'grid'):
  dataset = dataset or 'grid'
  c = common.library_defaults()
  c.method = 'stein_kl'
  c.data.name = dataset
  c.model.latent_dim = 16
  c.model.g_width = 256
  c.model.g_depth = 3
  hp = c.methods.stein_kl
  hp.batch_size = 200
  hp.steps_per_loop = 20
  hp.g_optimizer.name = 'adam'
  hp.g_optimizer.learning_rate = 1e-3
  hp.g_optimizer.b1 = 0.5
  c.training.num_outer_loops = 300
  c.training.log_every = 25
  c.training.checkpoint_every = 100
  return c
