"""Shared test set-up."""

import os

# One OpenBLAS thread: JAX's CPU LAPACK calls (Cholesky, triangular solves) go
# through scipy's OpenBLAS, whose spinning worker threads slow them 10-100x on
# a loaded 2-core machine (measured on the Stein estimator). Set before import.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

# Analytic checks compare float32 results with hand formulas.
jax.config.update('jax_default_matmul_precision', 'highest')
