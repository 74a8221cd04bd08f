"""Image sources, preprocessing, device-side sampling and the resumable shuffle."""

import gzip

import jax
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import data
from vgrow_jax import image_data


def test_mnist_5k_fixed_split_is_stratified_and_disjoint():
  tr, te = image_data.read_mnist_5k('train'), image_data.read_mnist_5k('test')
  assert tr.images.shape == (4000, 28, 28, 1) and te.images.shape == (1000, 28, 28, 1)
  assert np.bincount(tr.labels).tolist() == [400] * 10
  assert np.bincount(te.labels).tolist() == [100] * 10
  flat = lambda x: {bytes(r) for r in x.reshape(len(x), -1)}
  assert not flat(tr.images) & flat(te.images)  # no held-out digit is trained on
  assert tr.images.max() == 255 and tr.images.min() == 0


def test_sampling_scales_pixels_to_minus_one_one_on_the_device():
  pixels = np.array([0, 51, 255, 128], np.uint8).reshape(4, 1, 1, 1)
  ds = image_data.image_dataset(np.repeat(pixels, 2, axis=1))
  assert ds.arrays['pixels'].dtype == np.uint8 and ds.shape == (2, 1, 1)
  x = np.asarray(jax.jit(ds.sample, static_argnums=2)(ds.arrays, jax.random.PRNGKey(0), 400))
  expected = sorted([-1.0, 51 / 127.5 - 1, 128 / 127.5 - 1, 1.0])
  np.testing.assert_allclose(sorted(set(x.ravel().tolist())), expected, rtol=0, atol=1e-6)


def test_pad_28_to_32_centres_the_digit_on_background():
  x = image_data.read_mnist_5k('test').images[:3]
  p = image_data.preprocess(x, image_size=32, resize='pad')
  assert p.shape == (3, 32, 32, 1)
  np.testing.assert_array_equal(p[:, 2:30, 2:30], x)
  assert p[:, :2].max() == 0 and p[:, 30:].max() == 0 and p[:, :, :2].max() == 0


def test_bilinear_resize_is_pillows_and_keeps_constants():
  from PIL import Image  # pylint: disable=g-import-not-at-top
  x = image_data.read_mnist_5k('test').images[:2]
  r = image_data.preprocess(x, image_size=32, resize='bilinear')
  ref = np.asarray(Image.fromarray(x[1, ..., 0]).resize((32, 32), Image.BILINEAR))
  np.testing.assert_array_equal(r[1, ..., 0], ref)
  const = np.full((1, 20, 30, 3), 77, np.uint8)  # non-square: centre crop first
  np.testing.assert_array_equal(image_data.preprocess(const, image_size=8), 77)


@pytest.mark.parametrize('suffix', ['.gz', ''])
def test_idx_round_trip(tmp_path, suffix):
  rng = np.random.default_rng(0)
  imgs = rng.integers(0, 256, (5, 28, 28), dtype=np.uint8)
  labels = np.array([3, 1, 4, 1, 5], np.uint8)
  ip, lp = str(tmp_path / f'im-idx3-ubyte{suffix}'), str(tmp_path / f'lb-idx1-ubyte{suffix}')
  image_data.write_idx(ip, imgs)
  image_data.write_idx(lp, labels)
  if suffix:
    assert gzip.open(ip).read(4) == b'\x00\x00\x08\x03'
  else:  # the MNIST header: magic 2051 for images, 2049 for labels
    raw = open(ip, 'rb').read()
    assert int.from_bytes(raw[:4], 'big') == 2051 and int.from_bytes(raw[4:8], 'big') == 5
  ds = data.load(config_lib.DataConfig(name='idx', path=ip, labels_path=lp))
  np.testing.assert_array_equal(np.asarray(ds.arrays['pixels'])[..., 0], imgs)
  got = image_data.read(config_lib.DataConfig(name='idx', path=ip, labels_path=lp))
  assert got.labels.tolist() == [3, 1, 4, 1, 5]
  f32 = rng.normal(size=(2, 3)).astype(np.float32)
  image_data.write_idx(str(tmp_path / 'f.idx'), f32)
  np.testing.assert_array_equal(image_data.read_idx(str(tmp_path / 'f.idx')), f32)


