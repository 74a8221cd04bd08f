"""Toy data, user data validation and the mode metrics (docs/math.md §3)."""

import zipfile

import jax
import numpy as np
import pytest

from vgrow_jax import config as config_lib
from vgrow_jax import data
from vgrow_jax import metrics


def test_ring_and_grid_match_the_protocol():
  ring, grid = data.ring(), data.grid()
  assert ring.modes.shape == (8, 2) and ring.std == 0.01
  np.testing.assert_allclose(np.linalg.norm(ring.modes, axis=1), 1.0, rtol=1e-6)
  np.testing.assert_allclose(ring.modes[2], [0.0, 1.0], atol=1e-6)
  assert grid.modes.shape == (25, 2) and grid.std == 0.05
  assert sorted(set(grid.modes[:, 0].tolist())) == [-4, -2, 0, 2, 4]


def test_mixture_samples_have_the_right_moments():
  ds = data.grid()
  x = np.asarray(ds.sample(ds.arrays, jax.random.PRNGKey(0), 50000))
  nearest = ((x[:, None] - ds.modes[None]) ** 2).sum(-1).argmin(1)
  counts = np.bincount(nearest, minlength=25)
  assert counts.min() > 1800 and counts.max() < 2200  # 2000 expected per mode
  resid = x - ds.modes[nearest]
  np.testing.assert_allclose(resid.std(0), 0.05, rtol=0.03)
  np.testing.assert_allclose(resid.mean(0), 0.0, atol=2e-3)


def test_mixture_in_any_dimension_from_config():
  ds = data.load(config_lib.DataConfig(name='mixture', dim=5, num_modes=3, std=0.1, scale=2.0))
  assert ds.shape == (5,) and ds.modes.shape == (3, 5) and np.abs(ds.modes).max() <= 2.0
  assert ds.sample(ds.arrays, jax.random.PRNGKey(0), 4).shape == (4, 5)


def test_npz_loads_one_array_or_the_named_one(tmp_path):
  p = tmp_path / 'one.npz'
  np.savez(p, imgs=np.zeros((10, 4, 4, 1)))
  ds = data.from_npz(str(p))
  assert ds.shape == (4, 4, 1) and ds.value_range == (0.0, 0.0)
  p2 = tmp_path / 'two.npz'
  np.savez(p2, a=np.ones((3, 2)), b=np.zeros((5, 2)))
  assert data.from_npz(str(p2), key='b').sample(
      data.from_npz(str(p2), key='b').arrays, jax.random.PRNGKey(0), 3).shape == (3, 2)


@pytest.mark.parametrize('arrays,message', [
    ({'x': np.zeros(5)}, r'shape \[N, \.\.\.\].*got shape \(5,\)'),
    ({'x': np.zeros((0, 2))}, r'data is empty \(shape \(0, 2\)\)'),
    ({'x': np.array([[0.0, np.inf]])}, r'1 non-finite values, first at index \(0, 1\): inf'),
    ({'a': np.zeros((2, 2)), 'b': np.zeros((2, 2))}, r"holds 2 arrays \['a', 'b'\]; name one"),
    ({'x': np.array([['a', 'b']])}, r'must be real numbers, got dtype <U1'),
])
def test_malformed_npz_is_a_clear_error(tmp_path, arrays, message):
  p = tmp_path / 'bad.npz'
  np.savez(p, **arrays)
  with pytest.raises(data.DataError, match=message):
    data.from_npz(str(p))


def test_missing_or_corrupt_npz_is_a_clear_error(tmp_path):
  with pytest.raises(data.DataError, match='npz data file not found'):
    data.from_npz(str(tmp_path / 'nope.npz'))
  # Not a zip at all (numpy alone would say "pickled (object) data"): one line naming the path.
  for name, content in (('random.npz', np.random.default_rng(0).bytes(300)),
                        ('text.npz', b'x,y\n1.0,2.0\n'),
                        ('array.npz', b'\x93NUMPY\x01\x00v\x00')):  # an .npy header, renamed
    p = tmp_path / name
    p.write_bytes(content)
    for load in (data.from_npz,
                 lambda path: data.load(config_lib.DataConfig(name='npz', path=path))):
      with pytest.raises(data.DataError) as e:
        load(str(p))
      assert str(e.value) == f'{str(p)!r} is not a valid .npz (zip) file'
  # A zip whose array is cut short: numpy's own reason, after the path.
  np.savez(tmp_path / 'cut.npz', x=np.zeros((10, 2)))
  with zipfile.ZipFile(tmp_path / 'cut.npz') as z:
    npy = z.read('x.npy')
  with zipfile.ZipFile(tmp_path / 'cut.npz', 'w') as z:
    z.writestr('x.npy', npy[:-40])
  with pytest.raises(data.DataError, match=r"cannot read npz file '.*cut\.npz': ValueError: EOF"):
    data.from_npz(str(tmp_path / 'cut.npz'))
  np.savez(tmp_path / 'k.npz', a=np.zeros((2, 2)))
  with pytest.raises(data.DataError, match=r"has no array 'b'; it holds \['a'\]"):
    data.from_npz(str(tmp_path / 'k.npz'), key='b')


