# SPDX-License-Identifier: Apache-2.0
"""What the whole-pipeline benchmarks share: a `lanner up` stack with chosen rules, its services' pids and CPU time,
their Prometheus counters, a Subscribe client that keeps every alert's timing, and a C open/close load generator.

Imported by bench/bench_pipeline.py and bench/bench_idle.py (run from the repository root, as root).
"""

from __future__ import annotations

import os
import re
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import grpc

from lanner.v1 import services_pb2, services_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
STABLE_RULES = ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml"
# The bench's stack listens off the default ports (7701-7704, 9701-9704): a rule engine elsewhere on the host left at
# its default `collector_target` pushes its kernel spec to 127.0.0.1:7701, and that spec would filter the bench's
# marker opens in the kernel (seen on the shared development host).
SERVICE_PORTS = {"collector": 17701, "enricher": 17702, "ruleengine": 17703, "dispatcher": 17704}
METRICS = {name: port + 2000 for name, port in SERVICE_PORTS.items()}
PORTS = list(SERVICE_PORTS.values())
PORT_ENV = {
    **{f"LANNER_{n.upper()}__BIND": f"127.0.0.1:{p}" for n, p in SERVICE_PORTS.items()},
    **{f"LANNER_{n.upper()}__METRICS_BIND": f"127.0.0.1:{p}" for n, p in METRICS.items()},
    "LANNER_COLLECTOR__ENRICHER_TARGET": f"127.0.0.1:{SERVICE_PORTS['enricher']}",
    "LANNER_ENRICHER__RULEENGINE_TARGET": f"127.0.0.1:{SERVICE_PORTS['ruleengine']}",
    "LANNER_RULEENGINE__DISPATCHER_TARGET": f"127.0.0.1:{SERVICE_PORTS['dispatcher']}",
    "LANNER_RULEENGINE__COLLECTOR_TARGET": f"127.0.0.1:{SERVICE_PORTS['collector']}",
}
TICK = os.sysconf("SC_CLK_TCK")
MARKER_RULE = "Bench marker open"
# The load generator's name (its comm): the forced-to-userspace rule is about its opens only, so another process's
# open storm on a shared host cannot flood the stack under test.
LOADGEN = "lanner-loadgen"

# open+close in a loop. rate 0 = as fast as it can; otherwise paced every 0.5 ms to `rate` opens/s. Every
# `every`-th open is of the marker path (the one a bench rule alerts on). Prints: opens markers seconds.
# With a 7th argument N > 0 the opens do not repeat the way a storm of one open does: `plain` is a directory of
# files f0..f(N-1), opened in turn; 16 fds stay open in a ring (each open closes the one 16 opens before), so fd
# numbers vary; and each run of 1000 opens is made by a new child process (new pid, new start time).
LOADGEN_C = r"""
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
static double now(void) { struct timespec t; clock_gettime(CLOCK_MONOTONIC, &t); return t.tv_sec + t.tv_nsec / 1e9; }
static long *counts; /* opens, markers: shared with the children in distinct mode */
static void run(double rate, double t0, double end, const char *plain, const char *marker, long every,
                long files, long quota) {
    struct timespec nap = {0, 500000};
    int ring[16];
    char path[4096];
    double t;
    long stop = counts[0] + quota;
    for (int i = 0; i < 16; i++) ring[i] = -1;
    while ((t = now()) < end && counts[0] < stop) {
        long target = rate > 0 ? (long)((t - t0) * rate) : counts[0] + 1000;
        if (target > stop) target = stop;
        if (rate > 0 && counts[0] >= target) { nanosleep(&nap, NULL); continue; }
        while (counts[0] < target) {
            long n = ++counts[0];
            const char *p = plain;
            if (every > 0 && n % every == 0) { p = marker; counts[1]++; }
            else if (files > 0) { snprintf(path, sizeof path, "%s/f%ld", plain, n % files); p = path; }
            int fd = open(p, O_RDONLY);
            if (files > 0) {
                int slot = n % 16;
                if (ring[slot] >= 0) close(ring[slot]);
                ring[slot] = fd;
            } else if (fd >= 0) close(fd);
        }
    }
}
int main(int argc, char **argv) {
    double rate = atof(argv[1]), secs = atof(argv[2]);
    long every = atol(argv[5]), files = argc > 6 ? atol(argv[6]) : 0;
    counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
    double t0 = now(), end = t0 + secs;
    if (files <= 0) {
        run(rate, t0, end, argv[3], argv[4], every, 0, 1L << 62);
    } else {
        while (now() < end) {
            pid_t pid = fork();
            if (pid == 0) { run(rate, t0, end, argv[3], argv[4], every, files, 1000); _exit(0); }
            if (pid < 0) return 1;
            waitpid(pid, NULL, 0);
        }
    }
    printf("%ld %ld %f\n", counts[0], counts[1], now() - t0);
    return 0;
}
"""
# Files the distinct load opens in turn (a prime, so that file and fd slot do not pair up the same way again soon).
DISTINCT_FILES = 4093


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class LoadResult:
    opens: int
    markers: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.opens / self.seconds if self.seconds else 0.0


