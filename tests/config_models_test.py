"""Typed configs (errors name the field) and the nets (official SN-ResNet shapes)."""

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import models
from vgrow_jax import vgrow


def test_config_round_trips_through_a_dict():
  cfg = config_lib.Config(methods={'vgrow': vgrow.HParams(clip=(-1.0, 1.0),
                                                          g_passes_schedule=((200, 10),))})
  assert config_lib.Config.from_dict(cfg.to_dict()) == cfg


def _vgrow(fields):
  return {'methods': {'vgrow': fields}}


@pytest.mark.parametrize('d,message', [
    (_vgrow({'step_sise': 0.1}), r'unknown config field methods\.vgrow\.step_sise'),
    (_vgrow({'batch_size': 'big'}), r"methods\.vgrow\.batch_size='big': expected an int"),
    (_vgrow({'pool_batches': 0}), r'methods\.vgrow\.pool_batches=0: must be >= 1'),
    ({'method': 'gan9'}, r"method='gan9': expected one of \[.*'gan'.*'vgrow'.*\]"),
    ({'model': {'arch': 'transformer'}}, r"model\.arch='transformer'"),
    (_vgrow({'g_optimizer': {'name': 'lion'}}),
     r"methods\.vgrow\.g_optimizer\.name='lion'"),
    ({'data': {'name': 'npz'}}, r"data\.path='': name=npz needs a path"),
    ({'model': {'d_input_scale': 0.0}}, r'model\.d_input_scale=0\.0: must be finite and > 0'),
    ({'model': {'arch': 'resnet_sn', 'd_input_scale': 5.0}, 'data': {'name': 'digits'}},
     r"model\.d_input_scale=5\.0: applies to the mlp and dcgan discriminators only "
     r"\(arch is 'resnet_sn'\)"),
])
def test_bad_config_fields_are_named(d, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.Config.from_dict(d)


def test_a_conv_arch_on_point_data_names_data_name_first():
  # The default config (the grid, d_input_scale 2) with only arch switched:
  # the error names the data, not the MLP's input scale the user never set.
  from experiments.configs import default  # pylint: disable=g-import-not-at-top
  c = default.get_config()
  assert c.model.d_input_scale != 1.0
  for arch, data in (('resnet_sn', 'grid'), ('dcgan', 'ring'), ('resnet_sn', 'mixture')):
    c.model.arch, c.data.name = arch, data
    with pytest.raises(config_lib.ConfigError) as e:
      config_lib.Config.from_dict(c.to_dict())
    assert str(e.value) == (
        f"config field data.name='{data}': gives points, not images, and model.arch='{arch}' "
        "needs image data; set data.name to an image source ('mnist_5k', 'digits', 'idx', "
        "'folder', 'tfds' or a uint8 'npz') or model.arch='mlp'")
  # On image data the next field to change is named, and then the config builds.
  c.data.name = 'mnist_5k'
  with pytest.raises(config_lib.ConfigError, match=r"model\.d_input_scale=2\.0: applies to the "
                     r"mlp and dcgan discriminators only \(arch is 'resnet_sn'\); set it to 1\.0"):
    config_lib.Config.from_dict(c.to_dict())
  c.model.d_input_scale = 1.0
  assert config_lib.Config.from_dict(c.to_dict()).model.arch == 'resnet_sn'
  # npz may hold images, so it is left to the data's shape (models.build).
  c.data.name, c.data.path = 'npz', 'x.npz'
  assert config_lib.Config.from_dict(c.to_dict()).data.name == 'npz'


def _count(tree):
  return sum(x.size for x in jax.tree.leaves(tree))


@pytest.mark.parametrize('width,channels', [(32, 1), (128, 3)])
def test_resnet_sn_has_the_official_parameter_count(width, channels):
  # network.py: G = SN-Linear(nz, 16w) + 3 up-blocks (two 3x3 convs, a 1x1
  # shortcut, BN) + a 3x3 conv to C; D = 4 blocks (two 3x3 convs; 1x1
  # shortcut in the two down blocks; the first from C) + SN-Linear(w, 1).
  nz, w, c = 128, width, channels
  g_expected = (nz * 16 * w + 16 * w) + 3 * (2 * 9 * w * w + w * w + 2 * w) + 9 * w * c
  d_expected = (9 * c * w + 9 * w * w + c * w) + (2 * 9 * w * w + w * w) + 2 * (2 * 9 * w * w) + w + 1
  cfg = config_lib.ModelConfig(arch='resnet_sn', latent_dim=nz, g_width=w, d_width=w)
  g, d = models.build(cfg, (32, 32, c))
  # Shapes only (no compile of every initialiser, seconds each on CPU).
  gp, gs = jax.eval_shape(g.init, jax.random.PRNGKey(0), jnp.zeros((1, nz)))
  dp, ds = jax.eval_shape(d.init, jax.random.PRNGKey(1), jnp.zeros((1, 32, 32, c)))
  assert _count(gp) == g_expected and _count(dp) == d_expected
  x, _ = jax.eval_shape(g.train_apply, gp, gs, jnp.zeros((3, nz)))
  assert x.shape == (3, 32, 32, c)
  assert jax.eval_shape(d.eval_apply, dp, ds, x).shape == (3,)


def test_resnet_sn_weights_are_spectrally_normalised():
  # After enough training-mode passes the stored σ equals the top singular
  # value of each (reshaped) kernel, and the effective kernel has norm 1.
  cfg = config_lib.ModelConfig(arch='resnet_sn', latent_dim=8, g_width=8, d_width=8,
                               sn_power_iterations=5)
  _, d = models.build(cfg, (32, 32, 1))
  dp, ds = d.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 1)))
  x = jnp.zeros((2, 32, 32, 1))
  for _ in range(20):
    _, ds = d.train_apply(dp, ds, x)
  flat_p = {jax.tree_util.keystr(k): v for k, v in jax.tree_util.tree_leaves_with_path(dp)}
  checked = 0
  for path, sigma in jax.tree_util.tree_leaves_with_path(ds['batch_stats']):
    name = jax.tree_util.keystr(path)
    if not name.endswith("/sigma']"):
      continue
    # ['<block>']['_MaybeSN_i']['SpectralNorm_0']['Conv_j/kernel/sigma'] holds σ of
    # the parameter ['<block>']['Conv_j']['kernel'].
    block = name.split("['_MaybeSN_")[0]
    layer = name.rsplit("['", 1)[1].split('/')[0]
    kernel = flat_p[f"{block}['{layer}']['kernel']"]
    w = np.asarray(kernel).reshape(-1, kernel.shape[-1])
    np.testing.assert_allclose(float(sigma), np.linalg.svd(w, compute_uv=False)[0], rtol=1e-3)
    checked += 1
  assert checked == 11  # 8 convs + 2 shortcuts (down blocks) + the linear layer


