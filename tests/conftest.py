"""Shared test set-up."""

import atexit
import os
import shutil
import tempfile

# One OpenBLAS thread: JAX's CPU LAPACK calls (Cholesky, triangular solves) go
# through scipy's OpenBLAS, whose spinning worker threads slow them 10-100x on
# a loaded 2-core machine (measured on the Stein estimator). Set before import.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

# One XLA compilation cache for the whole run: its xdist workers and the apps
# the tests start as subprocesses inherit it, so a program compiled once (a
# training step, an app's sampler) is not compiled again. Fresh per run, and
# removed by the process that made it; a cache never changes a result.
if 'JAX_COMPILATION_CACHE_DIR' not in os.environ:
  os.environ['JAX_COMPILATION_CACHE_DIR'] = tempfile.mkdtemp(prefix='vgrow_jax_tests_xla_cache_')
  os.environ.setdefault('JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS', '0.5')
  atexit.register(shutil.rmtree, os.environ['JAX_COMPILATION_CACHE_DIR'], ignore_errors=True)

# XLA's backend (LLVM) optimisation level 0 for the suite's programs: nearly all of
# them are tiny nets run for a few steps, where compiling dominates (measured on
# 2 cores: adversarial_test 109 -> 65 s, conv_test 126 -> 88 s; the Inception
# tests, which compute more, 45 -> 59 s). The level changes how fast the code runs,
# not what it computes: results move within float32 rounding, as they do across
# CPUs (the suite passes at both levels). VGROW_JAX_TEST_OPT=default compiles as
# the library does for users; an optimisation level already in XLA_FLAGS is kept.
if (os.environ.get('VGROW_JAX_TEST_OPT', '0') != 'default'
    and 'xla_backend_optimization_level' not in os.environ.get('XLA_FLAGS', '')):
  os.environ['XLA_FLAGS'] = ' '.join(filter(None, [
      os.environ.get('XLA_FLAGS', ''), '--xla_backend_optimization_level=0']))

import jax  # pylint: disable=g-import-not-at-top,wrong-import-position

# Analytic checks compare float32 results with hand formulas.
jax.config.update('jax_default_matmul_precision', 'highest')


import pytest  # pylint: disable=g-import-not-at-top,wrong-import-position


@pytest.fixture
def classic_threefry():
  """JAX's classic threefry for the test's own draws.

  The partitionable threefry (JAX's default, which training needs: see
  ``sharding.make_mesh``) takes 1-3 s of XLA CPU compile for each new shape
  drawn, against 0.2 s for the classic one (measured, jax 0.10). Modules that
  draw many input shapes and never train use this: same distribution, another
  stream.
  """
  with jax.threefry_partitionable(False):
    yield
