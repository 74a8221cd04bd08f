"""The data modules import in one direction: data -> image_data -> dataset."""

import ast
import os

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def _vgrow_imports(module: str):
  """The vgrow_jax modules ``vgrow_jax/<module>.py`` imports, at any depth of its code."""
  with open(os.path.join(ROOT, 'vgrow_jax', f'{module}.py'), encoding='utf-8') as f:
    tree = ast.parse(f.read())
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, ast.ImportFrom) and node.module == 'vgrow_jax':
      out |= {a.name for a in node.names}
    elif isinstance(node, ast.ImportFrom) and (node.module or '').startswith('vgrow_jax.'):
      out.add(node.module.split('.')[1])
    elif isinstance(node, ast.Import):
      out |= {a.name.split('.')[1] for a in node.names if a.name.startswith('vgrow_jax.')}
  return out


def test_data_modules_import_one_way():
  assert _vgrow_imports('dataset') == set()
  assert 'data' not in _vgrow_imports('image_data')
  assert {'dataset', 'image_data'} <= _vgrow_imports('data')


def test_the_primitives_are_one_type_wherever_they_are_named():
  from vgrow_jax import data, dataset, image_data  # pylint: disable=g-import-not-at-top
  assert data.Dataset is dataset.Dataset and data.read_npz is dataset.read_npz
  assert data.DataError is dataset.DataError is image_data.DataError
