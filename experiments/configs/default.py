"""VGrow-KL on the 5×5 Gaussian grid: the README's demo (about 2 minutes on 2 CPU cores).

Pass a divergence after a colon to switch it: ``--config=.../default.py:js``.
"""

from experiments.configs import common


def get_config(divergence: str = 'kl'):
  c = common.library_defaults()
  c.method = 'vgrow'
  c.data.name = 'grid'
  # The best of an honest tuning round (benchmarks/RESULTS.md, B2); it does not
  # yet reach the B2 targets.
  c.model.latent_dim = 16
  c.model.g_width = 256
  c.model.g_depth = 3
  c.model.d_width = 256
  c.model.d_depth = 3
  c.vgrow.divergence = divergence or 'kl'
  c.vgrow.batch_size = 256
  c.vgrow.pool_batches = 4
  c.vgrow.particle_steps = 10
  c.vgrow.d_steps = 1
  c.vgrow.g_passes = 10
  c.vgrow.step_size = 0.02
  for opt in (c.g_optimizer, c.d_optimizer):
    opt.name = 'adam'
    opt.learning_rate = 3e-3
    opt.b1 = 0.5
    opt.lr_decay_boundaries = (300, 400)
    opt.lr_decay_factor = 0.3
  c.training.num_outer_loops = 500
  c.training.log_every = 50
  c.training.checkpoint_every = 100
  return c
