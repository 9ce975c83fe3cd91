# Two commands do all set-up on a fresh machine:  `make lab`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
PIP    := $(BIN)/python -m pip
STAMP  := $(VENV)/.cot-lab-installed

# torch first, then the kit. Without CUDA: the CPU build torch==2.13.0 from PyTorch's own CPU index (on Linux,
# PyPI's torch is a multi-GB CUDA build); where that index is unreachable, pip gives up on it within seconds
# (--timeout 10 --retries 0) and the same version comes from the default index. With CUDA: the torch range the
# pinned torchao (the compress extra in pyproject.toml, torchao 0.18) is tested with, never an unpinned torch.
TORCH_CPU       := torch==2.13.0
TORCH_CPU_INDEX := https://download.pytorch.org/whl/cpu
TORCH_GPU       := torch>=2.13,<2.14

.PHONY: setup lab test test-fast benchmark wheel clean

$(STAMP): pyproject.toml Makefile
	@test -x $(BIN)/python || $(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
		|| { echo "cot-lab needs Python >= 3.10 ($(PYTHON) is missing or older): make PYTHON=python3.X"; exit 1; }
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(PIP) install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(PIP) install -q "$(TORCH_GPU)"; \
	else \
		$(PIP) install -q --timeout 10 --retries 0 --index-url $(TORCH_CPU_INDEX) "$(TORCH_CPU)" \
		|| { echo "PyTorch's CPU index is unreachable: $(TORCH_CPU) from the default index instead"; \
		     $(PIP) install -q "$(TORCH_CPU)"; }; \
	fi
	$(PIP) install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

# JupyterLab on work/, the students' own copies (made once, never overwritten), so that autosave leaves
# notebooks/ as committed. `make lab REFRESH=02_scaling_laws` swaps in a fresh copy of one (yours is kept aside).
lab: setup
	$(BIN)/python -m cot_lab.lab --root $(CURDIR) $(if $(REFRESH),--refresh $(REFRESH))

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

benchmark: setup
	$(BIN)/python benchmarks/trainer_throughput.py

# sdist and wheel into dist/, from this environment's setuptools (no download; tests/test_wheel.py does the same)
wheel: setup
	rm -rf dist
	$(BIN)/python -m build --no-isolation --outdir dist .

clean:
	rm -rf $(VENV) build dist *.egg-info .pytest_cache
