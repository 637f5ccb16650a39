#!/usr/bin/env bash
# Everything a lent GPU machine should do, in one call: build the package and its extension,
# run the GPU-marked tests, then every benchmark, writing logs and markdown tables under $OUT
# (default bench/out). Rehearse it on the CPU with DRY_RUN=1.
#   device: bash bench/gpu_session.sh            CPU rehearsal: DRY_RUN=1 bash bench/gpu_session.sh
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
dry=${DRY_RUN:+--dry-run}
status=0

step() {  # step NAME COMMAND...: run, log to $OUT/NAME.log, remember failures
    local name=$1; shift
    echo "=== $name: $*"
    local started=$SECONDS
    "$@" 2>&1 | tee "$OUT/$name.log"
    local rc=${PIPESTATUS[0]}
    echo "=== $name: exit $rc in $((SECONDS - started)) s"
    [ "$rc" -eq 0 ] || status=1
}

{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  python3 -c "import torch, triton; print('torch', torch.__version__, 'triton', triton.__version__)"
} | tee "$OUT/machine.txt"
if [ -z "$dry" ]; then
    step build pip install -e . --no-build-isolation --no-deps -q
    step gpu_tests python3 -m pytest -q -m gpu tests -p no:cacheprovider
fi
for op in conv3d spmm cross_attention; do
    step "bench_$op" python3 "bench/bench_$op.py" $dry
done
step bench_memory_13b python3 bench/bench_memory_13b.py $dry
if [ -z "$dry" ]; then
    step bench_graph python3 bench/bench_graph.py
    step bench_system_step python3 bench/bench_system_step.py
fi
echo "logs and tables in $OUT; copy the figures into bench/RESULTS.md"
exit $status
