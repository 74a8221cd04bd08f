"""The variational auto-encoder (Kingma & Welling, 2014), docs/math.md §2.

Encoder q(z|x) = N(μ(x), diag σ²(x)) (the net outputs μ and log σ²),
prior N(0, I), decoder p(x|z). Each step maximises the ELBO on a real batch,

.. math::

  \\mathrm{ELBO}(x) = \\mathbb{E}_{q(z|x)} \\log p(x|z) - \\mathrm{KL}(q(z|x) \\| N(0, I)),
  \\quad \\mathrm{KL} = \\tfrac12 \\sum_j (\\sigma_j^2 + \\mu_j^2 - 1 - \\log \\sigma_j^2),

with one reparameterised sample z = μ + σ ⊙ ε, ε ~ N(0, I), per example.
Decoders (``HParams.decoder``):

* 'gaussian': p(x|z) = N(G(z), diag s²) with s **learned** (one σ per data
  dimension, a free parameter initialised at ``decoder_std``), or fixed at
  ``decoder_std`` when ``learn_decoder_std`` is False;
* 'bernoulli': p(x|z) = Bernoulli(sigmoid(G(z))) on the data rescaled from its
  value range to [0, 1] (binarised images); G must output unbounded logits
  (an MLP without ``output_tanh``).

Sampling drops the encoder: ``generate(state, z)`` is the decoder mean, G(z)
(Gaussian) or the value range mapped from sigmoid(G(z)) (Bernoulli).

Published setting (Kingma & Welling): batch 100, one sample of z per
example, MLP encoder/decoder, Adagrad. Adagrad is not among this library's
optimisers; the default is Adam(1e-3), as in common reference VAEs.

References:
  Kingma, Welling. "Auto-Encoding Variational Bayes." ICLR 2014.
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any, ClassVar, Dict, Tuple

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
DECODERS = ('gaussian', 'bernoulli')


@dataclasses.dataclass(frozen=True)
class HParams(config_lib.MethodHParams):
  """VAE settings.

  Attributes:
    decoder: 'gaussian' or 'bernoulli'.
    learn_decoder_std: learn the Gaussian decoder's σ (per data dimension).
    decoder_std: the Gaussian decoder's σ (its initial value if learned).
    batch_size: real examples per step.
    steps_per_loop: optimiser steps per outer loop.
    g_optimizer: one optimiser for encoder and decoder (and σ) together.
  """

  method_name: ClassVar[str] = 'vae'

  decoder: str = 'gaussian'
  learn_decoder_std: bool = True
  decoder_std: float = 0.1
  batch_size: int = 100
  steps_per_loop: int = 1
  g_optimizer: config_lib.OptimizerConfig = config_lib.OptimizerConfig(
      name='adam', learning_rate=1e-3)

  def __post_init__(self):
    self.check_choice('decoder', DECODERS, sort=False)
    self.check(self.decoder_std > 0, 'decoder_std', 'must be > 0')
    self.check(self.batch_size >= 1, 'batch_size', 'must be >= 1')
    self.check(self.steps_per_loop >= 1, 'steps_per_loop', 'must be >= 1')


@flax.struct.dataclass
class VAEState:
  """A VAE run's state between outer loops (a pytree)."""

  step: Array  # [] int32, outer loops done
  key: Array  # [2] uint32, PRNGKey(seed): loop keys are fold_in(key, step)
  params: Any  # {'encoder', 'decoder'[, 'log_std' [*shape] if σ is learned]}
  net_state: Any  # {'encoder', 'decoder'}: batch statistics etc.
  opt_state: Any


def gaussian_kl(mean: Array, log_var: Array) -> Array:
  """KL(N(μ, diag σ²) ‖ N(0, I)) ``[B]`` = ½ Σ_j (σ² + μ² − 1 − log σ²) over the last axis."""
  return 0.5 * jnp.sum(jnp.exp(log_var) + jnp.square(mean) - 1.0 - log_var, axis=-1)


def reparameterise(mean: Array, log_var: Array, eps: Array) -> Array:
  """z = μ + σ ⊙ ε with σ = exp(½ log σ²)."""
  return mean + jnp.exp(0.5 * log_var) * eps


def gaussian_log_likelihood(x: Array, mean: Array, log_std: Array) -> Array:
  """log N(x; mean, diag exp(2·log_std)) ``[B]``, summed over all but the first axis."""
  z = (x - mean) * jnp.exp(-log_std)
  ll = -0.5 * jnp.square(z) - log_std - 0.5 * math.log(2 * math.pi)
  return jnp.sum(ll.reshape(x.shape[0], -1), axis=1)


def bernoulli_log_likelihood(x: Array, logits: Array) -> Array:
  """log Bernoulli(x; sigmoid(logits)) ``[B]`` = Σ x·l − softplus(l), x in [0, 1]."""
  ll = x * logits - jax.nn.softplus(logits)
  return jnp.sum(ll.reshape(x.shape[0], -1), axis=1)


