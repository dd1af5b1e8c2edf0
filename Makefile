# CAPPI developer commands. `make test` and `make run` set up everything they need from this repo's files.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup run test lint format bench clean

help:
	@echo "make run     set up and run CAPPI locally (local mode)"
	@echo "make test    set up the virtualenv and run lint plus every test"
	@echo "make bench   run the benchmarks under bench/"
	@echo "make lint    ruff check and format check"
	@echo "make format  ruff format and autofix"

# The virtualenv is rebuilt whenever a requirements file changes.
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

test: lint
	$(BIN)/python -m pytest

run: $(STAMP)
	@echo "Local mode (make run) is not built yet: it is the local-mode issue. Until then, see README.md." >&2
	@exit 1

bench: $(STAMP)
	$(BIN)/python bench/ingest.py

clean:
	rm -rf $(VENV) cdk.out .pytest_cache .ruff_cache .hypothesis
