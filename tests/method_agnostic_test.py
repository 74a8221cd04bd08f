"""The config and the trainer never branch on method names (methods are plug-ins)."""

import ast
import os

import pytest

from vgrow_jax import method as method_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Modules that must work for any registered method without naming one.
AGNOSTIC = ('vgrow_jax/config.py', 'vgrow_jax/train.py')


def _docstrings(tree: ast.AST):
  """The string constants that are docstrings (prose may name a method)."""
  out = set()
  for node in ast.walk(tree):
    if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
      body = node.body
      if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
        out.add(id(body[0].value))
  return out


def method_name_uses(source: str):
  """``(line, text)`` of each string literal naming a method and each ``x.method ==`` test.

  A literal names a method when it is one (``'vgrow'``) or one of its dotted
  parts is (``'methods.gan.batch_size'``); f-strings count by their literal
  parts. An attribute named after a method (``cfg.vgrow``) reads a method's
  own section. Equality tests of any ``.method`` attribute or ``method``
  variable are branches on the method, whatever they compare with
  (membership, ``cfg.method in NAMES``, is not).
  """
  names = set(method_lib.NAMES)
  tree = ast.parse(source)
  docs = _docstrings(tree)
  found = []
  for node in ast.walk(tree):
    if (isinstance(node, ast.Constant) and isinstance(node.value, str)
        and id(node) not in docs):
      words = {w for part in node.value.split() for w in part.strip('\'"`,;:()[]').split('.')}
      if names & words:
        found.append((node.lineno, repr(node.value)))
    if isinstance(node, ast.Attribute) and node.attr in names:  # cfg.vgrow.divergence
      found.append((node.lineno, ast.unparse(node)))
    if isinstance(node, ast.Compare) and any(
        isinstance(op, (ast.Eq, ast.NotEq, ast.Is, ast.IsNot)) for op in node.ops):
      sides = [node.left] + list(node.comparators)
      if any((isinstance(s, ast.Attribute) and s.attr == 'method')
             or (isinstance(s, ast.Name) and s.id == 'method') for s in sides):
        found.append((node.lineno, ast.unparse(node)))
  return sorted(found)


@pytest.mark.parametrize('path', AGNOSTIC)
def test_module_names_no_method(path):
  with open(os.path.join(ROOT, path), encoding='utf-8') as f:
    found = method_name_uses(f.read())
  assert not found, f'{path} branches on or names methods: {found}'


def test_the_check_finds_what_it_looks_for():
  src = ('"""Docstrings may say vgrow."""\n'
         "if cfg.method == 'vgrow':\n  x = f'{cfg.vgrow.divergence}'\n"
         "y = 'methods.gan.batch_size'\nz = 'vgrow_jax'\n")
  assert method_name_uses(src) == [
      (2, "'vgrow'"), (2, "cfg.method == 'vgrow'"), (3, 'cfg.vgrow'),
      (4, "'methods.gan.batch_size'")]
  assert not method_name_uses('ok = cfg.method in method_lib.NAMES\n')
