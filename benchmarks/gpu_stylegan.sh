#!/usr/bin/env bash
# The StyleGAN generator measured on a lent GPU (issue 30, part 3): bench_stylegan.py on the study's tasks nuclei64
# and ventricles_axial, both designs, at 64 px, then 128 px with the time left; whole script under 9 minutes. The
# `device` tool runs it in the repository root:
#   bash benchmarks/gpu_stylegan.sh                                   # about 8.5 minutes
# carrying (paths ignored by git, made on the CPU machine first):
#   .whl/                              the wheels of gpu_check.sh (the device image has torch, not MONAI)
#   benchmarks/downstream/cache        the study's datasets (python benchmarks/downstream/data.py's prepare; the
#                                      device has no nilearn to cut the MNI slices)
#   benchmarks/downstream/models       the SinGAN-Seg (and diffusion) models to compare with, e.g. a copy of the
#                                      study's nuclei64_fast_192_<digest>/ (11 MB; the 64 MiB carry limit counts)
#   benchmarks/results/models/stylegan the StyleGAN checkpoints of an earlier slice, if any: every model resumes
# Every phase runs under `timeout` and its own --deadline / --train-deadline (the models stop with a checkpoint and
# are still measured), and what is done so far is copied to $OUT after every phase. What comes back in $OUT:
# summary.txt, the records stylegan_gpu64.json / .md, stylegan_gpu128.json / .md, the pictures, the logs, and the
# StyleGAN checkpoints ($MODELS) in 15 MB parts. To record the figures, on the CPU machine:
#   cp OUT/stylegan_gpu*.json OUT/stylegan_gpu*.md OUT/stylegan_*_gpu*.png benchmarks/results/
#   cat OUT/stylegan_models.tar.part-* | tar -xf -       # the checkpoints, to carry next time (resumed, not redone)
# then commit them with the date and the device in the message and in docs/stylegan.md ("measured <date> on one
# <GPU name> (summary.txt's env line), <steps> steps"): the .json's machine record holds the date, torch and GPU.
set -u
OUT=${OUT:-benchmarks/results/gpu_run}
STEPS=${STEPS:-20000}            # more than fit: the deadlines decide how far each model trains (said in the tables)
P64_S=${P64_S:-290}              # phase 1: both tasks at once, two designs each, training plus measuring
P128_S=${P128_S:-170}            # phase 2, if at least P128_S + 20 seconds are left of the 520 s budget
BUDGET_S=${BUDGET_S:-520}
TRAIN_PCT=${TRAIN_PCT:-70}       # share of a phase that trains
DEVICE=${DEVICE:-cuda}           # a rehearsal on the CPU: DEVICE=cpu with tiny BENCH_ARGS (see docs/stylegan.md)
BENCH_ARGS=${BENCH_ARGS:-}       # more bench_stylegan.py options, e.g. --widths 16 16 16 16 16 --latent-dim 16
RES=${RES:-benchmarks/results}   # where the bench writes (the records are copied to $OUT from here)
MODELS=${MODELS:-benchmarks/results/models/stylegan}   # the StyleGAN checkpoints (carried in, packed back)
mkdir -p "$OUT/logs"
PIP_LOG="$OUT/logs/pip.log"
source benchmarks/gpu_setup.sh
note "env: $($PY -c "import torch; print(torch.__version__, torch.cuda.get_device_name(0))" 2>&1)"
pack() {
    cp "$RES"/stylegan_gpu*.json "$RES"/stylegan_gpu*.md "$RES"/stylegan_*_gpu*.png "$OUT/" 2>/dev/null
    rm -f "$OUT"/stylegan_models.tar.part-*
    [ -d "$MODELS" ] && tar -cf - "$MODELS" 2>/dev/null | split -b 15M - "$OUT/stylegan_models.tar.part-"
}
run() {  # task resolution phase-seconds: one bench process (4 CPU threads for the metrics; two run at once); its
        # training gets TRAIN_PCT % of the phase, split by design; the rest measures (SWD of 64 samples against
        # every pool image runs on the CPU: tens of seconds at 128 px)
    local train=$(( $3 * TRAIN_PCT / 100 / 2 ))
    timeout "$3" $PY benchmarks/bench_stylegan.py --tasks "$1" --resolutions "$2" --steps "$STEPS" --device "$DEVICE" \
        --batch-size 16 --checkpoint-every 250 --num 64 --threads 4 --train-deadline "$train" --deadline $(( $3 - 15 )) \
        --tag "gpu$2_$1" --results "$RES" --models "$MODELS" --quiet $BENCH_ARGS >"$OUT/logs/$1_$2.log" 2>&1
    echo "$1 $2 px: rc $? in the phase's $3 s" >>"$OUT/logs/$1_$2.log"
}
merge() {  # the two tasks' records of one resolution as one stylegan_gpu<px>.json / .md
    $PY - "$1" "$RES" <<'EOF'
import json, sys
from pathlib import Path
sys.path.insert(0, "benchmarks")
from bench_stylegan import markdown
px, results = sys.argv[1], Path(sys.argv[2])
parts = [json.loads(p.read_text()) for p in sorted(results.glob(f"stylegan_gpu{px}_*.json"))]
if parts:
    report = {**parts[0], "training": [r for p in parts for r in p["training"]],
              "quality": [q for p in parts for q in p["quality"]], "skipped": [s for p in parts for s in p["skipped"]]}
    (results / f"stylegan_gpu{px}.json").write_text(json.dumps(report, indent=1))
    (results / f"stylegan_gpu{px}.md").write_text(markdown(report))
    print(markdown(report))
EOF
}

phase() {  # phase PX DEADLINE_S: both tasks at PX px at once, their last log lines and merged records, then packed
    for task in nuclei64 ventricles_axial; do run "$task" "$1" "$2" & done
    wait
    tail -qn 1 "$OUT"/logs/*_"$1".log | tee -a "$OUT/summary.txt"
    merge "$1" >>"$OUT/summary.txt" 2>&1
    pack
}

note "phase 1: 64 px, nuclei64 and ventricles_axial at once, joint and mask_then_image (deadline $P64_S s)"
phase 64 "$P64_S"

left=$(( BUDGET_S - (SECONDS - T0) ))
if [ "$left" -ge $(( P128_S + 20 )) ]; then
    note "phase 2: 128 px, both tasks at once (deadline $P128_S s)"
    phase 128 "$P128_S"
else
    note "phase 2 (128 px) skipped: $left s left of $BUDGET_S"
fi
note "done"
exit 0