class LoadGen:
    """The compiled C load generator plus the files it opens (a plain one no rule wants and a marker)."""

    def __init__(self, distinct: bool = False) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="lanner-bench-load-"))
        self.files = DISTINCT_FILES if distinct else 0
        src, self.exe = self.dir / "loadgen.c", self.dir / LOADGEN
        src.write_text(LOADGEN_C)
        subprocess.run(["gcc", "-O2", "-o", str(self.exe), str(src)], check=True)
        self.marker = self.dir / "marker"
        self.marker.write_text("")
        self.plain = "/etc/hostname"
        if self.files:
            self.plain = str(self.dir / "many")
            os.mkdir(self.plain)
            for i in range(self.files):
                Path(self.plain, f"f{i}").write_text("")

    def cmd(self, rate: float, seconds: float, every: int) -> list[str]:
        return [str(self.exe), str(rate), str(seconds), self.plain, str(self.marker), str(every), str(self.files)]

    def run(self, rate: float, seconds: float, every: int) -> LoadResult:
        out = subprocess.run(self.cmd(rate, seconds, every), check=True, capture_output=True, text=True).stdout
        n, m, dt = out.split()
        return LoadResult(int(n), int(m), float(dt))


def marker_rule(marker: Path, force_userspace: bool) -> str:
    """The bench's rules: one that alerts on every open of the marker (the kernel filter passes it by its exact
    path); with ``force_userspace``, one more whose condition the kernel cannot decide (a container image), so
    every open of the load generator must reach the rule engine, where it matches nothing."""
    text = f"""
- rule: {MARKER_RULE}
  desc: the bench's marker file was opened (1 open in N of the load)
  condition: evt.type in (open, openat, openat2) and evt.dir = < and fd.name = {marker}
  output: bench marker opened (file=%fd.name proc=%proc.name)
  priority: NOTICE
"""
    if force_userspace:
        text += f"""
- rule: Bench every open to userspace
  desc: never true; the kernel cannot decide a container image, so every open of the load passes the kernel filter
  condition: >
    evt.type in (open, openat, openat2) and evt.dir = < and proc.name = {LOADGEN}
    and container.image.repository = lanner-bench/none
  output: never (proc=%proc.name)
  priority: NOTICE
"""
    return text


