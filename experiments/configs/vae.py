"""The VAE on the toy suites: ``--config=experiments/configs/vae.py[:ring]``.

Gaussian decoder with a learned σ per dimension (started at 0.1, below the
data spread, so that the latent is used from the start); samples are the
decoder means of z ~ N(0, I). The encoder is an MLP of d_width × d_depth.
"""

from experiments.configs import common


def get_config(dataset: str = 'grid'):
  c = common.toy_baseline('vae', dataset, b1=0.9)
  hp = c.methods.vae
  hp.decoder = 'gaussian'
  hp.learn_decoder_std = True
  hp.decoder_std = 0.1
  hp.batch_size = 256
  hp.steps_per_loop = 50
  return c
