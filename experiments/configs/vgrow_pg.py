"""VGrow with the progressive-growing code's settings (``YangLabHKUST/VGrow-Pg`` train.py).

  vgrow-train --config=experiments/configs/vgrow_pg.py:grid --workdir=workdirs/pg_grid
  vgrow-train --config=experiments/configs/vgrow_pg.py:npz --config.data.path=x.npz ...

One particle step, one D step and one G step per outer loop on a pool of one
batch (T = U = L = 1, nPool 1), η = 1 without clipping, Adam(1e-3,
β = (0, 0.99)) for both nets, a gradient penalty on D (its
0.5 · coef_gp · E(‖∇d(x̂)‖ − 1)² with coef_gp = 1, i.e. λ = 0.5 here) and
samples from an EMA of G (0.99). The argument picks the data: 'grid'
(default) or 'ring' on VGrow's toy MLPs with batch 256 (the code's batch at
4×4), or 'npz' (32×32 images, the SN-ResNet pair, batch 64 as the code at
32×32). Not reproduced: progressive growing itself (resolution schedule,
fading, Adam resets), its networks and its per-D-step EMA update (here once
per outer loop, after the G step, starting from G's initial weights).
"""

from experiments.configs import default
from experiments.configs import official


def get_config(data: str = 'grid'):
  data = data or 'grid'
  if data not in ('grid', 'ring', 'npz'):
    raise ValueError(f'vgrow_pg.py: data {data!r} must be grid, ring or npz')
  if data == 'npz':
    c = official.get_config('kl')
    c.methods.vgrow.batch_size = 64
    c.methods.vgrow.clip = None
  else:
    c = default.get_config('kl')
    c.data.name = data
    c.model.d_input_scale = 1.0  # the code's D sees x
    c.methods.vgrow.batch_size = 256
  c.methods.vgrow.pool_batches = 1
  c.methods.vgrow.particle_steps = 1
  c.methods.vgrow.d_steps = 1
  c.methods.vgrow.g_passes = 1
  c.methods.vgrow.g_passes_schedule = ()
  c.methods.vgrow.step_size = 1.0
  c.methods.vgrow.d_gradient_penalty = 0.5
  c.methods.vgrow.g_ema_decay = 0.99
  for opt in (c.methods.vgrow.g_optimizer, c.methods.vgrow.d_optimizer):
    opt.name = 'adam'
    opt.learning_rate = 1e-3
    opt.b1 = 0.0
    opt.b2 = 0.99
    opt.eps = 1e-8
    opt.lr_decay_boundaries = ()
  c.training.num_outer_loops = 5000
  c.training.log_every = 500
  c.training.checkpoint_every = 1000
  return c
