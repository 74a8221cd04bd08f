"""The VAE on the toy suites: ``--config=experiments/configs/vae.py[:ring]``.

Gaussian decoder with a learned σ per dimension (started at 0.1, below the
data spread, so that the latent is used from the start); samples are the
decoder means of z ~ N(0, I).
"""

from experiments.configs import common


def get_config(dataset: str = 'grid'):
  dataset = dataset or 'grid'
  c = common.library_defaults()
  c.method = 'vae'
  c.data.name = dataset
  c.model.latent_dim = 16
  c.model.g_width = 256
  c.model.g_depth = 3
  c.model.d_width = 256  # the encoder
  c.model.d_depth = 3
  hp = c.methods.vae
  hp.decoder = 'gaussian'
  hp.learn_decoder_std = True
  hp.decoder_std = 0.1
  hp.batch_size = 256
  hp.steps_per_loop = 50
  hp.g_optimizer.name = 'adam'
  hp.g_optimizer.learning_rate = 1e-3
  c.training.num_outer_loops = 300
  c.training.log_every = 25
  c.training.checkpoint_every = 100
  return c
