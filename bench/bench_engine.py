# SPDX-License-Identifier: Apache-2.0
"""Rule engine throughput: events/s on one core with the upstream stable ruleset (or --rules FILE...).

The mix models a busy host where most events match no rule: opens of ordinary files by ordinary programs, execs of
everyday tools, outbound connects, plus syscalls no rule looks at (read/write/close/mmap...) which the event-type
index rejects without evaluating anything. A small share of events are attacks that do match (shadow reads, shells
in containers, netcat). Each event is evaluated exactly as the service does: ``has_rules_for`` then a fresh
``EventContext`` and ``engine.process``.

``--service`` measures the rule engine stage as it runs: a RuleEngineService on a real gRPC socket fed batches as
the collector and enricher send them (openats that match no rule), CPU µs per event of receive, parse, evaluate
and ack, before (a whole model event built per candidate event) and after (``lanner.lazy_event``), side by side.
"""

from __future__ import annotations

import argparse
import random
import time
from collections import Counter
from pathlib import Path

from lanner.model import Event
from ruleengine.engine import Engine, EngineOptions, load_rules
from ruleengine.events_json import event_from_fields
from ruleengine.fields import EventContext

STABLE = str(Path(__file__).resolve().parents[2] / "shared" / "falco-rules" / "falco_rules.yaml")

PROCS = [
    "nginx",
    "python3",
    "java",
    "node",
    "postgres",
    "redis-server",
    "containerd",
    "kubelet",
    "systemd",
    "sshd",
    "cron",
    "bash",
    "ls",
    "grep",
    "sed",
    "awk",
    "tar",
    "gzip",
    "curl",
    "git",
]
FILES = [
    "/var/log/nginx/access.log",
    "/usr/lib/x86_64-linux-gnu/libc.so.6",
    "/proc/self/status",
    "/tmp/tmp.x1",
    "/srv/app/static/main.css",
    "/var/lib/postgresql/16/main/base/1/1259",
    "/dev/null",
    "/etc/ld.so.cache",
    "/etc/hosts",
    "/etc/resolv.conf",
    "/home/app/.cache/pip/x",
    "/run/containerd/s",
]
UNINDEXED = ["read", "write", "close", "mmap", "futex", "epoll_wait", "recvfrom", "sendto", "fstat", "lseek"]


def _base(i: int, proc: str, container: bool) -> dict[str, object]:
    rec: dict[str, object] = {
        "evt.num": i + 1,
        "proc.name": proc,
        "proc.exe": f"/usr/bin/{proc}",
        "proc.exepath": f"/usr/bin/{proc}",
        "proc.pname": "systemd",
        "user.name": "app",
        "user.uid": 1000,
        "proc.vpid": 4000 + i % 100,
    }
    if container:
        rec.update(
            {
                "container.id": "3ad7b26ded6d",
                "container.name": "web",
                "container.image.repository": "docker.io/library/nginx",
            }
        )
    return rec


def make_events(n: int, seed: int = 7) -> tuple[list[Event], Counter[str]]:
    """A deterministic mix of ``n`` events and the count per kind."""
    events, labels = make_labelled_events(n, seed)
    return events, Counter(labels)


