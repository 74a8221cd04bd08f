"""VGrow on the ring of 8 Gaussians (σ = 0.01); ``:js`` etc. picks the divergence."""

from experiments.configs import default


def get_config(divergence: str = 'kl'):
  c = default.get_config(divergence)
  c.data.name = 'ring'
  # The modes are 0.77 apart and scored within 3σ = 0.03: small moves, so a
  # particle at a mode jitters well inside that radius.
  c.vgrow.step_size = 0.01
  c.vgrow.pool_batches = 4
  c.vgrow.g_passes = 10
  for opt in (c.g_optimizer, c.d_optimizer):
    opt.lr_decay_boundaries = (500, 650)
  c.training.num_outer_loops = 800
  return c
