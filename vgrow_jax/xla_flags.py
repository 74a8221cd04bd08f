"""XLA:CPU flags that ``import vgrow_jax`` sets, before JAX starts its backend.

XLA reads ``XLA_FLAGS`` once, when the first computation starts a backend, so
importing vgrow_jax before running any JAX computation is enough; the apps,
benchmarks and tests all do. The flags:

* ``--xla_cpu_experimental_ynn_fusion_type=-individual_convolution``: jaxlib
  0.10 hands every convolution to YNNPACK. Inside the compiled loops, at the
  SN-ResNet shapes of benchmark B1 (batch 64, width 32, 32×32, 2 cores), XLA's
  own convolutions are much faster: a G least-squares step 148 → 91 ms, a D
  step 185 → 89 ms, the field on the pool 134 → 92 ms per step
  (``benchmarks/conv_loop.py``). Only convolutions change; dots and
  elementwise fusions keep YNNPACK. Results change within float32 rounding.

Rules:

* a flag whose name already appears in ``XLA_FLAGS`` is left as the user set it;
* ``VGROW_JAX_XLA_FLAGS=0`` in the environment sets none;
* the flags are set only for the jaxlib versions they were measured on
  (:data:`JAXLIB_VERSIONS`): XLA aborts the process on a flag it does not know;
* if JAX's backend already started, the flags cannot act and a warning says so.
"""

from __future__ import annotations

import logging
import os
from typing import Mapping, MutableMapping, Tuple

import jaxlib

_log = logging.getLogger(__name__)

# Each flag is explained in the module docstring.
CPU_FLAGS: Tuple[str, ...] = (
    '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution',
)

# [first, last] (major, minor) of the jaxlib releases these flags were measured on.
JAXLIB_VERSIONS: Tuple[Tuple[int, int], Tuple[int, int]] = ((0, 10), (0, 10))

_OPT_OUT = 'VGROW_JAX_XLA_FLAGS'


def _flag_name(flag: str) -> str:
  return flag.split('=', 1)[0].lstrip('-')


def _jaxlib_version(version: str) -> Tuple[int, int]:
  major, minor = version.split('.')[:2]
  return int(major), int(''.join(ch for ch in minor if ch.isdigit()) or 0)


def flags_to_add(xla_flags: str, jaxlib_version: str,
                 environ: Mapping[str, str]) -> Tuple[str, ...]:
  """The flags of :data:`CPU_FLAGS` to append to ``xla_flags`` (pure; see the module rules)."""
  if environ.get(_OPT_OUT, '1') == '0':
    return ()
  first, last = JAXLIB_VERSIONS
  if not first <= _jaxlib_version(jaxlib_version) <= last:
    return ()
  present = {_flag_name(f) for f in xla_flags.split()}
  return tuple(f for f in CPU_FLAGS if _flag_name(f) not in present)


def _backend_started() -> bool:
  try:
    from jax._src import xla_bridge  # pylint: disable=g-import-not-at-top
    return bool(xla_bridge.backends_are_initialized())
  except (ImportError, AttributeError):  # a JAX without it: assume not started
    return False


def apply(environ: MutableMapping[str, str] | None = None) -> Tuple[str, ...]:
  """Appends :func:`flags_to_add` to ``XLA_FLAGS`` in ``environ`` (default ``os.environ``).

  Returns:
    The flags added (empty when none apply).
  """
  environ = os.environ if environ is None else environ
  current = environ.get('XLA_FLAGS', '')
  add = flags_to_add(current, jaxlib.__version__, environ)
  if not add:
    return ()
  if _backend_started():
    _log.warning('JAX started its backend before `import vgrow_jax`, so these '
                    'XLA flags cannot act: %s (import vgrow_jax first, or set them in '
                    'XLA_FLAGS)', ' '.join(add))
    return ()
  environ['XLA_FLAGS'] = ' '.join(filter(None, [current, *add]))
  return add
