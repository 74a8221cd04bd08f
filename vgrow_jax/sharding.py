"""Data parallelism over a device mesh, on one host or many (SPMD, ``jax.sharding``).

The mesh is one axis, ``'data'``, of ``mesh.data`` devices (-1: all devices
of all processes), built with ``jax.make_mesh`` in *auto* mode: the trainer
jits a method's step with ``in_shardings``/``out_shardings``, the method
marks its example batches with :func:`shard_batch`, and XLA's partitioner
propagates the rest and inserts the collectives. One compiled program runs on
1 CPU, 8 GPUs or a pod; nothing here depends on the method.

What lives where:

* parameters and optimiser states: **replicated**. The nets of this project
  are small (the official SN-ResNet pair at width 128 has 2.3 M parameters,
  9 MB in float32) and every step reads all of them; replication costs one
  all-reduce of the gradients per optimiser step, which XLA inserts, while
  sharding them (FSDP/ZeRO) would add an all-gather of every weight before
  every forward pass to save memory that no device needs saved.
* the particle pool, real batches, generator-fitting minibatches: **split**
  over 'data' (:func:`shard_batch`, called by the methods). Means over the
  batch become all-reduces, so results match one device up to float
  summation order.
* the data store: a dataset's example array (key ``'x'`` or ``'pixels'``,
  :data:`EXAMPLE_KEYS`) is split by rows over 'data' when its row count is a
  multiple of the axis; drawing a batch from it is a gather that XLA compiles into a
  local masked gather plus an all-reduce of the batch (not of the data).
  Other arrays (e.g. the means of a toy mixture) are replicated.
* random numbers: every draw is a function of the global key, computed inside
  the step. With ``jax_threefry_partitionable`` (the default since JAX 0.5;
  :func:`make_mesh` refuses to run without it) each device computes only its
  slice of a sharded random array, and the values do not depend on the
  sharding, so ``random.normal``/``choice``/``permutation`` give one device's
  numbers on any mesh.

Multi-host: :func:`initialize` calls ``jax.distributed.initialize`` when a
job runs as several processes; every process then runs the same program on
its own devices. Global arrays are built with ``jax.make_array_from_callback``
(:func:`put`), through which each process reads only the rows of the data
that its devices hold. The ``.npz`` format cannot be read in parts, so each
process loads the file once and keeps only its rows on device. Toy data are
drawn inside the step, each device drawing its own slice of every batch from
the global key: no process reads anything. Only process 0 writes logs,
metrics, figures and JSON (:func:`is_main_process`); orbax writes checkpoints
collectively.
"""

from __future__ import annotations

import contextlib
from typing import Any, Callable, Tuple

import jax
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec as P
import numpy as np

from vgrow_jax import config as config_lib

DATA_AXIS = 'data'

# The keys under which datasets keep their examples (rows = examples):
# data.from_array (npz files) uses 'x', the image sets of
# vgrow_jax.image_data use 'pixels'. Other arrays are replicated.
EXAMPLE_KEYS = ('x', 'pixels')


def initialize(*, coordinator_address: str = '', num_processes: int = 1,
               process_id: int = 0, auto: bool = False) -> bool:
  """Starts multi-process JAX when the job has several processes.

  Call it before anything else touches JAX devices.

  Args:
    coordinator_address: 'host:port' of process 0 ('' uses the environment
      variable JAX_COORDINATOR_ADDRESS or cluster auto-detection).
    num_processes: processes in the job; > 1 starts ``jax.distributed``.
    process_id: this process, in [0, num_processes).
    auto: start ``jax.distributed`` with cluster auto-detection (Cloud TPU,
      SLURM, Open MPI, Kubernetes) even when ``num_processes`` is 1.

  Returns:
    Whether ``jax.distributed`` was initialised.

  Raises:
    ValueError: ``process_id`` out of range or ``num_processes`` < 1.
  """
  if num_processes < 1:
    raise ValueError(f'num_processes={num_processes}: must be >= 1')
  if not 0 <= process_id < num_processes:
    raise ValueError(f'process_id={process_id}: must be in [0, num_processes={num_processes})')
  if num_processes == 1 and not auto:
    return False
  kwargs = {}
  if num_processes > 1:
    kwargs = dict(num_processes=num_processes, process_id=process_id)
  jax.distributed.initialize(coordinator_address=coordinator_address or None, **kwargs)
  return True


def is_main_process() -> bool:
  """Process 0 writes files and logs; the others only compute."""
  return jax.process_index() == 0


