"""The divergence table (docs/math.md §1): closed forms, f'' forms and f agree."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from vgrow_jax import divergences

NAMES = ['kl', 'js', 'logd', 'jeffreys']
D = jnp.linspace(-6.0, 4.0, 41)

# s(d) written by hand from the table, independently of the library.
HAND = {
    'kl': lambda d: np.ones_like(d),
    'js': lambda d: 1 / (1 + np.exp(-d)),
    'logd': lambda d: 1 / (1 + np.exp(d)),
    'jeffreys': lambda d: 1 + np.exp(d),
}


@pytest.mark.parametrize('name', NAMES)
def test_closed_form_matches_hand_formula(name):
  div = divergences.get(name)
  np.testing.assert_allclose(div.scale(D), HAND[name](np.asarray(D, np.float64)), rtol=1e-5)


@pytest.mark.parametrize('name', NAMES)
def test_closed_form_equals_r_f_second_r(name):
  div = divergences.get(name)
  generic = divergences.from_f_second(div.f_second)
  np.testing.assert_allclose(div.scale(D), generic.scale(D), rtol=1e-4)


@pytest.mark.parametrize('name', NAMES)
def test_f_second_is_second_derivative_of_f(name):
  div = divergences.get(name)
  u = jnp.linspace(0.2, 5.0, 25)
  fpp = jax.vmap(jax.grad(jax.grad(div.f)))(u)
  np.testing.assert_allclose(fpp, div.f_second(u), rtol=1e-3)
  assert abs(float(div.f(jnp.float32(1.0)))) < 1e-6  # f(1) = 0


def test_jeffreys_is_clipped_and_stays_finite():
  div = divergences.get('jeffreys')
  big = jnp.array([10.0, 100.0, 1e4])
  np.testing.assert_allclose(div.scale(big), [100.0, 100.0, 100.0], rtol=1e-5)
  assert np.isfinite(jax.grad(lambda d: div.scale(d).sum())(big)).all()
  unclipped = divergences.jeffreys(max_scale=None)
  assert float(unclipped.scale(jnp.float32(10.0))) == pytest.approx(1 + math.exp(10), rel=1e-5)


def test_stable_forms_do_not_overflow():
  d = jnp.array([-500.0, 500.0])
  for name in NAMES:
    assert np.isfinite(np.asarray(divergences.get(name).scale(d))).all(), name


def test_lookup_is_case_insensitive_with_aliases():
  assert divergences.get('KL').name == 'kl'
  assert divergences.get('Jeffrey').name == 'jeffreys'


def test_unknown_divergence_error_names_it():
  with pytest.raises(ValueError, match=r"unknown divergence 'hellinger'.*\['jeffreys', 'js', 'kl', 'logd'\]"):
    divergences.get('hellinger')


def test_f_divergence_of_equal_distributions_is_zero():
  for name in NAMES:
    assert float(divergences.f_divergence(divergences.get(name), jnp.ones(10))) == pytest.approx(0, abs=1e-6)


@pytest.mark.parametrize('name', NAMES)
def test_tilt_is_an_antiderivative_of_the_scale(name):
  # F' = s, beyond Jeffreys' clip at d = log 99 ≈ 4.6 too; F is what a Metropolis step needs.
  div = divergences.get(name)
  d = jnp.linspace(-6.0, 9.0, 61)
  np.testing.assert_allclose(jax.vmap(jax.grad(div.tilt))(d), div.scale(d), rtol=1e-5)
  # and by hand: d, log(1 + e^d), −log(1 + e^{−d}), d + e^d below the clip.
  hand = {'kl': lambda x: x, 'js': lambda x: np.log1p(np.exp(x)),
          'logd': lambda x: -np.log1p(np.exp(-x)), 'jeffreys': lambda x: x + np.exp(x)}[name]
  low = np.linspace(-6.0, 4.0, 11)
  np.testing.assert_allclose(div.tilt(jnp.asarray(low)), hand(low), rtol=1e-5, atol=1e-6)
  assert divergences.from_f_second(div.f_second).tilt is None  # unknown, not guessed
