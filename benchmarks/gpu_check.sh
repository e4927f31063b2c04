#!/usr/bin/env bash
# The GPU measurements of the fast/grouped training issue and the downstream study's generators, as one script with
# a deadline per phase, for a session that is lent a GPU (the `device` tool runs it in the repository root; figures
# go to $OUT after every phase, so a phase that runs out of time still leaves the earlier ones).
#   bash benchmarks/gpu_check.sh            # at most 9 minutes on an H200
# The device image has torch but not MONAI: carry wheels in .whl/, made here with
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#       --platform manylinux2014_x86_64 -d .whl monai==1.6.1 nibabel==5.4.2 pydicom==3.0.2 pytorch-ignite==0.5.5 einops
#   (scikit-learn is imported only by diffusion clustering, lazily: not needed for these checks)
# and the study's datasets in benchmarks/downstream/cache/ (made here by data.py: the device has no nilearn).
# Phases: (1) models per hour at 192 px, fast schedule, K = 1 16 64, then K = 64 with cuDNN's benchmark mode;
# (2) the downstream study's generators (nuclei tiles and MNI152 ventricle slices, one model per training image,
# fast schedule, max size 192), both datasets at once, checkpoints packed for the trip back (resumable on a CPU).
set -u
OUT=${OUT:-benchmarks/results/gpu_run}
# what comes back is limited to a few files: logs and figures travel as one archive, the checkpoints in 15 MB parts
WORK=$(mktemp -d)
LOGS=$WORK/logs
mkdir -p "$OUT" "$LOGS"
PIP_LOG="$LOGS/pip.log"
source benchmarks/gpu_setup.sh
{ nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv; $PY -c "import torch, monai, ignite; \
print('torch', torch.__version__, 'monai', monai.__version__, 'ignite', ignite.__version__, \
'cuda', torch.cuda.is_available())"; nproc; } >"$LOGS/env.txt" 2>&1
note "env: $(tr '\n' ' ' <"$LOGS/env.txt")"
pack_logs() { cp "$OUT/summary.txt" "$LOGS/"; tar -czf "$OUT/results.tar.gz" -C "$WORK" logs 2>/dev/null; }

note "phase 1: grouped models per hour at 192 px"
timeout 150 $PY benchmarks/bench_grouped.py --device cuda --sizes 192 --groups 1 16 64 --measure 4 \
    >"$LOGS/grouped_192.log" 2>&1
timeout 45 $PY benchmarks/bench_grouped.py --device cuda --sizes 192 --groups 64 --measure 4 --cudnn-benchmark \
    >"$LOGS/grouped_192_cudnn.log" 2>&1
cp benchmarks/results/grouped_cuda.json benchmarks/results/grouped_cuda.md "$LOGS/" 2>/dev/null
grep -h "^{" "$LOGS"/grouped_192*.log | $PY -c "import json, sys
for line in sys.stdin:
    r = json.loads(line); print('  K', r['groups'], 'cudnn', r['cudnn_benchmark'], 'models/h', r['models_per_hour'],
                                's/iter', r['seconds_per_iteration'], 'GPU MiB', r.get('peak_gpu_mib'))" \
    | tee -a "$OUT/summary.txt"
pack_logs

note "phase 2: downstream study generators (train-many, fast, 192 px, one group per dataset)"
for d in nuclei ventricles; do
    ( start=$SECONDS
      timeout 230 $PY -m monai_singanseg.cli train-many "benchmarks/downstream/cache/$d/datalist.json" \
          --out "benchmarks/downstream/models/${d}_fast_192" --schedule fast --max-size 192 --group-size 8 \
          --device cuda --quiet >"$LOGS/study_$d.log" 2>&1
      echo "$d: rc $? in $((SECONDS - start)) s" >>"$LOGS/study_$d.log" ) &
done
wait
tail -n 1 "$LOGS"/study_*.log | tee -a "$OUT/summary.txt"
tar -cf - benchmarks/downstream/models 2>/dev/null | split -b 15M - "$OUT/study_models.tar.part-"
note "checkpoints: $(du -sh benchmarks/downstream/models | cut -f1)"
pack_logs

note "done"
exit 0
