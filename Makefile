# Two commands for a new machine: `make demo` and `make test` (see README.md).
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
BUILD := .build
# Outside the repository: inside it, ansible-test would see the copy as git-ignored files.
SANITY_DIR ?= $(or $(TMPDIR),/tmp)/selfhosted-github_runners-sanity
COLLECTIONS := $(VENV)/collections
GHR_CACHE_DIR ?= $(HOME)/.cache/ghr
FERRETDB := $(GHR_CACHE_DIR)/ferretdb-v1.24.2
NOVA := $(GHR_CACHE_DIR)/nova-34.0.0
STAMP := $(VENV)/.installed
DOCS := $(BUILD)/docs
# Every Markdown file whose Mermaid blocks are rendered and checked.
DOCS_MARKDOWN = README.md $(sort $(shell find docs -name '*.md'))

export PATH := $(abspath $(BIN)):$(PATH)
export GHR_CACHE_DIR
export ANSIBLE_COLLECTIONS_PATH := $(abspath $(COLLECTIONS))
export ANSIBLE_NOCOLOR := 1
export PY_COLORS := 0

.PHONY: help venv ferretdb nova schemas lint sanity ansible-lint docs-check docs-tools docs pytest units integration nova-test test demo bench bench-sandbox bench-router chaos clean

help:
	@echo "make demo   - set up everything and run the reconcile playbook against the local sandbox"
	@echo "make test   - set up everything and run every gate (lint, sanity, ansible-lint, build+docs, tests)"
	@echo "make docs   - build the documentation site into $(DOCS)/html and check it"
	@echo "make venv   - create or update the virtual environment in $(VENV)"
	@echo "make nova-test - only the scenarios that run against real Nova (the real-Nova lane)"
	@echo "make bench  - the benchmarks: table, bench/results.json (BENCH_QUICK=1: smoke run; BASELINE=FILE: compare)"
	@echo "make chaos  - the long seeded chaos run (CHAOS_SEED, CHAOS_DURATION seconds; see docs/reliability.md)"

# The virtual environment, re-installed when a requirements file changes.
venv: $(STAMP)
$(STAMP): requirements.txt requirements-dev.txt
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -r requirements-dev.txt
	mkdir -p $(COLLECTIONS)/ansible_collections/selfhosted
	ln -sfn ../../../.. $(COLLECTIONS)/ansible_collections/selfhosted/github_runners
	touch $@

# A MongoDB-compatible server for the tests (skipped when MONGODB_URI points at one).
ferretdb: $(if $(MONGODB_URI),,$(FERRETDB))
$(FERRETDB): tests/sandbox/scripts/install-ferretdb.sh
	bash tests/sandbox/scripts/install-ferretdb.sh $@

# Unmodified Nova (PyPI, its own virtual environment) for the real-Nova lane of the tests.
nova: $(NOVA)/.installed
$(NOVA)/.installed: tests/sandbox/scripts/install-nova.sh
	bash tests/sandbox/scripts/install-nova.sh $(NOVA)

# GitHub's OpenAPI description, webhook schemas and webhook examples (npm packages, cached in
# GHR_CACHE_DIR): the sandbox validates every GitHub response and webhook of the test run against
# them, and the webhook router's tests send it every example payload.
schemas: venv
	$(BIN)/python -m tests.sandbox.openapi fetch

lint: venv
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy plugins/module_utils
	# The oldest Python the collection supports (no interpreter of it to run the tests with here).
	$(BIN)/mypy --python-version 3.10 plugins/module_utils

# ansible-test wants the collection at ansible_collections/selfhosted/github_runners and,
# for --venv, a pip bootstrap script it would otherwise download.
sanity: venv
	$(BIN)/python tests/utils/install_get_pip.py
	rm -rf $(SANITY_DIR)
	$(BIN)/python tests/utils/stage_collection.py $(SANITY_DIR)
	cd $(SANITY_DIR)/ansible_collections/selfhosted/github_runners && \
	  ansible-test sanity --venv --python "$$($(abspath $(BIN))/python -c 'import sys; print("%d.%d" % sys.version_info[:2])')" --color no --truncate 0

ansible-lint: venv
	$(BIN)/ansible-lint --profile production roles playbooks docs/examples docs/awx

