# SPDX-License-Identifier: Apache-2.0
"""CPU per alert of the rule engine and the dispatcher, at fixed alert rates, with a Subscribe client attached.

``bench_dispatcher.py --engine 2000,5000`` runs this. It starts a private redis-server, a dispatcher (the file
output on, as `lanner up` has it) and a rule engine (the stable Falco rules plus a rule that alerts on every event
this bench sends, and a spill journal, as `lanner up` has it), and a Subscribe client in its own process. The bench
then pushes enriched openat batches to the rule engine's PushEvents at a fixed rate, in small batches as a storm's
1-in-100 alerting opens arrive (``--event-batch``), and waits until the subscriber has every alert. Each figure is
the process's CPU time (all threads), less its idle CPU, divided by the alerts delivered.

``--code DIR`` runs the two services from another checkout (for example /work/main), so a before/after pair can run
side by side in one invocation: ``--code /work/main --code .``.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import grpc

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
STABLE_RULES = ROOT.parent / "shared" / "falco-rules" / "falco_rules.yaml"
RULE = "Bench alert on every open"
# A directory for py-spy profiles of both services, one per rate step ("": none).
PROFILE = os.environ.get("BENCH_PY_SPY", "")
# The subscriber uses Subscribe (one message per alert) instead of SubscribeBatches (before it existed).
SINGLE = bool(os.environ.get("BENCH_SUBSCRIBE_SINGLE"))
NATIVE = ["--native"] if os.environ.get("BENCH_PY_SPY_NATIVE") else []
# "subscriber" or "file": leave that consumer out, to see what the other costs alone (the file's lines are
# counted when there is no subscriber).
WITHOUT = os.environ.get("BENCH_WITHOUT", "")
# Print Redis's per-command call counts after each checkout's run (how many round trips the alerts took).
REDIS_STATS = bool(os.environ.get("BENCH_REDIS_STATS"))
RULES = f"""
- rule: {RULE}
  desc: every openat this bench sends raises one alert
  condition: evt.type = openat and proc.name = python3
  output: bench open (file=%fd.name proc=%proc.name pid=%proc.pid user=%user.name cmd=%proc.cmdline)
  priority: NOTICE
