# `make test` and `make demo` each create/refresh .venv; torch 2.13.0 (CPU wheel) goes in first so
# nothing later pulls a CUDA build of torch.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed

.PHONY: test demo bench venv clean

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev,demo,bench]"
	touch $(STAMP)

venv: $(STAMP)

test: $(STAMP)
	$(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m longdoc.demo

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_longformer.py

clean:
	rm -rf $(VENV) build src/*.egg-info
