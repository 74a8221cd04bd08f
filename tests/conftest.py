"""Shared test set-up."""

import jax

# Analytic checks compare float32 results with hand formulas.
jax.config.update('jax_default_matmul_precision', 'highest')
