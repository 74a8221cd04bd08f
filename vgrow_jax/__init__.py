"""vgrow_jax: deep generative learning by Variational Gradient Flow, in JAX.

The flow itself (:mod:`vgrow_jax.flow`) and the divergence table
(:mod:`vgrow_jax.divergences`) are pure functions usable on their own; the
rest is a trainer around them.
"""

from vgrow_jax import config
from vgrow_jax import data
from vgrow_jax import divergences
from vgrow_jax import flow
from vgrow_jax import image_data
from vgrow_jax import image_metrics
from vgrow_jax import method
from vgrow_jax import metrics
from vgrow_jax import models
from vgrow_jax.config import Config
from vgrow_jax.flow import density_ratio
from vgrow_jax.flow import field_and_logit
from vgrow_jax.flow import flow as flow_particles
from vgrow_jax.flow import flow_step
from vgrow_jax.flow import vector_field

__version__ = '0.1.0'
