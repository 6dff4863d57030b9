# SPDX-License-Identifier: Apache-2.0
"""Kernel-side cost of Lanner's probes per syscall, on the open/close storm of bench_kfilter.py.

Two parts, from one run:
  - slowdowns side by side (stats off): the storm alone, with empty openat tracepoints (the issue's baseline), with
    empty openat + close tracepoints, under a bare bcc consumer (the floor), and under Lanner's probes + collector
    loop with the stable rules' kernel spec applied (filter on). Each both by wall-clock rate and by the storm's own
    CPU time per iteration (user + system: the probes run in its system time), which a busy machine disturbs far
    less;
  - the run time of each attached BPF program (kernel BPF stats on for this part only): ns per run and runs per
    storm iteration (an open and a close), so each program's share of the slowdown shows whatever the machine load.

Runs per iteration count every process's syscalls (the probes are system wide), so a busy machine adds some; ns per
run is the load-independent figure. A tail-called program's time is counted in its caller. Figures only.

    sudo .venv/bin/python bench/bench_kcost.py [--seconds 3] [--rounds 3] [--rules FILE...]
"""

from __future__ import annotations

import argparse
import ctypes
import importlib.util
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
_spec = importlib.util.spec_from_file_location("bench_kfilter", ROOT / "bench" / "bench_kfilter.py")
assert _spec is not None and _spec.loader is not None
kf: Any = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(kf)

EMPTY_OPEN_CLOSE_BPF = (
    kf.EMPTY_BPF
    + r"""
TRACEPOINT_PROBE(syscalls, sys_enter_close) { return 0; }
TRACEPOINT_PROBE(syscalls, sys_exit_close) { return 0; }
"""
)

_NR_BPF = {"x86_64": 321, "aarch64": 280}
_BPF_ENABLE_STATS = 32
_SYSCTL = Path("/proc/sys/kernel/bpf_stats_enabled")


@contextmanager
def bpf_stats() -> Iterator[None]:
    """Kernel BPF run-time stats on while inside. BPF_ENABLE_STATS holds them on through an fd (the kernel turns
    them off when the last holder closes, even if this process dies); the sysctl, restored after, is the fallback."""
    import platform

    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint32 * 32)()  # union bpf_attr, enable_stats.type = BPF_STATS_RUN_TIME (0)
    nr = _NR_BPF.get(platform.machine(), -1)
    fd = libc.syscall(nr, _BPF_ENABLE_STATS, ctypes.byref(attr), ctypes.sizeof(attr)) if nr > 0 else -1
    if fd >= 0:
        try:
            yield
        finally:
            os.close(fd)
        return
    before = _SYSCTL.read_text().strip()
    _SYSCTL.write_text("1")
    try:
        yield
    finally:
        _SYSCTL.write_text(before)


def prog_fds(bpf: Any) -> dict[str, int]:
    """Program name -> fd for the attached probes of a bcc object, plus the tail-called programs it loaded."""
    attached = {tp.split(b":", 1)[1].decode() for tp in bpf.tracepoint_fds}
    out = {}
    for name, fn in bpf.funcs.items():
        n = name.decode()
        short = n.split("__", 2)[2] if n.startswith("tracepoint__") else n
        if short in attached or not n.startswith("tracepoint__"):
            out[short] = int(fn.fd)
    return out


def read_stats(fds: dict[str, int]) -> dict[str, tuple[int, int]]:
    """(run_time_ns, run_cnt) per program, from /proc/self/fdinfo."""
    out = {}
    for name, fd in fds.items():
        vals = {}
        with open(f"/proc/self/fdinfo/{fd}", encoding="ascii") as f:
            for line in f:
                k, _, v = line.partition(":")
                vals[k.strip()] = v.strip()
        out[name] = (int(vals.get("run_time_ns", 0)), int(vals.get("run_cnt", 0)))
    return out


def program_costs(lanner: Any, exe: str, seconds: float) -> tuple[float, int, list[tuple[str, float, float]]]:
    """One storm under Lanner with stats on: (opens/s, iterations, [(program, ns/run, runs/iteration)])."""
    fds = prog_fds(lanner.src.reader._bpf)
    with bpf_stats():
        while lanner.src.poll():
            pass
        before = read_stats(fds)
        rate, _ = kf.storm(exe, seconds, lambda: len(lanner.src.poll()))
        after = read_stats(fds)
    iters = max(1, int(rate * seconds))
    rows = []
    for name in fds:
        dt = after[name][0] - before[name][0]
        dn = after[name][1] - before[name][1]
        if dn:
            rows.append((name, dt / dn, dn / iters))
    rows.sort(key=lambda r: -r[1] * r[2])
    return rate, iters, rows


def storm_cpu(exe: str, seconds: float, consume: Callable[[], int] | None = None) -> tuple[float, float]:
    """Run the storm (calling ``consume`` every millisecond meanwhile): (opens/s, CPU ns per iteration). The storm's
    own CPU time (user + system, where the probes run) barely depends on what else the machine runs, unlike its
    wall-clock rate."""
    p = subprocess.Popen([exe, str(seconds), "/etc/hostname"], stdout=subprocess.PIPE, text=True)
    while True:
        pid, status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if consume is not None:
            consume()
        time.sleep(0.001)
    p.returncode = os.waitstatus_to_exitcode(status)
    assert p.stdout is not None
    n, dt = p.stdout.read().split()
    p.stdout.close()
    if consume is not None:
        while consume():
            pass
    return int(n) / float(dt), (ru.ru_utime + ru.ru_stime) * 1e9 / int(n)