# Build the collection, install the tarball, render every module's and role's docs from the installed copy.
docs-check: venv
	rm -rf $(BUILD)/dist $(BUILD)/installed
	mkdir -p $(BUILD)/dist
	$(BIN)/ansible-galaxy collection build --output-path $(BUILD)/dist --force
	$(BIN)/python tests/utils/check_tarball.py $(BUILD)/dist/selfhosted-github_runners-*.tar.gz
	$(BIN)/ansible-galaxy collection install $(BUILD)/dist/selfhosted-github_runners-*.tar.gz -p $(BUILD)/installed --force
	$(BIN)/python tests/utils/render_docs.py $(BUILD)/installed

# Debian's chromium (installed with apt-get when missing) and the pinned Mermaid CLI (npm ci
# into GHR_CACHE_DIR, no browser download).
docs-tools: venv
	$(BIN)/python -m tests.utils.docs_tools install

# The documentation site: lint the installed collection's docs and the changelog fragments,
# render every Mermaid block (a parse or render error fails), generate the reference with
# antsibull-docs, build it with the Markdown pages in Sphinx (warnings fail), then open every
# page in headless Chromium (tests/docs). Open $(DOCS)/html/index.html to read it.
docs: docs-check docs-tools
	ANSIBLE_COLLECTIONS_PATH=$(abspath $(BUILD)/installed) \
	  $(BIN)/antsibull-docs lint-collection-docs --plugin-docs $(BUILD)/installed/ansible_collections/selfhosted/github_runners
	$(BIN)/antsibull-changelog lint
	$(BIN)/python -m tests.utils.render_mermaid $(DOCS)/diagrams $(DOCS_MARKDOWN)
	$(BIN)/python -m tests.utils.build_docsite $(BUILD)/installed $(DOCS)/diagrams $(DOCS)
	$(BIN)/python -m pytest tests/docs -q

units: venv
	$(BIN)/python -m pytest tests/unit

integration: venv ferretdb nova schemas
	$(BIN)/python -m pytest tests/integration

# The scenarios that run against real Nova (marker `realnova`), alone.
nova-test: venv ferretdb nova schemas
	$(BIN)/python -m pytest tests/integration -m realnova

# Unit and integration tests in one pytest run, so its summary closes the output.
pytest: venv ferretdb nova schemas
	$(BIN)/python -m pytest tests/unit tests/integration

test: lint sanity ansible-lint docs-check docs pytest

demo: venv
	$(BIN)/python -m tests.demo

# Benchmarks (not part of `make test`): API calls, scale-up, router, playbook; the table, bench/results.json
# and bench/plots/. BENCH_QUICK=1: the smoke run. BASELINE=FILE: the change against a former results file.
# BENCH_ONLY=NAME,NAME: those scenarios only.
bench: venv ferretdb nova
	PYTHONPATH=$(abspath $(COLLECTIONS)) $(BIN)/python -m tests.bench --out bench/results.json \
	  $(if $(filter-out 0,$(BENCH_QUICK)),--quick) $(if $(BASELINE),--baseline $(BASELINE)) \
	  $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

# The sandbox itself: start-up, and 1,000 servers through openstacksdk.
bench-sandbox: venv ferretdb
	$(BIN)/python -m tests.sandbox.bench_sandbox

# The webhook router: deliveries per second and latency on FerretDB and on an in-memory queue.
bench-router: venv ferretdb
	PYTHONPATH=$(abspath $(COLLECTIONS)) $(BIN)/python -m tests.sandbox.bench_router

# The long chaos run (docs/reliability.md): seeded and bounded; the same CHAOS_SEED gives the same schedule.
CHAOS_SEED ?= 1
CHAOS_DURATION ?= 1800
CHAOS_JOBS_PER_MINUTE ?= 36
CHAOS_FAULTS_PER_MINUTE ?= 12
CHAOS_KILLS_PER_MINUTE ?= 6
CHAOS_DIR ?= $(or $(TMPDIR),/tmp)/selfhosted-github_runners-chaos-$(CHAOS_SEED)
chaos: venv ferretdb
	rm -rf $(CHAOS_DIR)
	$(BIN)/python -m tests.chaos --seed $(CHAOS_SEED) --duration $(CHAOS_DURATION) \
	  --jobs-per-minute $(CHAOS_JOBS_PER_MINUTE) --faults-per-minute $(CHAOS_FAULTS_PER_MINUTE) \
	  --kills-per-minute $(CHAOS_KILLS_PER_MINUTE) --dir $(CHAOS_DIR)

clean:
	rm -rf $(BUILD) $(SANITY_DIR) tests/output .pytest_cache .mypy_cache .ruff_cache bench
