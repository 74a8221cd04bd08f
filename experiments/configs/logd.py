"""VGrow with the logd divergence on the 5×5 grid (the default otherwise)."""

from experiments.configs import default


def get_config():
  return default.get_config('logd')
