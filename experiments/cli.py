"""What the command-line apps share: the config flag and logging set-up."""

import json
import logging as std_logging
import sys
from typing import Any, Dict, List, NamedTuple, Sequence

from absl import app
from absl import flags
from absl import logging
import jax
from ml_collections import config_dict
from ml_collections import config_flags

from vgrow_jax import config as config_lib
from vgrow_jax import divergences
from vgrow_jax import method as method_lib

log = std_logging.getLogger('vgrow_jax')


def setup_logging() -> None:
  """Progress lines of vgrow_jax to stderr; other libraries' INFO chatter
  (orbax logs every save) only with an explicit ``--verbosity``.

  Call it after :func:`vgrow_jax.sharding.initialize`: it asks JAX for the
  process index."""
  if not flags.FLAGS['verbosity'].present:
    logging.set_verbosity(logging.WARNING)
  if not log.handlers:
    handler = std_logging.StreamHandler(sys.stderr)
    handler.setFormatter(std_logging.Formatter('%(asctime)s %(message)s', '%H:%M:%S'))
    log.addHandler(handler)
  # In a multi-process job only process 0 reports progress.
  log.setLevel(std_logging.INFO if jax.process_index() == 0 else std_logging.WARNING)
  log.propagate = False


def define_config_flag(app_name: str, default_path: str):
  """``--config`` (an ml_collections file, locked) and its ``--config.a.b=v`` overrides.

  ml_collections applies the overrides while the flag is defined, at import,
  and answers an unknown field name with a traceback; this exits with one
  line naming the field instead.
  """
  try:
    return config_flags.DEFINE_config_file('config', default_path,
                                           'Training configuration file.', lock_config=True)
  except (AttributeError, KeyError, ValueError) as e:
    sys.exit(f'{app_name}: {unknown_override(sys.argv) or e}')


def moved_field(path: str) -> str:
  """Where a dotted field of an older release's layout lives now ('' if it did not move).

  ``vgrow.step_size`` -> ``methods.vgrow.step_size``, ``g_optimizer.name`` ->
  ``methods.vgrow.g_optimizer.name`` (:data:`vgrow_jax.method.LEGACY_SECTIONS`).
  """
  head, _, rest = path.partition('.')
  if head not in method_lib.LEGACY_SECTIONS:
    return ''
  name, field = method_lib.LEGACY_SECTIONS[head]
  return '.'.join(p for p in ('methods', name, field, rest) if p)


def unknown_override(argv: Sequence[str]) -> str:
  """The message for the first ``--config.<path>`` in ``argv`` naming no config field."""
  from experiments.configs import common  # pylint: disable=g-import-not-at-top
  defaults = common.library_defaults()
  for arg in argv[1:]:
    if not arg.startswith('--config.'):
      continue
    dotted = arg[len('--config.'):].split('=', 1)[0]
    if moved_field(dotted):
      return (f'unknown config field {dotted}: it moved to {moved_field(dotted)} '
              f'(--config.{moved_field(dotted)})')
    path = dotted.split('.')
    node = defaults
    for i, name in enumerate(path):
      field = '.'.join(path[:i + 1])
      if not isinstance(node, config_dict.ConfigDict):
        return f'unknown config field {field}: {".".join(path[:i])} is a value, not a section'
      if name not in node:
        return f'unknown config field {field}; known fields here: {sorted(node.keys())}'
      node = node[name]
  return ''


def _parse_set(item: str):
  key, sep, value = item.partition('=')
  if not sep or not key:
    raise app.UsageError(f'--set={item!r}: expected KEY=VALUE')
  try:
    return key, json.loads(value)
  except json.JSONDecodeError:
    return key, value


def apply_overrides(c, items):
  """Sets dotted ``KEY=VALUE`` items (a benchmark's ``--set``) on an ml_collections config.

  VALUE is JSON (lists become tuples) or a bare string. Raises
  ``app.UsageError`` naming the item for a malformed item, an unknown field
  or a value of the wrong type.
  """
  for item in items:
    key, value = _parse_set(item)
    if moved_field(key):
      raise app.UsageError(f'--set={item!r}: unknown config field {key!r}: it moved to '
                           f'{moved_field(key)!r}')
    *path, leaf = key.split('.')
    node = c
    for part in path:
      if part not in node:
        raise app.UsageError(f'--set={item!r}: unknown config field {part!r}')
      node = node[part]
    if leaf not in node:
      raise app.UsageError(f'--set={item!r}: unknown config field {key!r}')
    if isinstance(value, list):
      value = tuple(value)
    try:
      setattr(node, leaf, value)
    except TypeError as e:
      raise app.UsageError(f'--set={item!r}: {e}') from None
  return c


