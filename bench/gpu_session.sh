#!/usr/bin/env bash
# Everything a lent GPU machine should do, in one call: build the package and its extension,
# run the GPU-marked kernel and op tests, every GPU benchmark, then the regression gate
# (`pytest bench/ --benchmark-only`: ours/peer ratios, and the committed per-GPU baseline when
# there is one). Logs and markdown tables go under $OUT (default bench/out).
#
#   GPU machine:    bash bench/gpu_session.sh
#   CPU rehearsal:  SIZES=tiny bash bench/gpu_session.sh    (tests/test_gpu_session.py)
#
# SIZES=tiny changes only the shapes (the benches' --tiny: Triton through its interpreter);
# every step runs in both modes. The machine has only its image's packages (DESIGN.md), so:
# `python3 -m pip` (a bare `pip` may belong to another interpreter), no build isolation and no
# dependency resolution (there is no network), and steps that need an optional package (cobra
# for the synthetic planets) say so and are skipped when it is missing.
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${OUT:-bench/out}
SIZES=${SIZES:-full}
case "$SIZES" in
    full) size_flag=() ;;
    tiny) size_flag=(--tiny); export TRITON_INTERPRET=${TRITON_INTERPRET:-1} ;;
    *) echo "SIZES must be full or tiny, got '$SIZES'" >&2; exit 2 ;;
esac
mkdir -p "$OUT"
export PYTHONUNBUFFERED=1
# A throwaway machine's system Python may be marked externally managed (PEP 668).
export PIP_BREAK_SYSTEM_PACKAGES=1
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

has_module() { python3 -c "import $1" >/dev/null 2>&1; }

{ date -u; nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null
  python3 -c "import sys, torch, triton; print('python', sys.version.split()[0], 'torch',
torch.__version__, 'triton', triton.__version__, 'cuda', torch.version.cuda)"
} | tee "$OUT/machine.txt"

step build python3 -m pip install -e . --no-build-isolation --no-deps -q
step extension python3 -c "import astrobio._C
from astrobio.ops.spmm_cuda import cuda_spmm_available
print('astrobio._C built; CUDA spmm backend', 'available' if cuda_spmm_available()
      else 'unavailable (built without nvcc, or no GPU)')"
step gpu_tests python3 -m pytest -q -m gpu tests/kernels tests/ops -p no:cacheprovider
for op in conv3d spmm cross_attention; do
    step "bench_$op" python3 "bench/bench_$op.py" "${size_flag[@]}"
done
# These three run on synthetic planets, whose metabolic networks come from cobra's bundled
# E. coli model (astrobio/data/synthetic/biosphere.py): the GPU image has no cobra.
if has_module cobra; then
    if [ "$SIZES" = tiny ]; then
        step bench_memory_13b python3 bench/bench_memory_13b.py --dry-run
    else
        step bench_memory_13b python3 bench/bench_memory_13b.py
    fi
    step bench_graph python3 bench/bench_graph.py
    step bench_system_step python3 bench/bench_system_step.py
else
    echo "=== bench_memory_13b, bench_graph, bench_system_step: skipped (the synthetic planets need cobra, which this machine lacks)"
fi

# The regression gate. A committed baseline for this GPU (bench/baselines/<gpu>.json, written
# by --benchmark-json on an earlier run of this script and reviewed) makes a slowdown fail.
gpu=$(python3 -c "import re, torch
print(re.sub(r'[^A-Za-z0-9]+', '_', torch.cuda.get_device_name()).strip('_')
      if torch.cuda.is_available() else 'cpu')")
gate=(python3 -m pytest bench/ -p no:cacheprovider -q --benchmark-storage="file://$OUT/benchmarks"
      --benchmark-json="$OUT/gate-$gpu.json")
if [ "$SIZES" = tiny ]; then
    gate+=(--benchmark-disable)  # every benchmark body runs once, untimed
else
    gate+=(--benchmark-only)
fi
if [ -f "bench/baselines/$gpu.json" ]; then
    gate+=(--benchmark-compare="bench/baselines/$gpu.json" --benchmark-compare-fail=median:25%)
else
    echo "=== gate: no baseline bench/baselines/$gpu.json yet; after review, commit $OUT/gate-$gpu.json there"
fi
step gate "${gate[@]}"
echo "logs and tables in $OUT; copy the figures into bench/RESULTS.md"
exit $status
