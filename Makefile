# Quick start: `make demo` (master the built-in demo song) and `make test`.
# Both set up .venv on first use; a second run reuses it (the stamp file below).
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.stemmaster-installed
# A CPU build of torch on machines without a GPU. Keep your own torch with
# `make TORCH_SPEC= demo` (an empty spec installs no torch before the project).
TORCH_SPEC ?= torch==2.13.0

.PHONY: setup demo test bench clean-venv

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@if [ -n "$(TORCH_SPEC)" ]; then $(BIN)/python -m pip install --quiet "$(TORCH_SPEC)"; fi
	$(BIN)/python -m pip install --quiet -e ".[test]"
	touch $(STAMP)

demo: $(STAMP)
	$(BIN)/stemmaster demo

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python bench/bench_master.py

clean-venv:
	rm -rf $(VENV)