def scrape(port: int) -> dict[str, float]:
    """Every sample of a service's /metrics, keyed by name{labels}."""
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^([a-z_]+)(\{[^}]*\})? ([0-9.e+-]+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


@dataclass
class Counters:
    at_ruleengine: float = 0.0
    dropped: float = 0.0
    kernel_passed: float = 0.0
    kernel_filtered: float = 0.0
    drops: dict[str, float] = field(default_factory=dict)
    # Per stage: events in, and batches (each stage observes its latency histogram once per batch or poll).
    events_in: dict[str, float] = field(default_factory=dict)
    batches: dict[str, float] = field(default_factory=dict)
    # Ring buffer reservations that failed at the first try (retried once): anything but a full ring is a bug.
    ring_retries: float = 0.0

    def __sub__(self, other: Counters) -> Counters:
        return Counters(
            self.at_ruleengine - other.at_ruleengine,
            self.dropped - other.dropped,
            self.kernel_passed - other.kernel_passed,
            self.kernel_filtered - other.kernel_filtered,
            {k: v - other.drops.get(k, 0.0) for k, v in self.drops.items() if v - other.drops.get(k, 0.0)},
            {k: v - other.events_in.get(k, 0.0) for k, v in self.events_in.items()},
            {k: v - other.batches.get(k, 0.0) for k, v in self.batches.items()},
            self.ring_retries - other.ring_retries,
        )

    def batch_sizes(self) -> dict[str, float]:
        """Mean events per batch (per poll, in the collector) at each stage that counted both."""
        return {k: self.events_in.get(k, 0.0) / n for k, n in self.batches.items() if n > 0}

    def ring_drops(self) -> float:
        """Records the kernel accepted for userspace but could not queue in the ring buffer."""
        return sum(v for k, v in self.drops.items() if 'reason="ring_buffer_full"' in k)

    def stage_drops(self, service: str) -> float:
        """Events a service counted as dropped itself (its queue, malformed, ...), ring buffer losses aside."""
        return sum(
            v for k, v in self.drops.items() if k.startswith(service + ":") and 'reason="ring_buffer_full"' not in k
        )

    def vanished(self) -> float:
        """Events that left one stage and never reached the next, with no drop counted for them: the collector's
        and enricher's events in, less their own drops, against the next stage's events in (use on totals since the
        stack started). Read upstream first, events still in flight show here for a moment; background events
        arriving meanwhile only lower it, and so do the drop reports a stage adds (a few events)."""
        gone = 0.0
        for up, down in (("collector", "enricher"), ("enricher", "ruleengine")):
            if up in self.events_in and down in self.events_in:
                gone += max(0.0, self.events_in[up] - self.stage_drops(up) - self.events_in[down])
        return gone


def counters() -> Counters:
    c = Counters()
    for name, port in METRICS.items():
        for key, value in scrape(port).items():
            # Events a stage dropped, and alerts the Subscribe client missed (its queue in the dispatcher was full).
            if key.startswith(("lanner_events_dropped_total", "lanner_alerts_dropped_total")):
                c.dropped += value
                c.drops[f"{name}:{key}"] = value
            elif key == 'lanner_events_in_total{stage="ruleengine"}':
                c.at_ruleengine += value
                c.events_in[name] = value
            elif key == f'lanner_events_in_total{{stage="{name}"}}':
                c.events_in[name] = value
            elif key == f'lanner_stage_latency_seconds_count{{stage="{name}"}}':
                c.batches[name] = value
            elif key.startswith("lanner_kernel_passed_total") and "open" in key:
                c.kernel_passed += value
            elif key.startswith("lanner_kernel_filtered_total") and "open" in key:
                c.kernel_filtered += value
            elif key == "lanner_collector_ring_retries_total":
                c.ring_retries += value
    return c


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process (all its threads), in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


def pctl(values: list[float], q: int) -> float:
    if not values:
        return float("nan")
    if len(values) == 1:
        return values[0]
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


HOPS = ("kernel->collector", "collector->enricher", "enricher->ruleengine", "ruleengine->subscriber")


class Subscriber(threading.Thread):
    """Subscribes to the marker rule's alerts and keeps each one's latency and per-hop split."""

    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.lock = threading.Lock()
        # (end to end, kernel->collector, collector->enricher, enricher->ruleengine, ruleengine->subscriber), ms
        self.samples: list[tuple[float, float, float, float, float]] = []
        self.error = ""

    def run(self) -> None:
        try:
            with grpc.insecure_channel(f"127.0.0.1:{SERVICE_PORTS['dispatcher']}") as channel:
                stub = services_pb2_grpc.SubscriberServiceStub(channel)
                req = services_pb2.SubscribeRequest(subscriber_name="bench", rules=[MARKER_RULE])
                # SubscribeBatches: one message per alert costs the dispatcher a gRPC write and a system call each.
                for batch in stub.SubscribeBatches(req):
                    now = time.time_ns()
                    for alert in batch.alerts:
                        t = alert.timing
                        if not t.event_ns:
                            continue
                        c, e, v = t.collected_ns or now, t.enriched_ns or now, t.evaluated_ns or now
                        ms = 1e6
                        row = (
                            (now - t.event_ns) / ms,
                            (c - t.event_ns) / ms,
                            (e - c) / ms,
                            (v - e) / ms,
                            (now - v) / ms,
                        )
                        with self.lock:
                            self.samples.append(row)
        except grpc.RpcError as exc:
            self.error = str(exc.code())

    def count(self) -> int:
        with self.lock:
            return len(self.samples)

    def since(self, start: int) -> list[tuple[float, float, float, float, float]]:
        with self.lock:
            return self.samples[start:]

    def wait_for(self, n: int, timeout: float) -> int:
        deadline = time.monotonic() + timeout
        while self.count() < n and time.monotonic() < deadline:
            time.sleep(0.05)
        return self.count()


def wait_ports(ports: list[int], timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        ok = 0
        for p in ports:
            try:
                socket.create_connection(("127.0.0.1", p), timeout=0.3).close()
                ok += 1
            except OSError:
                pass
        if ok == len(ports):
            return True
        time.sleep(0.3)
    return False


class Stack:
    """`lanner up` with the given rule files (stdout output off), started and stopped by this process."""

    def __init__(self, rules: list[Path], extra_rules: str = "", env: dict[str, str] | None = None) -> None:
        self.state = Path(tempfile.mkdtemp(prefix="lanner-bench-"))
        files = [str(r) for r in rules]
        if extra_rules:
            extra = self.state / "bench_rules.yaml"
            extra.write_text(extra_rules)
            files.append(str(extra))
        argv = [sys.executable, "-m", "lanner.cli", "up", "--state-dir", str(self.state)]
        argv += ["--redis-port", str(free_port())]
        for f in files:
            argv += ["--rules", f]
        self.proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            stdout=subprocess.DEVNULL,
            stderr=(self.state / "up.stderr").open("wb"),
            start_new_session=True,
            env={
                **os.environ,
                **PORT_ENV,
                "LANNER_DISPATCHER__OUTPUTS__STDOUT__ENABLED": "false",
                # The bench's Python client reads alerts while sharing a loaded host: a queue that rides out a storm
                # of marker alerts (1024 by default; a full one drops and counts, see dispatcher/hub.py).
                "LANNER_DISPATCHER__SUBSCRIBER_QUEUE": "65536",
                **(env or {}),
            },
        )
        self.pids: dict[str, int] = {}

    def wait_ready(self, timeout: float = 150.0) -> bool:
        if not wait_ports(PORTS, timeout):
            return False
        self.pids = self.service_pids()
        return len(self.pids) == len(METRICS)

    def wait_spec(self, timeout: float = 60.0) -> bool:
        """Wait until the collector has applied the rule engine's kernel spec (it logs it)."""
        log = self.state / "logs" / "collector.log"
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                if "kernel spec applied" in log.read_text(errors="replace"):
                    return True
            except OSError:
                pass
            time.sleep(0.2)
        return False

    def service_pids(self) -> dict[str, int]:
        """The pid of each service `lanner up` started (its children run `-m lanner.cli <service>`)."""
        pids: dict[str, int] = {}
        for entry in Path("/proc").iterdir():
            if not entry.name.isdigit():
                continue
            try:
                stat = (entry / "stat").read_text()
                argv = (entry / "cmdline").read_bytes().split(b"\0")
            except OSError:
                continue
            if int(stat.rsplit(")", 1)[1].split()[1]) != self.proc.pid:
                continue
            for name in METRICS:
                if name.encode() in argv:
                    pids[name] = int(entry.name)
        return pids

    def cpu(self) -> dict[str, float]:
        return {n: cpu_seconds(p) for n, p in self.pids.items()}

    def stop(self) -> None:
        self.proc.send_signal(signal.SIGINT)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait()
