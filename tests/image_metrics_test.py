"""Image metrics against closed forms and hand cases (docs/math.md §4, §5)."""

import numpy as np
import pytest
from scipy import linalg

from vgrow_jax import image_metrics as im


def _random_spd(rng, d):
  a = rng.normal(size=(d, d))
  return a @ a.T + 0.1 * np.eye(d)


def test_frechet_distance_matches_closed_forms():
  rng = np.random.default_rng(0)
  # 1-D: (μ₁ − μ₂)² + (σ₁ − σ₂)².
  assert im.frechet_distance([1.0], [[4.0]], [3.0], [[9.0]]) == pytest.approx(4 + 1, abs=1e-12)
  # Commuting (diagonal) covariances: ‖Δμ‖² + Σ (√a − √b)².
  a, b = rng.uniform(0.1, 3, 5), rng.uniform(0.1, 3, 5)
  mu1, mu2 = rng.normal(size=5), rng.normal(size=5)
  expected = np.sum((mu1 - mu2) ** 2) + np.sum((np.sqrt(a) - np.sqrt(b)) ** 2)
  assert im.frechet_distance(mu1, np.diag(a), mu2, np.diag(b)) == pytest.approx(expected, rel=1e-12)
  # 2-D, non-commuting: tr √M = √(tr M + 2 √det M) for M = Σ₁Σ₂ (positive eigenvalues).
  s1, s2 = _random_spd(rng, 2), _random_spd(rng, 2)
  m = s1 @ s2
  tr_sqrt = np.sqrt(np.trace(m) + 2 * np.sqrt(np.linalg.det(m)))
  expected = np.trace(s1) + np.trace(s2) - 2 * tr_sqrt
  assert im.frechet_distance(np.zeros(2), s1, np.zeros(2), s2) == pytest.approx(expected, rel=1e-10)
  # High dimension: agrees with scipy's (non-symmetric) sqrtm form.
  s1, s2 = _random_spd(rng, 40), _random_spd(rng, 40)
  ref = np.trace(s1) + np.trace(s2) - 2 * np.trace(linalg.sqrtm(s1 @ s2).real)
  assert im.frechet_distance(np.zeros(40), s1, np.zeros(40), s2) == pytest.approx(ref, rel=1e-8)
  assert im.frechet_distance(mu1, np.diag(a), mu1, np.diag(a)) == pytest.approx(0, abs=1e-10)


def test_frechet_distance_of_samples_approaches_the_gaussians():
  rng = np.random.default_rng(1)
  s = np.diag([1.0, 4.0, 0.25])
  x = rng.multivariate_normal(np.zeros(3), np.eye(3), 200000)
  y = rng.multivariate_normal(np.ones(3), s, 200000)
  exact = 3 + (0 + 1 + 0.25)  # ‖Δμ‖² = 3; Σ(√1 − √σ²)² = 0 + 1 + 0.25
  assert im.frechet_distance_of_features(x, y) == pytest.approx(exact, abs=0.02)


def test_frechet_distance_with_fewer_samples_than_features_is_the_d_space_formula():
  # N < D (as 1,000 Inception features of dimension 2,048): the N1 x N2 SVD form
  # against the D x D covariances and scipy's sqrtm (both within 1e-8: their rank-deficient
  # D x D matrices carry square roots of round-off); one feature set twice gives 0.
  rng = np.random.default_rng(3)
  x = rng.normal(size=(7, 30)) @ rng.normal(size=(30, 30))
  y = rng.normal(size=(5, 30)) + 0.3
  (m1, s1), (m2, s2) = im.gaussian_stats(x), im.gaussian_stats(y)
  d_space = im.frechet_distance(m1, s1, m2, s2)
  ref = (np.sum((m1 - m2) ** 2) + np.trace(s1) + np.trace(s2)
         - 2 * np.trace(linalg.sqrtm(s1 @ s2).real))
  assert im.frechet_distance_of_features(x, y) == pytest.approx(d_space, rel=1e-8)
  assert im.frechet_distance_of_features(x, y) == pytest.approx(ref, rel=1e-8)
  assert abs(im.frechet_distance_of_features(x, x)) < 1e-9 * d_space
  with pytest.raises(ValueError, match=r'same D, got \(7, 30\) and \(5, 29\)'):
    im.frechet_distance_of_features(x, y[:, :29])


def test_mmd2_is_the_u_statistic_by_hand():
  rng = np.random.default_rng(2)
  x, y = rng.normal(size=(5, 3)), rng.normal(size=(4, 3)) + 0.5
  k = lambda a, b: (a @ b / 3 + 1) ** 3
  xx = sum(k(x[i], x[j]) for i in range(5) for j in range(5) if i != j) / 20
  yy = sum(k(y[i], y[j]) for i in range(4) for j in range(4) if i != j) / 12
  xy = sum(k(x[i], y[j]) for i in range(5) for j in range(4)) / 20
  assert im.mmd2_unbiased(x, y) == pytest.approx(xx + yy - 2 * xy, rel=1e-12)


