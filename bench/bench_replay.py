# SPDX-License-Identifier: Apache-2.0
"""`lanner replay` against plain JSON parsing of the same file.

Writes the engine benchmark's event mix (bench_engine.py: 45% unindexed syscalls, 35% ordinary opens, 10% execs,
8% connects, 2% attacks) as Falco-field JSON lines, then times, as whole processes:
  1. `python -c` that only json.loads every line (the floor any JSON-lines tool pays),
  2. `lanner replay FILE --rules falco_rules.yaml --json` (parse, build events through the field registry,
     evaluate the stable rules, render Falco JSON alerts).
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import STABLE, make_labelled_events

from ruleengine.events_json import event_to_fields

PARSE_ONLY = "import json,sys\nn=0\nfor line in open(sys.argv[1]):\n    json.loads(line); n+=1\nprint(n)"


def timed(cmd: list[str]) -> tuple[float, str]:
    t0 = time.perf_counter()
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return time.perf_counter() - t0, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=100_000)
    args = ap.parse_args()
    events, _ = make_labelled_events(args.events)
    with tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
        for ev in events:
            f.write(json.dumps(event_to_fields(ev), default=str) + "\n")
        path = f.name
    size_mb = Path(path).stat().st_size / 1e6
    parse_s, _ = timed([sys.executable, "-c", PARSE_ONLY, path])
    lanner = [sys.executable, "-m", "lanner.cli", "replay", path, "--rules", STABLE, "--json"]
    replay_s, out = timed(lanner)
    alerts = out.count("\n")
    print(f"file: {args.events} events, {size_mb:.1f} MB of JSON lines")
    print(f"plain JSON parsing:  {parse_s:6.2f} s  ({args.events / parse_s:,.0f} events/s)")
    print(f"lanner replay:       {replay_s:6.2f} s  ({args.events / replay_s:,.0f} events/s, {alerts} alerts)")
    print(f"replay / parse:      {replay_s / parse_s:6.1f}x")
    Path(path).unlink()


if __name__ == "__main__":
    main()
