# SPDX-License-Identifier: Apache-2.0
"""Idle cost: % of one core each of the four services uses under `lanner up` when nothing is asked of them.

Starts `lanner up` with the stable Falco ruleset, waits for the kernel spec to reach the collector and for start-up
to settle, then reads each service's CPU time (all threads) and context switches (wake-ups) over a window. The
host's own background still flows through the collector (exec/fork/exit are always traced), so the events that
reached the rule engine in the window are printed beside it. Target: under 2% of one core for all four together.

    flock /tmp/lanner-e2e.lock .venv/bin/python bench/bench_idle.py [--seconds 30] [--settle 10] [--no-events]

``--no-events``: the collector replays an empty recording, so no event reaches any service: the services' own
timers and polling alone, whatever the host is doing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

from stack import STABLE_RULES, Stack, counters

TARGET_PCT = 2.0


def wakeups(pid: int) -> int:
    """Context switches of every thread of ``pid`` (each is a wake-up of the process or a preemption)."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            for line in (task / "status").read_text().splitlines():
                if line.startswith(("voluntary_ctxt_switches", "nonvoluntary_ctxt_switches")):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total


def measure(stack: Stack, seconds: float) -> dict[str, object]:
    """CPU % of a core and wake-ups/s per service over ``seconds``, plus events at the rule engine meanwhile."""
    c0, w0, k0, t0 = stack.cpu(), {n: wakeups(p) for n, p in stack.pids.items()}, counters(), time.monotonic()
    time.sleep(seconds)
    c1, w1, k1, dt = stack.cpu(), {n: wakeups(p) for n, p in stack.pids.items()}, counters(), time.monotonic() - t0
    pct = {n: 100.0 * (c1[n] - c0[n]) / dt for n in stack.pids}
    return {
        "seconds": dt,
        "cpu_pct": pct,
        "total_pct": sum(pct.values()),
        "wakeups_per_s": {n: (w1[n] - w0[n]) / dt for n in stack.pids},
        "events_at_ruleengine_per_s": (k1 - k0).at_ruleengine / dt,
    }


def print_idle(res: dict[str, object]) -> None:
    pct = res["cpu_pct"]
    wk = res["wakeups_per_s"]
    assert isinstance(pct, dict) and isinstance(wk, dict)
    print(
        f"idle cost over {res['seconds']:.0f} s (host background: {res['events_at_ruleengine_per_s']:.0f} events/s "
        f"reached the rule engine); load average {os.getloadavg()[0]:.2f}"
    )
    for name in pct:
        print(f"  {name:<11} {pct[name]:6.2f}% of a core   {wk[name]:7.0f} wake-ups/s")
    print(f"  {'all four':<11} {res['total_pct']:6.2f}% of a core   (target < {TARGET_PCT}%)")


def no_event_stack() -> Stack:
    """`lanner up` whose collector replays an empty recording instead of reading the kernel: no event reaches any
    service, so what they use is their own timers and polling (the structural idle cost, apart from the BPF
    probes, which cost the traced processes, not the services)."""
    empty = Path(tempfile.mkdtemp(prefix="lanner-bench-idle-")) / "empty.jsonl"
    empty.write_text("")
    return Stack([STABLE_RULES] if STABLE_RULES.exists() else [], env={"LANNER_COLLECTOR__REPLAY_PATH": str(empty)})


def idle_run(stack: Stack, seconds: float, settle: float, kernel: bool) -> dict[str, object]:
    try:
        if not stack.wait_ready() or (kernel and not stack.wait_spec()):
            raise SystemExit(f"services did not come up; see {stack.state}/logs")
        time.sleep(settle)
        return measure(stack, seconds)
    finally:
        stack.stop()


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=30.0)
    ap.add_argument("--settle", type=float, default=10.0, help="seconds after start-up before measuring")
    ap.add_argument("--no-events", action="store_true", help="the collector replays an empty file (no kernel events)")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_idle: needs root (eBPF)", file=sys.stderr)
        return 2
    if args.no_events:
        res = idle_run(no_event_stack(), args.seconds, args.settle, kernel=False)
    else:
        res = idle_run(Stack([STABLE_RULES] if STABLE_RULES.exists() else []), args.seconds, args.settle, kernel=True)
    print_idle(res)
    if args.json:
        Path(args.json).write_text(json.dumps(res))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
