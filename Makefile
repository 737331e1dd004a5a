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

# Prints the settings a run would use; also shows that LANG stays out of the recipes' environment.
show-config:
	@echo "language: $(LANGUAGE)"
	@echo "LANG in the recipe environment: $${LANG-<unset>}"

demo: install
	$(BIN)/python -m lrltool.demo --out $(DEMO) --lang $(LANGUAGE)

bench: install
	$(BIN)/python -m pip install -q --disable-pip-version-check -c constraints.txt -e '.[test,bench]'
	$(BIN)/python benchmarks/run.py

clean:
	rm -rf $(DEMO) .pytest_cache .ruff_cache