def test_truncated_idx_is_a_clear_error(tmp_path):
  p = str(tmp_path / 'x.idx')
  image_data.write_idx(p, np.zeros((4, 3, 3), np.uint8))
  open(p, 'ab').write(b'\x00')
  with pytest.raises(data.DataError, match=r'header says shape \(4, 3, 3\) \(36 bytes of uint8\) '
                     'but 37 bytes follow'):
    image_data.read_idx(p)
  with pytest.raises(data.DataError, match='is not an IDX file'):
    open(p, 'wb').write(b'PK\x03\x04rest')
    image_data.read_idx(p)


def test_image_folder_and_uint8_npz(tmp_path):
  from PIL import Image  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(1)
  imgs = rng.integers(0, 256, (3, 6, 6), dtype=np.uint8)
  (tmp_path / 'f' / 'sub').mkdir(parents=True)
  for i, im in enumerate(imgs):
    Image.fromarray(im).save(tmp_path / 'f' / ('sub' if i else '') / f'{i}.png')
  (tmp_path / 'f' / 'notes.txt').write_text('not an image')
  got = image_data.read_folder(str(tmp_path / 'f'))
  np.testing.assert_array_equal(got.images[..., 0], imgs)  # sorted paths: 0.png, sub/1, sub/2
  np.savez(tmp_path / 'im.npz', imgs)
  ds = data.load(config_lib.DataConfig(name='npz', path=str(tmp_path / 'im.npz'), image_size=8,
                                       resize='pad'))
  assert ds.shape == (8, 8, 1) and ds.value_range == (-1.0, 1.0)
  np.savez(tmp_path / 'vec.npz', rng.normal(size=(4, 3)))
  with pytest.raises(data.DataError, match=r'image_size=8 needs uint8 images'):
    data.load(config_lib.DataConfig(name='npz', path=str(tmp_path / 'vec.npz'), image_size=8))


def test_tfds_data_source_with_mock_data():
  tfds = pytest.importorskip('tensorflow_datasets')
  with tfds.testing.mock_data(num_examples=6):
    cfg = config_lib.DataConfig(name='tfds', tfds_name='mnist', image_size=32, max_examples=5)
    got = image_data.load_arrays(cfg)
    assert got.images.shape == (5, 32, 32, 1) and got.labels.shape == (5,)
    ds = data.load(config_lib.DataConfig(name='tfds', tfds_name='cifar10', split='test'))
    assert ds.shape == (32, 32, 3) and ds.arrays['pixels'].shape[0] == 6


def test_tfds_without_data_says_so_and_names_offline_sources(tmp_path):
  pytest.importorskip('tensorflow_datasets')
  with pytest.raises(data.DataError) as e:
    data.load(config_lib.DataConfig(name='tfds', tfds_name='mnist', data_dir=str(tmp_path)))
  msg = str(e.value)
  assert '\n' not in msg and f"no prepared copy at '{tmp_path}/mnist/" in msg
  assert "'mnist_5k'" in msg and "'idx'" in msg


def test_epoch_shuffle_visits_each_example_once_per_epoch_and_resumes():
  key, n, b = jax.random.PRNGKey(3), 10, 3  # 3 batches an epoch, 1 example dropped
  batch = jax.jit(image_data.epoch_batch, static_argnums=(2, 3))
  run = np.stack([np.asarray(batch(key, i, b, n)) for i in range(9)])
  for e in range(3):
    epoch = run[3 * e:3 * e + 3].ravel()
    assert len(set(epoch.tolist())) == 9 and epoch.max() < n
  assert not np.array_equal(run[:3], run[3:6])  # a new order every epoch
  resumed = np.stack([np.asarray(batch(key, i, b, n)) for i in range(5, 9)])
  np.testing.assert_array_equal(resumed, run[5:])


@pytest.mark.parametrize('d,message', [
    ({'name': 'tfds'}, r"data\.tfds_name='': name=tfds needs a TFDS dataset name"),
    ({'name': 'idx'}, r"data\.path='': name=idx needs a path"),
    ({'name': 'mnist_5k', 'resize': 'nearest'}, r"data\.resize='nearest'"),
    ({'name': 'mnist_5k', 'image_size': -1}, r'data\.image_size=-1: must be >= 0'),
])
def test_bad_image_data_config_is_named(d, message):
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.DataConfig(**d)


def test_unknown_split_is_named():
  with pytest.raises(data.DataError, match="unknown split 'valid'"):
    image_data.read_digits('valid')
