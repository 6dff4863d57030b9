# SPDX-License-Identifier: Apache-2.0
# Lanner tasks. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
PY := $(VENV)/bin/python
export PATH := $(CURDIR)/$(VENV)/bin:$(PATH)

.PHONY: help setup run test lint typecheck fmt protos bench chaos container-stack upstream-rules upstream-rules-found clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-16s %s\n", $$1, $$2}'

setup: ## install everything Lanner needs on this host (apt packages, kernel headers, tracefs, venv)
	bash scripts/setup-host.sh

run: setup ## run Lanner locally: Redis + collector + enricher + ruleengine + dispatcher (root, real eBPF)
	$(VENV)/bin/lanner up $(ARGS)

test: upstream-rules-found setup ## run all tests (unit, integration with real Redis/gRPC, eBPF, containers, end to end)
	bash scripts/run-tests.sh

lint: ## ruff + ruff format --check + mypy --strict + generated-code drift check
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/mypy -p lanner -p collector -p enricher -p ruleengine -p dispatcher

fmt: ## format the code
	$(VENV)/bin/ruff format .
	$(VENV)/bin/ruff check --fix .

protos: ## regenerate the Python code from protos/
	$(PY) scripts/gen_protos.py

bench: ## throughput, latency and idle figures ending in issue 6's summary table (root; ARGS=--quick: shorter)
	bash scripts/bench.sh $(ARGS)

chaos: setup ## kill each stage under marker load through lanner up; print delivered/dropped/unaccounted (root)
	$(PY) -m tests.chaos.run $(ARGS)

container-stack: ## bring up containerd + Docker + compose with local images (for the container tests)
	bash scripts/container-stack.sh

upstream-rules-found:  # before the long setup: stop at once when the rule tests could not run
	@python3 -m tests.support.upstream_rules ensure >/dev/null

upstream-rules: ## fetch the pinned upstream Falco rules the rule tests check against (needs GitHub; or set LANNER_FALCO_RULES)
	python3 -m tests.support.upstream_rules fetch

clean:
	rm -rf var .pytest_cache .mypy_cache .ruff_cache