def make_labelled_events(n: int, seed: int = 7) -> tuple[list[Event], list[str]]:
    """The mix, with each event's kind."""
    rnd = random.Random(seed)
    labels: list[str] = []
    out: list[Event] = []
    for i in range(n):
        r = rnd.random()
        proc = rnd.choice(PROCS)
        container = rnd.random() < 0.5
        rec = _base(i, proc, container)
        if r < 0.45:
            kind = "unindexed syscall (read/write/close/...)"
            rec["evt.type"] = rnd.choice(UNINDEXED)
        elif r < 0.80:
            kind = "openat of an ordinary file"
            f = rnd.choice(FILES)
            rec.update(
                {
                    "evt.type": "openat",
                    "fd.name": f,
                    "fd.num": 5,
                    "evt.arg.flags": rnd.choice(["O_RDONLY", "O_RDONLY|O_CLOEXEC", "O_TRUNC|O_CREAT|O_WRONLY"]),
                    "evt.rawres": 5,
                }
            )
        elif r < 0.90:
            kind = "execve of an everyday tool"
            tool = rnd.choice(["ls", "grep", "sed", "awk", "tar", "git", "date", "id", "uname", "cat"])
            rec.update(
                {
                    "evt.type": "execve",
                    "proc.name": tool,
                    "proc.exe": f"/usr/bin/{tool}",
                    "proc.exepath": f"/usr/bin/{tool}",
                    "proc.cmdline": f"{tool} -x",
                    "proc.args": "-x",
                    "proc.pname": "make",
                    "evt.rawres": 0,
                }
            )
        elif r < 0.98:
            kind = "connect to a service"
            rec.update(
                {
                    "evt.type": "connect",
                    "fd.num": 7,
                    "fd.sip": "10.0.3.4",
                    "fd.sport": 5432,
                    "fd.cip": "10.0.3.9",
                    "fd.cport": 40000 + i % 1000,
                    "fd.l4proto": "tcp",
                    "evt.rawres": 0,
                }
            )
        elif r < 0.99:
            kind = "attack: read /etc/shadow"
            rec.update(
                {
                    "evt.type": "openat",
                    "fd.name": "/etc/shadow",
                    "fd.num": 3,
                    "evt.arg.flags": "O_RDONLY",
                    "proc.name": "cat",
                    "proc.exe": "/usr/bin/cat",
                    "proc.exepath": "/usr/bin/cat",
                    "proc.cmdline": "cat /etc/shadow",
                    "proc.args": "/etc/shadow",
                    "proc.pname": "bash",
                    "evt.rawres": 3,
                }
            )
        else:
            kind = "attack: terminal shell in a container"
            rec.update(
                {
                    "evt.type": "execve",
                    "proc.name": "bash",
                    "proc.exe": "bash",
                    "proc.exepath": "/usr/bin/bash",
                    "proc.cmdline": "bash",
                    "proc.tty": 34816,
                    "proc.pname": "runc",
                    "evt.rawres": 0,
                    "container.id": "3ad7b26ded6d",
                    "container.name": "web",
                    "container.image.repository": "docker.io/library/nginx",
                }
            )
        out.append(event_from_fields(rec))
        labels.append(kind)
    return out, labels


def main() -> None:
    """Run the benchmark and print the figures."""
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--rules", nargs="+", default=[STABLE])
    ap.add_argument("--events", type=int, default=200_000)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--rule-matching", choices=("first", "all"), default="first")
    ap.add_argument("--service", action="store_true", help="CPU per event of the gRPC service, before/after")
    ap.add_argument("--batches", type=int, default=400, help="with --service: batches per round")
    ap.add_argument("--batch-size", type=int, default=256, help="with --service: events per batch")
    ap.add_argument(
        "--wire",
        action="store_true",
        help="in process: the service's per-event path (parse, LazyEvent, process) on its batches",
    )
    args = ap.parse_args()
    if args.service:
        service_figures("ruleengine", args.batches, args.rounds, args.rules, args.batch_size)
        return
    if args.wire:
        wire_figures(args.rules, max(args.rounds, 5), args.batch_size)
        return

    t0 = time.perf_counter()
    res = load_rules(args.rules, EngineOptions(rule_matching=args.rule_matching))
    load_s = time.perf_counter() - t0
    if res.engine is None:
        raise SystemExit("\n".join(e.format() for e in res.errors))
    engine = res.engine
    events, labels = make_labelled_events(args.events)
    kinds = Counter(labels)
    print(f"rules: {', '.join(args.rules)}: {len(engine.enabled)} enabled rules, loaded+compiled in {load_s:.3f}s")
    print(f"mix of {len(events)} events:")
    for kind, n in kinds.most_common():
        print(f"  {n / len(events):6.1%}  {kind}")
    best = best_cpu = 0.0
    alerts = 0
    for _ in range(args.rounds):
        alerts = 0
        start, start_cpu = time.perf_counter(), time.process_time()
        for ev in events:
            if not engine.has_rules_for(ev.source, ev.type):
                continue
            alerts += len(engine.process(EventContext(ev)))
        best = max(best, len(events) / (time.perf_counter() - start))
        best_cpu = max(best_cpu, len(events) / max(1e-9, time.process_time() - start_cpu))
    print(f"alerts per round: {alerts} ({alerts / len(events):.2%} of events)")
    # CPU time is the per-core figure; wall time also counts time stolen by other processes on a busy host
    print(
        f"throughput: {best_cpu:,.0f} events/s per core of CPU time, {best:,.0f} events/s wall clock "
        f"(best of {args.rounds} rounds)"
    )
    print("CPU time per event, by kind:")
    for kind, _ in kinds.most_common():
        group = [ev for ev, k in zip(events, labels, strict=True) if k == kind]
        cost = min(_cpu(engine, group) for _ in range(args.rounds))
        print(f"  {cost * 1e6 / len(group):6.2f} us  {kind}")