class SamplingFlags(NamedTuple):
  """Holders of the refined-sampling flags of vgrow-eval and vgrow-sample."""

  flow_steps: Any
  d_steps: Any
  step_size: Any
  step_schedule: Any
  flow_space: Any
  langevin: Any
  d_spectral_norm: Any
  d_input_scale: Any
  d_warmup_steps: Any
  d_batch_size: Any
  divergence: Any
  metropolis: Any

  def overrides(self) -> Dict[str, Any]:
    """The ``train.restore`` keywords these flags set (None: the run's own setting)."""
    return {'sample_flow_steps': self.flow_steps.value, 'sample_d_steps': self.d_steps.value,
            'sample_step_size': self.step_size.value,
            'sample_step_schedule': self.step_schedule.value,
            'flow_space': self.flow_space.value, 'langevin': self.langevin.value,
            'sample_d_spectral_norm': self.d_spectral_norm.value,
            'sample_d_input_scale': self.d_input_scale.value,
            'sample_d_warmup_steps': self.d_warmup_steps.value,
            'sample_d_batch_size': self.d_batch_size.value,
            'sample_divergence': self.divergence.value,
            'sample_metropolis': self.metropolis.value}


def define_sampling_flags() -> SamplingFlags:
  """--sample_flow_steps, --sample_d_steps, --sample_step_size, --sample_step_schedule,
  --flow_space, --langevin, --sample_d_spectral_norm, --sample_d_input_scale,
  --sample_d_warmup_steps, --sample_d_batch_size, --sample_divergence,
  --sample_metropolis: refined sampling of any method
  (:mod:`vgrow_jax.refine`).

  VGrow's own defaults are its ``methods.vgrow.sample_*`` fields; other
  methods' are off. The last two set the fresh D fitted for a method without
  a logistic D; :func:`vgrow_jax.refine.plan` rejects them, in one line
  naming the flag, elsewhere (no --sample_flow_steps / --sample_d_steps, or a
  method refined along its own logistic D) and for c <= 0.
  """
  return SamplingFlags(
      flags.DEFINE_integer('sample_flow_steps', None, 'Move the samples this many flow steps '
                           "at sampling (default: VGrow's methods.vgrow.sample_flow_steps, "
                           "else 0 = plain G(z)): along the final D where the method's D is a "
                           'logistic log-ratio (VGrow, GAN), else --sample_d_steps is needed.',
                           lower_bound=0),
      flags.DEFINE_integer('sample_d_steps', None, 'With sample_flow_steps: fit a logistic D '
                           'on the training data with this many steps before each flow step '
                           "(the run's logistic D, or a fresh one of the config's D net for "
                           "other methods; default: VGrow's methods.vgrow.sample_d_steps, "
                           'else 0 = along the final D).', lower_bound=0),
      flags.DEFINE_float('sample_step_size', None, 'With sample_flow_steps: η of those steps '
                         "(default: the method's methods.<name>.sample_step_size or "
                         'step_size; needed for methods without one).'),
      flags.DEFINE_enum('sample_step_schedule', None, list(config_lib.SAMPLE_STEP_SCHEDULES),
                        'With sample_flow_steps: η over those K steps, constant or '
                        "linear η·(1 − k/K) (default: VGrow's "
                        'methods.vgrow.sample_step_schedule, else constant).'),
      flags.DEFINE_enum('flow_space', None, ['data', 'latent'], 'With sample_flow_steps: move '
                        'the samples x (data, default) or their latents z along '
                        '∇_z d(G(z)) − z, then return G(z) (latent; methods with a '
                        'generator).'),
      flags.DEFINE_float('langevin', None, 'With sample_flow_steps: Langevin temperature '
                         'γ ≥ 0 of noise √(2ηγ)ξ added to every move (default 0).'),
      flags.DEFINE_boolean('sample_d_spectral_norm', None, 'With sample_flow_steps and '
                           'sample_d_steps, for a method without a logistic D: spectral norm '
                           'on the fresh D fitted at sampling (unset: the config\'s '
                           'model.d_spectral_norm).'),
      flags.DEFINE_float('sample_d_input_scale', None, 'With sample_flow_steps and '
                         'sample_d_steps, for a method without a logistic D: c > 0, that '
                         'fresh MLP D sees c·x (unset: the config\'s model.d_input_scale). '
                         'Spectral norm on c·x bounds each move by about η·c.'),
      flags.DEFINE_integer('sample_d_warmup_steps', None, 'With sample_flow_steps: logistic '
                           'D steps against the plain samples before the first move (default: '
                           '200 for a fresh D, 0 from the run\'s own D). With '
                           'sample_d_steps=0 that D is then held fixed (d ≈ log p/q of G\'s own '
                           'law; with --flow_space=latent --langevin=1, Langevin dynamics on '
                           'N(z)·e^{d(G(z))}).', lower_bound=0),
      flags.DEFINE_integer('sample_d_batch_size', None, 'With sample_flow_steps: the real '
                           'and sample batch of each D step of refined sampling (0: all the '
                           'samples of a call; unset: the run\'s own setting, else 0).',
                           lower_bound=0),
      flags.DEFINE_enum('sample_divergence', None, list(divergences.NAMES), 'With '
                        'sample_flow_steps: the f-divergence whose weight s(d) scales each '
                        "move (default: the method's flow divergence, else kl). Latent "
                        'Langevin samples N(z)·e^{d(G(z))} with kl (s = 1) only.'),
      flags.DEFINE_boolean('sample_metropolis', None, 'With sample_flow_steps, '
                           '--flow_space=latent and --langevin > 0: accept or reject each '
                           'move (MALA), so the chain samples N(z)·e^{F(d(G(z)))} exactly '
                           'at any η (F = d for kl; default: off).'))


