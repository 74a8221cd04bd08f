"""f-GAN table (docs/math.md §2, §5): Fenchel–Young, tightness at T* = f'(p/q), domains."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import integrate
from scipy import stats

from vgrow_jax import fgan
from vgrow_jax import fgan_divergences as fd
from vgrow_jax import gan

NAMES = fd.NAMES
U = np.logspace(-3, 3, 61)  # ratios u = p/q
V = np.linspace(-6.0, 6.0, 121)  # raw discriminator outputs


@pytest.fixture
def x64():
  # The identities are exact; float64 keeps cancellation (u log u − (u+1) log(u+1)
  # at u = 1e3) from hiding a wrong formula.
  with jax.enable_x64(True):
    yield


def test_table_has_the_six_divergences_of_math_md():
  assert set(NAMES) == {'kl', 'reverse_kl', 'pearson', 'hellinger', 'js', 'gan'}
  with pytest.raises(ValueError, match="unknown f-GAN divergence 'chi'"):
    fd.get('chi')


@pytest.mark.parametrize('name', NAMES)
def test_f_is_convex_and_fenchel_young_holds_with_equality_at_f_prime(name, x64):
  div = fd.get(name)
  # f(1) = 0 (for 'gan' −log 4: D_gan = 2·JS − log 4 is −log 4 at P = Q); f convex.
  f1 = -math.log(4.0) if name == 'gan' else 0.0
  fu = np.asarray(div.f(jnp.asarray(np.concatenate([[1.0], U]))))
  assert abs(fu[0] - f1) < 1e-12
  assert np.all(np.diff(np.diff(fu[1:]) / np.diff(U)) > -1e-12)
  u = jnp.asarray(U)[:, None]  # [61, 1]
  t = div.activation(jnp.asarray(V))[None, :]  # [1, 121], inside dom f*
  gap = div.f(u) + div.conjugate(t) - u * t  # [61, 121]
  assert float(jnp.min(gap)) > -1e-9
  t_star = div.f_prime(jnp.asarray(U))
  eq = div.f(jnp.asarray(U)) + div.conjugate(t_star) - U * t_star
  np.testing.assert_allclose(eq, 0.0, atol=1e-9)
  # The gap is strictly positive away from t = f'(u) (the test can fail).
  assert float(jnp.max(gap)) > 0.1


@pytest.mark.parametrize('name', NAMES)
def test_activation_maps_into_the_conjugate_domain_and_stable_form_agrees(name):
  div = fd.get(name)
  lo, hi = div.domain
  # float32, as in training: g_f stays inside the open domain of f*.
  t = np.asarray(div.activation(jnp.linspace(-12.0, 12.0, 241)), np.float64)
  assert np.all(t > lo) and np.all(t < hi), (t.min(), t.max())
  # The stable form stays finite where the composition would not.
  assert np.all(np.isfinite(div.conjugate_of_activation(jnp.linspace(-40.0, 40.0, 81))))
  with jax.enable_x64(True):
    v = jnp.asarray(V)
    np.testing.assert_allclose(div.conjugate_of_activation(v), div.conjugate(div.activation(v)),
                               rtol=1e-10, atol=1e-10)


# P = N(0, 1) (data), Q = N(0.5, 1.2²) (model): D_f(P‖Q) = ∫ q f(p/q).
MP, SP, MQ, SQ = 0.0, 1.0, 0.5, 1.2


def _reference(name):
  """D_f(P‖Q) from closed forms, or scipy quadrature of the textbook integrand."""
  p = stats.norm(MP, SP).pdf
  q = stats.norm(MQ, SQ).pdf
  kl = lambda m1, s1, m2, s2: math.log(s2 / s1) + (s1**2 + (m1 - m2)**2) / (2 * s2**2) - 0.5
  quad = lambda g: integrate.quad(g, -30, 30, limit=200)[0]
  m = lambda x: 0.5 * (p(x) + q(x))
  js = 0.5 * quad(lambda x: p(x) * math.log(p(x) / m(x)) + q(x) * math.log(q(x) / m(x)))
  bc = math.sqrt(2 * SP * SQ / (SP**2 + SQ**2)) * math.exp(-(MP - MQ)**2 / (4 * (SP**2 + SQ**2)))
  return {
      'kl': kl(MP, SP, MQ, SQ),
      'reverse_kl': kl(MQ, SQ, MP, SP),
      'pearson': quad(lambda x: p(x)**2 / q(x)) - 1.0,
      'hellinger': 2.0 - 2.0 * bc,
      'js': 2.0 * js,
      'gan': 2.0 * js - math.log(4.0),
  }[name]


def _bound_on_grid(div, ratio_scale=1.0):
  """E_P[T] − E_Q[f*(T)] with T = f'(ratio_scale · p/q), by the trapezoid rule."""
  x = np.linspace(-10.0, 10.0, 40001)
  logp = stats.norm(MP, SP).logpdf(x)
  logq = stats.norm(MQ, SQ).logpdf(x)
  u = jnp.asarray(ratio_scale * np.exp(logp - logq), jnp.float32)
  t = div.f_prime(u)
  integrand = np.exp(logp) * np.asarray(t, np.float64) - \
      np.exp(logq) * np.asarray(div.conjugate(t), np.float64)
  return integrate.trapezoid(integrand, x)


@pytest.mark.parametrize('name', NAMES)
def test_variational_bound_is_tight_at_t_star_on_two_gaussians(name):
  div = fd.get(name)
  expected = _reference(name)
  assert abs(expected) > 0.01  # the two densities differ
  np.testing.assert_allclose(_bound_on_grid(div), expected, atol=2e-4, rtol=2e-4)
  # Any other T gives a strictly smaller value: it is a lower bound.
  assert _bound_on_grid(div, ratio_scale=1.5) < expected - 1e-3


def test_variational_bound_from_raw_outputs_uses_the_activation():
  # With V = g_f⁻¹(T*) (here for 'gan': T* = log σ(v*) ⇒ v* = log p/q) the
  # sample estimate of the bound matches 2·JS − log 4 by Monte Carlo.
  rng = np.random.default_rng(0)
  xp = rng.normal(MP, SP, 200_000)
  xq = rng.normal(MQ, SQ, 200_000)
  logit = lambda x: jnp.asarray(stats.norm(MP, SP).logpdf(x) - stats.norm(MQ, SQ).logpdf(x),
                                jnp.float32)
  est = float(fd.variational_bound(fd.get('gan'), logit(xp), logit(xq)))
  assert abs(est - _reference('gan')) < 5e-3


def test_gan_divergence_losses_are_the_gan_losses():
  v_real, v_fake = jnp.linspace(-3, 2, 7), jnp.linspace(-1, 4, 7)
  nonsat = fgan.losses(fd.get('gan'), 'non_saturating')
  minimax = fgan.losses(fd.get('gan'), 'minimax')
  np.testing.assert_allclose(nonsat.d_loss(v_real, v_fake),
                             gan.discriminator_loss(v_real, v_fake), rtol=1e-6)
  np.testing.assert_allclose(nonsat.g_loss(v_fake), gan.non_saturating_generator_loss(v_fake),
                             rtol=1e-6)
  np.testing.assert_allclose(minimax.g_loss(v_fake), gan.minimax_generator_loss(v_fake),
                             rtol=1e-6)
