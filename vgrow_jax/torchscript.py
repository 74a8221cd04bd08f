"""Reads the tensors of a TorchScript (or ``torch.save``) zip into numpy, without torch.

A file written by ``torch.jit.save`` is a zip archive ``<prefix>/...`` holding

* ``data.pkl``: the module tree, pickled (protocol 2). Script modules are
  ``__torch__.<qualified class>`` objects rebuilt by ``NEWOBJ`` + ``BUILD`` with
  a dict of attributes; tensors are ``torch._utils._rebuild_tensor_v2(storage,
  offset, size, stride, requires_grad, hooks)`` whose ``storage`` is a
  *persistent id* ``('storage', torch.FloatStorage, key, device, numel)``;
  int lists are ``torch.jit._pickle.build_intlist([...])``;
* ``data/<key>``: each storage's raw little-endian bytes;
* ``code/``: the TorchScript source of every module's ``forward`` (not
  needed to read the weights).

:func:`read` unpickles ``data.pkl`` with a restricted :class:`pickle.Unpickler`
that knows only those names (anything else is refused, so a file cannot run
code) and returns a tree of :class:`ScriptObject`; :func:`named_tensors` and
:func:`named_attributes` flatten it to dotted names (``net.layers.conv.weight``).
"""

from __future__ import annotations

import collections
import io
import pickle
import struct
import zipfile
from typing import Any, Dict, Iterator, Tuple

import numpy as np

# torch's legacy typed storages (what ``torch.jit.save`` pickles) -> numpy dtypes.
_STORAGE_DTYPES = {
    'FloatStorage': np.float32, 'DoubleStorage': np.float64, 'HalfStorage': np.float16,
    'LongStorage': np.int64, 'IntStorage': np.int32, 'ShortStorage': np.int16,
    'CharStorage': np.int8, 'ByteStorage': np.uint8, 'BoolStorage': np.bool_,
}


class TorchScriptError(ValueError):
  """The file is not a TorchScript zip, or its pickle or storages cannot be read."""


class ScriptObject:
  """One pickled TorchScript module (or other ``__torch__`` object).

  Attributes:
    type_name: its qualified class, e.g. ``__torch__.inceptionv3.Conv2dLayer``.
    attrs: its attributes (submodules, tensors as numpy arrays, ints, lists).
  """

  type_name = ''

  def __init__(self) -> None:
    self.attrs: Dict[str, Any] = {}

  def __setstate__(self, state: Any) -> None:
    if not isinstance(state, dict):
      raise TorchScriptError(f'{self.type_name}: state is a {type(state).__name__}, '
                             'expected a dict of attributes')
    self.attrs = dict(state)

  def __repr__(self) -> str:
    return f'ScriptObject({self.type_name}, {sorted(self.attrs)})'


class _StorageType:
  """Stands for ``torch.<X>Storage`` in a persistent id: only its dtype is used."""

  def __init__(self, name: str):
    self.name = name
    self.dtype = np.dtype(_STORAGE_DTYPES[name]).newbyteorder('<')


def _rebuild_tensor_v2(storage: np.ndarray, offset: int, size: Tuple[int, ...],
                       stride: Tuple[int, ...], requires_grad: bool = False,
                       backward_hooks: Any = None, metadata: Any = None) -> np.ndarray:
  """A strided view of ``storage`` (element offset and strides), copied to its own array."""
  del requires_grad, backward_hooks, metadata  # inference only
  size, stride = tuple(int(s) for s in size), tuple(int(s) for s in stride)
  if len(size) != len(stride) or min(size + stride + (offset,), default=0) < 0:
    raise TorchScriptError(f'bad tensor size {size}, stride {stride} or offset {offset}')
  # The element the view reads last must lie in the storage (as_strided does not check).
  empty = 0 in size
  last = offset + sum((n - 1) * s for n, s in zip(size, stride))
  if not empty and last >= len(storage):
    raise TorchScriptError(f'tensor of size {size}, stride {stride} at offset {offset} does '
                           f'not fit its storage of {len(storage)} elements')
  view = np.lib.stride_tricks.as_strided(storage[offset:], size,
                                         [s * storage.itemsize for s in stride])
  return np.array(view)  # own, C-contiguous memory (native byte order)


def _build_list(items: Any) -> list:
  return list(items)


