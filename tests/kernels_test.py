"""Kernels and MMD: hand formulas, unbiasedness of the U-statistic, V ≥ 0."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import kernels


def test_profiles_and_median_match_hand_formulas():
  x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
  d2 = ((x[:, None] - x[None]) ** 2).sum(-1)
  np.testing.assert_allclose(kernels.squared_distances(x, x), d2, atol=1e-5)
  for pts in (x, np.r_[x, -x[:1]]):  # 21 and 28 pairs: odd and even counts
    dp = ((pts[:, None] - pts[None]) ** 2).sum(-1)
    np.testing.assert_allclose(kernels.median_squared_distance(pts),
                               np.median(dp[np.triu_indices(len(pts), 1)]), rtol=1e-5)
  np.testing.assert_allclose(kernels.gram(x, x, kernels.rbf((0.5, 2.0))),
                             np.exp(-d2 / 0.5) + np.exp(-d2 / 8.0), rtol=1e-5)
  np.testing.assert_allclose(kernels.gram(x, x, kernels.imq((0.5, 2.0))),
                             (1 + d2 / 0.5) ** -0.5 + (1 + d2 / 2.0) ** -0.5, rtol=1e-5)
  med = np.median(d2[np.triu_indices(7, 1)])
  np.testing.assert_allclose(kernels.imq_median(x)(jnp.float32(med)),
                             sum((1 + 1 / f) ** -0.5 for f in (0.5, 1, 2, 4)), rtol=1e-5)


def _draws(shift, n, num, estimator, dim=2, sigma=1.0):
  """MMD² of `num` independent pairs of batches x ~ N(0, I), y ~ N(shift, I)."""
  phi = kernels.rbf((sigma,))

  def one(key):
    kx, ky = jax.random.split(key)
    x = jax.random.normal(kx, (n, dim))
    y = shift + jax.random.normal(ky, (n, dim))
    return kernels.mmd2(x, y, phi, estimator=estimator)

  return np.asarray(jax.jit(jax.vmap(one))(jax.random.split(jax.random.PRNGKey(0), num)),
                    np.float64)


def _population_mmd2(shift, dim, sigma=1.0, s=1.0):
  # E k(x, x') for x ~ N(a, s²I), x' ~ N(b, s²I), k = exp(-|x - x'|²/(2σ²)).
  c = (sigma ** 2 / (sigma ** 2 + 2 * s ** 2)) ** (dim / 2)
  return 2 * c * (1 - np.exp(-shift ** 2 * dim / (2 * (sigma ** 2 + 2 * s ** 2))))


def test_u_statistic_is_unbiased_at_equal_distributions_and_v_is_not():
  u = _draws(0.0, n=16, num=4000, estimator='u')
  v = _draws(0.0, n=16, num=4000, estimator='v')
  se_u = u.std() / np.sqrt(len(u))
  assert abs(u.mean()) < 4 * se_u, (u.mean(), se_u)
  assert u.min() < 0  # the U-statistic can be negative
  # The V-statistic is biased upwards: the same test on it fails by far.
  assert v.mean() > 20 * v.std() / np.sqrt(len(v)), v.mean()
  assert v.min() >= -1e-6


@pytest.mark.parametrize('shift', [0.5, 1.0])
def test_u_statistic_mean_is_the_population_mmd_for_different_gaussians(shift):
  u = _draws(shift, n=16, num=4000, estimator='u')
  v = _draws(shift, n=16, num=4000, estimator='v')
  exact = _population_mmd2(shift, dim=2)
  se = u.std() / np.sqrt(len(u))
  assert exact > 0.05
  assert abs(u.mean() - exact) < 4 * se, (u.mean(), exact, se)
  assert u.mean() > 10 * se  # positive for different distributions
  assert v.min() >= 0 and v.mean() > u.mean()


def test_bad_estimator_and_shapes_are_clear_errors():
  x = jnp.zeros((4, 2))
  with pytest.raises(ValueError, match="estimator 'w'"):
    kernels.mmd2(x, x, kernels.rbf((1.0,)), estimator='w')
  with pytest.raises(ValueError, match='dimensions 2 and 3'):
    kernels.mmd2(x, jnp.zeros((4, 3)), kernels.rbf((1.0,)))
  with pytest.raises(ValueError, match='at least 2 points, got 1'):
    kernels.median_squared_distance(jnp.zeros((1, 2)))
