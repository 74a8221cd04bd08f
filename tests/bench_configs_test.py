"""Configs and helpers behind the B2 / B3 benchmarks (toy.py, mnist.py, toy_quality --set)."""

import dataclasses
import json

from absl import app
import pytest

from experiments import cli
from experiments.configs import mnist
from experiments.configs import toy
from vgrow_jax import config as config_lib
from vgrow_jax import method as method_lib


def _cfg(c):
  return config_lib.Config.from_dict(c.to_dict())


def test_mnist_config_parses_method_variant_and_arch():
  assert mnist.parse('') == ('vgrow', '', 'mlp')
  assert mnist.parse('resnet_sn') == ('vgrow', '', 'resnet_sn')
  assert mnist.parse('vgrow:js,dcgan') == ('vgrow', 'js', 'dcgan')
  assert mnist.parse('gan:minimax') == ('gan', 'minimax', 'mlp')
  with pytest.raises(ValueError, match="arch 'cnn' must be one of"):
    mnist.parse('gan,cnn')
  vg = _cfg(mnist.get_config('vgrow:js'))
  assert (vg.method, vg.hparams.divergence, vg.model.arch, vg.data.name) == (
      'vgrow', 'js', 'mlp', 'mnist_5k')
  assert vg.model.output_tanh and vg.hparams.clip == (-1.0, 1.0)
  # VGrow's MLP D: spectral norm on 2·x (benchmarks/RESULTS.md, B3), the conv nets as they are.
  assert (vg.model.d_spectral_norm, vg.model.d_input_scale) == (True, mnist.D_INPUT_SCALE) == (
      True, 2.0)
  conv = _cfg(mnist.get_config('vgrow,dcgan'))
  assert (conv.model.d_spectral_norm, conv.model.d_input_scale) == (False, 1.0)
  resnet = _cfg(mnist.get_config('vgrow,resnet_sn'))
  # η by pair: 30 for the DCGAN D's flat logit, the official 0.5 for the SN-ResNet D.
  assert (vg.hparams.step_size, conv.hparams.step_size, resnet.hparams.step_size) == (
      0.5, 30.0, 0.5)
  assert set(mnist.CONV_STEP_SIZE) == set(mnist.CONV_D_PENALTY) == set(
      mnist.CONV_STEP_SCHEDULE) == set(mnist.ARCHS) - {'mlp'}
  # The DCGAN pair halves η at loop 1,400 (its D wins past ~1,550 loops at 30); the others keep it.
  assert (vg.hparams.step_size_schedule, conv.hparams.step_size_schedule,
          resnet.hparams.step_size_schedule) == ((), ((1400, 15.0),), ())
  # The SN-ResNet D gets a zero-centred gradient penalty (λ 1); the others none.
  assert (resnet.hparams.d_gradient_penalty, resnet.hparams.d_gradient_penalty_center) == (
      1.0, 0.0)
  assert vg.hparams.d_gradient_penalty == conv.hparams.d_gradient_penalty == 0.0
  for name in method_lib.NAMES:
    cfg = _cfg(mnist.get_config(name))
    # One net pair for all (SNGAN adds its spectral norm; the VAE's G outputs logits).
    assert cfg.method == name and cfg.data == vg.data
    # The particles method fits VGrow's logistic D, so it gets VGrow's SN D on 2·x.
    model = vg.model if name in ('vgrow', 'particles') else dataclasses.replace(
        vg.model, d_spectral_norm=False, d_input_scale=1.0)
    assert cfg.model == dataclasses.replace(model, output_tanh=name != 'vae')
    if name == 'vgrow':
      continue
    if name == 'particles':  # mnist.py's own settings: VGrow's MNIST particle phase
      assert (cfg.hparams.num_particles, cfg.hparams.flow_steps, cfg.hparams.d_steps) == (
          mnist.PARTICLES, 5, 1)
      continue
    published = method_lib.hparams_class(name)()
    steps = {f: mnist.STEPS_PER_LOOP for f in ('g_steps_per_loop', 'steps_per_loop')
             if hasattr(published, f)}
    if name == 'mmd':  # GMMN's pixel bandwidths rescaled from [0, 1]^784 to [-1, 1]^1024
      steps['bandwidths'] = tuple(round(b * 2 * (1024 / 784) ** 0.5, 2)
                                  for b in published.bandwidths)
      assert steps['bandwidths'][0] == pytest.approx(4.57, abs=0.01)
    if name == 'vae':  # Bernoulli on pixels, G gives logits
      steps['decoder'] = 'bernoulli'
    assert cfg.hparams == dataclasses.replace(published, **steps)
  assert _cfg(mnist.get_config('gan:minimax,dcgan')).hparams.generator_loss == 'minimax'


