#!/usr/bin/env bash
# Time to quality at max size 192 (issue: fast schedule vs faithful) on a GPU, in slices that fit a 15-minute device
# session: every run is resumable (a checkpoint after every scale), so a faithful run that does not finish goes on in
# the next session. Run by the `device` tool in the repository root, carrying .whl/ (see gpu_check.sh) and
# benchmarks/results/models/time_to_quality (the checkpoints of earlier slices, if any):
#   bash benchmarks/gpu_time_to_quality.sh          # about 9 minutes
# Phase 1: the fast schedule, nuclei and MNI, seeds 0 and 1, four processes at once (a single model leaves the GPU
# idle). Phase 2: the faithful schedule, nuclei and MNI seed 0, two processes, until the deadline. What comes back
# in $OUT: the records (time_to_quality.json), the logs, and the checkpoints in 15 MB parts; on the CPU machine,
#   cat OUT/models.tar.part-* | tar -xf -      # then commit the records, carry the checkpoints next time
set -u
OUT=${OUT:-benchmarks/results/gpu_run}
FAST_S=${FAST_S:-240}
FAITHFUL_S=${FAITHFUL_S:-270}
mkdir -p "$OUT/logs"
PIP_LOG="$OUT/logs/pip.log"
source benchmarks/gpu_setup.sh
note "env: $($PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" 2>&1)"
pack() {
    cp benchmarks/results/time_to_quality.json "$OUT/" 2>/dev/null
    rm -f "$OUT"/models.tar.part-*
    tar -cf - benchmarks/results/models/time_to_quality 2>/dev/null | split -b 15M - "$OUT/models.tar.part-"
}
run() {  # data schedule seed deadline [--set overrides]
    local name="$1_$2_s$3${6:+_${6//[.=,]/_}}"
    timeout "$4" $PY benchmarks/bench_time_to_quality.py run --data "$1" --max-size 192 --schedule "$2" \
        --iters "$([ "$2" = fast ] && echo 600 || echo 2000)" --seed "$3" --device cuda --threads 2 --quiet \
        ${5:+"$5" "$6"} >"$OUT/logs/$name.log" 2>&1
    echo "$1 $2 seed $3 $6: rc $?" >>"$OUT/logs/$name.log"
}

note "phase 1: fast schedule, 192 px, nuclei + MNI, seeds 0 1, and nuclei with widen_from_previous (the finest"
note "scale's networks are the first of width 128 at 192 px) (deadline $FAST_S s)"
for data in nuclei mni; do for seed in 0 1; do run "$data" fast "$seed" "$FAST_S" & done; done
for seed in 0 1; do run nuclei fast "$seed" "$FAST_S" --set optim.widen_from_previous=1 & done
wait
tail -qn 1 "$OUT"/logs/*_fast_*.log | tee -a "$OUT/summary.txt"
pack

note "phase 2: faithful schedule, 192 px, nuclei + MNI seed 0, resumed where the last slice stopped (deadline $FAITHFUL_S s)"
for data in nuclei mni; do run "$data" faithful 0 "$FAITHFUL_S" & done
wait
tail -qn 1 "$OUT"/logs/*_faithful_*.log | tee -a "$OUT/summary.txt"
pack
note "done"
exit 0
