"""Optimisers whose learning rate is a function of the outer-loop index.

Schedules in VGrow count outer loops, not optimiser steps (the number of
generator steps per loop changes with L), so the rate is injected into the
optax state at the start of every outer loop rather than counted by optax.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import optax

from vgrow_jax import config as config_lib


def make(cfg: config_lib.OptimizerConfig) -> optax.GradientTransformation:
  """An optax optimiser with an injectable ``learning_rate`` hyperparameter.

  RMSprop follows PyTorch's ``torch.optim.RMSprop`` (the official code):
  v ← αv + (1 − α)g², Δ = −lr·g/(√v + ε), with α = ``cfg.decay``.
  """
  if cfg.name == 'rmsprop':
    return optax.inject_hyperparams(optax.rmsprop)(
        learning_rate=cfg.learning_rate, decay=cfg.decay, eps=cfg.eps,
        eps_in_sqrt=False)
  if cfg.name == 'adam':
    return optax.inject_hyperparams(optax.adam)(
        learning_rate=cfg.learning_rate, b1=cfg.b1, b2=cfg.b2, eps=cfg.eps)
  if cfg.name == 'sgd':
    return optax.inject_hyperparams(optax.sgd)(learning_rate=cfg.learning_rate)
  raise ValueError(f'unknown optimizer {cfg.name!r}; expected adam, rmsprop or sgd')


def learning_rate(cfg: config_lib.OptimizerConfig, outer_loop: jax.Array) -> jax.Array:
  """lr₀ · factor^(number of boundaries ≤ outer_loop)."""
  boundaries = jnp.asarray(cfg.lr_decay_boundaries or (jnp.iinfo(jnp.int32).max,),
                           jnp.int32)
  n = jnp.sum(outer_loop >= boundaries)
  return cfg.learning_rate * cfg.lr_decay_factor ** n.astype(jnp.float32)


def with_learning_rate(opt_state: Any, lr: jax.Array) -> Any:
  """The injected-hyperparameter state with its learning rate replaced."""
  hp = dict(opt_state.hyperparams)
  hp['learning_rate'] = jnp.asarray(lr, hp['learning_rate'].dtype)
  return opt_state._replace(hyperparams=hp)