def service_figures(stage: str, batches: int, rounds: int, rules: list[str], batch: int = 256) -> None:
    """Print one stage's CPU µs/event over gRPC, before and after, measured interleaved in one run."""
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from service_cpu import run_rounds

    best = run_rounds(stage, batches, rounds, rules, batch)
    load = os.getloadavg()[0]
    print(
        f"{stage} over gRPC, {batches} batches of {batch} openats matching no rule, best of {rounds} rounds, "
        f"load average {load:.1f}:"
    )
    print(
        f"  before {best['before']:6.2f} us CPU/event   after {best['after']:6.2f} us CPU/event   "
        f"({best['before'] / best['after']:.2f}x)   gRPC floor (receive + ack only) {best['floor']:5.2f} us/event"
    )


def wire_figures(rules: list[str], rounds: int, batch: int) -> None:
    """CPU µs per event of the rule engine service's per-event loop, in process, on the batches ``--service``
    sends (openats that match no rule, through the enricher): the compiled rules' cost without gRPC. Side by
    side: without the decision memo, with it, and with a memo that forgets after every event (every event a
    miss: the memo's own cost)."""
    import asyncio
    import os
    import sys

    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from service_cpu import _batches

    from lanner.convert import BatchTables
    from lanner.v1 import event_pb2

    frames = [event_pb2.EventBatchFrame.FromString(d) for d in asyncio.run(_batches("ruleengine", 16, batch))]
    parse = event_pb2.EventView.FromString
    engines: dict[str, Engine] = {}
    for name, memo in (("no memo", False), ("memo", True), ("memo, every event a miss", True)):
        res = load_rules(rules, EngineOptions(decision_memo=memo))
        assert res.engine is not None, [e.format() for e in res.errors]
        engines[name] = res.engine
    for slots in engines["memo, every event a miss"]._tables.values():
        for slot in slots.values():
            if slot.memo is not None:
                slot.memo.limit = 1
    best = dict.fromkeys(engines, float("inf"))
    n = 0
    for _ in range(rounds):
        for name, engine in engines.items():
            start, n = time.process_time(), 0
            for frame in frames:
                tables = BatchTables(frame)
                for data in frame.events:
                    pb = parse(data)
                    engine.process_view(pb.source or "syscall", pb.type, pb, tables)
                    n += 1
            best[name] = min(best[name], time.process_time() - start)
    print(
        f"rule engine per-event loop in process, {n} openats matching no rule, best of {rounds} rounds, "
        f"load average {os.getloadavg()[0]:.1f}:"
    )
    for name, secs in best.items():
        print(f"  {secs * 1e6 / n:6.2f} us CPU/event  {name}")


def _cpu(engine: Engine, events: list[Event]) -> float:
    start = time.process_time()
    for ev in events:
        if engine.has_rules_for(ev.source, ev.type):
            engine.process(EventContext(ev))
    return time.process_time() - start


if __name__ == "__main__":
    main()