def test_toy_config_gives_gmmn_vae_stein_their_toy_settings():
  for name, module in toy.TOY_CONFIGS.items():
    for dataset in ('grid', 'ring'):
      cfg = _cfg(toy.get_config(f'{name},{dataset}'))
      own = _cfg(module.get_config(dataset))
      assert cfg.hparams == own.hparams and cfg.model == own.model
      assert cfg.training.num_outer_loops == toy.NUM_OUTER_LOOPS
  assert _cfg(toy.get_config('mmd,ring')).hparams.bandwidths[0] == 0.01


def test_toy_quality_overrides_set_fields_and_reject_unknown_ones():
  c = toy.get_config('gan,grid')
  cli.apply_overrides(c, ['methods.gan.d_optimizer.learning_rate=1e-3',
                                  'methods.gan.generator_loss=minimax',
                                  'methods.gan.g_optimizer.lr_decay_boundaries=[100, 200]'])
  assert c.methods.gan.d_optimizer.learning_rate == 1e-3
  assert c.methods.gan.g_optimizer.lr_decay_boundaries == (100, 200)
  assert c.methods.gan.generator_loss == 'minimax'
  with pytest.raises(app.UsageError, match="unknown config field 'methods.gan.lr'"):
    cli.apply_overrides(c, ['methods.gan.lr=1'])
  with pytest.raises(app.UsageError, match="model.g_width=wide.*cannot be casted"):
    cli.apply_overrides(c, ['model.g_width=wide'])
  with pytest.raises(app.UsageError, match='expected KEY=VALUE'):
    cli.apply_overrides(c, ['methods.gan.d_optimizer.learning_rate'])


def test_refine_steps_entries_parse_to_flow_and_d_steps_and_bad_ones_are_named():
  assert cli.parse_refine_steps('refine_steps', ['30', '100:1', '5:0', '400:1:0.25',
                                                 '100:1:1:linear']) == [
      (30, 0, 1.0, 'constant'), (100, 1, 1.0, 'constant'), (5, 0, 1.0, 'constant'),
      (400, 1, 0.25, 'constant'), (100, 1, 1.0, 'linear')]
  assert cli.parse_refine_steps('refine_steps', []) == []
  for bad, why in (('x', 'expected K, K:U, K:U:S or K:U:S:SCHEDULE'),
                   ('1:2:3:linear:5', 'expected K, K:U, K:U:S or K:U:S:SCHEDULE'),
                   ('1:2:x', 'expected K, K:U, K:U:S or K:U:S:SCHEDULE'), ('0', 'K must be >= 1'),
                   ('5:-1', 'K must be >= 1, U >= 0 and S > 0'),
                   ('5:1:0', 'K must be >= 1, U >= 0 and S > 0'),
                   ('5:1:1:cosine', "schedule 'cosine' is not one of")):
    with pytest.raises(app.UsageError, match=f"--refine_steps entry '{bad}': {why}"):
      cli.parse_refine_steps('refine_steps', [bad])


