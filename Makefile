# Two commands on a fresh machine: `make demo` (set up, train on the shipped nuclei sample, write samples and
# pictures) and `make test` (set up, run the tests). Setup is a virtual environment in .venv that sees the system's
# packages, so a torch the user already has is kept; only when none is importable is torch 2.13.0 installed, from
# TORCH_INDEX_URL when given (e.g. PyTorch's CPU wheel index), else from the configured package index.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed

.PHONY: setup demo test benchmark clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv --system-site-packages $(VENV)
	$(PY) -c "import torch" 2>/dev/null || $(PY) -m pip install "torch==2.13.0" $(if $(TORCH_INDEX_URL),--index-url $(TORCH_INDEX_URL))
	$(PY) -m pip install -e ".[test]"
	touch $(STAMP)

demo: setup
	$(PY) scripts/demo.py --out demo_output

test: setup
	$(PY) -m pytest -q tests

benchmark: setup
	$(PY) benchmarks/bench_speed.py

clean:
	rm -rf $(VENV) demo_output .pytest_cache