def test_resnet_rejects_other_image_sizes():
  cfg = config_lib.ModelConfig(arch='resnet_sn')
  with pytest.raises(ValueError, match=r'needs 32x32 images \[32, 32, C\], got example shape \(28, 28, 1\)'):
    models.build(cfg, (28, 28, 1))


def test_mlp_generator_reshapes_to_the_example_shape():
  g, d = models.build(config_lib.ModelConfig(latent_dim=3, g_width=8, d_width=8), (2, 5))
  gp, gs = g.init(jax.random.PRNGKey(0), jnp.zeros((1, 3)))
  x = g.eval_apply(gp, gs, jnp.ones((4, 3)))
  assert x.shape == (4, 2, 5)
  dp, ds = d.init(jax.random.PRNGKey(0), x)
  assert d.eval_apply(dp, ds, x).shape == (4,)
  assert math.isfinite(float(d.eval_apply(dp, ds, x).sum()))


def test_method_sections_parse_with_the_methods_hparams(monkeypatch):
  import dataclasses
  import sys
  import types
  import pytest
  from vgrow_jax import config as config_lib
  from vgrow_jax import method as method_lib

  @dataclasses.dataclass(frozen=True)
  class HParams:
    n_critic: int = 5

  mod = types.ModuleType('fake_method_mod')
  mod.HParams = HParams
  mod.make = lambda cfg, ds: None
  monkeypatch.setitem(sys.modules, 'fake_method_mod', mod)
  monkeypatch.setitem(method_lib._REGISTRY, 'fake', 'fake_method_mod:make')
  monkeypatch.setattr(method_lib, 'NAMES', tuple(sorted(method_lib._REGISTRY)))
  cfg = config_lib.Config.from_dict({'method': 'fake', 'methods': {'fake': {'n_critic': 2}}})
  assert cfg.hparams == HParams(n_critic=2)
  assert config_lib.Config(method='fake').hparams == HParams(n_critic=5)  # defaults
  assert config_lib.Config.from_dict(cfg.to_dict()) == cfg  # round trip
  with pytest.raises(config_lib.ConfigError, match=r"methods\.fake\.n_critic='x'"):
    config_lib.Config.from_dict({'methods': {'fake': {'n_critic': 'x'}}})
  with pytest.raises(config_lib.ConfigError, match=r"methods\.nope"):
    config_lib.Config.from_dict({'methods': {'nope': {}}})


