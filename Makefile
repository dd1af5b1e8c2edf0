# CAPPI developer commands. `make test` and `make run` set up everything they need from this repo's files.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: help setup run test lint typecheck format bench clean synth diff deploy bootstrap check-stage

help:
	@echo "make run     set up and run CAPPI locally (local mode); make run ARGS=--fresh starts clean"
	@echo "make test    set up the virtualenv and run lint plus every test"
	@echo "make bench   run the benchmarks under bench/"
	@echo "make lint    ruff check and format check"
	@echo "make typecheck   mypy over every product folder: functions/, clients/python/, local/, cli/, infra/, tools/"
	@echo "make format  ruff format and autofix"
	@echo "make synth   write both stages' CloudFormation templates to cdk.out/ (offline, no AWS account)"
	@echo "make diff STAGE=stage|prod     compare a stage's stack with what is deployed (AWS credentials)"
	@echo "make deploy STAGE=stage|prod   synth, preflight, deploy and smoke-check a stage's stack (AWS credentials)"
	@echo "make bootstrap [ENV=aws://ACCOUNT/REGION]   one-time CDK bootstrap of an account and region"

# Two layers in one virtualenv: local mode's (runtime requirements and moto: what `make run` needs) and the
# development layer on top (the CDK, linters, test tools: `make test`, `make synth`). Each is reinstalled whenever
# one of its requirements files changes.
LOCAL_STAMP := $(VENV)/.installed-local
LOCAL_REQUIREMENTS := requirements.txt requirements-local.txt pyproject.toml functions/pyproject.toml \
	clients/python/pyproject.toml

# Local mode's layer is installed with uv (from PyPI, pinned here): it resolves and fetches in parallel, which makes a
# cold first `make run` (empty caches) take about 8 s of installing instead of about 28 s with pip (measured here;
# README, Quick start). uv goes into .tools/, outside the virtualenv; where it cannot be had, pip does the same work.
UV_VERSION := 0.9.5
UV := .tools/uv/bin/uv

$(LOCAL_STAMP): $(LOCAL_REQUIREMENTS)
	@echo "Setting up local mode in $(VENV)/: CAPPI's runtime libraries (boto3, Powertools, requests, PyJWT) and moto."
	@echo "The first run installs about 160 MB (about 10 s here; a first answer 13-15 s after make run); later runs start at once."
	@test -x $(UV) || $(PYTHON) -m pip install --quiet --disable-pip-version-check --target .tools/uv uv==$(UV_VERSION) \
		>/dev/null 2>&1 || echo "(uv unavailable: installing with pip, which takes longer)"
	@if test -x $(UV); then \
		test -x $(BIN)/python || $(UV) venv --quiet --seed --python $(PYTHON) $(VENV); \
		$(UV) pip install --quiet --python $(BIN)/python -r requirements-local.txt; \
	else \
		test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); \
		$(BIN)/python -m pip install --quiet --progress-bar off -r requirements-local.txt; \
	fi
	touch $(LOCAL_STAMP)

$(STAMP): $(LOCAL_STAMP) requirements-dev.txt
	@echo "Setting up the development tools in $(VENV)/: the AWS CDK, cdk-nag, cfn-lint, pytest, ruff, mypy."
	@echo "The first time adds about 500 MB (the CDK is most of it) and takes a few minutes."
	$(BIN)/python -m pip install --quiet --progress-bar off -r requirements-dev.txt
	touch $(STAMP)

setup: $(STAMP)

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

format: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

typecheck: $(STAMP)
	$(BIN)/mypy

test: lint typecheck
	$(BIN)/python -m pytest

# Local mode: the whole of CAPPI on loopback (see README "Local mode" for the CAPPI_* variables).
run: $(LOCAL_STAMP)
	$(BIN)/python -m local $(ARGS)

