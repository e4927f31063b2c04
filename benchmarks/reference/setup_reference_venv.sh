#!/usr/bin/env bash
# Creates benchmarks/reference/.venv-ref: an isolated virtual environment holding the reference SinGAN-Seg package
# (singan-seg-polyp 1.0.7, MIT) and only what its training and sampling code imports, for run_reference.py.
#
# - torch==2.13.0 is installed first and alone (the CPU build; never leave torch unpinned: that pulls a CUDA build).
# - singan-seg-polyp is installed with --no-deps: of its declared requirements (numpy, tqdm, pandas, pathlib, PyYAML,
#   scipy, scikit-image, scikit-learn, requests, natsort) the training/sampling modules (SinGAN/training.py,
#   functions.py, imresize.py, models.py, manipulate.py) need only numpy, scipy, scikit-image and scikit-learn
#   (functions.py imports sklearn.cluster at module level), plus matplotlib, which it imports but does not declare.
#   tqdm, pandas, PyYAML, requests and natsort serve only its checkpoint download/generate_data helpers, and the
#   `pathlib` requirement is an old backport that would shadow the standard library.
# - torchvision is deliberately NOT installed (the released wheels do not import beside this torch build);
#   run_reference.py supplies a stand-in at run time.
#
# Idempotent: a stamp file records what was installed; a second run with the same pins does nothing.
# Usage: bash benchmarks/reference/setup_reference_venv.sh      (PYTHON=python3.11 to choose the interpreter)
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
VENV="$HERE/.venv-ref"
PYTHON="${PYTHON:-python3}"
PY="$VENV/bin/python"
STAMP="$VENV/.reference-installed"

TORCH="torch==2.13.0"
REFERENCE="singan-seg-polyp==1.0.7"
DEPS=(numpy==2.4.6 scipy==1.17.1 scikit-image==0.26.0 scikit-learn==1.9.1 matplotlib==3.11.2)
SPEC="$TORCH $REFERENCE(--no-deps) ${DEPS[*]}"

check() {
    "$PY" - <<'PY'
import torch
import singan_seg_polyp.SinGAN.training  # noqa: F401  (functions, models, imresize come with it)
assert torch.__version__.startswith("2.13.0"), torch.__version__
PY
}

if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$SPEC" ] && check 2>/dev/null; then
    echo "reference venv up to date: $VENV"
    exit 0
fi

[ -x "$PY" ] || "$PYTHON" -m venv "$VENV"
"$PY" -m pip install --quiet "$TORCH"
"$PY" -m pip install --quiet --no-deps "$REFERENCE"
# torch repeated so that the resolver can never replace the CPU build
"$PY" -m pip install --quiet "$TORCH" "${DEPS[@]}"
check
echo "$SPEC" > "$STAMP"
echo "reference venv ready: $VENV"
