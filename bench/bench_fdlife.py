# SPDX-License-Identifier: Apache-2.0
"""What issue 8's additions cost in the kernel, side by side in one run: the close stamps (every close updates an
LRU map entry) and the raw syscall tracepoints that catch init_module/finit_module (they fire for every syscall and
return at the first comparison). Both are attached with the stable Falco rules' kernel spec.

Two workloads, each alone and under Lanner's probes + collector loop with the stable spec applied, with and without
those tracepoints (detached in place, the rest unchanged):
  - the open/close storm of bench_kfilter.py (a close per open);
  - a getppid storm (the cheapest syscall: the raw tracepoints' cost per syscall shows most).
Figures only; nothing is asserted. Rounds interleave the setups and the best of each is kept (shared machine).

    sudo .venv/bin/python bench/bench_fdlife.py [--seconds 3] [--rounds 3]
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import subprocess
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_kfilter", ROOT / "bench" / "bench_kfilter.py")
assert _spec is not None and _spec.loader is not None
kf: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kf)

GETPPID_C = r"""
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
#include <sys/syscall.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double secs = atof(argv[1]), end = now() + secs, t0 = now();
    long n = 0;
    while (1) {
        for (int i = 0; i < 10000; i++) syscall(SYS_getppid);
        n += 10000;
        if (now() >= end) break;
    }
    printf("%ld %f\n", n, now() - t0);
    return 0;
}
"""


# (row label, tracepoints detached for it)
VARIANTS: tuple[tuple[str, set[str]], ...] = (
    ("", set()),
    (" without close stamps", {"close"}),
    (" without raw_syscalls", {"init_module", "finit_module"}),
    (" without both", {"close", "init_module", "finit_module"}),
)


def build(source: str, name: str) -> str:
    d = tempfile.mkdtemp(prefix="lanner-bench-")
    src, exe = os.path.join(d, f"{name}.c"), os.path.join(d, name)
    Path(src).write_text(source)
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (eBPF)", file=sys.stderr)
        return 1
    rules = [str(ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml")]
    if not Path(rules[0]).exists():
        rules = [str(ROOT / "rules" / "lanner_rules.yaml")]
    storms = {"open/close": kf.build_storm(), "getppid": build(GETPPID_C, "getppid")}
    lanner = kf.Lanner(rules)
    control = lanner.control
    lanner.src.apply_spec(lanner.spec)
    full = set(control.attached)
    issue8 = {"close", "init_module", "finit_module"} & full
    best: dict[str, float] = {}

    def keep(label: str, rate: float) -> None:
        best[label] = max(best.get(label, 0.0), rate)

    def under_lanner(exe: str) -> float:
        while lanner.src.poll():
            pass
        return float(kf.storm(exe, args.seconds, lambda: len(lanner.src.poll()))[0])

    try:
        for _ in range(args.rounds):
            for name, exe in storms.items():
                keep(f"{name}: alone", kf.storm(exe, args.seconds)[0])
                for label, gone in VARIANTS:
                    control._attach(full - (gone & issue8))
                    keep(f"{name}: Lanner, stable spec{label}", under_lanner(exe))
                control._attach(full)
    finally:
        lanner.close()
    print(f"best of {args.rounds} x {args.seconds:.0f}s per setup; attached by the spec: {', '.join(sorted(issue8))}")
    print(f"load average {os.getloadavg()[0]:.1f}")
    for name in storms:
        alone = best[f"{name}: alone"]
        for label, rate in best.items():
            if label.startswith(name):
                print(f"  {label:<58} {rate:>12,.0f} syscalls-loop/s  slowdown {alone / rate:5.2f}x")
    return 0


if __name__ == "__main__":
    sys.exit(main())
