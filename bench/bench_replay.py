# SPDX-License-Identifier: Apache-2.0
"""`lanner replay` against plain JSON parsing of the same file.

Writes the engine benchmark's event mix (bench_engine.py: 45% unindexed syscalls, 35% ordinary opens, 10% execs,
8% connects, 2% attacks) as Falco-field JSON lines, then times, as whole processes (interpreter start and, for
replay, loading the rules included), side by side in one run:
  1. `python -c` that only json.loads every line (the floor any JSON-lines tool pays),
  2. `lanner replay FILE --rules falco_rules.yaml --json` (parse, build events through the field registry,
     evaluate the stable rules, render Falco JSON alerts).
The ratio is taken on CPU time, which a busy shared machine disturbs far less than wall-clock time.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_engine import STABLE, make_labelled_events

from ruleengine.events_json import event_to_fields

PARSE_ONLY = "import json,sys\nn=0\nfor line in open(sys.argv[1]):\n    json.loads(line); n+=1\nprint(n)"


def timed(cmd: list[str]) -> tuple[float, float, str]:
    """Wall-clock and CPU seconds (user + system) of one child process, and its stdout."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.perf_counter()
    # as installed Python runs: modules come from their bytecode cache (a shell with PYTHONDONTWRITEBYTECODE would
    # make every replay recompile Lanner's sources, a tenth of a second the json.loads side never pays)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    out = subprocess.run(cmd, check=True, capture_output=True, text=True, env=env).stdout
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return wall, cpu, out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--file", help="replay this events file (written first if it does not exist) and keep it")
    args = ap.parse_args()
    path = args.file
    if not path or not Path(path).exists():
        events, _ = make_labelled_events(args.events)
        with open(path, "w") if path else tempfile.NamedTemporaryFile("w", suffix=".jsonl", delete=False) as f:
            for ev in events:
                f.write(json.dumps(event_to_fields(ev), default=str) + "\n")
            path = f.name
    size_mb = Path(path).stat().st_size / 1e6
    lanner = [sys.executable, "-m", "lanner.cli", "replay", path, "--rules", STABLE, "--json"]
    # alternate the two, best of --rounds each: other load on the machine only ever adds time
    parse_wall = parse_cpu = replay_wall = replay_cpu = float("inf")
    out = ""
    for _ in range(args.rounds):
        w, c, _out = timed([sys.executable, "-c", PARSE_ONLY, path])
        parse_wall, parse_cpu = min(parse_wall, w), min(parse_cpu, c)
        w, c, out = timed(lanner)
        replay_wall, replay_cpu = min(replay_wall, w), min(replay_cpu, c)
    alerts = out.count("\n")
    n = args.events
    load = os.getloadavg()
    print(f"file: {n} events, {size_mb:.1f} MB of JSON lines; load average {load[0]:.1f} {load[1]:.1f} {load[2]:.1f}")
    print(
        f"plain json.loads:    {parse_cpu:6.2f} s CPU, {parse_wall:6.2f} s wall  ({n / parse_cpu:,.0f} events/s of CPU)"
    )
    print(
        f"lanner replay:       {replay_cpu:6.2f} s CPU, {replay_wall:6.2f} s wall  "
        f"({n / replay_cpu:,.0f} events/s of CPU, {alerts} alerts)"
    )
    print(
        f"replay / json.loads: {replay_cpu / parse_cpu:6.1f}x CPU time ({replay_wall / parse_wall:.1f}x wall clock; "
        "the target is at most 3x)"
    )
    if not args.file:
        Path(path).unlink()


if __name__ == "__main__":
    main()
