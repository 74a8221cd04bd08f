"""Scoring a trained model (the functions behind ``vgrow-eval``; no flags, so that
benchmarks can import them).

``evaluate_mode_workdir`` scores a run on mixture data (ring, grid, 'mixture'):
modes covered, % high quality, reverse KL and spread (docs/math.md §3) of N = 2,500
samples.

``evaluate_workdir`` generates N images from a checkpoint (fixed latents), takes as many
reference images (the held-out split when the source has one, else the training data; a
seeded subset when larger) and returns, with the protocol, the Fréchet distance and KID in
the classifier's features, the classifier score of both sets, and precision/recall; the
record is appended to ``W/metrics.jsonl``.
"""

import json
import os
from typing import Any, Dict

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


def _sampling(cfg) -> Dict[str, str]:
  """The protocol entry naming refined sampling, when the run's method uses it."""
  vc = cfg.vgrow
  eta = vc.step_size if vc.sample_step_size is None else vc.sample_step_size
  eta = f'η = {eta:g}' + (', decaying linearly' if vc.sample_step_schedule == 'linear' else '')
  if cfg.method == 'vgrow' and vc.sample_flow_steps and vc.sample_d_steps:
    return {'sampling': f'G(z) + {vc.sample_flow_steps} flow steps ({eta}), D '
                        f're-fitted on the training data with {vc.sample_d_steps} logistic '
                        'step(s) before each'}
  if cfg.method == 'vgrow' and vc.sample_flow_steps:
    return {'sampling': f'G(z) + {vc.sample_flow_steps} flow steps along the final D ({eta})'}
  return {}


def _append(workdir: str, record: Dict[str, Any]) -> None:
  with open(os.path.join(workdir, train.METRICS_FILE), 'a') as f:
    f.write(json.dumps(record) + '\n')


def has_modes(workdir: str) -> bool:
  """Whether the run's data is a known mixture (mode metrics) rather than images."""
  spec = _read_data_spec(workdir)
  return spec is not None and spec.get('modes') is not None


def evaluate_mode_workdir(workdir: str, *, num_samples: int = 2500, step=None,
                          **sampling) -> Dict[str, Any]:
  """Mode metrics of a workdir's checkpoint (also appended to its metrics.jsonl).

  ``sampling`` (VGrow only: ``sample_flow_steps``, ``sample_d_steps``,
  ``sample_step_size``, as :func:`vgrow_jax.train.restore` takes them) scores
  refined samples instead of the run's own setting; the protocol says so.
  """
  cfg, method, state = train.restore(workdir, step, **sampling)
  spec = _read_data_spec(workdir)
  samples = train.generate(method, state, train.eval_latents(method, cfg.training.seed,
                                                             num_samples))
  m = metrics.mode_metrics(samples, np.asarray(spec['modes']), spec['std'])
  protocol = {'n_generated': num_samples, 'data': spec['name'],
              'high_quality': f"within 3σ = {3 * spec['std']:g} of the nearest mean",
              **_sampling(cfg)}
  record = {'loop': int(state.step), **{f'eval_{k}': v for k, v in m.items()},
            'protocol': protocol}
  _append(workdir, record)
  return record


def format_mode_record(r: Dict[str, Any]) -> str:
  p = r['protocol']
  return (f"outer loop {r['loop']}: {p['data']}, N generated {p['n_generated']}"
          + (f"; samples: {p['sampling']}" if 'sampling' in p else '') + '\n'
          f"  modes {r['eval_modes']}/{r['eval_num_modes']}, high quality "
          f"{100 * r['eval_high_quality']:.1f}% ({p['high_quality']}), reverse KL "
          f"{r['eval_reverse_kl']:.4f}, spread {r['eval_spread']:.3f}σ "
          '(exact 2-D samples: 0.974σ)')


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
                     inception_weights: str = '', **sampling) -> Dict[str, Any]:
  """The metrics record of a workdir (also appended to its metrics.jsonl).

  ``sampling`` (VGrow only: ``sample_flow_steps``, ``sample_d_steps``,
  ``sample_step_size``, as :func:`vgrow_jax.train.restore` takes them) scores
  refined samples instead of the run's own setting; the protocol says so.
  """
  cfg, method, state = train.restore(workdir, step, **sampling)
  data_cfg = cfg.data
  split = reference_split or ('test' if image_data.has_held_out_split(data_cfg)
                              else data_cfg.split)
  ref = image_data.load_arrays(data_cfg, split)
  pick = np.random.default_rng(0).permutation(len(ref.images))[:num_samples]
  reference = np.asarray(image_data.to_unit_range(ref.images[pick]))
  n = len(reference)
  generated = train.generate(method, state, train.eval_latents(method, cfg.training.seed, n))
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
      **_sampling(cfg),
  }
  record = {'loop': int(state.step), 'eval_fcd': m['fd'], 'eval_kid': m['kid'],
            'eval_kid_std': m['kid_std'], 'eval_classifier_score': m['score'],
            'eval_classifier_score_reference': m['score_reference'],
            'eval_class_tv': m['class_tv'],
            'eval_precision': m['precision'], 'eval_recall': m['recall'], 'protocol': protocol}
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
  if inception_weights:
    mi = image_metrics.evaluate_images(
        generated, reference, feature_fn=inception.feature_fn(
            inception.load_params(inception_weights)),
        kid_subsets=kid_subsets, kid_subset_size=min(kid_subset_size, n))
    record.update({'eval_fid': mi['fd'], 'eval_kid_inception': mi['kid'],
                   'eval_kid_inception_std': mi['kid_std']})
    protocol['inception'] = ('Inception-v3 (FID variant, 2048 pool features) from '
                             f'{inception_weights}')
  _append(workdir, record)
  return record


def format_record(r: Dict[str, Any]) -> str:
  p = r['protocol']
  return '\n'.join([
      f"outer loop {r['loop']}: N generated {p['n_generated']}, N reference {p['n_reference']} "
      f"({p['reference']}); features: {p['features']}"
      + (f"; samples: {p['sampling']}" if 'sampling' in p else ''),
      f"  Fréchet classifier distance {r['eval_fcd']:.3f}",
      f"  KID {r['eval_kid']:.5f} ± {r['eval_kid_std']:.5f} ({p['kid']})",
      f"  classifier score {r['eval_classifier_score']:.3f} "
      f"(reference images: {r['eval_classifier_score_reference']:.3f})",
      f"  class balance: label-histogram TV distance to the reference {r['eval_class_tv']:.3f}",
      f"  precision {r['eval_precision']:.3f}, recall {r['eval_recall']:.3f} "
      f"({p['precision_recall']})",
  ] + ([f"  discriminator: mean logit {r['eval_d_logit_train']:.3f} on training images, "
         f"{r['eval_d_logit_held_out']:.3f} on held-out ones (gap {r['eval_d_gap']:.3f}; a "
         "large gap means D memorised its training images)"] if 'eval_d_gap' in r else []
  ) + ([f"  FID {r['eval_fid']:.3f}, KID {r['eval_kid_inception']:.5f} ± "
        f"{r['eval_kid_inception_std']:.5f} ({p['inception']})"] if 'eval_fid' in r else []))