"""


@dataclass
class Step:
    rate: float
    alerts: int
    delivered: int
    seconds: float
    cpu_us: dict[str, float]
    # CPU µs per event of the same events when none alerts (event intake and evaluation alone).
    quiet_us: dict[str, float]

    def per_alert(self, name: str) -> float:
        return self.cpu_us[name] - self.quiet_us[name]


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def counter_child(target: str) -> None:
    """A Subscribe client in its own process: counts alerts; prints the count for each line read from stdin."""
    import threading

    from lanner.v1 import services_pb2, services_pb2_grpc

    got = 0

    def reader() -> None:
        nonlocal got
        with grpc.insecure_channel(target) as ch:
            stub = services_pb2_grpc.SubscriberServiceStub(ch)
            req = services_pb2.SubscribeRequest(subscriber_name="bench")
            if not SINGLE:
                try:
                    for batch in stub.SubscribeBatches(req):
                        got += len(batch.alerts)
                except grpc.RpcError as exc:
                    if exc.code() != grpc.StatusCode.UNIMPLEMENTED:  # a dispatcher from before SubscribeBatches
                        raise
            for _ in stub.Subscribe(req):
                got += 1

    threading.Thread(target=reader, daemon=True).start()
    print("ready", flush=True)
    for _ in sys.stdin:
        print(got, flush=True)


async def frames(n_events: int, per_batch: int, seq0: int, alerting: bool = True) -> list[bytes]:
    """Enriched EventBatch bytes as the enricher sends them to the rule engine, each event with a fresh seq;
    without ``alerting``, the process is named so that no rule alerts (the same work up to the match)."""
    import dataclasses

    sys.path.insert(0, str(HERE))
    from collector_batches import collector_batch, open_events

    from collector.encode import EventEncoder
    from enricher.enrich import Enricher
    from lanner.v1 import event_pb2
    from lanner.wire import frame_batch_wire

    enc, enricher = EventEncoder(), Enricher(None)
    out = []
    for k in range(0, n_events, per_batch):
        events = open_events(per_batch, seq0=seq0 + k)
        if not alerting:
            events = [dataclasses.replace(e, proc=dataclasses.replace(e.proc, comm="quiet")) for e in events]
        raw = collector_batch(events, 1, enc)
        frame = event_pb2.EventBatchFrame.FromString(raw)
        await enricher.enrich_frame(frame)
        frame.enriched_ns = time.time_ns()
        frame.ClearField("batch_seq")
        out.append(frame_batch_wire(len(out) + 1, [frame.SerializeToString()], 0))
    return out


class Services:
    """redis-server, a dispatcher, a rule engine and a counting subscriber, from the code in ``code``."""

    def __init__(self, tmp: Path, code: Path, ports: list[int]) -> None:
        redis_port, self.disp_port, engine_port = ports
        self.redis_port = redis_port
        self.tmp = tmp
        # BENCH_PYTHONPATH: more import paths for both services (a sitecustomize that measures something).
        paths = [str(code), os.environ.get("BENCH_PYTHONPATH", "")]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in paths if p)}
        # Redis as the checkout's `lanner up` runs it: over a Unix socket where it does (lanner.up.redis_socket).
        unix = "redis_socket" in (code / "lanner" / "up.py").read_text()
        sock = tmp / "redis.sock"
        self.redis = subprocess.Popen(
            [shutil.which("redis-server") or "redis-server", "--port", str(redis_port), "--save", "",
             "--appendonly", "yes", "--appendfsync", "everysec", "--dir", str(tmp),
             *(["--unixsocket", str(sock)] if unix else [])],
            stdout=subprocess.DEVNULL,
        )  # fmt: skip
        redis_url = f"unix://{sock}?db=0" if unix else f"redis://127.0.0.1:{redis_port}/0"
        (tmp / "rules.yaml").write_text(RULES)
        file_on = "false" if WITHOUT == "file" else "true"
        (tmp / "lanner.yaml").write_text(
            "dispatcher:\n"
            f"  bind: 127.0.0.1:{self.disp_port}\n  metrics_bind: ''\n  log_level: warning\n"
            f"  redis_url: {redis_url}\n  subscriber_queue: 65536\n"
            f"  dedup_secret: bench-secret-0123456789abcdef\n"
            f"  outputs:\n    stdout: {{enabled: false}}\n"
            f"    file: {{enabled: {file_on}, path: {tmp / 'alerts.jsonl'}}}\n"
            "ruleengine:\n"
            f"  bind: 127.0.0.1:{engine_port}\n  metrics_bind: ''\n  log_level: warning\n"
            f"  dispatcher_target: 127.0.0.1:{self.disp_port}\n  collector_target: ''\n  watch_rules: false\n"
            f"  hostname: bench-host\n  spill_path: {tmp / 'ruleengine.journal'}\n"
            f"  rules_files: [{STABLE_RULES}, {tmp / 'rules.yaml'}]\n"
        )
        cfg = str(tmp / "lanner.yaml")
        self.disp = subprocess.Popen([sys.executable, "-m", "dispatcher", "--config", cfg], cwd=code, env=env)
        self.engine = subprocess.Popen([sys.executable, "-m", "ruleengine", "--config", cfg], cwd=code, env=env)
        self.engine_target = f"127.0.0.1:{engine_port}"
        self.sub: subprocess.Popen[str] | None = None

    def start_subscriber(self) -> None:
        self.sub = subprocess.Popen(
            [sys.executable, __file__, f"127.0.0.1:{self.disp_port}"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        assert self.sub.stdout is not None
        assert self.sub.stdout.readline().strip() == "ready"

    def delivered(self) -> int:
        if self.sub is None:
            try:
                return (self.tmp / "alerts.jsonl").read_bytes().count(b"\n")
            except FileNotFoundError:
                return 0
        assert self.sub is not None and self.sub.stdin is not None and self.sub.stdout is not None
        self.sub.stdin.write("\n")
        self.sub.stdin.flush()
        return int(self.sub.stdout.readline())

    def profile(self, tag: str) -> list[subprocess.Popen[bytes]]:
        """py-spy on both services while a step runs (``--py-spy DIR``; py-spy is not a project dependency)."""
        spy = shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
        return [
            subprocess.Popen(
                [
                    spy,
                    "record",
                    *NATIVE,
                    "--pid",
                    str(p.pid),
                    "--format",
                    "raw",
                    "--rate",
                    os.environ.get("BENCH_PY_SPY_RATE", "200"),
                    "-o",
                    str(Path(PROFILE) / f"{name}-{tag}.txt"),
                ],
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for name, p in (("ruleengine", self.engine), ("dispatcher", self.disp))
        ]

    def cpu(self) -> dict[str, float]:
        return {
            "ruleengine": cpu_seconds(self.engine.pid),
            "dispatcher": cpu_seconds(self.disp.pid),
            "redis": cpu_seconds(self.redis.pid),
        }

    def stop(self) -> None:
        for p in (self.sub, self.engine, self.disp):
            if p is not None:
                p.send_signal(signal.SIGTERM)
        for p in (self.sub, self.engine, self.disp):
            if p is not None:
                p.wait(20)
        self.redis.terminate()
        self.redis.wait(10)


async def push_at(target: str, batches: list[bytes], per_batch: int, rate: float) -> float:
    """Send the batches to PushEvents paced to ``rate`` events/s (up to 8 unacked); return the seconds taken."""
    from lanner.wire import raw_push_events

    async with grpc.aio.insecure_channel(target) as ch:
        await ch.channel_ready()
        call = raw_push_events("/lanner.v1.RuleEngineService/PushEvents")(ch)()
        t0 = time.monotonic()
        inflight = 0
        for i, data in enumerate(batches):
            due = t0 + i * per_batch / rate
            delay = due - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            await call.write(data)
            inflight += 1
            if inflight >= 8:
                await call.read()
                inflight -= 1
        for _ in range(inflight):
            await call.read()
        elapsed = time.monotonic() - t0
        await call.done_writing()
    return elapsed


async def measure(svc: Services, rates: list[float], seconds: float, per_batch: int, seq0: int) -> list[Step]:
    """One step per rate; idle CPU (timers, blocking reads) over an idle second is taken off."""
    c0, t0 = svc.cpu(), time.monotonic()
    await asyncio.sleep(2.0)
    c1 = svc.cpu()
    idle = {k: (c1[k] - c0[k]) / (time.monotonic() - t0) for k in c0}
    steps = []
    for rate in rates:
        n = int(rate * seconds) // per_batch * per_batch
        quiet = await frames(n, per_batch, seq0, alerting=False)
        seq0 += n
        before, start = svc.cpu(), time.monotonic()
        await push_at(svc.engine_target, quiet, per_batch, rate)
        await asyncio.sleep(0.3)
        after, took = svc.cpu(), time.monotonic() - start
        quiet_us = {k: max(0.0, after[k] - before[k] - idle[k] * took) * 1e6 / n for k in after}
        batches = await frames(n, per_batch, seq0)
        seq0 += n
        before, got0, start = svc.cpu(), svc.delivered(), time.monotonic()
        spies = svc.profile(f"{int(rate)}") if PROFILE else []
        await push_at(svc.engine_target, batches, per_batch, rate)
        deadline = time.monotonic() + 60
        got = got0
        while time.monotonic() < deadline:
            got = svc.delivered()
            if got - got0 >= n:
                break
            await asyncio.sleep(0.05)
        await asyncio.sleep(0.3)  # last acks and the file output's write
        after, took = svc.cpu(), time.monotonic() - start
        for spy in spies:
            spy.send_signal(signal.SIGINT)
            spy.wait(30)
        alerts = max(1, got - got0)
        cpu_us = {k: max(0.0, after[k] - before[k] - idle[k] * took) * 1e6 / alerts for k in after}
        steps.append(Step(rate, n, got - got0, took, cpu_us, quiet_us))
    return steps


async def run(codes: list[Path], rates: list[float], seconds: float, per_batch: int, tmp: Path) -> None:
    sys.path.insert(0, str(HERE))
    from bench_dispatcher import free_port, wait_port

    results: list[tuple[Path, list[Step]]] = []
    for i, code in enumerate(codes):
        d = tmp / f"run{i}"
        d.mkdir()
        ports = [free_port(), free_port(), free_port()]
        svc = Services(d, code, ports)
        try:
            await wait_port(ports[1], 60)
            await wait_port(ports[2], 120)
            if WITHOUT != "subscriber":
                svc.start_subscriber()
            await asyncio.sleep(1.0)
            results.append((code, await measure(svc, rates, seconds, per_batch, 1 + i * 10_000_000)))
            if REDIS_STATS:
                stats = subprocess.run(
                    ["redis-cli", "-p", str(svc.redis_port), "info", "commandstats"], capture_output=True, text=True
                )
                print(f"{code}: redis commands\n{stats.stdout}")
        finally:
            svc.stop()
    print(
        f"CPU µs per alert, {per_batch} events per batch, {seconds:.0f} s per rate, every event alerts, one Subscribe "
        f"client, file output on; idle CPU and the same events without alerts (in brackets, per event) taken off; "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    for code, steps in results:
        for s in steps:
            eng, disp = s.per_alert("ruleengine"), s.per_alert("dispatcher")
            print(
                f"  {code!s:<22} {s.rate:>7.0f} alerts/s  delivered {s.delivered}/{s.alerts}  "
                f"rule engine {eng:6.1f} ({s.quiet_us['ruleengine']:5.1f})  "
                f"dispatcher {disp:6.1f} ({s.quiet_us['dispatcher']:4.1f})  per alert {eng + disp:6.1f}  "
                f"(redis-server {s.per_alert('redis'):5.1f})"
            )


if __name__ == "__main__":
    counter_child(sys.argv[1])