bench: $(STAMP)
	$(BIN)/python bench/ingest.py
	$(BIN)/python bench/ingest.py --rows 1000000
	$(BIN)/python bench/query.py
	$(BIN)/python bench/local_load.py
	$(BIN)/python bench/cost.py

clean:
	rm -rf $(VENV) .tools cdk.out .pytest_cache .ruff_cache .mypy_cache .hypothesis build node_modules

# --- AWS CDK (see README, Operations) ---------------------------------------------------------------------------
# The CDK CLI comes from package.json/package-lock.json; the app it runs is the Python one in app.py.
NODE_STAMP := node_modules/.installed
CDK ?= node_modules/.bin/cdk
# Where `make deploy` synthesizes the stage's cloud assembly: preflight checks its template, cdk deploys it.
CDK_OUT ?= cdk.out
# jsii's Node end-of-life banner is noise; the CLI's telemetry is off so nothing leaves the machine unasked.
CDK_ENV := JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20 CDK_DISABLE_CLI_TELEMETRY=true
# Synthesis needs no account: skip the CLI's probe of the EC2 metadata service for default credentials.
SYNTH_ENV := $(CDK_ENV) AWS_EC2_METADATA_DISABLED=true
STAGES := stage prod
STACK = Cappi-$(STAGE)
CDK_ARGS ?=  # e.g. CDK_ARGS="-c prod:alarm_email=ops@example.org" (README, Operations)

$(NODE_STAMP): package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $(NODE_STAMP)

synth: $(STAMP) $(NODE_STAMP)
	$(SYNTH_ENV) $(CDK) synth --quiet $(CDK_ARGS)
	@echo "Templates: $(foreach s,$(STAGES),cdk.out/Cappi-$(s).template.json)"

check-stage:
	@if [ -z "$(filter $(STAGE),$(STAGES))" ] || [ "$(words $(STAGE))" != 1 ]; then \
		echo "Say which stage: STAGE=stage or STAGE=prod" >&2; exit 2; fi

# Only the named stage is synthesized, so one stage's configuration never blocks the other's deploy.
diff: check-stage $(STAMP) $(NODE_STAMP)
	$(CDK_ENV) $(CDK) diff -c cappi:stages=$(STAGE) $(CDK_ARGS) $(STACK)

# Deploy = synthesize the stage, check the account against that template (`cappi preflight`: stops here on a
# problem), deploy that very assembly, then ask the deployed API what a tester app would (`cappi smoke`).
deploy: check-stage $(STAMP) $(NODE_STAMP)
	$(SYNTH_ENV) $(CDK) synth --quiet -c cappi:stages=$(STAGE) $(CDK_ARGS) --output $(CDK_OUT) $(STACK)
	@$(BIN)/python -m cli preflight --stage $(STAGE) --template $(CDK_OUT)/$(STACK).template.json || { \
		echo "make deploy: preflight stopped the deploy of $(STACK) (above); nothing was deployed." >&2; exit 1; }
	$(CDK_ENV) $(CDK) deploy --app $(CDK_OUT) $(CDK_ARGS) $(STACK) --require-approval broadening
	@status=0; $(BIN)/python -m cli smoke --stage $(STAGE) || status=$$?; \
	if [ $$status = 1 ]; then \
		echo "make deploy: $(STACK) is deployed but fails its smoke check (above). If this deploy caused it, roll" \
			"back by hand: check out the last good commit and run make deploy STAGE=$(STAGE) (docs/operations.md," \
			"'Updating and rolling back a stage'), and watch the API alarms." >&2; exit 1; \
	elif [ $$status != 0 ]; then \
		echo "make deploy: $(STACK) is deployed, but the smoke check could not run (above): fix that, then run" \
			"$(BIN)/python -m cli smoke --stage $(STAGE)." >&2; exit $$status; \
	fi

bootstrap: $(STAMP) $(NODE_STAMP)
	$(CDK_ENV) $(CDK) bootstrap $(CDK_ARGS) $(ENV)
