"""GMMN's kernel options against hand-computed values: IMQ, the median heuristic, the V-statistic."""

import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import kernels
from vgrow_jax import mmd


def test_imq_kernel_value():
  # k(x, y) = (1 + |x − y|²/h)^(−1/2): |(0, 0) − (3, 4)|² = 25, h = 5 → 6^(−1/2).
  k = kernels.gram(jnp.array([[0.0, 0.0]]), jnp.array([[3.0, 4.0]]), kernels.imq((5.0,)))
  np.testing.assert_allclose(k, [[6 ** -0.5]], rtol=1e-6)


@pytest.mark.parametrize('points,median', [
    ([0.0, 1.0, 3.0], 4.0),  # squared distances 1, 9, 4
    ([0.0, 1.0, 3.0, 7.0], 12.5),  # 1, 9, 49, 4, 36, 16: (9 + 16) / 2
])
def test_median_heuristic_on_a_known_set(points, median):
  x = jnp.asarray(points)[:, None]
  np.testing.assert_allclose(kernels.median_squared_distance(x), median, rtol=1e-6)


def test_v_statistic_is_the_mean_of_the_gram_blocks():
  # x = {0, 1}, y = {3} in 1-D, k = (1 + d²)^(−1/2).
  x, y = jnp.array([[0.0], [1.0]]), jnp.array([[3.0]])
  kxx = (2 + 2 * 2 ** -0.5) / 4  # k(0,0) = k(1,1) = 1, k(0,1) = 2^(−1/2)
  kyy = 1.0
  kxy = (10 ** -0.5 + 5 ** -0.5) / 2  # d² = 9, 4
  np.testing.assert_allclose(kernels.mmd2(x, y, kernels.imq((1.0,)), estimator='v'),
                             kxx + kyy - 2 * kxy, rtol=1e-6)


def test_median_factors_set_the_imq_bandwidths_from_x_and_y():
  x, y = jnp.array([[0.0], [1.0]]), jnp.array([[3.0], [7.0]])
  hp = mmd.HParams(kernel='imq', median_factors=(0.5, 2.0))
  profile = mmd.profile_of(hp, x, y)  # median of X ∪ Y's squared distances: 12.5
  s = jnp.float32(4.0)
  np.testing.assert_allclose(profile(s), (1 + 4 / 6.25) ** -0.5 + (1 + 4 / 25) ** -0.5,
                             rtol=1e-6)
  rbf = mmd.profile_of(mmd.HParams(kernel='rbf', median_factors=(1.0,)), x, y)
  np.testing.assert_allclose(rbf(s), np.exp(-4 / (2 * 12.5)), rtol=1e-6)
  with pytest.raises(ValueError, match='need the batches'):
    mmd.profile_of(hp)


def test_defaults_keep_gmmns_fixed_bandwidths():
  hp = mmd.HParams()
  assert hp.median_factors == () and hp.estimator == 'v' and hp.kernel == 'rbf'
  np.testing.assert_allclose(mmd.profile_of(hp)(jnp.float32(8.0)),
                             sum(np.exp(-8 / (2 * b * b)) for b in hp.bandwidths), rtol=1e-6)
  with pytest.raises(ValueError, match='median_factors'):
    mmd.HParams(median_factors=(1.0, 0.0))
