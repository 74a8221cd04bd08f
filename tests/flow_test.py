"""The flow (docs/math.md §5 "Field" and "Flow") against exact Gaussian cases."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from vgrow_jax import divergences
from vgrow_jax import flow

NAMES = ['kl', 'js', 'logd', 'jeffreys']
SIGMA = 0.8
MU_P = jnp.array([1.0, -0.5])  # data
MU_Q = jnp.array([-0.5, 0.3])  # model


def exact_logit(mu_p, mu_q, sigma):
  """d(x) = log p(x)/q(x) for p = N(mu_p, σ²I), q = N(mu_q, σ²I): linear in x."""
  def logit_fn(x):
    return (jnp.sum((x - mu_q) ** 2, -1) - jnp.sum((x - mu_p) ** 2, -1)) / (2 * sigma**2)
  return logit_fn


HAND_S = {
    'kl': lambda d: np.ones_like(d),
    'js': lambda d: 1 / (1 + np.exp(-d)),
    'logd': lambda d: 1 / (1 + np.exp(d)),
    'jeffreys': lambda d: np.minimum(1 + np.exp(d), 100.0),
}


@pytest.mark.parametrize('name', NAMES)
def test_field_equals_hand_formula_between_two_gaussians(name):
  x = jax.random.normal(jax.random.PRNGKey(0), (64, 2)) * SIGMA + MU_Q
  h = flow.vector_field(exact_logit(MU_P, MU_Q, SIGMA), x, name)
  xn = np.asarray(x, np.float64)
  mp, mq = np.asarray(MU_P, np.float64), np.asarray(MU_Q, np.float64)
  d = (((xn - mq) ** 2).sum(-1) - ((xn - mp) ** 2).sum(-1)) / (2 * SIGMA**2)
  grad_d = (mp - mq) / SIGMA**2  # constant: the logit is linear
  expected = HAND_S[name](d)[:, None] * grad_d[None, :]
  np.testing.assert_allclose(h, expected, rtol=2e-4, atol=1e-5)


@pytest.mark.parametrize('name', NAMES)
def test_generic_f_second_field_agrees_with_closed_form(name):
  x = jax.random.normal(jax.random.PRNGKey(1), (32, 2)) * SIGMA + MU_Q
  logit_fn = exact_logit(MU_P, MU_Q, SIGMA)
  closed = flow.vector_field(logit_fn, x, name)
  generic = flow.vector_field(logit_fn, x, divergences.from_f_second(divergences.get(name).f_second))
  if name == 'jeffreys':  # the closed form clips s at 100; these logits stay below
    assert float(jnp.max(logit_fn(x))) < np.log(99)
  np.testing.assert_allclose(closed, generic, rtol=1e-4, atol=1e-6)


def test_density_ratio_is_exp_minus_logit():
  d = jnp.array([-2.0, 0.0, 3.0])
  np.testing.assert_allclose(flow.density_ratio(d), np.exp(-np.array([-2.0, 0.0, 3.0])), rtol=1e-6)


def test_kl_flow_moves_q_to_p_and_kl_decreases_every_step():
  # Equal covariances: the KL field is the constant (μp − μq)/σ², so the flow
  # translates q; with the logit recomputed for the current q, KL(q‖p) =
  # |μq − μp|²/(2σ²) must fall at every step and reach ~0.
  eta = 0.05
  x = jax.random.normal(jax.random.PRNGKey(2), (500, 2)) * SIGMA + MU_Q
  mu_q = MU_Q
  kls = [float(jnp.sum((mu_q - MU_P) ** 2) / (2 * SIGMA**2))]
  for _ in range(40):
    x_new = flow.flow_step(exact_logit(MU_P, mu_q, SIGMA), x, 'kl', step_size=eta)
    mu_q = mu_q + jnp.mean(x_new - x, axis=0)
    x = x_new
    kls.append(float(jnp.sum((mu_q - MU_P) ** 2) / (2 * SIGMA**2)))
  assert all(b < a for a, b in zip(kls, kls[1:])), kls
  # The mean contracts by (1 − η/σ²) per step: KL_t = KL_0 (1 − η/σ²)^{2t}.
  expected = kls[0] * (1 - eta / SIGMA**2) ** (2 * np.arange(41))
  np.testing.assert_allclose(kls, expected, rtol=1e-3)
  assert kls[-1] < 2e-3 * kls[0]


# f(u) of docs/math.md §1 in float64 (the tails of the quadrature overflow float32).
HAND_F = {
    'kl': lambda u: u * np.log(u),
    'js': lambda u: u * np.log(u) - (u + 1) * np.log((u + 1) / 2),
    'logd': lambda u: (u + 1) * np.log(u + 1) - 2 * np.log(2),
    'jeffreys': lambda u: (u - 1) * np.log(u),
}


@pytest.mark.parametrize('name', NAMES)
@pytest.mark.parametrize('eta', [0.02, 0.1])
def test_one_flow_step_decreases_f_divergence(name, eta):
  # 1-D, exact logit of (p, q). The pushforward density of the monotone map
  # T(x) = x + η h(x) is q(x)/T'(x) at T(x); D_f(q‖p) = E_q[f(r)/r] by quadrature.
  mp, mq, s = 1.0, -1.0, 1.0
  grid = np.linspace(mq - 8 * s, mq + 8 * s, 20001)
  w = stats.norm.pdf(grid, mq, s)
  w = w / w.sum()
  logit_fn = lambda x: (((x - mq) ** 2 - (x - mp) ** 2) / (2 * s**2))[:, 0]

  def d_f(x, log_q):
    r = np.exp(log_q - stats.norm.logpdf(x, mp, s))
    return float(np.sum(w * HAND_F[name](r) / r))

  x = jnp.asarray(grid[:, None], jnp.float32)
  t = lambda y: flow.flow_step(logit_fn, y[None, None], name, step_size=eta)[0, 0]
  y = np.asarray(jax.vmap(t)(x[:, 0]), np.float64)
  dt = np.asarray(jax.vmap(jax.grad(t))(x[:, 0]), np.float64)
  assert (dt > 0).all()  # T is monotone: the change of variables is exact
  before = d_f(grid, stats.norm.logpdf(grid, mq, s))
  after = d_f(y, stats.norm.logpdf(grid, mq, s) - np.log(dt))
  assert after < before - 1e-3 * eta, (before, after)


def test_flow_clip_keeps_particles_in_range():
  logit_fn = lambda x: 100.0 * x[:, 0]
  x = jnp.zeros((8, 2))
  out = flow.flow_particles(logit_fn, x, 'kl', step_size=1.0, num_steps=3, clip=(-1.0, 1.0))
  np.testing.assert_allclose(out[:, 0], 1.0)
  np.testing.assert_allclose(out[:, 1], 0.0)


def test_flow_trajectory_and_zero_steps():
  logit_fn = lambda x: jnp.sum(x, -1)
  x = jnp.zeros((4, 3))
  traj = flow.flow_particles(logit_fn, x, 'kl', step_size=0.5, num_steps=4, return_trajectory=True)
  assert traj.shape == (5, 4, 3)
  np.testing.assert_allclose(traj[-1], 2.0)  # KL: ∇d = 1, four steps of 0.5
  np.testing.assert_array_equal(flow.flow_particles(logit_fn, x, 'kl', step_size=0.5, num_steps=0), x)


def test_flow_on_image_shaped_particles_and_column_logits():
  w = jax.random.normal(jax.random.PRNGKey(3), (4, 4, 1))
  logit_fn = lambda x: jnp.sum(x * w, axis=(1, 2, 3))[:, None]  # [B, 1] is accepted
  x = jnp.zeros((5, 4, 4, 1))
  h = flow.vector_field(logit_fn, x, 'kl')
  np.testing.assert_allclose(h, jnp.broadcast_to(w, (5, 4, 4, 1)), rtol=1e-6)


def test_bad_logit_shape_is_a_clear_error():
  with pytest.raises(ValueError, match=r'logits of shape \(3,\), got \(3, 2\)'):
    flow.vector_field(lambda x: x, jnp.zeros((3, 2)), 'kl')


def test_flow_under_jit_vmap_and_grad():
  def logit_with(theta):
    return lambda x: x @ theta  # [B, 2] @ [2] -> [B]

  def moved(theta, x):
    return flow.flow_particles(logit_with(theta), x, 'js', step_size=0.1, num_steps=3)

  x = jax.random.normal(jax.random.PRNGKey(4), (6, 2))
  thetas = jax.random.normal(jax.random.PRNGKey(5), (3, 2))
  batched = jax.jit(jax.vmap(moved, in_axes=(0, None)))(thetas, x)
  for i in range(3):
    np.testing.assert_allclose(batched[i], moved(thetas[i], x), rtol=1e-5, atol=1e-6)

  loss = lambda th: jnp.sum(moved(th, x) ** 2)
  g = jax.jit(jax.grad(loss))(thetas[0])
  eps = 1e-3
  fd = [(loss(thetas[0].at[j].add(eps)) - loss(thetas[0].at[j].add(-eps))) / (2 * eps)
        for j in range(2)]
  np.testing.assert_allclose(g, fd, rtol=2e-2)
