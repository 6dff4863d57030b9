#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Every benchmark, one after the other; each prints its own figures and says what it measured. The last one,
# bench_pipeline.py (issue 6: slowdown, loss-free rates, latency, CPU per event, idle), ends with the summary table.
# `scripts/bench.sh --quick` (or `make bench ARGS=--quick`): fewer events, shorter steps, one round.
set -uo pipefail
cd "$(dirname "$0")/.."
PY=${VENV:-.venv}/bin/python
QUICK=0
[ "${1:-}" = "--quick" ] && QUICK=1
args_for() {
  if [ "$QUICK" = 1 ]; then
    case "$1" in
      bench/bench_engine.py) echo "--events 50000 --rounds 1" ;;
      # replay keeps its 200k events: with fewer, loading the rules becomes a visible part of the ratio
      bench/bench_replay.py) echo "--rounds 1" ;;
      bench/bench_dispatcher.py) echo "-n 10000" ;;
      bench/bench_delivery.py) echo "-n 5000" ;;
      bench/bench_collector.py) echo "--seconds 2" ;;
      bench/bench_kfilter.py) echo "--seconds 2 --rounds 1" ;;
      bench/bench_kcost.py) echo "--seconds 2 --rounds 1" ;;
      bench/bench_pipeline.py) echo "--quick" ;;
    esac
  fi
}
start=$(date +%s)
for b in bench/bench_engine.py bench/bench_replay.py bench/bench_dispatcher.py bench/bench_delivery.py bench/bench_collector.py bench/bench_kfilter.py bench/bench_kcost.py bench/bench_pipeline.py; do
  [ -f "$b" ] || continue
  echo "=== $b $(args_for "$b")"
  if [ "$b" = bench/bench_pipeline.py ]; then
    # One `lanner up` benchmark at a time, and not beside an e2e run (the lock e2e tests take) nor another
    # benchmark (the lock benchmarks take on a shared host).
    # shellcheck disable=SC2046
    flock /tmp/lanner-e2e.lock flock /tmp/lanner-bench.lock "$PY" "$b" $(args_for "$b") || echo "($b failed with $?)"
  else
    # shellcheck disable=SC2046
    "$PY" "$b" $(args_for "$b") || echo "($b failed with $?)"
  fi
  echo
done
echo "make bench: $(($(date +%s) - start)) s; load average now: $(cut -d' ' -f1-3 /proc/loadavg)"
