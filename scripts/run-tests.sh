#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Run every test: lint, unit, integration (real Redis, real gRPC), eBPF on the real kernel, real containers, end
# to end. Brings up what the tests need first (host setup, container stack). `make test` calls this.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
log() { echo "[test] $*" >&2; }

bash scripts/setup-host.sh
if [ "$(id -u)" = 0 ] && [ -z "${LANNER_SKIP_CONTAINERS:-}" ]; then
  log "container stack (containerd + CRI, Docker, compose, local images)"
  if ! bash scripts/container-stack.sh; then
    log "container stack failed to come up; container tests will report why"
  fi
fi

log "lint: ruff + mypy --strict"
"$VENV/bin/ruff" check .
"$VENV/bin/mypy" -p lanner -p collector -p enricher -p ruleengine -p dispatcher

log "rule tests: every Lanner rule and every stable upstream rule, positive and negative (lanner rules test)"
"$VENV/bin/lanner" rules test tests/rules/lanner/*.yaml tests/rules/upstream/*.yaml tests/rules/upstream_k8s/*.yaml | tail -n 3

log "pytest"
exec "$VENV/bin/pytest" -p no:cacheprovider "$@"
