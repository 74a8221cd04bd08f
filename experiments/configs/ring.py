"""VGrow on the ring of 8 Gaussians (σ = 0.01); ``:js`` etc. picks the divergence."""

from experiments.configs import default


def get_config(divergence: str = 'kl'):
  c = default.get_config(divergence)
  c.data.name = 'ring'
  c.vgrow.step_size = 0.002
  for opt in (c.g_optimizer, c.d_optimizer):
    opt.lr_decay_boundaries = (250, 330)
  c.training.num_outer_loops = 400
  return c
