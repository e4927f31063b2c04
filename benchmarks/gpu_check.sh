#!/usr/bin/env bash
# The GPU measurements of the fast/grouped training issue, as one script with a deadline per phase, for a session
# that is lent a GPU (the `device` tool runs it in the repository root; figures go to $OUT as they are made).
#   bash benchmarks/gpu_check.sh            # about 8 minutes on an H200
# Phases: (1) models per hour at 192 px, fast schedule, K = 1 4 16 32 64; (2) the same at 96 px; (3) time to quality
# of the fast schedule at 192 px on the nuclei crop (quality figures comparable with the CPU table).
set -u
OUT=${OUT:-benchmarks/results/gpu_run}
mkdir -p "$OUT"
PY=${PY:-python}
$PY -c "import torch, monai_singanseg" 2>/dev/null || $PY -m pip install -q -e . >"$OUT/pip.log" 2>&1
nvidia-smi --query-gpu=name,memory.total --format=csv >"$OUT/gpu.txt" 2>&1
timeout 240 $PY benchmarks/bench_grouped.py --device cuda --sizes 192 --groups 1 4 16 32 64 --measure 6 \
    >"$OUT/grouped_192.log" 2>&1
cp benchmarks/results/grouped_cuda.md "$OUT/grouped_cuda_192.md" 2>/dev/null
timeout 120 $PY benchmarks/bench_grouped.py --device cuda --sizes 96 --groups 1 16 64 --measure 6 \
    >"$OUT/grouped_96.log" 2>&1
cp benchmarks/results/grouped_cuda.md "$OUT/grouped_cuda_96.md" 2>/dev/null
timeout 150 $PY benchmarks/bench_time_to_quality.py run --data nuclei --max-size 192 --schedule fast --iters 600 \
    --device cuda --quiet >"$OUT/ttq_192.log" 2>&1
cp benchmarks/results/time_to_quality.json "$OUT/" 2>/dev/null
exit 0
