"""GMMN, Stein-KL descent and the VAE through the trainer: they learn, and checkpoints hold."""

import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import checkpoint
from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import kernels
from vgrow_jax import method as method_lib
from vgrow_jax import mmd
from vgrow_jax import sharding
from vgrow_jax import stein_kl
from vgrow_jax import train
from vgrow_jax import vae

ADAM = config_lib.OptimizerConfig(name='adam', learning_rate=3e-3, b1=0.5)
TINY_METHODS = {
    'mmd': mmd.HParams(bandwidths=(0.05, 0.2, 0.5, 1.0), batch_size=128, steps_per_loop=20,
                       g_optimizer=ADAM),
    'stein_kl': stein_kl.HParams(batch_size=64, steps_per_loop=10, g_optimizer=ADAM),
    # A fixed, small decoder σ: the learned-σ VAE first collapses to the data
    # mean (the ring's centre) before it uses z; that path is tested below.
    'vae': vae.HParams(learn_decoder_std=False, decoder_std=0.1, batch_size=64,
                       steps_per_loop=20, g_optimizer=ADAM),
}


def _tiny(name, loops):
  return config_lib.Config(
      method=name, data=config_lib.DataConfig(name='ring'),
      model=config_lib.ModelConfig(latent_dim=4, g_width=32, g_depth=2, d_width=32, d_depth=2),
      methods={name: TINY_METHODS[name]},
      training=config_lib.TrainingConfig(num_outer_loops=loops, log_every=loops,
                                         checkpoint_every=loops, eval_samples=500))


def _mmd_to_data(x, ds):
  """Unbiased MMD² (RBF σ = 0.1, 0.3, 1) of samples x to as many data points."""
  y = ds.sample(ds.arrays, jax.random.PRNGKey(5), len(x))
  return float(kernels.mmd2(jnp.asarray(x), y, kernels.rbf((0.1, 0.3, 1.0)), estimator='u'))


@pytest.mark.parametrize('name', sorted(TINY_METHODS))
def test_short_run_moves_samples_to_the_data_and_the_checkpoint_holds_the_state(tmp_path, name):
  cfg, wd = _tiny(name, 20), str(tmp_path / 'run')
  ds = data_lib.load(cfg.data)
  method = method_lib.get(name)(cfg, ds)
  z = train.eval_latents(method, cfg.training.seed, 500)
  at_init = _mmd_to_data(train.generate(method, method.init(jax.random.PRNGKey(0)), z), ds)

  out = train.train_and_evaluate(cfg, wd)
  losses = {k: v for k, v in out.items() if k.startswith('train_')}
  assert 'train_g_loss' in losses and all(math.isfinite(v) for v in losses.values()), losses

  _, method, state = train.restore(wd)
  assert int(state.step) == 20
  trained = _mmd_to_data(train.generate(method, state, z), ds)
  # MMD² to the ring falls by well over half in 20 loops (measured: to 0.13,
  # 0.19 and 0.27 of its initial value for mmd, stein_kl and vae).
  assert trained < 0.4 * at_init, (at_init, trained)
  # The checkpoint is the trained state: it scores exactly as the trainer's final state.
  # Under the trainer's mesh, so that both scores come from the same compiled
  # program (equality is then exact on any CPU, not up to rounding).
  with sharding.use(sharding.make_mesh(cfg)):
    ev, _ = train.evaluate(method, state, ds, cfg)
  assert ev == {k: out[k] for k in ev}
  # And it survives another save/restore round trip leaf by leaf.
  ckpt = checkpoint.Checkpointer(str(tmp_path / 'again'))
  ckpt.save(7, state)
  again, at = ckpt.restore(method.init(jax.random.PRNGKey(1)))
  ckpt.close()
  assert at == 7
  chex.assert_trees_all_equal(state, again)


def test_stein_kl_direction_is_the_gaussian_score_difference():
  # q = N(0, I), p = N(m, I): ∇log q(x) − ∇log p(x) = −x + (x − m) = −m everywhere.
  m = jnp.array([1.0, -0.5])
  kx, ky = jax.random.split(jax.random.PRNGKey(0))
  x = jax.random.normal(kx, (400, 2))
  y = m + jax.random.normal(ky, (400, 2))
  d = jax.jit(lambda x, y: stein_kl.kl_direction(x, y, stein_kl.HParams()))(x, y)
  central = jnp.linalg.norm(x, axis=1) < 1.5  # away from the sample's thin tails
  mean = np.asarray(jnp.mean(d[central], axis=0))
  cosine = -mean @ np.asarray(m) / (np.linalg.norm(mean) * np.linalg.norm(m))
  assert cosine > 0.98, mean
  # The ridge η shrinks the estimate a little (measured: 0.83·|m|).
  assert 0.7 < np.linalg.norm(mean) / np.linalg.norm(m) < 1.1, mean


@pytest.mark.parametrize('name', sorted(TINY_METHODS))
def test_toy_configs_build_the_methods_settings(name):
  import importlib  # pylint: disable=g-import-not-at-top
  module = importlib.import_module(f'experiments.configs.{name}')
  for dataset in ('grid', 'ring'):
    cfg = config_lib.Config.from_dict(module.get_config(dataset).to_dict())
    assert cfg.method == name and cfg.data.name == dataset
    assert isinstance(cfg.hparams, type(TINY_METHODS[name]))
  if name == 'mmd':  # bandwidths follow the data scale
    assert max(cfg.hparams.bandwidths) < max(module.get_config('grid').methods.mmd.bandwidths)
