"""VGrow on the ring of 8 Gaussians (σ = 0.01); ``:js`` etc. picks the divergence."""

from experiments.configs import default


def get_config(divergence: str = 'kl'):
  c = default.get_config(divergence)
  c.data.name = 'ring'
  return c