def test_d_input_scale_makes_the_spectrally_normalised_logit_c_lipschitz():
  # The scaled D is the c = 1 net evaluated at c·x (same parameters), so its
  # input gradient is c times that net's gradient at c·x.
  c = 5.0
  base = config_lib.ModelConfig(d_width=16, d_depth=2, d_spectral_norm=True,
                                sn_power_iterations=30)
  _, d1 = models.build(base, (2,))
  _, dc = models.build(dataclasses.replace(base, d_input_scale=c), (2,))
  x = jax.random.normal(jax.random.PRNGKey(1), (64, 2))
  dp, ds = d1.init(jax.random.PRNGKey(0), x)
  _, ds = d1.train_apply(dp, ds, x)  # converge the power iterations
  np.testing.assert_allclose(dc.eval_apply(dp, ds, x), d1.eval_apply(dp, ds, c * x), rtol=1e-5)
  grad = lambda net, y: jax.vmap(jax.grad(lambda v: net.eval_apply(dp, ds, v[None])[0]))(y)
  np.testing.assert_allclose(grad(dc, x), c * grad(d1, c * x), rtol=1e-4, atol=1e-6)
  # 1-Lipschitz at c = 1 (spectral norm, ReLU): every input gradient of the c-net <= c.
  norms = np.linalg.norm(grad(dc, x), axis=1)
  assert norms.max() <= c * (1 + 1e-3)


def test_dcgan_d_input_scale_is_the_same_net_at_c_times_x():
  c = 2.0
  base = config_lib.ModelConfig(arch='dcgan', d_width=4, d_spectral_norm=True,
                                sn_power_iterations=1)
  _, d1 = models.build(base, (8, 8, 1))
  _, dc = models.build(dataclasses.replace(base, d_input_scale=c), (8, 8, 1))
  x = jax.random.uniform(jax.random.PRNGKey(1), (3, 8, 8, 1), minval=-1, maxval=1)
  dp, ds = d1.init(jax.random.PRNGKey(0), x)
  np.testing.assert_allclose(dc.eval_apply(dp, ds, x), d1.eval_apply(dp, ds, c * x), rtol=1e-5)
  gsum = lambda net, y: jax.grad(lambda v: jnp.sum(net.eval_apply(dp, ds, v)))(y)
  np.testing.assert_allclose(gsum(dc, x), c * gsum(d1, c * x), rtol=1e-4, atol=1e-7)
  assert not np.allclose(dc.eval_apply(dp, ds, x), d1.eval_apply(dp, ds, x))


def test_every_method_setting_lives_in_its_methods_section():
  # No top-level section that only one method reads: a GAN's optimiser is
  # methods.gan.g_optimizer, and an old top-level one is no Config field.
  names = {f.name for f in dataclasses.fields(config_lib.Config)}
  assert names == {'method', 'data', 'model', 'training', 'mesh', 'methods'}
  with pytest.raises(TypeError, match='g_optimizer'):
    config_lib.Config(method='gan', g_optimizer=config_lib.OptimizerConfig(learning_rate=0.5))
  cfg = config_lib.Config.from_dict(
      {'method': 'gan', 'methods': {'gan': {'g_optimizer': {'learning_rate': 0.5}}}})
  assert cfg.hparams.g_optimizer.learning_rate == 0.5 and cfg.hparams_section == 'methods.gan'
  # The running method's section is always recorded (its defaults when not given).
  assert sorted(config_lib.Config(method='gan').to_dict()['methods']) == ['gan']
  assert config_lib.Config().hparams == vgrow.HParams()
  assert config_lib.Config().with_hparams(step_size=0.1).hparams.step_size == 0.1


def test_the_old_top_level_vgrow_sections_are_read_into_methods_vgrow():
  old = {'method': 'vgrow', 'vgrow': {'divergence': 'js', 'step_size': 0.1},
         'g_optimizer': {'name': 'adam', 'learning_rate': 3e-3},
         'd_optimizer': {'name': 'sgd'}, 'methods': {'gan': {'n_critic': 2}}}
  cfg = config_lib.Config.from_dict(old)
  assert cfg.hparams == vgrow.HParams(
      divergence='js', step_size=0.1,
      g_optimizer=config_lib.OptimizerConfig(name='adam', learning_rate=3e-3),
      d_optimizer=config_lib.OptimizerConfig(name='sgd'))
  assert cfg.methods['gan'].n_critic == 2
  assert config_lib.Config.from_dict(cfg.to_dict()) == cfg  # written in the new layout
  assert 'vgrow' not in cfg.to_dict() and 'g_optimizer' not in cfg.to_dict()
  with pytest.raises(config_lib.ConfigError, match=r'^config field g_optimizer: is the old place '
                     r'of methods\.vgrow, which the config sets too; keep methods\.vgrow only$'):
    config_lib.Config.from_dict({'g_optimizer': {}, 'methods': {'vgrow': {}}})
