# SPDX-License-Identifier: Apache-2.0
"""Kernel-side cost of tracing an open/close storm: the workload alone, with tracepoints that return at once, with a
minimal bcc consumer (the floor), and with Lanner's probes and collector loop, with and without the in-kernel filter.

The storm is a small C program (open + close of one file in a loop, single thread); its opens/s in each setup give
the slowdown. For the consuming setups this process drains the ring buffer every millisecond meanwhile (Lanner:
decoding every record into Events, as the collector service does). Figures only; nothing is asserted.

Then a busy-host mix (TCP connects, unix-socket connects, UDP sends, and file creation, rename, unlink, mkdir,
rmdir, each with its socket or open): which syscalls reach userspace with the filter off, with only the open family
filtered (what the kernel filter did before it covered socket calls and file operations), and with every filterable
type filtered.

    sudo .venv/bin/python bench/bench_kfilter.py [--seconds 3] [--rules FILE...] [--mix-only]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
STORM_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double secs = atof(argv[1]), end = now() + secs, t0 = now();
    long n = 0;
    while (1) {
        for (int i = 0; i < 1000; i++) { int fd = open(argv[2], O_RDONLY); if (fd >= 0) close(fd); }
        n += 1000;
        if (now() >= end) break;
    }
    printf("%ld %f\n", n, now() - t0);
    return 0;
}
"""

