# SPDX-License-Identifier: Apache-2.0
"""Where the open/close storm's slowdown through `lanner up` goes (issue 6, no alerts).

Rounds interleave the setups, and the figures are medians (the machine is shared; a best-of favours whichever
setup had the luckiest moment):
  - the storm alone, and with empty openat (+ close) tracepoints (the issue's baseline);
  - the storm through `lanner up` (all four services, Redis, a Subscribe client; stable rules, no marker opens).

Per setup: opens/s (wall), the storm's own CPU ns per iteration (user + system: the probes run in its system time,
so this is the kernel-side cost with little of the machine's noise), and the host's busy CPU during the storm.
During the `lanner up` storms also: CPU per service (and Redis), voluntary context switches per service (wake-ups),
events in at each stage, and the collector's kernel filter counters per syscall. Then one storm with BPF stats on
gives each attached program's ns/run and runs per iteration (read from the collector's fds).

    flock /tmp/lanner-e2e.lock .venv/bin/python bench/bench_storm.py [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import statistics
import struct
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_kfilter as kf
from bench_kcost import EMPTY_OPEN_CLOSE_BPF, bpf_stats
from bench_kfilter import EMPTY_BPF, bcc
from stack import METRICS, STABLE_RULES, LoadGen, Stack, Subscriber, cpu_seconds, scrape

_NR_BPF = 321  # x86_64
# Pids whose Lanner probes are the ones under test (the stack's collector), not another's.
OWN: set[int] = set()


def host_busy() -> tuple[float, float]:
    """(busy, total) jiffies of the whole host, from /proc/stat."""
    vals = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    idle = vals[3] + vals[4]
    return float(sum(vals) - idle), float(sum(vals))


def storm(load: LoadGen, seconds: float, consume: Callable[[], object] | None = None) -> dict[str, float]:
    """One storm at full speed, no marker opens: opens/s, the storm's CPU ns per open+close, the host's busy %."""
    foreign = foreign_probes(OWN)
    b0, t0 = host_busy()
    p = subprocess.Popen(load.cmd(0, seconds, 0), stdout=subprocess.PIPE, text=True)
    while True:
        pid, _status, ru = os.wait4(p.pid, os.WNOHANG)
        if pid:
            break
        if consume is not None:
            consume()
        time.sleep(0.001 if consume is not None else 0.05)
    b1, t1 = host_busy()
    assert p.stdout is not None
    n, _m, dt = p.stdout.read().split()
    p.stdout.close()
    return {
        "rate": int(n) / float(dt),
        "cpu_ns": (ru.ru_utime + ru.ru_stime) * 1e9 / int(n),
        "sys_ns": ru.ru_stime * 1e9 / int(n),
        "foreign": foreign,
        "host_busy": 100.0 * (b1 - b0) / max(1.0, t1 - t0) * (os.cpu_count() or 1),
    }


def under_bcc(load: LoadGen, seconds: float, text: str) -> dict[str, float]:
    b = bcc().BPF(text=text)
    try:
        return storm(load, seconds)
    finally:
        b.cleanup()


def foreign_probes(own: set[int]) -> int:
    """Processes other than ``own`` (and this one) holding Lanner's open filter program: another collector on a shared
    host, whose probes slow every setup here alike but at random."""
    me, n = os.getpid(), 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit() or int(entry.name) in own or int(entry.name) == me:
            continue
        try:
            fds = list((entry / "fdinfo").iterdir())
        except OSError:
            continue
        for fd in fds:
            try:
                text = fd.read_text()
            except OSError:
                continue
            if "prog_id:" in text and prog_name(int(text.split("prog_id:")[1].split()[0])).startswith("kf_open_filter"):
                n += 1
                break
    return n


class InProcess:
    """Lanner's probes and collector loop in this process (bench_kfilter.Lanner), stable spec applied; detached
    between its own storms so that the other setups run without them."""

    def __init__(self, rules: list[str]) -> None:
        self.lanner = kf.Lanner(rules)
        self.control = self.lanner.control
        self.control.filtering = True
        self.detach()

    def detach(self) -> None:
        self.control._attach(set())
        self.control.fingerprint = ""

    def storm(self, load: LoadGen, seconds: float) -> dict[str, float]:
        self.lanner.src.apply_spec(self.lanner.spec)
        while self.lanner.src.poll():
            pass
        try:
            return storm(load, seconds, lambda: len(self.lanner.src.poll()))
        finally:
            self.detach()

    def close(self) -> None:
        self.lanner.close()


def redis_pid(stack: Stack) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
        except OSError:
            continue
        if "(redis-server)" in stat and int(stat.rsplit(")", 1)[1].split()[1]) == stack.proc.pid:
            return int(entry.name)
    return None


def switches(pid: int) -> tuple[int, int]:
    """(voluntary, involuntary) context switches over every thread of ``pid``."""
    vol = invol = 0
    try:
        tasks = list(Path(f"/proc/{pid}/task").iterdir())
    except OSError:
        return 0, 0
    for t in tasks:
        try:
            for line in (t / "status").read_text().splitlines():
                if line.startswith("voluntary_ctxt_switches"):
                    vol += int(line.split()[1])
                elif line.startswith("nonvoluntary_ctxt_switches"):
                    invol += int(line.split()[1])
        except OSError:
            continue
    return vol, invol


def service_state(pids: dict[str, int]) -> dict[str, tuple[float, int, int]]:
    return {n: (cpu_seconds(p), *switches(p)) for n, p in pids.items()}


def kernel_counts() -> dict[str, float]:
    """The collector's kernel filter counters and every stage's events in."""
    out = {}
    for key, value in scrape(METRICS["collector"]).items():
        if key.startswith(("lanner_kernel_passed_total", "lanner_kernel_filtered_total")):
            out[key] = value
    for name, port in METRICS.items():
        for key, value in scrape(port).items():
            if key.startswith("lanner_events_in_total"):
                out[f"{name}:{key}"] = value
    return out


def stack_storm(load: LoadGen, seconds: float, pids: dict[str, int]) -> dict[str, Any]:
    s0, k0, t0 = service_state(pids), kernel_counts(), time.monotonic()
    res: dict[str, Any] = storm(load, seconds)
    s1, dt = service_state(pids), time.monotonic() - t0
    time.sleep(1.5)  # the collector updates its kernel filter counters once a second
    k1 = kernel_counts()
    res["cpu_pct"] = {n: 100.0 * (s1[n][0] - s0[n][0]) / dt for n in pids}
    res["wakeups_per_s"] = {n: (s1[n][1] - s0[n][1]) / dt for n in pids}
    res["counts"] = {k: v - k0.get(k, 0.0) for k, v in k1.items() if v - k0.get(k, 0.0)}
    return res


def collector_prog_costs(pid: int, load: LoadGen, seconds: float) -> tuple[float, list[tuple[str, float, float]]]:
    """One storm with BPF stats on: (opens/s, [(program, ns/run, runs per open+close)]) over the collector's
    program fds (its /proc fdinfo gives run_time_ns and run_cnt)."""

    def read() -> dict[str, tuple[int, int]]:
        out = {}
        for fd in Path(f"/proc/{pid}/fdinfo").iterdir():
            try:
                text = fd.read_text()
            except OSError:
                continue
            vals = dict(line.split(":", 1) for line in text.splitlines() if ":" in line)
            if "prog_id" not in vals:
                continue
            pid_ = vals["prog_id"].strip()
            name = f"{prog_name(int(pid_))} (id {pid_})"
            out[name] = (int(vals.get("run_time_ns", "0")), int(vals.get("run_cnt", "0")))
        return out

    with bpf_stats():
        before = read()
        res = storm(load, seconds)
        after = read()
    iters = res["rate"] * seconds
    rows = []
    for name, (t, n) in after.items():
        dn = n - before.get(name, (0, 0))[1]
        if dn:
            rows.append((name, (t - before.get(name, (0, 0))[0]) / dn, dn / iters))
    rows.sort(key=lambda r: -r[1] * r[2])
    return res["rate"], rows


_NAMES: dict[str, str] = {}


def prog_names() -> dict[str, str]:
    """prog id -> name, asked of the kernel (BPF_PROG_GET_FD_BY_ID, then BPF_OBJ_GET_INFO_BY_FD)."""
    return _NAMES


def prog_name(prog_id: int) -> str:
    if str(prog_id) in _NAMES:
        return _NAMES[str(prog_id)]
    libc = ctypes.CDLL(None, use_errno=True)
    attr = (ctypes.c_uint8 * 128)()
    struct.pack_into("I", attr, 0, prog_id)
    fd = libc.syscall(_NR_BPF, 13, ctypes.byref(attr), 128)  # BPF_PROG_GET_FD_BY_ID
    name = str(prog_id)
    if fd >= 0:
        info = (ctypes.c_uint8 * 256)()
        attr2 = (ctypes.c_uint8 * 128)()
        struct.pack_into("IIQ", attr2, 0, fd, 256, ctypes.addressof(info))
        if libc.syscall(_NR_BPF, 15, ctypes.byref(attr2), 128) == 0:  # BPF_OBJ_GET_INFO_BY_FD
            name = bytes(info[64:80]).split(b"\0", 1)[0].decode() or name
            name += f" {struct.unpack_from('I', info, 20)[0] // 8} insns"
        os.close(fd)
    _NAMES[str(prog_id)] = name
    return name


def med(rows: list[dict[str, Any]], key: str) -> float:
    return statistics.median(r[key] for r in rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--seconds", type=float, default=2.0)
    ap.add_argument("--rules", nargs="*", default=[str(STABLE_RULES)])
    ap.add_argument("--env", action="append", default=[], help="NAME=VALUE for the stack (repeatable)")
    ap.add_argument("--json", metavar="FILE")
    ap.add_argument(
        "--code",
        action="append",
        type=Path,
        default=[],
        help="a checkout whose probes to compare side by side in-process (repeatable; bench/storm_ab.py)",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_storm: needs root (eBPF)", file=sys.stderr)
        return 2
    load = LoadGen()
    secs = args.seconds
    if args.code:
        import storm_ab

        storm_ab.run(
            [c.resolve() for c in args.code], args.rules, args.rounds, secs, storm, load, OWN, collector_prog_costs
        )
        return 0
    env = dict(e.split("=", 1) for e in args.env)
    la0 = os.getloadavg()
    rows: dict[str, list[dict[str, Any]]] = {
        "alone": [],
        "empty openat": [],
        "empty openat+close": [],
        "in-process probes": [],
        "lanner up": [],
    }
    inproc = InProcess(args.rules)
    costs: tuple[float, list[tuple[str, float, float]]] = (0.0, [])
    for r in range(args.rounds):
        # The baselines run while no stack is up (its probes would be attached), so each round starts one.
        rows["alone"].append(storm(load, secs))
        rows["empty openat"].append(under_bcc(load, secs, EMPTY_BPF))
        rows["empty openat+close"].append(under_bcc(load, secs, EMPTY_OPEN_CLOSE_BPF))
        rows["in-process probes"].append(inproc.storm(load, secs))
        stack = Stack([Path(r) for r in args.rules], "", env=env)
        try:
            if not stack.wait_ready() or not stack.wait_spec():
                raise SystemExit(f"services did not come up; see {stack.state}/logs")
            rpid = redis_pid(stack)
            pids = dict(stack.pids, **({"redis": rpid} if rpid else {}))
            OWN.clear()
            OWN.add(stack.pids["collector"])
            sub = Subscriber()
            sub.start()
            time.sleep(3.0)
            idle = stack_idle(pids, secs)
            rows["lanner up"].append(stack_storm(load, secs, pids))
            rows["lanner up"][-1]["idle"] = idle
            if r == args.rounds - 1:
                costs = collector_prog_costs(stack.pids["collector"], load, secs)
        finally:
            stack.stop()
        print(
            f"round {r + 1}: "
            + "  ".join(f"{k} {v[-1]['rate']:,.0f}/s ({v[-1]['cpu_ns']:.0f} ns)" for k, v in rows.items()),
            flush=True,
        )
    inproc.close()
    la1 = os.getloadavg()
    report(rows, costs, la0, la1, secs)
    if args.json:
        Path(args.json).write_text(json.dumps({"rows": rows, "load": [la0, la1], "costs": costs}, indent=1))
    return 0


def stack_idle(pids: dict[str, int], seconds: float) -> dict[str, float]:
    """% of a core per service with no storm, for scale."""
    s0, k0 = service_state(pids), kernel_counts()
    time.sleep(seconds)
    s1, k1 = service_state(pids), kernel_counts()
    out = {n: 100.0 * (s1[n][0] - s0[n][0]) / seconds for n in pids}
    key = 'collector:lanner_events_in_total{stage="collector"}'
    out["events/s"] = (k1.get(key, 0.0) - k0.get(key, 0.0)) / seconds
    return out


def report(
    rows: dict[str, list[dict[str, Any]]],
    costs: tuple[float, list[tuple[str, float, float]]],
    la0: tuple[float, float, float],
    la1: tuple[float, float, float],
    secs: float,
) -> None:
    n = len(rows["alone"])
    print(
        f"open/close storm, median of {n} interleaved rounds x {secs:.0f} s; load average {la0[0]:.1f} -> {la1[0]:.1f}"
    )
    alone, alone_cpu = med(rows["alone"], "rate"), med(rows["alone"], "cpu_ns")
    empty = med(rows["empty openat"], "rate")
    for label, rs in rows.items():
        rate, cpu = med(rs, "rate"), med(rs, "cpu_ns")
        print(
            f"  {label:<20} {rate:>9,.0f} opens/s  {alone / rate:5.2f}x alone  {rate / empty:5.0%} of empty  "
            f"storm CPU {cpu:5.0f} ns/iter ({cpu / alone_cpu:4.2f}x)  sys {med(rs, 'sys_ns'):5.0f}  "
            f"host busy {med(rs, 'host_busy'):5.0f}%"
        )
        print(
            "      rates: "
            + " ".join(f"{r['rate'] / 1000:.0f}k" for r in rs)
            + "   ns/iter: "
            + " ".join(f"{r['cpu_ns']:.0f}" for r in rs)
            + "   other collectors' probes attached: "
            + " ".join(str(r["foreign"]) for r in rs)
        )
    up = rows["lanner up"]
    names = list(up[0]["cpu_pct"])
    print(
        "  lanner up, per service during the storm (median): % of a core, wake-ups/s; idle % before it "
        f"(host events reaching the collector then: {statistics.median(r['idle']['events/s'] for r in up):,.0f}/s)"
    )
    for name in names:
        cpu = statistics.median(r["cpu_pct"][name] for r in up)
        wk = statistics.median(r["wakeups_per_s"][name] for r in up)
        idle = statistics.median(r["idle"][name] for r in up)
        print(f"    {name:<11} {cpu:6.1f}%  {wk:8.0f}/s   idle {idle:5.1f}%")
    print("  events during one storm (median per counter, including the 1.5 s after it)")
    keys = sorted({k for r in up for k in r["counts"]})
    for k in keys:
        print(f"    {k:<70} {statistics.median(r['counts'].get(k, 0.0) for r in up):>12,.0f}")
    rate, progs = costs
    print(f"  BPF programs of the collector, one storm with stats on ({rate:,.0f} opens/s)")
    total = 0.0
    for name, ns, per in progs:
        total += ns * per
        if per >= 0.01:
            print(f"    {name:<32} {ns:7.0f} ns/run  {per:6.2f} runs/iter  {ns * per:6.0f} ns/iter")
    print(f"    {'sum':<32} {'':>7}         {'':>6}            {total:6.0f} ns/iter")


if __name__ == "__main__":
    sys.exit(main())
