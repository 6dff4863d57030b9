# SPDX-License-Identifier: Apache-2.0
"""Whole-pipeline benchmark on the real kernel: events/s before the first drop, and syscall -> alert latency.

It starts `lanner up` (Redis + the four services), subscribes to alerts, then drives openat(2) load at rising
rates from a child process (opens of /etc/hostname, which no rule matches, as most production events match
nothing). Each step runs for a few seconds; the script reads every stage's Prometheus counters and stops at the
first step where any stage dropped events. Alongside the load, a second child reads /etc/shadow ten times a
second with cat(1); the latency of those alerts is measured from the kernel timestamp of the event to its arrival at the
Subscribe client. Run as root: `sudo make bench` or `sudo .venv/bin/python bench/bench_pipeline.py`.
"""

from __future__ import annotations

import argparse
import json
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
from pathlib import Path

import grpc

from lanner.v1 import services_pb2, services_pb2_grpc

ROOT = Path(__file__).resolve().parents[1]
METRICS = {"collector": 9701, "enricher": 9702, "ruleengine": 9703, "dispatcher": 9704}
LOAD_CHILD = r"""
import os, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
end = time.monotonic() + seconds
step = 0.001
per_step = rate * step
owed = 0.0
next_t = time.monotonic()
while time.monotonic() < end:
    owed += per_step
    n = int(owed)
    owed -= n
    for _ in range(n):
        os.close(os.open("/etc/hostname", os.O_RDONLY))
    next_t += step
    delay = next_t - time.monotonic()
    if delay > 0:
        time.sleep(delay)
"""
TRIGGER_CHILD = r"""
import subprocess, sys, time
end = time.monotonic() + float(sys.argv[1])
while time.monotonic() < end:
    subprocess.run(["cat", "/etc/shadow"], stdout=subprocess.DEVNULL)
    time.sleep(0.1)
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def scrape(port: int) -> dict[str, float]:
    try:
        text = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return {}
    out: dict[str, float] = {}
    for line in text.splitlines():
        m = re.match(r"^(lanner_events_(?:in|out|dropped)_total)(\{[^}]*\})? ([0-9.e+]+)$", line)
        if m:
            out[m.group(1) + (m.group(2) or "")] = float(m.group(3))
    return out


def totals() -> tuple[float, float, dict[str, float]]:
    ingested = dropped = 0.0
    drops: dict[str, float] = {}
    for name, port in METRICS.items():
        for key, value in scrape(port).items():
            if key.startswith("lanner_events_dropped_total"):
                dropped += value
                drops[f"{name}:{key}"] = value
            if key == 'lanner_events_in_total{stage="ruleengine"}':
                ingested += value
    return ingested, dropped, drops


TICK = os.sysconf("SC_CLK_TCK")


def service_pids(up_pid: int) -> dict[str, int]:
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
        if int(stat.rsplit(")", 1)[1].split()[1]) != up_pid:
            continue
        for name in METRICS:
            if name.encode() in argv:
                pids[name] = int(entry.name)
    return pids


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time of a process, in seconds."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / TICK


class Subscriber(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.latencies_ms: list[float] = []
        # Per alert: kernel -> collector, collector -> enricher done, enricher -> rule engine done, -> subscriber.
        self.hops_ms: list[tuple[float, float, float, float]] = []
        self.ready = threading.Event()

    def run(self) -> None:
        with grpc.insecure_channel("127.0.0.1:7704") as channel:
            stub = services_pb2_grpc.SubscriberServiceStub(channel)
            for alert in stub.Subscribe(services_pb2.SubscribeRequest(subscriber_name="bench")):
                self.ready.set()
                now = time.time_ns()
                t = alert.timing
                if "/etc/shadow" in alert.output and t.event_ns:
                    self.latencies_ms.append((now - t.event_ns) / 1e6)
                    if t.collected_ns and t.enriched_ns and t.evaluated_ns:
                        self.hops_ms.append(
                            (
                                (t.collected_ns - t.event_ns) / 1e6,
                                (t.enriched_ns - t.collected_ns) / 1e6,
                                (t.evaluated_ns - t.enriched_ns) / 1e6,
                                (now - t.evaluated_ns) / 1e6,
                            )
                        )


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


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rates", default="1000,2500,5000,10000,20000,40000,80000")
    ap.add_argument("--step-seconds", type=float, default=5.0)
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_pipeline: needs root (eBPF)", file=sys.stderr)
        return 2
    state = Path(tempfile.mkdtemp(prefix="lanner-bench-"))
    up = subprocess.Popen(
        [sys.executable, "-m", "lanner.cli", "up", "--state-dir", str(state), "--redis-port", str(free_port())],
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=(state / "up.stderr").open("wb"), start_new_session=True,
        env={**os.environ, "LANNER_DISPATCHER__OUTPUTS__STDOUT__ENABLED": "false"},
    )
    try:
        if not wait_ports([7701, 7702, 7703, 7704], 120):
            print(f"services did not come up; see {state}/logs", file=sys.stderr)
            return 1
        sub = Subscriber()
        sub.start()
        time.sleep(2)
        pids = service_pids(up.pid)
        names = [n for n in METRICS if n in pids]
        print("CPU columns: microseconds of CPU per event at the rule engine, each service's whole work")
        print("rate_target  events/s_at_ruleengine  drops  alerts_latency_p50_ms  p99_ms  "
              + "  ".join(f"{n[:10]:>10}" for n in names))
        best = 0.0
        all_lat: list[float] = []
        for rate in [float(r) for r in args.rates.split(",")]:
            before_in, before_drop, _ = totals()
            cpu_before = {n: cpu_seconds(pids[n]) for n in names}
            n_lat = len(sub.latencies_ms)
            t0 = time.monotonic()
            trig = subprocess.Popen([sys.executable, "-c", TRIGGER_CHILD, str(args.step_seconds)])
            subprocess.run([sys.executable, "-c", LOAD_CHILD, str(rate), str(args.step_seconds)], check=True)
            trig.wait()
            time.sleep(1.5)  # let the pipeline drain
            elapsed = time.monotonic() - t0 - 1.5
            after_in, after_drop, drops = totals()
            events = max(1.0, after_in - before_in)
            cpu_us = {n: (cpu_seconds(pids[n]) - cpu_before[n]) * 1e6 / events for n in names}
            got = (after_in - before_in) / elapsed
            lat = sub.latencies_ms[n_lat:]
            p50 = statistics.median(lat) if lat else float("nan")
            p99 = statistics.quantiles(lat, n=100)[98] if len(lat) >= 2 else float("nan")
            dropped = after_drop - before_drop
            cpu = "  ".join(f"{cpu_us[n]:>10.1f}" for n in names)
            print(f"{rate:>11.0f}  {got:>22.0f}  {dropped:>5.0f}  {p50:>21.1f}  {p99:>6.1f}  {cpu}", flush=True)
            if dropped > 0:
                print(f"first drops at target {rate:.0f}/s: {json.dumps({k: v for k, v in drops.items() if v})}")
                break
            best = max(best, got)
            all_lat.extend(lat)
        print(f"\nevents/s through the whole pipeline before the first drop: {best:.0f}")
        if all_lat:
            q = statistics.quantiles(all_lat, n=100)
            print(f"syscall -> alert at subscriber: p50 {statistics.median(all_lat):.1f} ms, p99 {q[98]:.1f} ms "
                  f"({len(all_lat)} alerts)")
        if len(sub.hops_ms) >= 2:
            names = ("kernel->collector", "collector->enricher", "enricher->ruleengine", "ruleengine->subscriber")
            for i, name in enumerate(names):
                hop = [h[i] for h in sub.hops_ms]
                print(f"  {name:<24} p50 {statistics.median(hop):7.1f} ms  p99 "
                      f"{statistics.quantiles(hop, n=100)[98]:7.1f} ms")
        return 0
    finally:
        up.send_signal(signal.SIGINT)
        try:
            up.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(up.pid, signal.SIGKILL)


if __name__ == "__main__":
    raise SystemExit(main())
