#!/usr/bin/env bash
# B1: alternate vgrow_jax and the official PyTorch loop, REPEATS times each, same machine,
# same run, 2 threads each; prints the 1-minute load before each run and, at the end,
# min / median / max of each side's seconds per loop and their ratio of medians.
# Usage: benchmarks/b1_compare.sh /path/to/VGrow [REPEATS] [extra flags]
# B1_ISA=AVX2 emulates a CPU without AVX-512 on both sides (XLA's max ISA; ATen's and
# oneDNN's dispatch). B1_DEVICES=N splits vgrow_jax's batches over N host devices
# (outer_loop.py --devices; default 1).
set -euo pipefail
official=${1:?path to a checkout of xjtuygao/VGrow}
repeats=${2:-3}
shift 2 || true
flags=(--arch=resnet_sn --width=32 --channels=1 --image_size=32 --batch=64 --pool=4
       --particle_steps=5 --d_steps=1 --g_passes=1 --loops=3 --divergence=kl "$@")
jax_env=(XLA_FLAGS="${B1_ISA:+--xla_cpu_max_isa=$B1_ISA}")
jax_flags=(--devices="${B1_DEVICES:-1}")
torch_env=()
if [[ -n "${B1_ISA:-}" ]]; then
  torch_env=(ATEN_CPU_CAPABILITY="${B1_ISA,,}" ONEDNN_MAX_CPU_ISA="$B1_ISA")
fi
jax=() torch=()
load() { cut -d' ' -f1 /proc/loadavg; }
for i in $(seq "$repeats"); do
  l=$(load); s=$(env "${jax_env[@]}" python -m benchmarks.outer_loop "${flags[@]}" "${jax_flags[@]}" 2>/dev/null | tail -1 | cut -d' ' -f2)
  echo "jax $i load $l seconds_per_outer_loop $s"; jax+=("$s")
  l=$(load); s=$(env "${torch_env[@]}" python -m benchmarks.peer_pytorch --official_dir="$official" "${flags[@]}" | tail -1 | cut -d' ' -f2)
  echo "torch $i load $l seconds_per_outer_loop $s"; torch+=("$s")
done
python - "${jax[*]}" "${torch[*]}" <<'PY'
import statistics, sys
j, t = ([float(v) for v in a.split()] for a in sys.argv[1:3])
for name, v in (('jax', j), ('torch', t)):
  print(f'{name} min {min(v):.3f} median {statistics.median(v):.3f} max {max(v):.3f}')
print(f'torch/jax median ratio {statistics.median(t) / statistics.median(j):.2f}')
PY