class RefineEntry(NamedTuple):
  """One refined sampler: K flow steps, U D steps before each, η·S, η's schedule."""

  steps: int
  d_steps: int = 0
  step_scale: float = 1.0
  schedule: str = 'constant'

  def short(self) -> str:
    """'K', 'KxU' (U > 0), then 'xS' for η × S and '_linear' for a decaying η (names, labels)."""
    return (f'{self.steps}' + (f'x{self.d_steps}' if self.d_steps else '')
            + (f'x{self.step_scale:g}' if self.step_scale != 1 else '')
            + (f'_{self.schedule}' if self.schedule != 'constant' else ''))

  def sampling(self, step_size: float) -> Dict[str, Any]:
    """The ``train.restore`` keywords of this sampler for a run trained with η = ``step_size``."""
    return {'sample_flow_steps': self.steps, 'sample_d_steps': self.d_steps,
            'sample_step_size': step_size * self.step_scale,
            'sample_step_schedule': self.schedule}


def parse_refine_steps(flag: str, entries: Sequence[str]) -> List[RefineEntry]:
  """Refined-sampling entries 'K', 'K:U', 'K:U:S' or 'K:U:S:linear' -> [RefineEntry].

  K flow steps at sampling (``methods.vgrow.sample_flow_steps``); U > 0
  re-fits D with U logistic steps before each (``methods.vgrow.sample_d_steps``;
  0: along the final D); S scales the run's step size η for those steps
  (``methods.vgrow.sample_step_size = S·η``; default 1); the last part is
  ``methods.vgrow.sample_step_schedule`` (default constant).

  Raises:
    app.UsageError: an entry is not of that form with K >= 1, U >= 0, S > 0
      and a known schedule.
  """
  out = []
  for entry in entries:
    parts = str(entry).split(':')
    try:
      if len(parts) > 4:
        raise ValueError
      k = int(parts[0])
      u = int(parts[1]) if len(parts) > 1 else 0
      scale = float(parts[2]) if len(parts) > 2 else 1.0
    except ValueError:
      raise app.UsageError(f'--{flag} entry {entry!r}: expected K, K:U, K:U:S or K:U:S:SCHEDULE '
                           '(K, U integers, S a number)') from None
    schedule = parts[3] if len(parts) > 3 else 'constant'
    if k < 1 or u < 0 or not scale > 0:
      raise app.UsageError(f'--{flag} entry {entry!r}: K must be >= 1, U >= 0 and S > 0')
    if schedule not in config_lib.SAMPLE_STEP_SCHEDULES:
      raise app.UsageError(f'--{flag} entry {entry!r}: schedule {schedule!r} is not one of '
                           f'{config_lib.SAMPLE_STEP_SCHEDULES}')
    out.append(RefineEntry(k, u, scale, schedule))
  return out
