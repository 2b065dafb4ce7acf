# `make test` and `make demo` each create/refresh .venv; torch 2.13.0 (CPU wheel) goes in first so
# nothing later pulls a CUDA build of torch.
PY ?= python3
VENV := .venv
BIN := $(VENV)/bin
TORCH := torch==2.13.0
STAMP := $(VENV)/.installed
# lsg-converter (the LSG oracle of the parity tests) imports only with transformers 4.36.2: own virtualenv
ORACLE := .venv-lsg
ORACLE_STAMP := $(ORACLE)/.installed
# transformers 4.57 (the last with a question-answering pipeline) is the QA parity oracle: own virtualenv
QA_ORACLE := .venv-qa
QA_ORACLE_STAMP := $(QA_ORACLE)/.installed

.PHONY: test demo demo-qa bench venv oracle clean tools

$(BIN)/python:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip

$(STAMP): $(BIN)/python pyproject.toml
	$(BIN)/pip install -q $(TORCH)
	$(BIN)/pip install -q -e ".[dev,demo,bench,summarization,tune,serve,export,ray,web-tests]"
	touch $(STAMP)

$(ORACLE_STAMP):
	$(PY) -m venv $(ORACLE)
	$(ORACLE)/bin/pip install -q --upgrade pip
	$(ORACLE)/bin/pip install -q $(TORCH)
	$(ORACLE)/bin/pip install -q transformers==4.36.2 lsg-converter==0.1.9 psutil
	touch $(ORACLE_STAMP)

$(QA_ORACLE_STAMP):
	$(PY) -m venv $(QA_ORACLE)
	$(QA_ORACLE)/bin/pip install -q --upgrade pip
	$(QA_ORACLE)/bin/pip install -q $(TORCH)
	$(QA_ORACLE)/bin/pip install -q transformers==4.57.6 tokenizers safetensors psutil
	touch $(QA_ORACLE_STAMP)

venv: $(STAMP)

oracle: $(ORACLE_STAMP) $(QA_ORACLE_STAMP)

# groff renders the man-pages set (longdoc.datasets.roff); Debian ships it in groff-base. Chromium and its
# driver run the web page's browser test (tests/test_web_page.py); installed from Debian when missing.
tools:
	@command -v groff >/dev/null || { echo "groff is missing: apt-get install groff-base" >&2; exit 1; }
	@command -v chromedriver >/dev/null || { [ "$$(id -u)" = 0 ] && (apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null); } || \
		{ echo "chromium is missing: apt-get install chromium chromium-driver" >&2; exit 1; }

test: $(STAMP) $(ORACLE_STAMP) $(QA_ORACLE_STAMP) tools
	LONGDOC_REQUIRE_ORACLE=1 $(BIN)/python -m pytest -q

demo: $(STAMP)
	$(BIN)/python -m longdoc.demo

# question answering over long pages (about 25 minutes on two cores: it fine-tunes a reader)
demo-qa: $(STAMP)
	$(BIN)/python -m longdoc.demo_qa

bench: $(STAMP)
	$(BIN)/python benchmarks/bench_longformer.py

clean:
	rm -rf $(VENV) $(ORACLE) $(QA_ORACLE) build src/*.egg-info
