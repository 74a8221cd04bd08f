"""The Stein gradient estimator of a score ∇ₓ log q(x) from samples of q.

Given samples X = (x¹, …, x^K) ``[K, D]`` of an implicit q and a kernel
matrix K_XX, the estimator (Li & Turner, 2018, §3) is the kernel ridge
solution of the Monte Carlo Stein identity:

.. math::

  \\hat G = -(K_{XX} + \\eta I)^{-1} \\langle \\nabla, K_{XX} \\rangle, \\qquad
  \\langle \\nabla, K \\rangle_{ij} = \\sum_k \\partial K(x^i, x^k) / \\partial x^k_j,

row k of Ĝ estimating ∇ log q(x^k). For a radial kernel k(x, y) = φ(‖x − y‖²),
∂k(x^i, x^k)/∂x^k = c_ik (x^i − x^k) with c_ik = −2φ'(‖x^i − x^k‖²), so
⟨∇, K⟩ = diag(C1) X − C X: one Gram matrix, one Cholesky solve.

**Out-of-sample extension** (the score at new points x*, e.g. ∇ log p at
generated points from data samples Y). Add x* to the samples, solve the
augmented ridge problem, and read off the row of x*. By the Schur complement
of K_YY + ηI in the augmented matrix, and because ∂k(x*, y)/∂y|_{y=x*} = 0 for
a translation-invariant kernel, that row is

.. math::

  \\hat g(x^*) = \\frac{(\\mathbf 1^\\top + k_{*Y} (K_{YY} + \\eta I)^{-1})\\,
                        \\nabla_{x^*} k(x^*, Y) \\; - \\; k_{*Y} \\hat G_Y}
                       {k(x^*, x^*) + \\eta - k_{*Y} (K_{YY} + \\eta I)^{-1} k_{Y*}},

with k_{*Y} = [k(x*, y¹), …, k(x*, y^K)] ``[1, K]``, ∇_{x*}k(x*, Y) ``[K, D]``
(row j: ∇_{x*} k(x*, y^j)) and Ĝ_Y = the in-sample estimate on Y. This is the
"predictive" estimator of the paper (it equals, exactly, the in-sample
estimator on {x*} ∪ Y; ``tests/stein_test.py`` checks that identity), the
same algebra as the authors' reference ``grad`` in ``YingzhenLi/SteinGrad``
(hamiltonian/estimators). Each row of x* is extended independently.

>>> import jax, jax.numpy as jnp
>>> from vgrow_jax import kernels
>>> x = jax.random.normal(jax.random.PRNGKey(0), (500, 2))
>>> g = stein_score(x, kernels.imq_median(x), eta=0.01)   # ≈ −x for N(0, I)
>>> g.shape
(500, 2)

References:
  Li, Turner. "Gradient Estimators for Implicit Models." ICLR 2018.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import jax.scipy.linalg as jsl

from vgrow_jax import kernels

Array = jax.Array


def _kernel_and_slope(x: Array, y: Array, profile: kernels.Profile):
  """K ``[N, M]`` and C ``[N, M]`` with ∂k(x_i, y_j)/∂y_j = C_ij (x_i − y_j)."""
  d2 = kernels.squared_distances(x, y)
  # The profile acts elementwise, so a JVP with a tangent of ones gives φ'(d²).
  k, dphi = jax.jvp(profile, (d2,), (jnp.ones_like(d2),))
  return k, -2.0 * dphi


def _regularised_factor(k: Array, eta: float):
  """The Cholesky factor of K + ηI (symmetric positive definite for η > 0)."""
  return jsl.cho_factor(k + eta * jnp.eye(k.shape[0], dtype=k.dtype), lower=True)


def _solve(factor, b: Array) -> Array:
  """(K + ηI)⁻¹ b from the factor."""
  return jsl.cho_solve(factor, b)


def _in_sample(x: Array, c: Array, factor) -> Array:
  div = x * jnp.sum(c, axis=1, keepdims=True) - c @ x  # ⟨∇, K⟩ [K, D]
  return -_solve(factor, div)


def stein_score(x: Array, profile: kernels.Profile, *, eta: float) -> Array:
  """Ĝ ``[K, D]``: the Stein estimate of ∇ log q at the samples x ``[K, D]`` of q.

  Args:
    x: samples, one a row.
    profile: radial kernel profile (e.g. :func:`vgrow_jax.kernels.imq_median`).
    eta: ridge regulariser η > 0.
  """
  k, c = _kernel_and_slope(x, x, profile)
  return _in_sample(x, c, _regularised_factor(k, eta))


def stein_score_out_of_sample(x_new: Array, samples: Array, profile: kernels.Profile,
                              *, eta: float) -> Array:
  """ĝ(x*) ``[M, D]``: the score of the distribution of ``samples`` at the rows of ``x_new``.

  Args:
    x_new: ``[M, D]`` points where the score is wanted (each extended alone).
    samples: ``[K, D]`` samples of the distribution whose score is estimated.
    profile: radial kernel profile.
    eta: ridge regulariser η > 0.

  Returns:
    The out-of-sample Stein estimate (module docstring) at every row of x_new.
  """
  k_yy, c_yy = _kernel_and_slope(samples, samples, profile)
  factor = _regularised_factor(k_yy, eta)
  g_y = _in_sample(samples, c_yy, factor)  # [K, D]
  k_xy, c_xy = _kernel_and_slope(x_new, samples, profile)  # [M, K]
  w = _solve(factor, k_xy.T).T  # k_{*Y}(K_YY + ηI)^{-1} [M, K]
  # ∇_{x*} k(x*, y_j) = −C_*j (x* − y_j); weight row j by (1 + w_j).
  a = (1.0 + w) * c_xy  # [M, K]
  grad_term = -(x_new * jnp.sum(a, axis=1, keepdims=True) - a @ samples)  # [M, D]
  k_self = profile(jnp.zeros((), x_new.dtype))  # k(x*, x*) = φ(0)
  denom = k_self + eta - jnp.sum(w * k_xy, axis=1)  # [M], > 0 (a Schur complement)
  return (grad_term - k_xy @ g_y) / denom[:, None]
