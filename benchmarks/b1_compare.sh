#!/usr/bin/env bash
# B1: alternate vgrow_jax and the official PyTorch loop, REPEATS times each, same machine,
# same run, 2 threads each. Usage: benchmarks/b1_compare.sh /path/to/VGrow [REPEATS] [extra flags]
set -euo pipefail
official=${1:?path to a checkout of xjtuygao/VGrow}
repeats=${2:-3}
shift 2 || true
flags=(--arch=resnet_sn --width=32 --channels=1 --image_size=32 --batch=64 --pool=4
       --particle_steps=5 --d_steps=1 --g_passes=1 --loops=3 --divergence=kl "$@")
for i in $(seq "$repeats"); do
  echo "jax $i $(XLA_FLAGS=--xla_force_host_platform_device_count=1 python -m benchmarks.outer_loop "${flags[@]}" 2>/dev/null | tail -1)"
  echo "torch $i $(python -m benchmarks.peer_pytorch --official_dir="$official" "${flags[@]}" | tail -1)"
done