def under_bcc(exe: str, seconds: float, text: str, with_ring: bool) -> tuple[float, float]:
    """The storm under a bcc program (``with_ring``: draining its ring buffer ``out``)."""
    b = kf.bcc().BPF(text=text)
    consume: Callable[[], int] | None = None
    if with_ring:
        b[b"out"].open_ring_buffer(lambda _c, _d, _s: 0)

        def consume() -> int:
            return int(b.ring_buffer_consume() or 0)

    try:
        return storm_cpu(exe, seconds, consume)
    finally:
        b.cleanup()


def empty_cost(exe: str, seconds: float) -> float:
    """ns per run of an empty program on a syscall tracepoint, stats on: what the stats and the call alone cost."""
    b = kf.bcc().BPF(text=EMPTY_OPEN_CLOSE_BPF)
    try:
        fds = prog_fds(b)
        with bpf_stats():
            before = read_stats(fds)
            kf.storm(exe, seconds)
            after = read_stats(fds)
    finally:
        b.cleanup()
    dt = sum(after[n][0] - before[n][0] for n in fds)
    dn = sum(after[n][1] - before[n][1] for n in fds)
    return dt / max(1, dn)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=3)
    default_rules = Path(os.environ.get("LANNER_FALCO_RULES", ROOT.parent / "shared" / "falco-rules"))
    ap.add_argument(
        "--rules",
        nargs="+",
        default=[str(default_rules / "falco_rules.yaml")],
        help="rules whose kernel spec Lanner applies (default: the stable Falco ruleset, $LANNER_FALCO_RULES)",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (eBPF)", file=sys.stderr)
        return 1
    rules = [r for r in args.rules if Path(r).exists()] or [str(ROOT / "rules" / "lanner_rules.yaml")]
    exe = kf.build_storm()
    secs = args.seconds
    lanner = kf.Lanner(rules)
    lanner.control.filtering = True
    runs: dict[str, list[tuple[float, float]]] = {}

    def keep(label: str, got: tuple[float, float]) -> None:
        runs.setdefault(label, []).append(got)

    try:
        # Rounds interleave the setups; each figure is the median of its rounds (the machine is shared: a best-of
        # favours whichever setup had the luckiest moment).
        for _ in range(args.rounds):
            # bcc attached every probe at load: the baselines run with all of them detached (before, "alone" and
            # "empty" ran under Lanner's probes too, which flattered Lanner's slowdown).
            kf.detach_all(lanner)
            keep("workload alone", storm_cpu(exe, secs))
            keep("empty openat tracepoints", under_bcc(exe, secs, kf.EMPTY_BPF, False))
            keep("empty openat + close tracepoints", under_bcc(exe, secs, EMPTY_OPEN_CLOSE_BPF, False))
            keep("bare bcc consumer (floor)", under_bcc(exe, secs, kf.FLOOR_BPF, True))
            kf.attach_spec(lanner)
            while lanner.src.poll():
                pass
            keep("Lanner, stable spec, filter on", storm_cpu(exe, secs, lambda: len(lanner.src.poll())))
        rate, iters, rows = program_costs(lanner, exe, secs)
        kf.detach_all(lanner)
        empty_ns = empty_cost(exe, secs)
        attached = sorted(lanner.control.attached)
    finally:
        lanner.close()
    med = {k: (statistics.median(r for r, _ in v), statistics.median(c for _, c in v)) for k, v in runs.items()}
    alone, alone_cpu = med["workload alone"]
    empty, empty_cpu = med["empty openat tracepoints"]
    names = ", ".join(Path(r).name for r in rules)
    print(f"open/close storm, median of {args.rounds} x {secs:.0f}s per setup; Lanner's spec from {names}")
    print(f"load average {' '.join(f'{x:.1f}' for x in os.getloadavg())} ({os.cpu_count()} CPUs)")
    print("  wall: opens/s and slowdown (noisy on a shared machine); CPU: the storm's user+system ns per iteration")
    print(
        f"  {'setup':<34} {'opens/s':>9} {'vs alone':>8} {'vs empty':>8}  {'CPU ns':>7} {'vs alone':>8} {'vs empty':>8}"
    )
    for label, (r, cpu) in med.items():
        print(
            f"  {label:<34} {r:>9,.0f} {alone / r:>7.2f}x {empty / r:>7.2f}x  {cpu:>7,.0f} {cpu / alone_cpu:>7.2f}x"
            f" {cpu / empty_cpu:>7.2f}x"
        )
    print(f"per attached program, one {secs:.0f}s storm under Lanner with BPF stats on ({rate:,.0f} opens/s,")
    print(f"{iters:,} iterations; stats add their own cost); {len(attached)} syscalls attached")
    print(f"  {'program':<40} {'ns/run':>8} {'runs/iter':>10} {'ns/iter':>8}")
    total = 0.0
    rare = 0.0
    for name, ns, per in rows:
        total += ns * per
        if per < 0.01:
            rare += ns * per
            continue
        print(f"  {name:<40} {ns:>8.0f} {per:>10.2f} {ns * per:>8.0f}")
    print(f"  {'(programs under 0.01 runs/iter)':<40} {'':>8} {'':>10} {rare:>8.0f}")
    print(f"  {'sum (program time per storm iteration)':<40} {'':>8} {'':>10} {total:>8.0f}")
    print(f"  {'(an empty program, for scale)':<40} {empty_ns:>8.0f}")
    print(f"  one iteration alone takes {1e9 / alone:,.0f} ns (wall), {alone_cpu:,.0f} ns (CPU)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
