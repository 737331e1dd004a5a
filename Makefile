# lrltool: `make demo` (offline, tiny model, minutes) and `make test`; see README.md.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DELETE_ON_ERROR:
.SUFFIXES:
MAKEFLAGS += --no-builtin-rules

# LANG is also the locale variable: `make LANG=ron` must not hand LANG=ron to the recipes, where Python
# and sort would read it as a locale. Take the language from it and keep it out of their environment.
ifeq ($(origin LANG),command line)
LANGUAGE := $(LANG)
unexport LANG
else
LANGUAGE ?= ron
endif
unexport LANGUAGE
export PYTHONUTF8 := 1

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LRLTOOL := $(BIN)/lrltool
DEMO := demo

.PHONY: install test lint demo bench clean show-config

install: $(STAMP)

# Torch first, pinned (an unpinned torch pulls a multi-GB CUDA build), then the package under the constraints.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	touch $@

lint: install
	$(BIN)/ruff check lrltool tests benchmarks

test: install lint
	$(BIN)/python -m pytest -q

# --- the pipeline (pipeline.mk) --------------------------------------------------------------------
# Variables (defaults in pipeline.mk, all documented in README.md): MODEL, METHODS, SOURCES, TASKS,
# SEEDS, PRESET, DATA, OUT, FULL, FULL_FT, FUSION_METHODS, GLOTCC_CAP, PROMPT_MODEL, CAP_SIZES, ...
# They reach the sub-make as command-line variables; LANG does not reach any recipe's environment.
PIPELINE = $(MAKE) --no-print-directory -f pipeline.mk LRLTOOL=$(LRLTOOL)
# The language's code (ron_Latn, fao_Latn, bre_Latn) and the sources that have it, through the registry
# (ron, ro, ron_Latn, Romanian all work; see `lrltool languages`); pipeline.mk skips the steps whose data
# do not exist.
resolve = L=$$($(LRLTOOL) languages $(1) --field code) HAVE="$$($(LRLTOOL) languages $(1) --field sources)"
LANGS ?= $(LANGUAGE)
OUT ?= runs

.PHONY: all data adapters finetune metrics report sweep sizes protocols
all data adapters finetune metrics report sizes protocols: install
	+$(PIPELINE) $(call resolve,$(LANGUAGE)) $@

# Several languages, then one report over all of them.
sweep: install
	+for lang in $(LANGS); do $(PIPELINE) $(call resolve,$$lang) metrics; done
	$(LRLTOOL) report $(OUT)/*/metrics/*.jsonl --compare-paper -o $(OUT)/report
	@echo "report: $(OUT)/report/report.md"

# Prints the settings a run would use; also shows that LANG stays out of the recipes' environment.
show-config:
	@echo "language: $(LANGUAGE)"
	@echo "LANG in the recipe environment: $${LANG-<unset>}"

# --- the offline demo ----------------------------------------------------------------------------------
# The same chain on examples/ (Romanian) with tiny models built offline; minutes on a laptop.
DEMO_SETTINGS := OUT=$(DEMO) DATA=examples MODEL=$(DEMO)/models/tiny-xlmr PRESET= SEEDS=1 \
	METHODS="seq_bn seq_bn_inv" FULL=no FULL_FT=no FUSION_METHODS=seq_bn GLOTCC_CAP=1M \
	PROMPT_MODEL=$(DEMO)/models/tiny-llama PROMPT_SHOTS=0 \
	TRAIN_ARGS="--max-steps 150 --batch-size 8 --max-seq-length 128 --eval-steps 50 --lr 1e-3" \
	FINETUNE_ARGS="--epochs 3 --batch-size 16 --max-length 128" \
	REPORT_ARGS='--note "make demo: a tiny random-weight XLM-R (and a tiny LLaMA for prompting), a few hundred \
	training steps on the bundled Romanian sample. The numbers show that the whole pipeline runs; they say \
	nothing about what language adapters buy a real model (see README.md for the real recipe)."'
DEMO_JOBS ?= 2

$(DEMO)/models/tiny-xlmr/.done: | install
	$(LRLTOOL) tiny-model --arch xlmr -o $(@D)
	touch $@

$(DEMO)/models/tiny-llama/.done: | install
	$(LRLTOOL) tiny-model --arch llama --max-length 512 -o $(@D)
	touch $@

demo: install $(DEMO)/models/tiny-xlmr/.done $(DEMO)/models/tiny-llama/.done
	+OMP_NUM_THREADS=1 $(PIPELINE) -j$(DEMO_JOBS) --output-sync=target L=ron_Latn $(DEMO_SETTINGS) report
	@echo "demo report (a tiny random model: the numbers show the pipeline works, not what adapters buy):"
	@echo "$(DEMO)/ron_Latn/report/report.md (plots in $(DEMO)/ron_Latn/report/plots/)"

bench: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
