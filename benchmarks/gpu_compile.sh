#!/usr/bin/env bash
# Does torch.compile pay for the per-scale training step on a GPU (inductor, and "reduce-overhead": CUDA graphs)?
# One phase with a deadline, for a session that is lent a GPU; the `device` tool runs it in the repository root,
# carrying .whl/ (see gpu_check.sh):
#   bash benchmarks/gpu_compile.sh          # at most 6 minutes on an H200
# bench_compile.py at 192 px on the coarsest, a middle and the finest scale, one model and a group of 16: the coarse
# scales are launch-bound at every group size (docs/benchmarks.md, "Many models in one process"), so that is where
# CUDA graphs could pay. Figures: $OUT/compile_cuda.md and .json (written after each group size), the log.
set -u
OUT=${OUT:-benchmarks/results/gpu_run}
mkdir -p "$OUT"
PIP_LOG="$OUT/pip.log"
source benchmarks/gpu_setup.sh
note "env: $($PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" 2>&1)"
note "bench_compile: 192 px, K = 1 then 16, scales 0 4 -1, modes default and reduce-overhead (deadline 330 s)"
timeout 330 $PY benchmarks/bench_compile.py --device cuda --threads 2 --size 192 --groups 1 16 --scales 0 4 -1 \
    --modes default reduce-overhead --reps 20 >"$OUT/compile.log" 2>&1
note "rc $?"
pkill -f bench_compile.py  # timeout stops the parent only; a measuring child process would outlive it
cp benchmarks/results/compile_cuda.md benchmarks/results/compile_cuda.json "$OUT/" 2>/dev/null
note "done"
exit 0