def test_mode_metrics_on_hand_made_samples():
  modes = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0], [10.0, 10.0]])
  std = 0.1
  samples = np.array([[0.0, 0.0], [0.05, 0.0], [10.0, 0.2], [10.29, 0.0],  # 3 HQ: two modes
                      [5.0, 5.0], [0.0, 10.31]])                          # 2 low quality
  m = metrics.mode_metrics(samples, modes, std)
  assert m['modes'] == 2 and m['num_modes'] == 4
  assert m['high_quality'] == pytest.approx(4 / 6)
  # histogram over HQ samples (2, 2, 0, 0)/4 against uniform 1/4: log 2.
  assert m['reverse_kl'] == pytest.approx(np.log(2))
  # offsets 0, 0.05, 0.2, 0.29 from their means, over D = 2 coordinates, in σ.
  assert m['spread'] == pytest.approx(np.sqrt((0.05**2 + 0.2**2 + 0.29**2) / 4 / 2) / std)


def test_mode_metrics_of_the_data_itself_are_perfect():
  ds = data.ring()
  x = np.asarray(ds.sample(ds.arrays, jax.random.PRNGKey(3), 2500))
  m = metrics.mode_metrics(x, ds.modes, ds.std)
  assert m['modes'] == 8 and m['high_quality'] > 0.99 and m['reverse_kl'] < 0.01


def test_mode_spread_of_exact_samples_matches_the_truncated_chi_square():
  # r² ~ χ²₂ (CDF 1 − e^{−r²/2}): E[r² | r < 3] = (2 − 11 e^{−4.5}) / (1 − e^{−4.5}).
  expected = np.sqrt((2 - 11 * np.exp(-4.5)) / (1 - np.exp(-4.5)) / 2)
  ds = data.grid()
  x = np.asarray(ds.sample(ds.arrays, jax.random.PRNGKey(5), 20000))
  m = metrics.mode_metrics(x, ds.modes, ds.std)
  assert expected == pytest.approx(0.9744, abs=1e-4)
  # Standard error of the estimate at N = 20,000 is about 0.004.
  assert m['spread'] == pytest.approx(expected, abs=0.015)
  # Samples pulled halfway to their means have half the spread.
  nearest = ds.modes[((x[:, None] - ds.modes[None]) ** 2).sum(-1).argmin(1)]
  half = metrics.mode_metrics(nearest + (x - nearest) / 2, ds.modes, ds.std)
  assert half['spread'] < 0.55


def test_mode_metrics_with_no_high_quality_sample():
  m = metrics.mode_metrics(np.full((3, 2), 100.0), data.ring().modes, 0.01)
  assert m['modes'] == 0 and m['high_quality'] == 0 and m['reverse_kl'] == float('inf')
  assert np.isnan(m['spread'])


def test_classifier_and_inception_npz_that_is_not_a_zip_is_named(tmp_path):
  from vgrow_jax import classifier as classifier_lib
  from vgrow_jax import inception
  bad = tmp_path / 'weights.npz'
  bad.write_bytes(b'not a zip at all')
  with pytest.raises(ValueError, match=r"is not a valid \.npz \(zip\) file") as e:
    classifier_lib.load(str(bad))
  assert 'pickled' not in str(e.value) and '\n' not in str(e.value)
  with pytest.raises(ValueError, match=r"is not a valid \.npz \(zip\) file") as e:
    inception._load_npz(str(bad))
  assert 'pickled' not in str(e.value)
