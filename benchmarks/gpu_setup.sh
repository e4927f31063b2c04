# Sourced by the device scripts (gpu_check.sh, gpu_time_to_quality.sh): Python, a clock for the summary, and the
# carried wheels of .whl/ installed when the device image lacks MONAI. Needs OUT and PIP_LOG set by the caller.
export PYTHONUNBUFFERED=1
PY=${PY:-python3}
T0=$SECONDS
note() { echo "[$((SECONDS - T0)) s] $*" | tee -a "$OUT/summary.txt"; }
if [ -d .whl ] && ! $PY -c "import monai" 2>/dev/null; then
    $PY -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl \
        >"$PIP_LOG" 2>&1
    export PYTHONPATH=/tmp/site
fi
export PYTHONPATH=${PYTHONPATH:+$PYTHONPATH:}$PWD
