#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every benchmark, one after the other; each prints its own figures and says what it measured.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
for b in bench/bench_engine.py bench/bench_replay.py bench/bench_dispatcher.py bench/bench_delivery.py bench/bench_collector.py bench/bench_kfilter.py bench/bench_kcost.py bench/bench_pipeline.py; do
  [ -f "$b" ] || continue
  echo "=== $b"
  "$PY" "$b" || echo "($b failed with $?)"
  echo
done
