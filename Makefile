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
VENV ?= .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
LRLTOOL := $(BIN)/lrltool
DEMO := demo

.PHONY: install test lint demo bench bench-gpu clean show-config

install: $(STAMP)

# The pipeline targets use an environment that already has lrltool as it is (VENV=path/to/env for one
# made elsewhere): a fresh clone (whose files are all newer than any stamp) must not reinstall it, and
# `make -n` must not plan that. Without one they build it (`make install`; rerun it after a dependency
# changes).
ENV := $(if $(wildcard $(BIN)/lrltool),,install)

# Torch first, pinned (an unpinned torch pulls a multi-GB CUDA build), then the package under the constraints,
# then its bytecode: an editable install writes none, and every command would compile lrltool at start-up.
$(STAMP): pyproject.toml constraints.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --disable-pip-version-check torch==2.13.0
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test]'
	$(BIN)/python -m compileall -q lrltool >/dev/null
	touch $@

lint: install
	$(BIN)/ruff check lrltool tests benchmarks

# Tests run in TEST_WORKERS processes (pytest-xdist; `auto` = one per core, 0 = in this process); the 20
# slowest are listed at the end, so that a CI log shows where its time went.
TEST_WORKERS ?= auto
test: install lint
	$(BIN)/python -m pytest -q -n $(TEST_WORKERS) --dist worksteal --durations=20

# --- the pipeline (pipeline.mk) --------------------------------------------------------------------
# Variables (defaults in pipeline.mk, all documented in README.md): MODEL, METHODS, SOURCES, TASKS,
# SEEDS, PRESET, DATA, OUT, FULL, FULL_FT, FUSION_TASKS, FUSION_METHODS, GLOTCC_CAP, PROMPT_MODEL, CAP_SIZES, ...
# They reach the sub-make as command-line variables; LANG does not reach any recipe's environment.
PIPELINE = $(MAKE) --no-print-directory -f pipeline.mk LRLTOOL=$(LRLTOOL)
# The language's code (ron_Latn, fao_Latn, bre_Latn) and the sources that have it, through the registry
# (ron, ro, ron_Latn, Romanian all work; see `lrltool languages`); pipeline.mk skips the steps whose data
# do not exist.
code_of = $$($(LRLTOOL) languages $(1) --field code)
resolve = L=$(call code_of,$(1)) HAVE="$$($(LRLTOOL) languages $(1) --field sources)"
LANGS ?= $(LANGUAGE)
OUT ?= runs

.PHONY: all data adapters finetune metrics report sweep sizes plan protocols
all data adapters finetune metrics report sizes plan protocols: $(ENV)
	+$(PIPELINE) $(call resolve,$(LANGUAGE)) $@

# Several languages, then one report over all of them. Each language is a sub-make of its own, so
# `make -j N sweep` (with SUBMIT on a cluster: README.md "Slurm") runs languages side by side too.
SWEEP_LANGS := $(addprefix sweep-,$(LANGS))
.PHONY: $(SWEEP_LANGS) sweep-conceptnet
sweep: $(SWEEP_LANGS)
	$(LRLTOOL) report $(OUT)/*/metrics/*.jsonl --compare-paper -o $(OUT)/report
	@echo "report: $(OUT)/report/report.md"

$(SWEEP_LANGS): sweep-%: sweep-conceptnet
	+$(PIPELINE) $(call resolve,$*) metrics

# ConceptNet for every language of the sweep that ConceptNet has and that lacks it, in one pass over the
# dump (pipeline.mk's per-language rule would read the 475 MB dump once per language). When SOURCES leaves ConceptNet out,
# nothing; when the one pass fails, each language's own rule fetches it and reports what is wrong.
SWEEP_CN := $(filter conceptnet,$(or $(SOURCES),conceptnet))
sweep-conceptnet: $(ENV)
	$(if $(SWEEP_CN),missing=$$(for lang in $(LANGS); do code=$(call code_of,$$lang); \
		$(LRLTOOL) languages $$lang --field sources | grep -qw conceptnet || continue; \
		test -e $(OUT)/$$code/data/conceptnet-triples.jsonl.zst || echo $$lang; done | paste -sd, -); \
	test -z "$$missing" || $(LRLTOOL) fetch conceptnet --lang $$missing $(if $(DATA),--input $(DATA)/conceptnet) \
		-o '$(OUT)/{lang}/data/conceptnet-triples.jsonl.zst' \
		|| echo "sweep: one pass over ConceptNet failed; each language fetches its own" >&2)

# Prints the settings a run would use (pipeline.mk's defaults, which depend on PRESET and MODEL; nothing is
# resolved or installed); also shows that LANG stays out of the recipes' environment.
show-config:
	@echo "language: $(LANGUAGE)"
	@echo "LANG in the recipe environment: $${LANG-<unset>}"
	@$(PIPELINE) -s L=$(LANGUAGE) HAVE=- LRLTOOL=true show-config

# --- the offline demo ----------------------------------------------------------------------------------
# The same chain on examples/ (Romanian) with tiny models built offline; minutes on a laptop.
# DEMO_DATA, DEMO_TRAIN_ARGS, DEMO_FINETUNE_ARGS: what the demo trains on and how long; the defaults are the
# demo's. tests/test_project.py passes smaller ones (the same chain, less work per step); users need not.
DEMO_DATA ?= examples
DEMO_TRAIN_ARGS ?= --max-steps 150 --batch-size 8 --max-length 128 --eval-steps 50 --lr 1e-3
DEMO_FINETUNE_ARGS ?= --epochs 3 --batch-size 16 --max-length 128
DEMO_SETTINGS := OUT=$(DEMO) DATA=$(DEMO_DATA) MODEL=$(DEMO)/models/tiny-xlmr PRESET= SEEDS=1 \
	METHODS="seq_bn seq_bn_inv" FULL=no FULL_FT=no FUSION_METHODS=seq_bn GLOTCC_CAP=1M \
	PROMPT_MODEL=$(DEMO)/models/tiny-llama PROMPT_SHOTS=0 \
	TRAIN_ARGS="$(DEMO_TRAIN_ARGS)" FINETUNE_ARGS="$(DEMO_FINETUNE_ARGS)" \
	REPORT_ARGS='--note "make demo: a tiny random-weight XLM-R (and a tiny LLaMA for prompting), a few hundred \
	training steps on the bundled Romanian sample. The numbers show that the whole pipeline runs; they say \
	nothing about what language adapters buy a real model (see README.md for the real recipe)."'
DEMO_JOBS ?= 2

$(DEMO)/models/tiny-xlmr/.done: | $(ENV)
	$(LRLTOOL) tiny-model --arch xlmr -o $(@D)
	touch $@

$(DEMO)/models/tiny-llama/.done: | $(ENV)
	$(LRLTOOL) tiny-model --arch llama --max-length 512 -o $(@D)
	touch $@

demo: $(ENV) $(DEMO)/models/tiny-xlmr/.done $(DEMO)/models/tiny-llama/.done
	+OMP_NUM_THREADS=1 $(PIPELINE) -j$(DEMO_JOBS) --output-sync=target L=ron_Latn $(DEMO_SETTINGS) report
	@echo "demo report (a tiny random model: the numbers show the pipeline works, not what adapters buy):"
	@echo "$(DEMO)/ron_Latn/report/report.md (plots in $(DEMO)/ron_Latn/report/plots/)"

bench: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

# GPU figures of base-size models with random weights (offline): benchmarks/gpu-results.json. Without a
# CUDA device it says so in one line and exits 0 (benchmarks/README.md "GPU").
bench-gpu: install
	$(BIN)/python benchmarks/gpu.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
