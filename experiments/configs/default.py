"""VGrow-KL on the 5×5 Gaussian grid: the README's demo (about 2 minutes on 2 CPU cores).

Pass a divergence after a colon to switch it: ``--config=.../default.py:js``.
"""

from experiments.configs import common

# The grid's D sees 2·x and moves particles by η = 0.1: its spectrally
# normalised logit is then 2-Lipschitz, steep enough within a mode's 3σ to
# locate the mode's centre (benchmarks/RESULTS.md, B2).
D_INPUT_SCALE = 2.0
STEP_SIZE = 0.1


def get_config(divergence: str = 'kl'):
  c = common.library_defaults()
  c.method = 'vgrow'
  c.data.name = 'grid'
  # A spectrally normalised D covers every mode: its bounded logit keeps the
  # field s(d)∇d bounded, where an unconstrained MLP logit grows without
  # bound on separable toy data and flings particles to the edge.
  c.model.latent_dim = 16
  c.model.g_width = 256
  c.model.g_depth = 3
  c.model.d_width = 256
  c.model.d_depth = 3
  c.model.d_spectral_norm = True
  c.model.sn_power_iterations = 1
  c.model.d_input_scale = D_INPUT_SCALE
  c.methods.vgrow.divergence = divergence or 'kl'
  c.methods.vgrow.batch_size = 256
  c.methods.vgrow.pool_batches = 8
  c.methods.vgrow.particle_steps = 10
  c.methods.vgrow.d_steps = 1
  c.methods.vgrow.g_passes = 5
  c.methods.vgrow.step_size = STEP_SIZE
  for opt in (c.methods.vgrow.g_optimizer, c.methods.vgrow.d_optimizer):
    opt.name = 'adam'
    opt.learning_rate = 3e-3
    opt.b1 = 0.5
    opt.lr_decay_boundaries = (200, 350)
    opt.lr_decay_factor = 0.3
  c.training.num_outer_loops = 500
  c.training.log_every = 50
  c.training.checkpoint_every = 100
  return c
