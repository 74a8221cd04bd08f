"""The Stein gradient estimator against the analytic Gaussian score."""

import functools

import jax
import jax.numpy as jnp
import numpy as np

from vgrow_jax import kernels
from vgrow_jax import stein

MU = jnp.array([1.0, -2.0])
COV = jnp.array([[1.0, 0.6], [0.6, 2.0]])


def _gaussian(key, n):
  return MU + jax.random.normal(key, (n, 2)) @ jnp.linalg.cholesky(COV).T


def _relative_error(g, x):
  true = -(x - MU) @ jnp.linalg.inv(COV)  # ∇ log N(x; μ, Σ) = −Σ⁻¹(x − μ)
  return jnp.mean(jnp.sum((g - true) ** 2, 1)) / jnp.mean(jnp.sum(true ** 2, 1))


@functools.partial(jax.jit, static_argnums=1)
def _errors(seeds, num_samples):
  """Relative errors (in-sample, out-of-sample at 200 fresh points) per seed."""

  def one(seed):
    y = _gaussian(jax.random.PRNGKey(seed), num_samples)
    x = _gaussian(jax.random.PRNGKey(100 + seed), 200)
    in_sample = stein.stein_score(y, kernels.imq_median(y), eta=0.3)
    out = stein.stein_score_out_of_sample(x, y, kernels.imq_median(jnp.concatenate([x, y])),
                                          eta=0.3)
    return _relative_error(in_sample, y), _relative_error(out, x)

  return jax.lax.map(one, seeds)


def test_estimates_approach_the_gaussian_score_as_k_grows():
  # Relative mean squared error E|ĝ − ∇log p|² / E|∇log p|², mean of 3 seeds,
  # η = 0.3, IMQ mixture with median bandwidths; K = 100 vs 1000 samples.
  seeds = jnp.arange(3)
  e100 = np.mean(_errors(seeds, 100), axis=1)  # [in, out]
  e1000 = np.mean(_errors(seeds, 1000), axis=1)
  assert np.all(e1000 < 0.75 * e100), (e100, e1000)
  assert np.all(e1000 < 0.25), e1000


def test_out_of_sample_row_equals_the_in_sample_estimate_on_the_augmented_set():
  # The extension is the exact Schur-complement solution of the augmented problem.
  y = jax.random.normal(jax.random.PRNGKey(3), (40, 2))
  xs = 2.0 * jax.random.normal(jax.random.PRNGKey(4), (5, 2))
  profile = kernels.imq(jnp.array([0.5, 1.0, 2.0]))
  oos, augmented = jax.jit(lambda xs: (
      stein.stein_score_out_of_sample(xs, y, profile, eta=0.05),
      jax.vmap(lambda x: stein.stein_score(jnp.concatenate([x[None], y]), profile,
                                           eta=0.05)[0])(xs)))(xs)
  np.testing.assert_allclose(oos, augmented, rtol=2e-4, atol=2e-4 * float(jnp.abs(oos).max()))


def test_sign_and_scale_on_an_isotropic_gaussian():
  # ∇ log N(x; μ, σ²I) = −(x − μ)/σ²: the estimate must point back to μ, at about that slope.
  mu, sigma = jnp.array([3.0, -1.0]), 2.0
  x = mu + sigma * jax.random.normal(jax.random.PRNGKey(5), (500, 2))
  g = stein.stein_score(x, kernels.imq_median(x), eta=1.0)  # stein_kl's default η
  centred = np.asarray(x - mu)
  slope = np.sum(np.asarray(g) * centred) / np.sum(centred ** 2)  # least squares g ≈ s (x − μ)
  assert -1.25 / sigma ** 2 < slope < -0.6 / sigma ** 2, slope
  true = -centred / sigma ** 2
  cos = np.sum(np.asarray(g) * true) / np.linalg.norm(g) / np.linalg.norm(true)
  assert cos > 0.9, cos


def test_kl_direction_points_from_p_to_q():
  # q = N(μ_q, I), p = N(μ_p, I): ∇log q − ∇log p = μ_q − μ_p at every x, so descent moves q to p.
  from vgrow_jax import stein_kl  # pylint: disable=g-import-not-at-top
  mu_q, mu_p = jnp.array([1.0, 0.0]), jnp.array([-1.0, 0.5])
  x = mu_q + jax.random.normal(jax.random.PRNGKey(6), (300, 2))
  y = mu_p + jax.random.normal(jax.random.PRNGKey(7), (300, 2))
  d = np.asarray(stein_kl.kl_direction(x, y, stein_kl.HParams())).mean(0)
  want = np.asarray(mu_q - mu_p)
  assert np.dot(d, want) / np.linalg.norm(d) / np.linalg.norm(want) > 0.9, d
  assert 0.3 * np.linalg.norm(want) < np.linalg.norm(d) < 1.5 * np.linalg.norm(want), d
