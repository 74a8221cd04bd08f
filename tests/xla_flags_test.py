"""The XLA flags ``import vgrow_jax`` sets: which, when, and that they act."""

import os
import subprocess
import sys

import pytest

from vgrow_jax import xla_flags

_FLAG = '--xla_cpu_experimental_ynn_fusion_type=-individual_convolution'


def test_adds_the_flags_to_empty_or_unrelated_xla_flags():
  assert xla_flags.flags_to_add('', '0.10.2', {}) == (_FLAG,)
  assert xla_flags.flags_to_add('--xla_force_host_platform_device_count=8', '0.10.0',
                                {}) == (_FLAG,)


def test_keeps_the_users_own_setting_of_a_flag():
  assert xla_flags.flags_to_add('--xla_cpu_experimental_ynn_fusion_type=-dot', '0.10.2',
                                {}) == ()


def test_opt_out_and_unmeasured_jaxlib_versions_add_nothing():
  assert xla_flags.flags_to_add('', '0.10.2', {'VGROW_JAX_XLA_FLAGS': '0'}) == ()
  assert xla_flags.flags_to_add('', '0.10.2', {'VGROW_JAX_XLA_FLAGS': '1'}) == (_FLAG,)
  assert xla_flags.flags_to_add('', '0.11.0', {}) == ()
  assert xla_flags.flags_to_add('', '0.9.2', {}) == ()
  assert xla_flags.flags_to_add('', '0.10.3rc1', {}) == (_FLAG,)


def test_apply_appends_once_and_never_after_the_backend_started(monkeypatch):
  monkeypatch.setattr(xla_flags, '_backend_started', lambda: False)
  env = {'XLA_FLAGS': '--xla_cpu_max_isa=AVX2'}
  monkeypatch.setattr(xla_flags.jaxlib, '__version__', '0.10.2')
  assert xla_flags.apply(env) == (_FLAG,)
  assert env['XLA_FLAGS'] == f'--xla_cpu_max_isa=AVX2 {_FLAG}'
  assert xla_flags.apply(env) == ()  # already there
  monkeypatch.setattr(xla_flags, '_backend_started', lambda: True)
  env = {}
  assert xla_flags.apply(env) == () and 'XLA_FLAGS' not in env


# A 3×3 convolution at the SN-ResNet G's widest shape: YNNPACK takes it by
# default in jaxlib 0.10; after `import vgrow_jax` XLA's own convolution does.
_PROBE = """
import vgrow_jax, jax, jax.numpy as jnp
f = lambda x, k: jax.lax.conv_general_dilated(x, k, (1, 1), 'SAME',
                                              dimension_numbers=('NHWC', 'HWIO', 'NHWC'))
hlo = jax.jit(f).lower(jnp.ones((64, 32, 32, 32)), jnp.ones((3, 3, 32, 32))).compile().as_text()
print('ynn' in hlo)
"""


@pytest.mark.skipif(xla_flags.flags_to_add('', xla_flags.jaxlib.__version__, {}) == (),
                    reason='no flags for this jaxlib')
@pytest.mark.parametrize('opt_out,uses_ynn', [('1', 'False'), ('0', 'True')])
def test_import_vgrow_jax_keeps_convolutions_off_ynnpack(opt_out, uses_ynn):
  env = {k: v for k, v in os.environ.items() if k != 'XLA_FLAGS'}
  env['VGROW_JAX_XLA_FLAGS'] = opt_out
  out = subprocess.run([sys.executable, '-c', _PROBE], env=env, capture_output=True,
                       text=True, check=True).stdout.split()
  assert out[-1] == uses_ynn
