# SPDX-License-Identifier: Apache-2.0
"""The kernel side of the open/close storm, side by side for several checkouts (``bench_storm.py --code DIR``).

One child process per checkout loads that tree's probes (``bench_kfilter.Lanner``: the stable spec applied, its
collector loop polling in a thread) and detaches them until asked. Rounds interleave: per round and checkout, the
storm alone, then with that checkout's probes attached. The figure is the storm's own CPU ns per open+close (its
user + system time from wait4: the probes run in its system time), and per checkout the median over the rounds of
(probes - alone) and of probes / alone, each against the alone run just before it.
"""

from __future__ import annotations

import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

# Run in each child with that checkout's tree first on sys.path.
_CHILD = r"""
import sys, threading, time
sys.path[:0] = [sys.argv[1], sys.argv[1] + "/bench"]
import bench_kfilter as kf
lanner = kf.Lanner(sys.argv[2:])
lanner.control.filtering = True
kf.detach_all(lanner)
on = threading.Event()
lock = threading.Lock()
def poll():
    while True:
        if on.is_set():
            with lock:
                lanner.src.poll()
        time.sleep(0.001)
threading.Thread(target=poll, daemon=True).start()
print("ready", flush=True)
for line in sys.stdin:
    cmd = line.strip()
    with lock:
        if cmd == "on":
            kf.attach_spec(lanner)
            while lanner.src.poll():
                pass
            on.set()
        elif cmd == "off":
            on.clear()
            kf.detach_all(lanner)
        else:
            break
    print("ok", flush=True)
lanner.close()
"""


class Child:
    """One checkout's probes in a child process, switched on and off between storms."""

    def __init__(self, code: Path, rules: list[str]) -> None:
        self.code = code
        self.p = subprocess.Popen(
            [sys.executable, "-c", _CHILD, str(code), *rules],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            cwd=code,
        )
        self._expect("ready")

    def _expect(self, word: str) -> None:
        assert self.p.stdout is not None
        line = self.p.stdout.readline().strip()
        if line != word:
            raise SystemExit(f"storm_ab: child for {self.code} said {line!r}")

    def switch(self, on: bool) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("on\n" if on else "off\n")
        self.p.stdin.flush()
        self._expect("ok")

    def close(self) -> None:
        assert self.p.stdin is not None
        self.p.stdin.write("quit\n")
        self.p.stdin.close()
        self.p.wait(timeout=30)


def run(
    codes: list[Path],
    rules: list[str],
    rounds: int,
    seconds: float,
    storm: Any,
    load: Any,
    own: set[int],
    prog_costs: Any,
) -> None:
    """``storm(load, seconds)`` -> {"rate", "cpu_ns", "foreign", ...}; prints the table, then per checkout one storm
    with BPF stats on (``prog_costs(pid, load, seconds)`` -> (rate, [(program, ns/run, runs per iteration)])). The
    children's pids go into ``own`` (not counted as other collectors)."""
    la0 = os.getloadavg()
    children = [Child(c, rules) for c in codes]
    own.update(ch.p.pid for ch in children)
    rows: dict[Path, list[tuple[dict[str, float], dict[str, float]]]] = {c: [] for c in codes}
    try:
        for r in range(rounds):
            order = children if r % 2 == 0 else list(reversed(children))
            for ch in order:
                alone = storm(load, seconds)
                ch.switch(True)
                try:
                    probes = storm(load, seconds)
                finally:
                    ch.switch(False)
                rows[ch.code].append((alone, probes))
                print(
                    f"round {r + 1} {ch.code}: alone {alone['cpu_ns']:.0f} ns ({alone['rate']:,.0f}/s), "
                    f"probes {probes['cpu_ns']:.0f} ns ({probes['rate']:,.0f}/s), other collectors "
                    f"{int(alone['foreign'])}/{int(probes['foreign'])}",
                    flush=True,
                )
        costs = {}
        for ch in children:
            ch.switch(True)
            try:
                costs[ch.code] = prog_costs(ch.p.pid, load, seconds)
            finally:
                ch.switch(False)
    finally:
        for ch in children:
            ch.close()
    la1 = os.getloadavg()
    print(
        f"\nstorm CPU ns per open+close, medians of {rounds} rounds x {seconds:g} s; load average "
        f"{la0[0]:.1f} -> {la1[0]:.1f}"
    )
    print(f"{'checkout':<28} {'alone':>7} {'probes':>7} {'added':>7} {'ratio':>6} {'opens/s':>9} {'vs alone':>8}")
    for code, rs in rows.items():
        alone = statistics.median(a["cpu_ns"] for a, _ in rs)
        probes = statistics.median(p["cpu_ns"] for _, p in rs)
        added = statistics.median(p["cpu_ns"] - a["cpu_ns"] for a, p in rs)
        ratio = statistics.median(p["cpu_ns"] / a["cpu_ns"] for a, p in rs)
        rate = statistics.median(p["rate"] for _, p in rs)
        wall = statistics.median(a["rate"] / p["rate"] for a, p in rs)
        print(f"{code!s:<28} {alone:7.0f} {probes:7.0f} {added:7.0f} {ratio:5.2f}x {rate:9,.0f} {wall:7.2f}x")
    print("\nBPF programs with run-time stats on (they add two clock reads per run): ns/run x runs per open+close")
    for code, (_rate, progs) in costs.items():
        total = sum(ns * per for _, ns, per in progs)
        print(f"{code}: {total:.0f} ns of BPF per open+close")
        for name, ns, per in progs:
            if per >= 0.01:
                print(f"    {name:<60} {ns:6.0f} ns x {per:5.2f}")
