"""The official VGrow MNIST defaults (``xjtuygao/VGrow`` main.py), on your own 32×32 images.

  vgrow-train --config=experiments/configs/official.py \
    --config.data.path=/path/images.npz --workdir=workdirs/official

The npz must hold one array [N, 32, 32, C] scaled to [-1, 1] (MNIST padded 28→32).
For MNIST itself, `mnist.py` sets the data (offline digits) and CPU-sized nets.
"""

from experiments.configs import common


def get_config(divergence: str = 'kl'):
  c = common.library_defaults()
  c.method = 'vgrow'
  c.data.name = 'npz'
  c.data.path = ''  # required: --config.data.path=...
  c.model.arch = 'resnet_sn'
  c.model.latent_dim = 128
  c.model.g_width = 128
  c.model.d_width = 128
  c.model.sn_power_iterations = 5
  c.methods.vgrow.divergence = divergence or 'kl'
  c.methods.vgrow.batch_size = 64
  c.methods.vgrow.pool_batches = 20
  c.methods.vgrow.particle_steps = 20
  c.methods.vgrow.d_steps = 1
  c.methods.vgrow.g_passes = 5
  c.methods.vgrow.g_passes_schedule = ((200, 10), (1000, 15), (1500, 20))
  c.methods.vgrow.step_size = 0.5
  c.methods.vgrow.clip = (-1.0, 1.0)
  for opt in (c.methods.vgrow.g_optimizer, c.methods.vgrow.d_optimizer):
    opt.name = 'rmsprop'
    opt.learning_rate = 1e-4
    opt.decay = 0.99
    opt.lr_decay_boundaries = (400, 800)
    opt.lr_decay_factor = 0.5
  c.training.num_outer_loops = 10000
  c.training.log_every = 10
  c.training.checkpoint_every = 50
  return c
