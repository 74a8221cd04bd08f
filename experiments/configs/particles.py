"""Generator-free VGrow (``particles``) on the toy suites:
``--config=experiments/configs/particles.py[:ring]`` (= ``toy.py:particles[,ring]``).

2,500 particles, uniform over the data's range, each outer loop K = 20 moves
with U logistic steps of a spectrally normalised MLP D (3 layers, ReLU, one
power iteration per step) before each, η decaying linearly within the loop
(:mod:`vgrow_jax.particles`); D's Adam(3e-3, β₁ = 0.5) rate × 0.3 at loops 30
and 50, once the particles sit in their modes, so that D's noise stops
shaking them out.

The D sees c·x with c = 20 on both suites: it is then c-Lipschitz in x, steep
enough across a mode's 3σ (ring σ = 0.01, grid σ = 0.05) to pull particles
from 3–5σ into the mode; with c = 5 (VGrow's ring D) the grid stalled near
96% high quality and the ring near 98%. The step is set so that a move is at
most 8σ at the start of a loop: |∇d| ≤ c, so η = 8σ/c (ring 0.004, grid
0.02). The grid's D is 3 × 192 with U = 3 (3 × 256 with U = 2 needed about
twice the CPU time per loop and reached ≥ 97% only after ~110 loops); the
ring's 3 × 256 with U = 2 (3 × 192 with U = 3 stayed at 98.0–98.3%).

The particles are not clipped to the data's range (±4.2 on the grid): clipped,
those that overshoot the outer modes stay pinned on the edge, 2–4σ out, where
D's field along the edge is weak; most of the last 2–3% outside 3σ were
there, and grid seed 2 took ~80–100 loops to pass 97% against 50 unclipped.
From loop 60 η is × 0.3: with the full η the first move of every loop (up to
8σ) shook ring seed 1 between 96.6% and 99.2% from loop to loop; with the
cut it stays at 98.4–98.9%.
"""

from experiments.configs import common

D_INPUT_SCALE = 20.0
STEP_DECAY_AT = 60  # outer loop from which η × 0.3: both suites sit in their modes by then
MOVE_IN_SIGMA = 8.0  # η·c, the largest first move of a loop, in units of the modes' σ
# Per suite (other data: the grid's): the modes' σ (docs/math.md §3), D's width and U.
_SIGMA = {'grid': 0.05, 'ring': 0.01}
_D_WIDTH = {'grid': 192, 'ring': 256}
_D_STEPS = {'grid': 3, 'ring': 2}


def get_config(dataset: str = 'grid'):
  c = common.library_defaults()
  c.method = 'particles'
  c.data.name = dataset or 'grid'
  suite = c.data.name if c.data.name in _SIGMA else 'grid'
  c.model.d_width = _D_WIDTH[suite]
  c.model.d_depth = 3
  c.model.d_spectral_norm = True
  c.model.sn_power_iterations = 1
  c.model.d_input_scale = D_INPUT_SCALE
  hp = c.methods.particles
  hp.num_particles = 2500
  hp.init = 'uniform'
  hp.divergence = 'kl'
  hp.flow_steps = 20
  hp.d_steps = _D_STEPS[suite]
  hp.step_size = MOVE_IN_SIGMA * _SIGMA[suite] / D_INPUT_SCALE
  hp.step_schedule = 'linear'
  hp.step_decay_boundaries = (STEP_DECAY_AT,)
  hp.step_decay_factor = 0.3
  hp.clip_to_data_range = False
  hp.batch_size = 256
  hp.d_optimizer.name = 'adam'
  hp.d_optimizer.learning_rate = 3e-3
  hp.d_optimizer.b1 = 0.5
  hp.d_optimizer.lr_decay_boundaries = (30, 50)
  hp.d_optimizer.lr_decay_factor = 0.3
  c.training.num_outer_loops = 250
  c.training.log_every = 25
  c.training.checkpoint_every = 100
  return c