def test_refine_entry_names_and_restore_keywords():
  assert [e.short() for e in cli.parse_refine_steps('r', ['30', '100:1', '400:1:0.25',
                                                          '200:3:1:linear'])] == [
      '30', '100x1', '400x1x0.25', '200x3_linear']
  assert cli.RefineEntry(400, 1, 0.25, 'linear').sampling(0.2) == {
      'sample_flow_steps': 400, 'sample_d_steps': 1, 'sample_step_size': 0.05,
      'sample_step_schedule': 'linear'}


def test_conv_report_sums_training_seconds_over_resumes_and_tabulates(tmp_path):
  from benchmarks import conv_report  # pylint: disable=g-import-not-at-top
  # Two invocations of 1,800 s each: elapsed_sec restarts at the resume (loop 600).
  train_recs = [{'loop': 100, 'elapsed_sec': 300.0}, {'loop': 600, 'elapsed_sec': 1810.0},
                {'loop': 700, 'elapsed_sec': 250.0}, {'loop': 1190, 'elapsed_sec': 1805.0}]
  assert conv_report.training_seconds(train_recs, 600) == 1810.0
  assert conv_report.training_seconds(train_recs, 700) == 1810.0 + 250.0
  assert conv_report.training_seconds(train_recs, 1190) == 1810.0 + 1805.0
  ev = {'eval_fcd': 6.29, 'eval_kid': 0.001, 'eval_kid_std': 0.0001,
        'eval_classifier_score': 7.09, 'eval_class_tv': 0.041, 'eval_precision': 0.69,
        'eval_recall': 0.86, 'eval_inception_kid': 0.01, 'eval_inception_kid_std': 0.0006,
        'protocol': {}}
  recs = train_recs + [
      {'loop': 600, 'eval_fid': 50.0, **ev},
      {'loop': 600, 'eval_fid': 41.3, **ev},                      # newest record wins
      {'loop': 1190, 'eval_fcd': 1.0, **{k: v for k, v in ev.items() if k != 'eval_fcd'}},
      {'loop': 1190, 'eval_fid': 24.2, 'eval_d_gap': 0.12, **ev},
      {'loop': 1190, 'eval_fid': 1.0, **{**ev, 'protocol': {'sampling': 'refit'}}},  # refined
      {'loop': 1190, 'eval_fid': 2.0, **{**ev, 'protocol': {'latent_seed': 2}}},  # other latents
      {'loop': 600, 'eval_fid': 41.3, **{**ev, 'protocol': {'latent_seed': 1}}}]  # the run's
  w = tmp_path / 'run'
  w.mkdir()
  (w / 'metrics.jsonl').write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
  (w / 'config.json').write_text(json.dumps({
      'method': 'vgrow', 'methods': {'vgrow': {'divergence': 'jeffreys', 'step_size': 30.0,
                                                 'd_gradient_penalty': 0.0}},
      'model': {'arch': 'dcgan'}, 'training': {'seed': 1}}))
  table = conv_report.rows(str(w))
  assert [(r['loop'], r['eval_fid'], r['seconds']) for r in table] == [
      (600, 41.3, 1810.0), (1190, 24.2, 3615.0)]
  text = conv_report.markdown(table).splitlines()
  assert text[2] == ('| `vgrow:jeffreys,dcgan` η 30 | 1 | 600, 1,810 | 41.3 | 0.0100 ± 0.0006 '
                     '| 6.29 | 7.09 | 0.041 | 0.69 / 0.86 | — |')
  assert text[3].endswith('| 0.12 |')
  # The gradient penalty in the note, zero-centred marked GP₀.
  for center, label in ((1.0, 'GP 10'), (0.0, 'GP₀ 10')):
    (w / 'config.json').write_text(json.dumps({
        'method': 'vgrow', 'methods': {'vgrow': {
            'divergence': 'jeffreys', 'step_size': 0.5, 'd_gradient_penalty': 10.0,
            'd_gradient_penalty_center': center}},
        'model': {'arch': 'resnet_sn'}, 'training': {'seed': 0}}))
    assert conv_report.rows(str(w))[0]['note'] == f' η 0.5 {label}'
  # η's schedule follows η (config.json stores it as lists).
  (w / 'config.json').write_text(json.dumps({
      'method': 'vgrow', 'methods': {'vgrow': {
          'divergence': 'jeffreys', 'step_size': 30.0, 'step_size_schedule': [[1400, 15.0]]}},
      'model': {'arch': 'dcgan'}, 'training': {'seed': 0}}))
  assert conv_report.rows(str(w))[0]['note'] == ' η 30 → 15 from 1,400'
  with pytest.raises(FileNotFoundError, match='not a training workdir'):
    conv_report.rows(str(tmp_path))


