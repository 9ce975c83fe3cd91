# Two commands do all set-up on a fresh machine:  `make lab`  and  `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.cot-lab-installed

.PHONY: setup lab test test-fast benchmark clean

# torch first: without CUDA, the CPU build torch==2.13.0 (a looser requirement pulls a multi-GB CUDA build).
$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then \
		$(BIN)/python -m pip install -q "torch>=2.4"; \
	else \
		$(BIN)/python -m pip install -q "torch==2.13.0"; \
	fi
	$(BIN)/python -m pip install -q -e ".[test]"
	touch $(STAMP)

setup: $(STAMP)

lab: setup
	$(BIN)/python -m cot_lab.lab --root $(CURDIR)

test: setup
	$(BIN)/python -m pytest

test-fast: setup
	$(BIN)/python -m pytest -m "not slow and not browser"

benchmark: setup
	$(BIN)/python benchmarks/trainer_throughput.py

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
