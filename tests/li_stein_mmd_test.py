"""The Li & Turner comparison's setting and metrics (benchmarks/li_stein_mmd.py)."""

from absl import app
from absl import flags
import jax.numpy as jnp
import numpy as np
import pytest

from benchmarks import li_stein_mmd as bench


@pytest.fixture(autouse=True)
def _parsed_flags():
  if not flags.FLAGS.is_parsed():
    flags.FLAGS.mark_as_parsed()


def test_both_methods_get_li_and_turners_setting():
  for name in ('stein_kl', 'mmd'):
    cfg = bench.make_config(name, 3)
    hp = cfg.hparams
    assert (cfg.method, cfg.model.arch, cfg.model.latent_dim, cfg.training.seed) == (
        name, 'dcgan', 50, 3)
    assert (hp.batch_size, hp.g_optimizer.name, hp.g_optimizer.learning_rate) == (
        100, 'adam', 5e-5)
  mmd = bench.make_config('mmd', 0).hparams
  assert (mmd.kernel, mmd.median_factors, mmd.estimator, mmd.sqrt_loss) == (
      'imq', (0.5, 1.0, 2.0, 4.0), 'v', False)
  assert bench.make_config('stein_kl', 0).hparams.bandwidth_factors == (0.5, 1.0, 2.0, 4.0)
  assert bench.make_config('stein_kl/eta=0.01', 0).hparams.eta == 0.01
  assert bench.make_config('stein_kl/bandwidth_factors=0.1:2', 0).hparams.bandwidth_factors == (
      0.1, 2.0)
  with pytest.raises(app.UsageError, match='no field'):
    bench.make_config('stein_kl/etta=1', 0)
  with pytest.raises(app.UsageError, match='stein_kl or mmd'):
    bench.make_config('gan', 0)


def test_nearest_neighbour_labels_use_l1_and_the_entropy_is_in_nats():
  # (2.6, 0) is nearer (0, 0) in ℓ1 (2.6 < 3.6) but nearer (1, 2) in ℓ2 (2.6 > √6.56).
  train = jnp.array([[0.0, 0.0], [1.0, 2.0]])
  labels = bench.nn_labels(train, jnp.array([7, 4]), chunk=2)(
      jnp.array([[2.6, 0.0], [1.0, 1.9], [-1.0, 0.0]]))
  np.testing.assert_array_equal(labels, [7, 4, 7])
  np.testing.assert_allclose(bench.label_entropy(np.arange(10).repeat(3)), np.log(10))
  assert bench.label_entropy(np.zeros(5, int)) == 0.0
  np.testing.assert_allclose(bench.label_entropy(np.array([0, 1])), np.log(2))