def test_conv_report_by_sampler_keys_on_sampler_and_latent_seed_and_averages(tmp_path):
  from benchmarks import conv_report  # pylint: disable=g-import-not-at-top
  ev = {'eval_kid': 0.001, 'eval_kid_std': 0.0001, 'eval_class_tv': 0.04,
        'eval_precision': 0.7, 'eval_recall': 0.9, 'eval_inception_kid': 0.01,
        'eval_inception_kid_std': 0.0006}
  flow = 'G(z) + 5 flow steps'

  def rec(fid, fcd, score, **protocol):
    return {'loop': 1321, 'eval_fid': fid, 'eval_fcd': fcd, 'eval_classifier_score': score,
            **ev, 'protocol': protocol}

  recs = [{'loop': 1321, 'elapsed_sec': 3600.0},
          rec(99.0, 9.0, 1.0),                                  # superseded by the next
          rec(21.7, 4.7, 7.2),                                  # plain, the run's seed (1)
          rec(22.7, 5.7, 7.0, latent_seed=2),
          rec(20.0, 5.5, 7.6, latent_seed=1, sampling=flow),
          rec(19.0, 6.5, 7.4, latent_seed=2, sampling=flow),
          {'loop': 1321, 'eval_fcd': 1.0}]                      # no FID: not tabulated
  w = tmp_path / 'run'
  w.mkdir()
  (w / 'metrics.jsonl').write_text('\n'.join(json.dumps(r) for r in recs) + '\n')
  (w / 'config.json').write_text(json.dumps({
      'method': 'sngan', 'model': {'arch': 'dcgan'}, 'training': {'seed': 1}}))
  table = conv_report.sampler_rows(str(w))
  assert [(r['sampler'], r['latent_seed'], r['eval_fid']) for r in table] == [
      ('G(z)', 1, 21.7), ('G(z)', 2, 22.7), (flow, 1, 20.0), (flow, 2, 19.0)]
  means = {m['sampler']: m for m in conv_report.sampler_means(table)}
  assert means['G(z)']['latent_seeds'] == [1, 2]
  assert means['G(z)']['eval_fid'] == pytest.approx(22.2)
  assert means['G(z)']['eval_fcd'] == pytest.approx(5.2)
  assert means[flow]['eval_classifier_score'] == pytest.approx(7.5)
  text = conv_report.sampler_markdown(table).splitlines()
  assert text[4] == ('| `sngan,dcgan` | 1 | 1,321 | G(z) + 5 flow steps | 1 | 20.0 '
                     '| 0.0100 ± 0.0006 | 5.50 | 7.60 | 0.040 | 0.70 / 0.90 |')
  assert text[-2] == '| `sngan,dcgan` | 1 | 1,321 | G(z) | 1, 2 | 22.20 | 5.20 | 7.10 | 0.040 |'
  assert text[-1].startswith('| `sngan,dcgan` | 1 | 1,321 | G(z) + 5 flow steps | 1, 2 | 19.50 |')


def test_conv_report_imports_beside_a_module_with_the_sampling_flags():
  # vgrow-sample's module defines the sampling flags conv_report takes as a
  # program; importing both in one process (as the test suite does) must work.
  import experiments.sample  # pylint: disable=g-import-not-at-top,unused-import
  from benchmarks import conv_report  # pylint: disable=g-import-not-at-top
  assert conv_report._SAMPLING is None  # pylint: disable=protected-access
