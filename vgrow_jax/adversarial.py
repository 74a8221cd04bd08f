"""Alternating adversarial training: the step factory every GAN-type baseline uses.

A baseline is a discriminator (critic) loss and a generator loss on D's raw
outputs (logits ``[B]``, real = first argument), plus optional extras: a
gradient penalty on D and a transform applied to D's parameters after every
D update (WGAN's weight clipping). :func:`make_method` turns those into a
:class:`~vgrow_jax.method.Method` whose state has the same layout as VGrow's
(``step``, ``key``, both nets' params, net state and optimiser state), so the
trainer, checkpoints and resume work unchanged.

**One outer loop** (the trainer's loop counter, ``state.step``) is
``g_steps_per_loop`` rounds, and one round is ``n_critic`` D steps followed by
one G step (Arjovsky et al.'s Algorithm 1 with n_critic = 5; Goodfellow et
al.'s with k = 1). With the published ``g_steps_per_loop = 1`` a loop is one
generator iteration of the papers; larger values only run more rounds per
compiled dispatch (the toy configs use them to cut Python overhead), and
learning-rate schedules count outer loops, as everywhere in vgrow_jax.

Each D step draws a fresh real batch and a fresh fake batch
``G(z), z ~ N(0, I)`` of ``batch_size``; both go through D in one call (the
nets have no batch statistics in D), so a spectrally normalised D does one
power iteration per D step. The G step draws a fresh z, runs D in
evaluation mode (power-iteration vectors read, not updated) and
differentiates through it. G runs in training mode in both steps (as
PyTorch's ``G.train()``), so its batch statistics, if any, follow the
batches. Every key is ``fold_in(state.key, state.step)`` split per round and
per step, so resume is exact.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, ClassVar, Dict, NamedTuple, Optional, Tuple

import flax
import jax
import jax.numpy as jnp
import optax

from vgrow_jax import config as config_lib
from vgrow_jax import data as data_lib
from vgrow_jax import method as method_lib
from vgrow_jax import models
from vgrow_jax import optim
from vgrow_jax import sharding

Array = jax.Array

# DCGAN's optimiser (Radford et al. 2016), also the GAN and f-GAN setting.
DCGAN_ADAM = config_lib.OptimizerConfig(name='adam', learning_rate=2e-4, b1=0.5, b2=0.999)


@dataclasses.dataclass(frozen=True)
class AdversarialHParams(config_lib.MethodHParams):
  """Settings every alternating adversarial method has.

  Each method subclasses this with its published defaults (and its own
  fields), and names itself in ``method_name`` so that bad values are
  reported as ``methods.<name>.<field>``.

  Attributes:
    batch_size: real and fake examples per D step; fake examples per G step.
    n_critic: D steps before each G step.
    g_steps_per_loop: (n_critic D steps + 1 G step) rounds per outer loop.
    g_optimizer, d_optimizer: the method's optimisers.
  """

  method_name: ClassVar[str] = 'adversarial'

  batch_size: int = 64
  n_critic: int = 1
  g_steps_per_loop: int = 1
  g_optimizer: config_lib.OptimizerConfig = DCGAN_ADAM
  d_optimizer: config_lib.OptimizerConfig = DCGAN_ADAM

  def __post_init__(self):
    for f in ('batch_size', 'n_critic', 'g_steps_per_loop'):
      self.check(getattr(self, f) >= 1, f, 'must be >= 1')



@flax.struct.dataclass
class AdversarialState:
  """Everything an adversarial run carries between outer loops (a pytree)."""

  step: Array  # [] int32, outer loops done
  key: Array  # [2] uint32, PRNGKey(seed): loop keys are fold_in(key, step)
  g_params: Any
  g_state: Any
  g_opt_state: Any
  d_params: Any
  d_state: Any  # spectral-norm power-iteration vectors live here
  d_opt_state: Any


class Losses(NamedTuple):
  """The two players' objectives, both minimised.

  Attributes:
    d_loss: ``(logit_real [B], logit_fake [B]) -> []``, D's loss.
    g_loss: ``logit_fake [B] -> []``, G's loss.
  """

  d_loss: Callable[[Array, Array], Array]
  g_loss: Callable[[Array], Array]


def interpolate(real: Array, fake: Array, key: Array) -> Array:
  r"""Random points on the segments between real and fake examples (WGAN-GP).

  .. math:: \hat x_i = t_i y_i + (1 - t_i) \tilde x_i, \quad t_i \sim U[0, 1]

  one ``t`` per example.

  Args:
    real: ``[B, ...]``.
    fake: ``[B, ...]``.
    key: PRNG key.

  Returns:
    ``[B, ...]``.
  """
  t = jax.random.uniform(key, (real.shape[0],) + (1,) * (real.ndim - 1), real.dtype)
  return t * real + (1 - t) * fake


def gradient_penalty(logit_fn: Callable[[Array], Array], x: Array,
                     center: float = 1.0) -> Array:
  r"""Gradient penalty of a critic at points ``x``, pulling ``‖∇f‖`` toward ``center``.

  .. math:: \mathrm{GP} = \frac{1}{B} \sum_i (\lVert \nabla_x f(x_i) \rVert_2 - c)^2

  ``c = 1`` is WGAN-GP's two-sided penalty (Gulrajani et al. 2017). ``c = 0`` is
  the zero-centred penalty (Mescheder et al. 2018; Thanh-Tung et al. 2019),
  the one that fits a logistic D estimating a log density ratio: at
  p_model = p_data the ideal logit is constant, and only ``c = 0`` leaves
  that optimum where it is. The per-example gradients come from one backward
  pass of ``sum_i f(x_i)`` (valid because ``f`` treats examples
  independently). The weight λ is applied by the caller. For a linear critic
  ``f(x) = wᵀx`` this is exactly ``(‖w‖ − c)²``.

  Args:
    logit_fn: ``[B, ...] -> [B]``.
    x: ``[B, ...]`` points (e.g. :func:`interpolate`).
    center: c ≥ 0, a Python float (c = 0 takes its own, square-root-free branch).

  Returns:
    ``[]`` the mean squared deviation of the gradient norm from ``center``.
  """
  grads = jax.grad(lambda y: jnp.sum(logit_fn(y)))(x)  # [B, ...]
  sq = jnp.sum(jnp.square(grads.reshape(x.shape[0], -1)), axis=1)  # [B]
  if center == 0:  # ‖∇f‖², smooth without the square root
    return jnp.mean(sq)
  # The tiny constant keeps the gradient of the norm finite where ∇f = 0.
  return jnp.mean(jnp.square(jnp.sqrt(sq + 1e-12) - center))


def interpolated_gradient_penalty(logit_fn: Callable[[Array], Array], real: Array,
                                  fake: Array, key: Array, center: float = 1.0) -> Array:
  """:func:`gradient_penalty` at :func:`interpolate` points, without λ (c = 1: WGAN-GP's term)."""
  return gradient_penalty(logit_fn, interpolate(real, fake, key), center)


def _apply_updates(tx, grads, opt_state, params):
  updates, opt_state = tx.update(grads, opt_state, params)
  return optax.apply_updates(params, updates), opt_state


def make_method(name: str, cfg: config_lib.Config, dataset: data_lib.Dataset,
                hp: AdversarialHParams, losses: Losses, *,
                gradient_penalty_weight: float = 0.0,
                d_param_transform: Optional[Callable[[Any], Any]] = None,
                model_cfg: Optional[config_lib.ModelConfig] = None) -> method_lib.Method:
  """An alternating adversarial :class:`~vgrow_jax.method.Method`.

  Args:
    name: the method's registry name.
    cfg: the run's config (``model``, ``training.seed``).
    dataset: the training distribution.
    hp: batch size, n_critic, rounds per loop and the two optimisers.
    losses: D's and G's losses on logits.
    gradient_penalty_weight: λ > 0 adds ``λ·GP`` at points drawn by
      :func:`interpolate` to D's loss (WGAN-GP).
    d_param_transform: applied to D's parameters at init and after every D
      update (e.g. weight clipping), so D is never evaluated outside its
      constraint set.
    model_cfg: overrides ``cfg.model`` (e.g. SNGAN forces spectral norm).

  Returns:
    A Method whose ``step`` is one outer loop (see the module docstring).
  """
  g_net, d_net = models.build(model_cfg or cfg.model, dataset.shape)
  g_tx, d_tx = optim.make(hp.g_optimizer), optim.make(hp.d_optimizer)
  transform = d_param_transform or (lambda p: p)
  nz = cfg.model.latent_dim
  batch = hp.batch_size

  def init(key: Array) -> AdversarialState:
    kg, kd = jax.random.split(key)
    g_params, g_state = g_net.init(kg, jnp.zeros((2, nz)))
    d_params, d_state = d_net.init(kd, jnp.zeros((2,) + tuple(dataset.shape)))
    d_params = transform(d_params)
    return AdversarialState(
        step=jnp.zeros((), jnp.int32), key=jax.random.PRNGKey(cfg.training.seed),
        g_params=g_params, g_state=g_state, g_opt_state=g_tx.init(g_params),
        d_params=d_params, d_state=d_state, d_opt_state=d_tx.init(d_params))

  def generate(state: AdversarialState, z: Array) -> Array:
    return g_net.eval_apply(state.g_params, state.g_state, z)

  def d_step(data_arrays, s: AdversarialState, key):
    k_real, k_z, k_gp = jax.random.split(key, 3)
    # Batches are split over the 'data' mesh axis (a no-op on one device).
    real = sharding.shard_batch(dataset.sample(data_arrays, k_real, batch))  # [B, ...]
    z = sharding.shard_batch(jax.random.normal(k_z, (batch, nz)))  # [B, nz]
    fake, g_state = g_net.train_apply(s.g_params, s.g_state, z)  # [B, ...]
    fake = jax.lax.stop_gradient(fake)

    def loss_fn(p):
      logits, d_state = d_net.train_apply(p, s.d_state, jnp.concatenate([real, fake]))
      loss = losses.d_loss(logits[:batch], logits[batch:])
      aux = {'logit_real': jnp.mean(logits[:batch]), 'logit_fake': jnp.mean(logits[batch:])}
      if gradient_penalty_weight > 0:
        gp = interpolated_gradient_penalty(lambda x: d_net.eval_apply(p, d_state, x),
                                           real, fake, k_gp)
        loss = loss + gradient_penalty_weight * gp
        aux['gradient_penalty'] = gp
      return loss, (d_state, aux)

    (loss, (d_state, aux)), grads = jax.value_and_grad(loss_fn, has_aux=True)(s.d_params)
    d_params, d_opt_state = _apply_updates(d_tx, grads, s.d_opt_state, s.d_params)
    s = s.replace(g_state=g_state, d_params=transform(d_params), d_state=d_state,
                  d_opt_state=d_opt_state)
    return s, {'d_loss': loss, **aux}

  def g_step(s: AdversarialState, key):
    z = sharding.shard_batch(jax.random.normal(key, (batch, nz)))  # [B, nz]

    def loss_fn(p):
      fake, g_state = g_net.train_apply(p, s.g_state, z)
      return losses.g_loss(d_net.eval_apply(s.d_params, s.d_state, fake)), g_state

    (loss, g_state), grads = jax.value_and_grad(loss_fn, has_aux=True)(s.g_params)
    g_params, g_opt_state = _apply_updates(g_tx, grads, s.g_opt_state, s.g_params)
    return s.replace(g_params=g_params, g_state=g_state, g_opt_state=g_opt_state), \
        {'g_loss': loss}

  def one_round(data_arrays, s, key):
    k_d, k_g = jax.random.split(key)
    s, d_metrics = jax.lax.scan(lambda c, k: d_step(data_arrays, c, k), s,
                                jax.random.split(k_d, hp.n_critic))
    s, g_metrics = g_step(s, k_g)
    return s, {**jax.tree.map(jnp.mean, d_metrics), **g_metrics}

  def step(state: AdversarialState, data_arrays: Any) -> Tuple[AdversarialState,
                                                               Dict[str, Array]]:
    g_lr = optim.learning_rate(hp.g_optimizer, state.step)
    d_lr = optim.learning_rate(hp.d_optimizer, state.step)
    s = state.replace(g_opt_state=optim.with_learning_rate(state.g_opt_state, g_lr),
                      d_opt_state=optim.with_learning_rate(state.d_opt_state, d_lr))
    keys = jax.random.split(jax.random.fold_in(state.key, state.step), hp.g_steps_per_loop)
    s, metrics = jax.lax.scan(lambda c, k: one_round(data_arrays, c, k), s, keys)
    metrics = {**jax.tree.map(jnp.mean, metrics), 'g_lr': g_lr, 'd_lr': d_lr}
    return s.replace(step=state.step + 1), metrics

  return method_lib.Method(
      name=name, init=init, step=step, generate=generate, latent_dim=nz,
      logit=lambda state, x: d_net.eval_apply(state.d_params, state.d_state, x))