# One round: a TCP connect (nonblocking, to a closed local port), a unix-socket connect (to no listener), a UDP send,
# then a file created, renamed and removed, and a directory made and removed.
MIX_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <netinet/in.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
int main(int argc, char **argv) {
    double secs = atof(argv[1]), end = now() + secs, t0 = now();
    const char *dir = argv[2];
    struct sockaddr_in tcp = {0}, udp = {0};
    tcp.sin_family = udp.sin_family = AF_INET;
    tcp.sin_port = htons(9); udp.sin_port = htons(9);
    inet_pton(AF_INET, "127.0.0.1", &tcp.sin_addr); udp.sin_addr = tcp.sin_addr;
    struct sockaddr_un un = {0};
    un.sun_family = AF_UNIX;
    snprintf(un.sun_path, sizeof(un.sun_path), "%s/none.sock", dir);
    char f[512], g[512], d[512];
    snprintf(f, sizeof f, "%s/f", dir); snprintf(g, sizeof g, "%s/g", dir); snprintf(d, sizeof d, "%s/d", dir);
    long n = 0;
    while (1) {
        for (int i = 0; i < 100; i++) {
            int s = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK, 0);
            connect(s, (struct sockaddr *)&tcp, sizeof tcp); close(s);
            s = socket(AF_UNIX, SOCK_STREAM, 0);
            connect(s, (struct sockaddr *)&un, sizeof un); close(s);
            s = socket(AF_INET, SOCK_DGRAM, 0);
            sendto(s, "x", 1, MSG_DONTWAIT, (struct sockaddr *)&udp, sizeof udp); close(s);
            int fd = open(f, O_CREAT | O_WRONLY, 0600); if (fd >= 0) close(fd);
            rename(f, g); unlink(g); mkdir(d, 0700); rmdir(d);
        }
        n += 100;
        if (now() >= end) break;
    }
    printf("%ld %f\n", n, now() - t0);
    return 0;
}
"""
MIX_SYSCALLS = ("socket", "connect", "sendto", "openat", "rename", "unlink", "mkdir", "rmdir")

EMPTY_BPF = r"""
TRACEPOINT_PROBE(syscalls, sys_enter_openat) { return 0; }
TRACEPOINT_PROBE(syscalls, sys_exit_openat) { return 0; }
"""

# The floor: what any tracer must do at least. Pair enter/exit per thread, copy the path, one ring buffer record.
FLOOR_BPF = r"""
struct rec { u64 ts; u32 pid; s32 res; char comm[16]; char path[256]; };
BPF_RINGBUF_OUTPUT(out, 2048);
BPF_HASH(names, u32, u64, 16384);
TRACEPOINT_PROBE(syscalls, sys_enter_openat) {
    u32 tid = bpf_get_current_pid_tgid();
    u64 p = (u64)args->filename;
    names.update(&tid, &p);
    return 0;
}
TRACEPOINT_PROBE(syscalls, sys_exit_openat) {
    u32 tid = bpf_get_current_pid_tgid();
    u64 *p = names.lookup(&tid);
    if (!p) return 0;
    struct rec *r = out.ringbuf_reserve(sizeof(struct rec));
    if (r) {
        r->ts = bpf_ktime_get_ns();
        r->pid = bpf_get_current_pid_tgid() >> 32;
        r->res = args->ret;
        bpf_get_current_comm(r->comm, sizeof(r->comm));
        bpf_probe_read_user_str(r->path, sizeof(r->path), (const char *)*p);
        out.ringbuf_submit(r, BPF_RB_NO_WAKEUP);
    }
    names.delete(&tid);
    return 0;
}
"""


def build_storm(text: str = STORM_C, name: str = "storm") -> str:
    d = tempfile.mkdtemp(prefix="lanner-bench-")
    src, exe = os.path.join(d, f"{name}.c"), os.path.join(d, name)
    Path(src).write_text(text)
    subprocess.run(["gcc", "-O2", "-o", exe, src], check=True)
    return exe


def storm(
    exe: str, seconds: float, consume: Callable[[], int] | None = None, arg: str = "/etc/hostname"
) -> tuple[float, int]:
    """Run the storm; with ``consume``, call it every millisecond meanwhile. Returns (rounds/s, records consumed)."""
    p = subprocess.Popen([exe, str(seconds), arg], stdout=subprocess.PIPE, text=True)
    got = 0
    while p.poll() is None:
        if consume is not None:
            got += consume()
        time.sleep(0.001)
    if consume is not None:
        for _ in range(50):
            n = consume()
            got += n
            if not n:
                break
    out, _ = p.communicate()
    n, dt = out.split()
    return int(n) / float(dt), got


def bcc() -> Any:
    from collector.preflight import import_bcc

    return import_bcc()


def run_bcc(exe: str, seconds: float, text: str, with_ring: bool) -> tuple[float, int]:
    b = bcc().BPF(text=text)
    count = [0]
    consume: Callable[[], int] | None = None
    if with_ring:

        def on(_ctx: Any, _data: Any, _size: int) -> int:
            count[0] += 1
            return 0

        b[b"out"].open_ring_buffer(on)

        def consume() -> int:
            before = count[0]
            b.ring_buffer_consume()
            return count[0] - before

    try:
        return storm(exe, seconds, consume)
    finally:
        b.cleanup()


class Lanner:
    """Lanner's probes and collector loop (in this process), with the kernel spec of ``rules`` applied."""

    def __init__(self, rules: list[str]) -> None:
        from collector.source import BpfProbe, KernelSource
        from ruleengine.engine import load_rules
        from ruleengine.kspec import build_spec

        # The storm is this process's child: nothing is excluded, as for any other workload.
        self.src = KernelSource(BpfProbe(ring_buffer_pages=2048, exclude_self=False))
        self.src.start()
        res = load_rules(rules)
        assert res.engine is not None, [e.format() for e in res.errors]
        self.spec = build_spec(res.engine.enabled)
        self.control = self.src.reader.control  # type: ignore[attr-defined]

    def run(self, exe: str, seconds: float, kernel_filter: bool) -> tuple[float, int, str]:
        self.control.filtering = kernel_filter
        self.control.fingerprint = ""  # re-apply with the switch as set
        self.src.apply_spec(self.spec)
        while self.src.poll():
            pass
        before = self.control.counts()["openat"]
        dropped = self.src.dropped()
        rate, events = storm(exe, seconds, lambda: len(self.src.poll()))
        after = self.control.counts()["openat"]
        kf = f"kernel filtered {after[0] - before[0]:,}, passed {after[1] - before[1]:,}; "
        kf += f"ring buffer drops {self.src.dropped() - dropped:,}"
        return rate, events, kf

    def mix(self, exe: str, seconds: float, spec: Any) -> tuple[float, dict[str, tuple[int, int, int]]]:
        """The busy-host mix under ``spec`` (None: filter off): rounds/s and, per syscall, (events that reached
        userspace, kernel passed, kernel filtered)."""
        from collections import Counter

        self.control.filtering = spec is not None
        self.control.fingerprint = ""
        self.src.apply_spec(spec if spec is not None else self.spec)
        while self.src.poll():
            pass
        before = self.control.counts()
        seen: Counter[str] = Counter()
        me = os.getpid()

        def consume() -> int:
            evs = self.src.poll()
            seen.update(e.type for e in evs if e.proc.ppid == me or e.proc.pid == me)
            return len(evs)

        with tempfile.TemporaryDirectory(prefix="lanner-mix-") as d:
            rate, _ = storm(exe, seconds, consume, arg=d)
        after = self.control.counts()
        out = {
            sc: (seen[sc], after[sc][1] - before[sc][1], after[sc][0] - before[sc][0])
            for sc in MIX_SYSCALLS
            if sc in after
        }
        return rate, out

    def close(self) -> None:
        self.src.close()


