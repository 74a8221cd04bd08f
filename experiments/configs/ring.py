"""VGrow on the ring of 8 Gaussians (σ = 0.01); ``:js`` etc. picks the divergence."""

from experiments.configs import default

# The ring's modes are 0.77 apart with σ = 0.01, the grid's problem at a finer
# scale. Its spectrally normalised D sees 5·x, which puts the ring at the
# grid's σ (0.05); the field is then 5× larger on a 5× finer scale, so the
# step is 0.2 / 5².
D_INPUT_SCALE = 5.0
STEP_SIZE = 0.2 / D_INPUT_SCALE**2


def get_config(divergence: str = 'kl'):
  c = default.get_config(divergence)
  c.data.name = 'ring'
  c.model.d_input_scale = D_INPUT_SCALE
  c.methods.vgrow.step_size = STEP_SIZE
  return c
