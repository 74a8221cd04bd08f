"""Any registered method on a toy suite (ring or grid), for a like-for-like comparison.

  --config=experiments/configs/toy.py:METHOD[:VARIANT][,DATASET]

e.g. ``toy.py:wgan_gp,ring``, ``toy.py:fgan:reverse_kl,grid``, ``toy.py:vgrow:js,ring``.
VARIANT sets the method's one switch (VGrow and f-GAN: the divergence; GAN:
the generator loss; SNGAN: the loss). DATASET is 'grid' (default) or 'ring'
(others: any ``data.name``, with the grid's settings).

VGrow gets its toy configs (``default.py`` for the grid, ``ring.py``).
The adversarial methods get their published defaults (their ``HParams``:
losses, n_critic, optimisers, penalties) on the same MLP pair as VGrow's toy
model (nz 16, G and D 3 × 256 ReLU) with a batch of 256 (VGrow's toy batch).
GMMN, the VAE and Stein-KL get their toy configs (``mmd.py``, ``vae.py``,
``stein_kl.py``: the same nets, with kernel bandwidths, decoder σ and a
learning rate scaled to toy data, since their published settings are for
pixels). Generator-free VGrow (``particles``) gets ``particles.py`` (its D's
input scale and step size per suite). ``g_steps_per_loop`` / ``steps_per_loop``
only group generator iterations per compiled dispatch, so
``training.num_outer_loops`` × that is the number of generator iterations.
"""

from experiments.configs import common
from experiments.configs import default
from experiments.configs import mmd
from experiments.configs import particles
from experiments.configs import ring
from experiments.configs import stein_kl
from experiments.configs import vae

# The field a VARIANT sets, per method.
# Methods whose published settings are for pixels: their own toy configs.
TOY_CONFIGS = {'mmd': mmd, 'vae': vae, 'stein_kl': stein_kl, 'particles': particles}

VARIANT_FIELD = {'vgrow': 'divergence', 'gan': 'generator_loss', 'fgan': 'divergence',
                 'sngan': 'loss'}

G_STEPS_PER_LOOP = 20
# Generator iterations of a run: NUM_OUTER_LOOPS × G_STEPS_PER_LOOP.
NUM_OUTER_LOOPS = 250


def parse(arg: str):
  """'method[:variant][,dataset]' -> (method, variant or '', dataset or 'grid').

  Names and values are checked where the config becomes a library Config
  (one-line errors naming the field); only a variant for a method without
  one is an error here.
  """
  spec, _, dataset = (arg or 'gan').partition(',')
  name, _, variant = spec.partition(':')
  if variant and name not in VARIANT_FIELD:
    raise ValueError(f'toy.py: method {name!r} has no variant (got {variant!r}); '
                     f'variants exist for {sorted(VARIANT_FIELD)}')
  return name, variant, dataset or 'grid'


def get_config(arg: str = 'gan,grid'):
  name, variant, dataset = parse(arg)
  if name == 'vgrow':
    c = (ring if dataset == 'ring' else default).get_config(variant or 'kl')
    c.data.name = dataset
    return c
  if name in TOY_CONFIGS:
    c = TOY_CONFIGS[name].get_config(dataset)
    c.training.num_outer_loops = NUM_OUTER_LOOPS
    c.training.log_every = 50
    c.training.checkpoint_every = 100
    return c
  c = common.library_defaults()
  c.method = name
  c.data.name = dataset
  c.model.latent_dim = 16
  c.model.g_width = c.model.d_width = 256
  c.model.g_depth = c.model.d_depth = 3
  if name in c.methods:
    hp = c.methods[name]
    if 'batch_size' in hp:
      hp.batch_size = 256
    if 'g_steps_per_loop' in hp:
      hp.g_steps_per_loop = G_STEPS_PER_LOOP
    if variant:
      setattr(hp, VARIANT_FIELD[name], variant)
  c.training.num_outer_loops = NUM_OUTER_LOOPS
  c.training.log_every = 50
  c.training.checkpoint_every = 100
  return c