def detach_all(lanner: Lanner) -> None:
    """Detach every syscall probe of ``lanner`` (bcc attached them all when it loaded the program), so that a
    baseline storm runs without them; ``attach_spec`` (or ``Lanner.run``) puts back what the spec wants."""
    lanner.control._attach(set())
    lanner.control.fingerprint = ""


def attach_spec(lanner: Lanner) -> None:
    lanner.control.fingerprint = ""
    lanner.src.apply_spec(lanner.spec)


def opens_only(spec: Any) -> Any:
    """``spec`` with its filters cut down to the open family: the kernel filter as it was before this one."""
    from lanner.v1 import kfilter_pb2
    from ruleengine.kfilter import OPEN_TYPES

    out = kfilter_pb2.KernelSpec()
    out.CopyFrom(spec)
    del out.filters[:]
    out.filters.extend(f for f in spec.filters if f.event_type in OPEN_TYPES)
    out.fingerprint = spec.fingerprint + "-opens"
    return out


def run_mix(lanner: Lanner, seconds: float, rounds: int) -> None:
    exe = build_storm(MIX_C, "mix")
    setups = (("filter off", None), ("opens only", opens_only(lanner.spec)), ("all types", lanner.spec))
    best: dict[str, tuple[float, dict[str, tuple[int, int, int]]]] = {}
    for _ in range(rounds):
        for label, spec in setups:
            rate, per = lanner.mix(exe, seconds, spec)
            if label not in best or rate > best[label][0]:
                best[label] = (rate, per)
    print(f"busy-host mix (connect storm + file operations), best of {rounds} x {seconds:.0f}s per setup")
    print("  events reaching userspace per syscall (kernel passed / filtered), and rounds/s of the mix")
    print(f"  {'syscall':<10}" + "".join(f"{label:>34}" for label, _ in setups))
    for sc in MIX_SYSCALLS:
        cells = []
        for label, _ in setups:
            seen, passed, filtered = best[label][1].get(sc, (0, 0, 0))
            cells.append(f"{seen:>12,} ({passed:,} / {filtered:,})")
        print(f"  {sc:<10}" + "".join(f"{c:>34}" for c in cells))
    print(f"  {'rounds/s':<10}" + "".join(f"{best[label][0]:>34,.0f}" for label, _ in setups))


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=3.0)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--mix-only", action="store_true", help="only the busy-host mix")
    ap.add_argument(
        "--rules",
        nargs="+",
        default=[str(ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml")],
        help="rules whose kernel spec Lanner applies (default: the stable Falco ruleset)",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("needs root (eBPF)", file=sys.stderr)
        return 1
    rules = [r for r in args.rules if Path(r).exists()] or [str(ROOT / "rules" / "lanner_rules.yaml")]
    exe = build_storm()
    secs = args.seconds
    lanner = Lanner(rules)
    best: dict[str, tuple[float, str]] = {}

    def keep(label: str, rate: float, note: str = "") -> None:
        if label not in best or rate > best[label][0]:
            best[label] = (rate, note)

    # Rounds interleave the setups; the best of each is kept (the machine is shared, so slow outliers are noise).
    try:
        print(f"load average {os.getloadavg()[0]:.1f} at start")
        run_mix(lanner, secs, args.rounds)
        if args.mix_only:
            return 0
        for _ in range(args.rounds):
            detach_all(lanner)  # the baselines run without Lanner's probes
            keep("workload alone", storm(exe, secs)[0])
            keep("tracepoints that return at once", run_bcc(exe, secs, EMPTY_BPF, False)[0])
            rate, got = run_bcc(exe, secs, FLOOR_BPF, True)
            keep("bare bcc consumer (floor)", rate, f"{got:,} records consumed")
            for kf in (True, False):
                rate, events, note = lanner.run(exe, secs, kf)
                keep(
                    f"Lanner probes + collector loop, filter {'on' if kf else 'off'}",
                    rate,
                    f"{events:,} events; {note}",
                )
    finally:
        lanner.close()
    alone = best["workload alone"][0]
    names = ", ".join(Path(r).name for r in rules)
    print(f"open/close storm, best of {args.rounds} x {secs:.0f}s per setup; Lanner's kernel spec from: {names}")
    for label, (rate, note) in best.items():
        print(f"  {label:<44} {rate:>11,.0f} opens/s  slowdown {alone / rate:5.2f}x  {note}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
