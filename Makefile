# The README's commands. `make setup` is idempotent; `make test` and `make lint` run it first.
SHELL := /bin/bash
.SHELLFLAGS := -euo pipefail -c
.DEFAULT_GOAL := help

VENV   := .venv
BIN    := $(VENV)/bin
UV     := $(BIN)/uv
export UV_PROJECT_ENVIRONMENT := $(CURDIR)/$(VENV)
export UV_PYTHON_DOWNLOADS := never
# Compile the installed packages' bytecode once at install (~10 s): with PYTHONDONTWRITEBYTECODE
# set, as on our CI machines, every Python start would otherwise compile them again (pydantic's
# import: 0.19 s instead of 0.08 s), and the tests start hundreds of Python processes.
export UV_COMPILE_BYTECODE := 1

# Python code lives only in the folders with a pyproject.toml (not in services/frontend).
PY_DIRS := $(patsubst %/pyproject.toml,%,$(wildcard services/*/pyproject.toml))

.PHONY: help setup system-packages python frontend crd-schemas lock generate generate-check lint format test e2e run reset check bench chaos

# Every target with a `## text` comment, in file order (tests/localapp/test_make.py: all are listed).
help: ## this list
	@awk -F ':[^#]*## ' '/^[a-z][a-z0-9-]*:[^=]*## / { printf "make %-18s %s\n", $$1, $$2 }' $(MAKEFILE_LIST)

# Commands make starts die with make, even a SIGKILLed one (the kernel's parent-death signal).
BOUND := setpriv --pdeathsig KILL --
# The pipeline's command line on the host (ci/src/ci/check.py); the harness comes from tests/.
CHECK := PYTHONPATH=ci/src $(BOUND) $(BIN)/python -m ci.check
CHECK_ARGS ?= --all

setup: system-packages python frontend crd-schemas ## install everything (system packages, .venv, node modules)

system-packages: ## PostgreSQL, Redis, Chromium, ... when missing (.ci/system-packages.sh)
	@.ci/system-packages.sh

python: $(UV) ## the .venv, exactly as locked in uv.lock
	@$(UV) sync --frozen --all-packages --group dev --quiet

# uv itself from PyPI, every wheel's hash pinned (ci/uv-requirements.txt, generated from uv.lock).
$(UV): ci/uv-requirements.txt
	python3 -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps --require-hashes \
	  -r ci/uv-requirements.txt
	touch $@  # pip leaves an installed uv alone: newer than its pin file, or make reinstalls it every time

# The front end's node_modules, from the committed package-lock.json; again only when it changed.
FRONTEND := services/frontend
NPM := npm --prefix $(FRONTEND)
frontend: $(FRONTEND)/node_modules/.package-lock.json ## the front end's node_modules (npm ci)

$(FRONTEND)/node_modules/.package-lock.json: $(FRONTEND)/package-lock.json $(FRONTEND)/package.json
	cd $(FRONTEND) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# The custom resources' schemas (Gateway API, cert-manager, Sealed Secrets) that tests/chartkit
# validates rendered objects against, from the committed tests/crds/package-lock.json.
CRDS := tests/crds
crd-schemas: $(CRDS)/node_modules/.package-lock.json ## the CRD schemas the chart tests validate against (tests/crds)

$(CRDS)/node_modules/.package-lock.json: $(CRDS)/package-lock.json $(CRDS)/package.json
	cd $(CRDS) && npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Generated files (ci/src/ci/core/generated.py: each Python service's requirements.txt from
# uv.lock, ...): `make generate` writes them, `make generate-check` (part of `make lint`) fails
# when one is stale; `dagger generate` returns the same files as a Changeset.
GENERATE := PYTHONPATH=ci/src $(BIN)/python -m ci.generate

lock: $(UV) ## update uv.lock and the files generated from it (services' requirements.txt)
	$(UV) lock
	@$(GENERATE)

generate: $(UV) ## write the generated files (requirements.txt from uv.lock, ...)
	@$(GENERATE)

generate-check: $(UV) ## fail when a generated file is stale (run make generate)
	@$(GENERATE) --check

# `make lint` and `make test` are the repository recipes of ci/src/ci/core/recipes.py, the single
# source of the stage commands that `dagger call check` and `make check` run per service.
lint: setup ## ruff, mypy --strict, hadolint, shellcheck, yamllint, actionlint, tsc, eslint
	@$(CHECK) --recipe lint
	@$(MAKE) --no-print-directory generate-check

format: setup ## ruff's fixes and formatting, applied
	$(BIN)/ruff check --fix .
	$(BIN)/ruff format .

# The front end's unit tests and production build come first: the browser test (pytest,
# tests/browser) drives that build in Chromium. Then one pytest session over every suite.
test: setup ## every test tier that runs on this machine
	@$(CHECK) --recipe test

# The main job: `dagger call check $(CHECK_ARGS)` when a dagger CLI reaches an engine; otherwise
# one line saying why, then the same plan and recipes as host processes (python -m ci.check).
# CHECK_ARGS="--check 'lint-*'": `dagger check lint-*`, or the same named checks on the host.
check: setup ## the main job: dagger call check, else its stages on this host (CHECK_ARGS=--all)
	@$(CHECK) --engine-first $(CHECK_ARGS)

# The e2e suite alone. Against E2E_BASE_URL when set (e.g. the K3s ingress), otherwise against a
# local stack of every Python service started by the suite itself (ci/src/ci/localapp/README.md).
e2e: setup ## the end-to-end suite only (E2E_BASE_URL, else a local stack of the services)
	$(BOUND) $(BIN)/pytest tests/e2e

# Benchmarks (bench/): builds its synthetic repositories, Redis and the local stack itself, runs
# our code and each anchor in the same run, prints one table. BENCH_ARGS="--only plan,bumps".
bench: setup ## the benchmarks: ours vs the anchors, one table (BENCH_ARGS=--only plan,bumps)
	PYTHONPATH=ci/src:tests $(BOUND) $(BIN)/python -m bench $(BENCH_ARGS)

# Fault injection on the local app (bench/chaos.py): a few clients, seconds of load per fault.
chaos: setup ## load plus faults on the local app: answers by status, recovery, acknowledged vs found
	PYTHONPATH=ci/src:tests $(BOUND) $(BIN)/python -m bench.chaos

# The app on your machine: every service as a process behind the NGINX edge, which serves the
# built front end (rebuilt when its sources changed). Ctrl-C stops it; EDGE_PORT=... moves it,
# FRONTEND_DIST=dir serves another build.
EDGE_PORT ?= 8080
FRONTEND_SOURCES := $(shell find $(FRONTEND)/src $(FRONTEND)/public -type f) \
	$(addprefix $(FRONTEND)/,index.html package.json vite.config.ts tsconfig.json)
FRONTEND_DIST ?= $(FRONTEND)/dist
# Data (databases, media files, credentials, logs) stays in $(DATA_DIR) between runs; RESET=1
# starts empty; OBSERVE=1 also starts Prometheus with the cluster's alert rules (its address is
# printed). setpriv ties the app to make: a killed make takes the whole app with it.
DATA_DIR ?= .localapp
run: setup $(FRONTEND_DIST)/index.html ## the app at http://127.0.0.1:8080/ (EDGE_PORT=N moves it, RESET=1 starts empty, OBSERVE=1 adds Prometheus; Ctrl-C stops it)
	PYTHONPATH=ci/src $(BOUND) $(BIN)/python -m ci.localapp --static $(FRONTEND_DIST) \
	  --edge-port $(EDGE_PORT) --data-dir $(DATA_DIR) $(if $(RESET),--reset) $(if $(OBSERVE),--observe)

reset: ## delete the local app's data (.localapp/: databases, media files, credentials, logs)
	rm -rf $(DATA_DIR)

$(FRONTEND)/dist/index.html: $(FRONTEND_SOURCES) $(FRONTEND)/node_modules/.package-lock.json
	$(NPM) run --silent build
