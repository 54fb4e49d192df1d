# Cadenza: `make up` starts the whole mesh on localhost, `make test` checks everything.
# Every target installs what it needs first, so both work on a fresh clone.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto' | sort)

.DEFAULT_GOAL := help
.PHONY: help install system-deps protos models text-model catalog up down status test lint bench eval-recs train-jsb eval-jsb poly-model poly-model-retrain alerts clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

$(STAMP): pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -e '.[train,dev]'
	@touch $@

install: $(STAMP) system-deps ## Create .venv and install Python and Debian dependencies

# PyTriton pins numpy<2, so the real Triton server used by tests and bench gets its own venv.
TRITON_VENV := .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed

$(TRITON_STAMP):
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install -q --disable-pip-version-check 'nvidia-pytriton==0.7.0' 'numpy<2' onnxruntime
	@touch $@

triton-env: $(TRITON_STAMP) ## Create .venv-triton: PyTriton's bundled Triton server (~450 MB, ~25 s)

system-deps: ## Install the Debian packages the mesh needs (only as root; skipped otherwise)
	@scripts/system-deps.sh

TEXT_MODEL := models/text/model_card.json

$(TEXT_MODEL): scripts/export_text_model.py | $(STAMP)
	$(PY) scripts/export_text_model.py --out models/text/minilm-l6-v2.onnx

text-model: $(TEXT_MODEL) ## Export the MiniLM sentence encoder to ONNX in models/text/ (~10 s)

POLY_MODEL := models/generate/cadenza-poly/model.onnx

# No file prerequisites: the committed model.onnx is never rebuilt by `make models`.
$(POLY_MODEL): | $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m services.generate.training.poly

poly-model: $(POLY_MODEL) ## Train the served generate model cadenza-poly when absent (~50 min, 1 thread)

poly-model-retrain: install ## Retrain cadenza-poly from scratch, fixed seed (~50 min, 1 thread)
	OMP_NUM_THREADS=1 $(PY) -m services.generate.training.poly --force

models: text-model poly-model ## Build every model the mesh serves (skips what exists)

protos: $(STAMP) ## Regenerate the Python code from protos/ (committed)
	$(PY) scripts/gen_protos.py --out .

up: install models ## Start the mesh on localhost (builds the demo catalogue if empty)
	$(PY) -m cadenza.devmesh up

catalog: up ## Build the demo catalogue (music21 corpus -> FluidSynth -> ingest); skips what exists
	$(PY) scripts/build_catalog.py

down: ## Stop the mesh started by `make up`
	@$(PY) -m cadenza.devmesh down

status: ## Show what `make up` started and whether it is healthy
	@$(PY) -m cadenza.devmesh status

test: install models triton-env ## Run the whole test suite (real processes, real sockets)
	$(PY) -m pytest -q

lint: install ## ruff on everything, mypy --strict on the shared kit
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install ## Measure speed: ours vs the named reference, side by side, as a table
	$(PY) -m bench

eval-recs: install models ## Recommendation quality on Last.fm through the gateway vs baselines (~15 min)
	$(PY) -m scripts.eval_recs

train-jsb: install ## Retrain the JSB Chorales benchmark model from scratch, fixed seed (~25 min, 1 thread)
	OMP_NUM_THREADS=1 $(PY) -m services.generate.training.jsb train --out models/generate/jsb

eval-jsb: install ## JSB Chorales test NLL of the committed model beside the published table (~1 min)
	OMP_NUM_THREADS=1 $(PY) -m services.generate.training.jsb eval --out models/generate/jsb

alerts: install ## Regenerate the SLO rules, then promtool check and unit-test every alert rule
	$(PY) deploy/prometheus/rules/slo_rules.py
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

clean: down ## Remove run state and caches (keeps .venv and data)
	rm -rf .run .pytest_cache .ruff_cache .mypy_cache