def make_mesh(cfg: config_lib.Config) -> Mesh:
  """The 1-D 'data' mesh of ``cfg.mesh``, after checking it against the devices.

  Raises:
    config.ConfigError: more devices asked for than exist, a multi-process job
      that leaves out some processes' devices, a batch size that the axis does
      not divide, or ``jax_threefry_partitionable`` switched off.
  """
  total = jax.device_count()
  n = total if cfg.mesh.data == -1 else cfg.mesh.data
  what = (f'mesh.data=-1 (all {total} devices)' if cfg.mesh.data == -1
          else f'mesh.data={n}')
  if n > total:
    raise config_lib.ConfigError(
        f'config field mesh.data={n}: exceeds the device count of this job, {total} '
        f'({jax.devices()[0].platform})')
  if jax.process_count() > 1 and n != total:
    raise config_lib.ConfigError(
        f'config field mesh.data={n}: a job of {jax.process_count()} processes must use '
        f'all {total} devices (-1)')
  if not jax.config.jax_threefry_partitionable:
    raise config_lib.ConfigError(
        'jax_threefry_partitionable is off: random numbers would depend on the mesh; '
        'turn it on (the JAX default)')
  config_lib.check_divisible(cfg, n, what)
  return jax.make_mesh((n,), (DATA_AXIS,), axis_types=(AxisType.Auto,),
                       devices=jax.devices()[:n])


def use(mesh: Mesh) -> contextlib.AbstractContextManager:
  """The mesh as the context of tracing, which :func:`shard_batch` reads."""
  return jax.set_mesh(mesh)


def replicated(mesh: Mesh) -> NamedSharding:
  """A copy on every device (parameters, optimiser states, metrics)."""
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh) -> NamedSharding:
  """Leading (example) axis split over 'data'."""
  return NamedSharding(mesh, P(DATA_AXIS))


def data_shardings(mesh: Mesh, arrays: Any) -> Any:
  """Shardings for a dataset's arrays: examples split by rows when they divide."""
  n = mesh.shape[DATA_AXIS]

  def one(path, leaf):
    top = path[0].key if path and hasattr(path[0], 'key') else None
    if top in EXAMPLE_KEYS and np.ndim(leaf) >= 1 and np.shape(leaf)[0] % n == 0:
      return batch_sharding(mesh)
    return replicated(mesh)

  return jax.tree_util.tree_map_with_path(one, arrays)


def shard_data(mesh: Mesh, arrays: Any) -> Tuple[Any, Any]:
  """A dataset's arrays as global arrays on ``mesh``, and their shardings."""
  shardings = data_shardings(mesh, arrays)
  return put(arrays, shardings), shardings


def init_state(init: Callable[[jax.Array], Any], mesh: Mesh, seed: int) -> Any:
  """``init(PRNGKey(seed))`` computed once per device, replicated."""
  return jax.jit(lambda: init(jax.random.PRNGKey(seed)), out_shardings=replicated(mesh))()


def jit_step(step: Callable[..., Any], mesh: Mesh, data_shardings_: Any) -> Callable[..., Any]:
  """``step(state, data_arrays) -> outputs`` compiled for the mesh.

  The state is replicated and donated, the data laid out by
  :func:`data_shardings`, every output replicated (so that any process can
  read the metrics); the batches inside are split where the method calls
  :func:`shard_batch`. Call (and so trace) it under :func:`use`.
  """
  return jax.jit(step, in_shardings=(replicated(mesh), data_shardings_),
                 out_shardings=replicated(mesh), donate_argnums=0)


def put(tree: Any, shardings: Any) -> Any:
  """Global arrays from host values that are the same on every process.

  Each process materialises only the slices its own devices hold.
  """
  def one(x, sharding):
    x = np.asarray(x)
    return jax.make_array_from_callback(x.shape, sharding, lambda idx: x[idx])

  return jax.tree.map(one, tree, shardings)


def shard_batch(tree: Any) -> Any:
  """Splits the leading (example) axis of every array over the 'data' mesh axis.

  Methods call this on the particle pool and on each batch they draw; it is
  a ``with_sharding_constraint`` under the mesh of :func:`use`, and does
  nothing without one (a single device, or a method used on its own).

  Args:
    tree: arrays ``[B, ...]``.

  Returns:
    The same values, laid out ``B / n`` examples per device.

  Raises:
    ValueError: at trace time, if some ``B`` is not a multiple of the axis size.
  """
  mesh = jax.sharding.get_abstract_mesh()
  if mesh.empty or DATA_AXIS not in mesh.axis_names or mesh.shape[DATA_AXIS] == 1:
    return tree
  n = mesh.shape[DATA_AXIS]

  def one(x):
    if x.shape[0] % n:
      raise ValueError(f'a batch of {x.shape[0]} examples (shape {tuple(x.shape)}) cannot be '
                       f'split over the {n} devices of the data axis: use a multiple of {n}')
    return jax.lax.with_sharding_constraint(x, P(DATA_AXIS))

  return jax.tree.map(one, tree)
