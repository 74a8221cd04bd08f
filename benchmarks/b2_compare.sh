#!/usr/bin/env bash
# B2: the baselines' tuning round, then every method × {ring, grid} × 3 seeds at one
# wall-clock budget. Two runs at a time, each pinned to one core (taskset) with one thread, so
# every run gets one core-second per second of its budget.
#
#   benchmarks/b2_compare.sh tune    [BUDGET_S] [OUT]  # baselines: learning rates ×{0.2, 1, 5}, grid, seed 0
#   benchmarks/b2_compare.sh compare [BUDGET_S] [OUT]  # every method, the best rate from tune, 3 seeds
#   benchmarks/b2_compare.sh report  [BUDGET_S] [OUT]  # table + PNG from the records
set -euo pipefail
mode=${1:?tune, compare or report}
budget=${2:-90}
out=${3:-benchmarks/out_b2}
baselines=(gan wgan wgan_gp sngan fgan mmd vae stein_kl)
vgrow=(vgrow:kl vgrow:js vgrow:logd vgrow:jeffreys)
mkdir -p "$out"

lr_flags() {  # METHOD FACTOR -> --set flags scaling its optimisers' learning rates
  python - "$1" "$2" <<'PY'
import sys
from experiments.configs import toy
name, factor = sys.argv[1], float(sys.argv[2])
hp = toy.get_config(f'{name},grid').methods[name]
for opt in ('g_optimizer', 'd_optimizer'):
  if opt in hp:
    print(f'--set=methods.{name}.{opt}.learning_rate={hp[opt].learning_rate * factor:.3g}')
PY
}

run_jobs() {  # a file of toy_quality argument lines -> run them two at a time, one per core
  local jobs=$1
  for core in 0 1; do
    (awk "NR % 2 == $core" "$jobs" | while read -r line; do
       # shellcheck disable=SC2086
       OPENBLAS_NUM_THREADS=1 taskset -c "$core" python -m benchmarks.toy_quality $line \
         --max_seconds="$budget" --num_outer_loops=100000000 --out_dir="$out" \
         >> "$out/log_core$core.txt" 2>&1
     done) &
  done
  wait
}

best_factor() {  # METHOD -> the tuning factor with the most modes, then % high quality, on the grid
  python - "$out/toy_quality.jsonl" "$1" "$budget" <<'PY'
import json, sys
path, name, budget = sys.argv[1], sys.argv[2], float(sys.argv[3])
rs = [json.loads(l) for l in open(path) if l.strip()]
rs = [r for r in rs if r['method'] == name and r.get('tag', '').startswith('lr')
      and r['max_seconds'] == budget]
best = max(rs, key=lambda r: (r['modes'], r['high_quality']))
print(best['tag'][2:])
PY
}

case $mode in
  tune)
    : > "$out/jobs_tune.txt"
    for m in "${baselines[@]}"; do
      for f in 0.2 1 5; do
        echo "--methods=$m --datasets=grid --seeds=0 --tag=lr$f $(lr_flags "$m" "$f" | tr '\n' ' ')" \
          >> "$out/jobs_tune.txt"
      done
    done
    run_jobs "$out/jobs_tune.txt"
    for m in "${baselines[@]}"; do echo "$m $(best_factor "$m")"; done | tee "$out/tuned_factors.txt"
    ;;
  compare)
    : > "$out/jobs_compare.txt"
    for d in grid ring; do
      for m in "${vgrow[@]}"; do echo "--methods=$m --datasets=$d --seeds=0,1,2 --tag=tuned --refine_steps=10" >> "$out/jobs_compare.txt"; done
      while read -r m f; do
        echo "--methods=$m --datasets=$d --seeds=0,1,2 --tag=tuned $(lr_flags "$m" "$f" | tr '\n' ' ')" \
          >> "$out/jobs_compare.txt"
      done < "$out/tuned_factors.txt"
    done
    run_jobs "$out/jobs_compare.txt"
    ;;
  report)
    methods=$(IFS=,; echo "${vgrow[*]},${baselines[*]}")
    python -m benchmarks.toy_quality --report="$out/toy_quality.jsonl" --tag=tuned \
      --max_seconds="$budget" --methods="$methods"
    for f in 0.2 1 5; do
      python -m benchmarks.toy_quality --report="$out/toy_quality.jsonl" --tag="lr$f" \
        --max_seconds="$budget" --methods="$(IFS=,; echo "${baselines[*]}")" --datasets=grid --seeds=0
    done
    ;;
  *) echo "unknown mode $mode: tune, compare or report" >&2; exit 2 ;;
esac