def make(cfg: config_lib.Config, dataset: data_lib.Dataset) -> method_lib.Method:
  """The VAE :class:`~vgrow_jax.method.Method` (settings: ``cfg.methods['vae']``).

  Raises:
    ValueError: a Bernoulli decoder on a generator with bounded output.
  """
  hp = cfg.methods.get('vae', HParams())
  mc = cfg.model
  if hp.decoder == 'bernoulli' and (mc.arch == 'resnet_sn' or mc.output_tanh):
    raise ValueError('methods.vae.decoder=bernoulli needs unbounded logits: use '
                     'model.arch=mlp with model.output_tanh=False')
  dec_net, _ = models.build(mc, dataset.shape)
  enc_net = models.build_encoder(mc, dataset.shape)
  tx = optim.make(hp.g_optimizer)
  nz = mc.latent_dim
  lo, hi = dataset.value_range
  scale = (hi - lo) or 1.0

  def init(key: Array) -> VAEState:
    ke, kd = jax.random.split(key)
    e_params, e_state = enc_net.init(ke, jnp.zeros((2,) + tuple(dataset.shape)))
    d_params, d_state = dec_net.init(kd, jnp.zeros((2, nz)))
    params = {'encoder': e_params, 'decoder': d_params}
    if hp.decoder == 'gaussian' and hp.learn_decoder_std:
      params['log_std'] = jnp.full(tuple(dataset.shape), math.log(hp.decoder_std), jnp.float32)
    return VAEState(step=jnp.zeros((), jnp.int32), key=jax.random.PRNGKey(cfg.training.seed),
                    params=params, net_state={'encoder': e_state, 'decoder': d_state},
                    opt_state=tx.init(params))

  def generate(state: VAEState, z: Array) -> Array:
    out = dec_net.eval_apply(state.params['decoder'], state.net_state['decoder'], z)
    if hp.decoder == 'bernoulli':
      return lo + scale * jax.nn.sigmoid(out)
    return out

  def log_likelihood(params, x, out):
    if hp.decoder == 'bernoulli':
      return bernoulli_log_likelihood(jnp.clip((x - lo) / scale, 0.0, 1.0), out)
    log_std = params['log_std'] if 'log_std' in params else jnp.float32(math.log(hp.decoder_std))
    return gaussian_log_likelihood(x, out, log_std)

  def negative_elbo(params, net_state, x, eps):
    stats, e_state = enc_net.train_apply(params['encoder'], net_state['encoder'], x)  # [B, 2nz]
    mean, log_var = stats[:, :nz], stats[:, nz:]
    out, d_state = dec_net.train_apply(params['decoder'], net_state['decoder'],
                                       reparameterise(mean, log_var, eps))  # [B, ...]
    recon = -log_likelihood(params, x, out)  # [B]
    kl = gaussian_kl(mean, log_var)  # [B]
    metrics = {'kl': jnp.mean(kl), 'reconstruction': jnp.mean(recon)}
    return jnp.mean(recon + kl), ({'encoder': e_state, 'decoder': d_state}, metrics)

  def one_step(data_arrays, carry, key):
    params, net_state, opt_state = carry
    k_x, k_eps = jax.random.split(key)
    # Batches are split over the 'data' mesh axis (a no-op on one device).
    x = sharding.shard_batch(dataset.sample(data_arrays, k_x, hp.batch_size))  # [B, ...]
    eps = sharding.shard_batch(jax.random.normal(k_eps, (hp.batch_size, nz)))  # [B, nz]
    (loss, (net_state, metrics)), grads = jax.value_and_grad(negative_elbo, has_aux=True)(
        params, net_state, x, eps)
    updates, opt_state = tx.update(grads, opt_state, params)
    params = optax.apply_updates(params, updates)
    if 'log_std' in params:
      metrics['decoder_std'] = jnp.mean(jnp.exp(params['log_std']))
    return (params, net_state, opt_state), {'g_loss': loss, **metrics}

  def step(state: VAEState, data_arrays: Any) -> Tuple[VAEState, Dict[str, Array]]:
    lr = optim.learning_rate(hp.g_optimizer, state.step)
    carry = (state.params, state.net_state, optim.with_learning_rate(state.opt_state, lr))
    keys = jax.random.split(jax.random.fold_in(state.key, state.step), hp.steps_per_loop)
    (params, net_state, opt_state), metrics = jax.lax.scan(
        lambda c, k: one_step(data_arrays, c, k), carry, keys)
    new_state = state.replace(step=state.step + 1, params=params, net_state=net_state,
                              opt_state=opt_state)
    return new_state, {**jax.tree.map(jnp.mean, metrics), 'g_lr': lr}

  return method_lib.Method(name='vae', init=init, step=step, generate=generate, latent_dim=nz)
