"""Methods that train a generator alone on a loss between a generated and a real batch.

GMMN (:mod:`vgrow_jax.mmd`) and KL descent by the Stein gradient estimator
(:mod:`vgrow_jax.stein_kl`) share this shape: no discriminator, and each
optimiser step draws z ~ N(0, I) ``[B, nz]`` and a real batch ``[B, ...]``,
computes ``loss(G(z), real)`` and takes one step on G's parameters. One outer
loop is ``steps_per_loop`` such steps in a ``lax.scan``; the learning rate
follows the optimiser's schedule in outer loops (:mod:`vgrow_jax.optim`).
Every draw comes from ``fold_in(state.key, state.step)``, so resume is exact.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Tuple

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
# (fake [B, ...], real [B, ...]) -> (scalar loss to minimise, scalar metrics);
# the loss is logged as g_loss unless the metrics give their own g_loss.
LossFn = Callable[[Array, Array], Tuple[Array, Dict[str, Array]]]


@flax.struct.dataclass
class GeneratorState:
  """A generator-only method's state between outer loops (a pytree)."""

  step: Array  # [] int32, outer loops done
  key: Array  # [2] uint32, PRNGKey(seed): loop keys are fold_in(key, step)
  g_params: Any
  g_state: Any
  g_opt_state: Any


def make(name: str, cfg: config_lib.Config, dataset: data_lib.Dataset, loss_fn: LossFn,
         *, batch_size: int, steps_per_loop: int,
         optimizer: config_lib.OptimizerConfig) -> method_lib.Method:
  """A :class:`~vgrow_jax.method.Method` minimising ``loss_fn`` over G.

  Args:
    name: the method's registry name.
    cfg: the run's config (``model`` builds G; ``training.seed``).
    dataset: the training distribution.
    loss_fn: ``(fake, real) -> (loss, metrics)``; differentiated through fake.
    batch_size: B, generated and real examples per step.
    steps_per_loop: optimiser steps per outer loop.
    optimizer: G's optimiser.
  """
  g_net, _ = models.build(cfg.model, dataset.shape)
  tx = optim.make(optimizer)
  nz = cfg.model.latent_dim

  def init(key: Array) -> GeneratorState:
    g_params, g_state = g_net.init(key, jnp.zeros((2, nz)))
    return GeneratorState(step=jnp.zeros((), jnp.int32),
                          key=jax.random.PRNGKey(cfg.training.seed),
                          g_params=g_params, g_state=g_state, g_opt_state=tx.init(g_params))

  def generate(state: GeneratorState, z: Array) -> Array:
    return g_net.eval_apply(state.g_params, state.g_state, z)

  def one_step(data_arrays, carry, key):
    g_params, g_state, g_opt_state = carry
    k_z, k_real = jax.random.split(key)
    # Batches are split over the 'data' mesh axis (a no-op on one device).
    z = sharding.shard_batch(jax.random.normal(k_z, (batch_size, nz)))  # [B, nz]
    real = sharding.shard_batch(dataset.sample(data_arrays, k_real, batch_size))  # [B, ...]

    def objective(p):
      fake, new_state = g_net.train_apply(p, g_state, z)
      loss, metrics = loss_fn(fake, real)
      return loss, (new_state, metrics)

    (loss, (g_state, metrics)), grads = jax.value_and_grad(objective, has_aux=True)(g_params)
    updates, g_opt_state = tx.update(grads, g_opt_state, g_params)
    g_params = optax.apply_updates(g_params, updates)
    return (g_params, g_state, g_opt_state), {'g_loss': loss, **metrics}

  def step(state: GeneratorState, data_arrays: Any) -> Tuple[GeneratorState, Dict[str, Array]]:
    lr = optim.learning_rate(optimizer, state.step)
    carry = (state.g_params, state.g_state, optim.with_learning_rate(state.g_opt_state, lr))
    keys = jax.random.split(jax.random.fold_in(state.key, state.step), steps_per_loop)
    (g_params, g_state, g_opt_state), metrics = jax.lax.scan(
        lambda c, k: one_step(data_arrays, c, k), carry, keys)
    new_state = state.replace(step=state.step + 1, g_params=g_params, g_state=g_state,
                              g_opt_state=g_opt_state)
    return new_state, {**jax.tree.map(jnp.mean, metrics), 'g_lr': lr}

  return method_lib.Method(name=name, init=init, step=step, generate=generate, latent_dim=nz)