class _Unpickler(pickle.Unpickler):
  """Resolves only the names a TorchScript ``data.pkl`` of tensors needs."""

  def __init__(self, data: bytes, archive: zipfile.ZipFile, prefix: str):
    super().__init__(io.BytesIO(data))
    self._archive = archive
    self._prefix = prefix
    self._classes: Dict[str, type] = {}

  def find_class(self, module: str, name: str) -> Any:
    if module == '__torch__' or module.startswith('__torch__.'):
      qual = f'{module}.{name}'
      if qual not in self._classes:  # one class per TorchScript type, for type_name
        self._classes[qual] = type(name, (ScriptObject,), {'type_name': qual})
      return self._classes[qual]
    if (module, name) == ('torch._utils', '_rebuild_tensor_v2'):
      return _rebuild_tensor_v2
    if module == 'torch' and name in _STORAGE_DTYPES:
      return _StorageType(name)
    if (module, name) == ('collections', 'OrderedDict'):
      return collections.OrderedDict
    if module == 'torch.jit._pickle' and name in ('build_intlist', 'build_doublelist',
                                                  'build_boollist', 'build_tensorlist'):
      return _build_list
    raise TorchScriptError(f'refusing to unpickle {module}.{name}: not a tensor, module or '
                           'list of a TorchScript weights file')

  def persistent_load(self, pid: Any) -> np.ndarray:
    if not (isinstance(pid, tuple) and len(pid) == 5 and pid[0] == 'storage'
            and isinstance(pid[1], _StorageType)):
      raise TorchScriptError(f'unknown persistent id {pid!r:.80}')
    _, storage_type, key, _, numel = pid
    entry = f'{self._prefix}data/{key}'
    try:
      raw = self._archive.read(entry)
    except KeyError:
      raise TorchScriptError(f'storage {entry!r} is missing from the zip') from None
    expected = int(numel) * storage_type.dtype.itemsize
    if len(raw) != expected:
      raise TorchScriptError(f'storage {entry!r} has {len(raw)} bytes, expected {expected} '
                             f'({numel} x {storage_type.name})')
    return np.frombuffer(raw, storage_type.dtype)


def read(path: str) -> Any:
  """The unpickled ``data.pkl`` of a TorchScript / ``torch.save`` zip at ``path``.

  Returns:
    A :class:`ScriptObject` tree for ``torch.jit.save`` files (tensors are
    numpy arrays among the attributes), or whatever ``torch.save`` pickled
    (e.g. an ``OrderedDict`` state_dict of numpy arrays).

  Raises:
    TorchScriptError: not a zip, no ``data.pkl``, a corrupt entry, or a name
      the restricted unpickler refuses.
  """
  if not zipfile.is_zipfile(path):
    raise TorchScriptError(f'{path!r} is not a TorchScript zip (not a zip archive)')
  try:
    with zipfile.ZipFile(path) as archive:
      pkls = [n for n in archive.namelist() if n.endswith('data.pkl') and n.count('/') == 1]
      if len(pkls) != 1:
        raise TorchScriptError(f'{path!r} is not a TorchScript zip (no <prefix>/data.pkl entry)')
      prefix = pkls[0][:-len('data.pkl')]
      return _Unpickler(archive.read(pkls[0]), archive, prefix).load()
  except TorchScriptError:
    raise
  except (zipfile.BadZipFile, pickle.UnpicklingError, EOFError, OSError, ValueError,
          TypeError, AttributeError, IndexError, KeyError, struct.error) as e:
    raise TorchScriptError(f'{path!r} is a corrupt TorchScript zip: {e}') from None


def _children(obj: Any) -> Iterator[Tuple[str, Any]]:
  if isinstance(obj, ScriptObject):
    yield from obj.attrs.items()
  elif isinstance(obj, dict):
    yield from obj.items()


def named_tensors(root: Any, prefix: str = '') -> Dict[str, np.ndarray]:
  """Every numpy array in the tree under ``root``, by dotted attribute path."""
  out = {}
  for name, value in _children(root):
    path = f'{prefix}{name}'
    if isinstance(value, np.ndarray):
      out[path] = value
    elif isinstance(value, (ScriptObject, dict)):
      out.update(named_tensors(value, f'{path}.'))
  return out


def named_attributes(root: Any, prefix: str = '') -> Dict[str, Any]:
  """Every non-tensor, non-module attribute (ints, lists, flags) by dotted path."""
  out = {}
  for name, value in _children(root):
    path = f'{prefix}{name}'
    if isinstance(value, (ScriptObject, dict)):
      out.update(named_attributes(value, f'{path}.'))
    elif not isinstance(value, np.ndarray):
      out[path] = value
  return out


def module_types(root: Any, prefix: str = '') -> Dict[str, str]:
  """The TorchScript class of every module in the tree, by dotted path ('' is the root)."""
  out = {prefix[:-1]: root.type_name} if isinstance(root, ScriptObject) else {}
  for name, value in _children(root):
    if isinstance(value, (ScriptObject, dict)):
      out.update(module_types(value, f'{prefix}{name}.'))
  return out