def test_kid_is_zero_in_expectation_for_one_distribution_and_positive_otherwise():
  rng = np.random.default_rng(3)
  # Unbiased: over independent small samples of one distribution the mean
  # MMD² is 0 within its standard error (the biased V-statistic is not).
  u, v = [], []
  for _ in range(400):
    x, y = rng.normal(size=(10, 4)), rng.normal(size=(10, 4))
    u.append(im.mmd2_unbiased(x, y))
    kxx, kyy = im.polynomial_kernel(x, x), im.polynomial_kernel(y, y)
    v.append(kxx.mean() + kyy.mean() - 2 * im.polynomial_kernel(x, y).mean())
  se = np.std(u) / np.sqrt(len(u))
  assert abs(np.mean(u)) < 3 * se
  assert np.mean(v) > 10 * np.std(v) / np.sqrt(len(v))  # the test has the power to see bias
  x, y = rng.normal(size=(600, 8)), rng.normal(size=(600, 8))
  mean, std = im.kernel_inception_distance(x, y, num_subsets=30, subset_size=300)
  assert abs(mean) < 2 * std
  mean, std = im.kernel_inception_distance(x, y + 0.3, num_subsets=30, subset_size=300)
  assert mean > 5 * std > 0


def test_class_histogram_distance_on_hand_cases():
  eye = np.eye(10)
  rng = np.random.default_rng(0)
  labels = rng.integers(0, 10, 300)
  assert im.class_histogram_distance(eye[labels], eye[labels]) == 0.0
  assert im.class_histogram_distance(eye[rng.permutation(labels)], eye[labels]) == 0.0
  assert im.class_histogram_distance(eye[[0, 1] * 5], eye[[2, 3] * 5]) == 1.0  # disjoint
  # generated 60% / 40% over classes 0, 1; reference 50% / 50%: TV 0.1.
  gen = eye[[0] * 6 + [1] * 4] * 0.8 + 0.02
  assert im.class_histogram_distance(gen, eye[[0, 1] * 5]) == pytest.approx(0.1)
  with pytest.raises(ValueError, match=r'one K, got \(10, 10\) and \(3, 4\)'):
    im.class_histogram_distance(eye, np.ones((3, 4)))


def test_logit_gap_is_zero_for_a_fair_d_and_measures_a_memorising_one():
  rng = np.random.default_rng(0)
  seen, unseen = rng.normal(size=(200, 3, 3)), rng.normal(size=(150, 3, 3))
  # A D that memorised its training images: d(x) = -min_j |x - seen_j|², 0 on them.
  flat = seen.reshape(len(seen), -1)
  memorised = lambda x: -((x.reshape(len(x), 1, -1) - flat[None]) ** 2).sum(-1).min(1)
  g = im.logit_gap(memorised, seen, unseen, batch_size=64)
  want = -((unseen.reshape(150, 1, -1) - flat[None]) ** 2).sum(-1).min(1).mean()
  assert g['seen'] == 0.0 and g['unseen'] == pytest.approx(want) and g['gap'] == pytest.approx(-want)
  assert g['gap'] > 1  # the nearest of 200 points in 9-d is several units² away
  # A D that is a function of the distribution only (here the norm): the gap is the
  # difference of two sample means, ~0 within its standard error.
  norm = lambda x: (x.reshape(len(x), -1) ** 2).sum(1)
  g = im.logit_gap(norm, seen, unseen)
  se = np.sqrt(2 * 9 * (1 / 200 + 1 / 150))  # var of a chi2(9) is 18
  assert abs(g['gap']) < 3 * se and g['gap'] == pytest.approx(g['seen'] - g['unseen'])
  with pytest.raises(ValueError, match='one logit per image, got 9 and 9'):
    im.logit_gap(lambda x: x.reshape(len(x), -1), seen, unseen)


def test_classifier_score_on_hand_cases():
  assert im.classifier_score(np.eye(10), num_splits=1)[0] == pytest.approx(10)
  assert im.classifier_score(np.full((50, 10), 0.1), num_splits=5) == pytest.approx((1.0, 0.0))
  p = 0.9  # half the samples (p, 1-p), half (1-p, p): p(y) uniform
  probs = np.array([[p, 1 - p], [1 - p, p]] * 50)
  kl = np.log(2) + p * np.log(p) + (1 - p) * np.log(1 - p)
  assert im.classifier_score(probs, num_splits=1)[0] == pytest.approx(np.exp(kl), rel=1e-9)
  # Class-sorted rows are shuffled before splitting: splits of 20 one-hot rows
  # score exp(entropy of their class histogram) ≈ 8; unshuffled they would score 2.
  assert im.classifier_score(np.repeat(np.eye(10), 20, axis=0), num_splits=10)[0] > 6


def test_precision_recall_on_clusters():
  rng = np.random.default_rng(4)
  a = rng.normal(size=(300, 2)) * 0.1
  b = rng.normal(size=(300, 2)) * 0.1 + 10
  real = np.concatenate([a, b])
  assert im.precision_recall(real, real) == (1.0, 1.0)
  # Fakes on one of the two real clusters: all are good, half the data is covered.
  fake = rng.normal(size=(300, 2)) * 0.1
  precision, recall = im.precision_recall(real, fake)
  assert precision > 0.95 and recall == pytest.approx(0.5, abs=0.03)
  assert im.precision_recall(real, fake + 100) == (0.0, 0.0)


def test_features_batches_any_feature_fn_and_rejects_non_finite():
  x = np.arange(12.0).reshape(6, 2)
  f = im.features(lambda b: b * 2, x, batch_size=4)
  np.testing.assert_array_equal(f, x * 2)
  with pytest.raises(FloatingPointError, match='1 non-finite features'):
    im.features(lambda b: np.where(b == 3, np.nan, b), x)
