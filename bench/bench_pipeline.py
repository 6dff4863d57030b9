# SPDX-License-Identifier: Apache-2.0
"""Issue 6's figures from one run on the real kernel, side by side, with the targets beside them.

1. Slowdown: a C open/close storm (1 open in 100 is of a marker file) alone, with tracepoints that return at once,
   with a bare single-process bcc consumer (the floor), and with `lanner up` running the stable Falco ruleset plus
   a rule that alerts on the marker. Every marker open must reach a Subscribe client.
2. Idle cost: % of a core per service with no load (the host's own background still flows).
3. Forced to userspace: the same stack plus a rule the kernel cannot decide (a container image), so every open
   must pass the kernel filter and go through all four services. Paced load at fixed rates gives syscall ->
   subscriber latency (p50/p99, per hop, from the marker alerts' timing fields) and CPU µs per event per service;
   rising rates give the highest rate with no loss anywhere (see below).

A step has no loss when every event the kernel accepted for userspace reached the next stage: no ring buffer
drop, no stage dropped one, the events in at each stage agree (none vanished between stages), every marker alert
reached the subscriber, and (forced) the kernel filter passed every open of the load. Each step prints those
per-stage counts.

Each `lanner up` listens on 17701-17704 (metrics 19701-19704); run one at a time (the e2e and bench locks), as root:
    flock /tmp/lanner-e2e.lock flock /tmp/lanner-bench.lock .venv/bin/python bench/bench_pipeline.py [--quick]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench_idle import idle_run, no_event_stack, print_idle
from bench_idle import measure as measure_idle
from bench_kfilter import EMPTY_BPF, FLOOR_BPF, bcc
from stack import HOPS, STABLE_RULES, Counters, LoadGen, Stack, counters, marker_rule, pctl

CMD = "flock /tmp/lanner-e2e.lock flock /tmp/lanner-bench.lock .venv/bin/python bench/bench_pipeline.py"
# Pause between the storms and the fixed-rate steps (see where it is used).
STORM_SETTLE_S = 5.0


@dataclass
class Step:
    """One load step through `lanner up`, with what each stage counted (deltas over the step)."""

    target: float
    rate: float
    markers: int
    alerts: int
    at_ruleengine: float
    kernel_passed: float
    opens: int
    dropped: float
    drops: dict[str, float]
    cpu_us: dict[str, float]
    batch: dict[str, float] = field(default_factory=dict)
    latency: list[tuple[float, float, float, float, float]] = field(default_factory=list)
    # Opens the kernel filter had to pass: every open of the load when forced to userspace, else its markers.
    must_pass: int = 0
    ring_drops: float = 0.0
    ring_retries: float = 0.0
    vanished: float = 0.0
    stage_in: dict[str, float] = field(default_factory=dict)
    stage_drops: dict[str, float] = field(default_factory=dict)

    @property
    def lost(self) -> float:
        """Events the kernel accepted for userspace that never reached the subscriber: ring buffer drops, every
        stage's own drops, events gone between stages with no drop counted, and marker alerts missing."""
        return self.dropped + self.vanished + max(0, self.markers - self.alerts)

    @property
    def filter_short(self) -> float:
        """Opens the kernel filter should have passed and did not (a filter bug, not a loss in the pipeline)."""
        return max(0.0, self.must_pass - self.kernel_passed)

    @property
    def lossless(self) -> bool:
        return self.lost == 0 and self.filter_short == 0

    def p(self, q: int, hop: int = 0) -> float:
        return pctl([row[hop] for row in self.latency], q)


def settle(before: Counters, must_pass: int, timeout: float = 4.0) -> tuple[Counters, float]:
    """The step's counters once every stage has counted it, and the events gone between stages with no drop
    counted. The collector copies the kernel filter's counts about once a second (on any poll, busy or idle), and
    events in flight between stages show as gone for a moment, so this polls until both agree or ``timeout``
    passes (a real shortfall stays). Gone is judged on the totals since the stack started, not on the step's
    deltas: the host's background keeps a few events in flight at any moment, the step's start included."""
    deadline = time.monotonic() + timeout
    while True:
        time.sleep(0.25)
        total = counters()
        delta = total - before
        gone = total.vanished()
        if (delta.kernel_passed >= must_pass and gone == 0) or time.monotonic() > deadline:
            return delta, gone


def run_step(
    stack: Stack, sub: Any, load: LoadGen, rate: float, seconds: float, every: int, forced: bool = False
) -> Step:
    """Drive ``rate`` opens/s (0: as fast as the storm goes) and wait for its marker alerts to arrive."""
    before, cpu0, n0 = counters(), stack.cpu(), sub.count()
    res = load.run(rate, seconds, every)
    got = sub.wait_for(n0 + res.markers, timeout=30.0)
    must_pass = res.opens if forced else res.markers
    (delta, gone), cpu1 = settle(before, must_pass), stack.cpu()
    events = max(1.0, delta.at_ruleengine)
    cpu_us = {n: (cpu1[n] - cpu0[n]) * 1e6 / events for n in cpu1}
    return Step(
        target=rate,
        rate=res.rate,
        markers=res.markers,
        alerts=got - n0,
        at_ruleengine=delta.at_ruleengine / res.seconds,
        kernel_passed=delta.kernel_passed,
        opens=res.opens,
        dropped=delta.dropped,
        drops=delta.drops,
        cpu_us=cpu_us,
        batch=delta.batch_sizes(),
        latency=sub.since(n0),
        must_pass=must_pass,
        ring_drops=delta.ring_drops(),
        ring_retries=delta.ring_retries,
        vanished=gone,
        stage_in={k: delta.events_in.get(k, 0.0) for k in ("collector", "enricher", "ruleengine")},
        stage_drops={k: delta.stage_drops(k) for k in ("collector", "enricher", "ruleengine", "dispatcher")},
    )


def print_step(step: Step) -> None:
    cpu = "  ".join(f"{n[:4]} {v:5.1f}" for n, v in step.cpu_us.items())
    verdict = "no loss" if step.lossless else f"LOST {step.lost:.0f}"
    if step.filter_short:
        verdict += f", FILTER passed {step.kernel_passed:.0f} of {step.must_pass} opens it must pass"
    print(
        f"  target {step.target or 0:>7.0f}/s  opens {step.rate:>8.0f}/s  at rule engine {step.at_ruleengine:>7.0f}/s  "
        f"markers {step.alerts}/{step.markers}  p50 {step.p(50):6.1f} ms  p99 {step.p(99):6.1f} ms  "
        f"CPU µs/event: {cpu}  [{verdict}]",
        flush=True,
    )
    print_stages(step)
    if step.batch:
        print("      events per batch: " + "  ".join(f"{n} {v:.0f}" for n, v in step.batch.items()), flush=True)


def print_stages(step: Step) -> None:
    """Per stage, what it counted over the step, so a loss shows where it happened."""
    i, d = step.stage_in, step.stage_drops
    print(
        f"      stages: load {step.opens:,} opens ({step.markers} markers) -> kernel passed {step.kernel_passed:,.0f} "
        f"open* (all processes), ring drops {step.ring_drops:.0f} (first tries failed {step.ring_retries:.0f}) "
        f"-> collector in {i.get('collector', 0):,.0f} "
        f"(drops {d.get('collector', 0):.0f}) -> enricher in {i.get('enricher', 0):,.0f} (drops "
        f"{d.get('enricher', 0):.0f}) -> rule engine in {i.get('ruleengine', 0):,.0f} (drops "
        f"{d.get('ruleengine', 0):.0f}); vanished between stages {step.vanished:.0f} -> marker alerts "
        f"{step.alerts}/{step.markers} (dispatcher drops {d.get('dispatcher', 0):.0f})",
        flush=True,
    )
    if step.drops:
        print(f"      drop counters: {json.dumps(step.drops)}", flush=True)


def print_hops(step: Step) -> None:
    for i, hop in enumerate(HOPS, start=1):
        print(f"      {hop:<24} p50 {step.p(50, i):6.1f} ms  p99 {step.p(99, i):6.1f} ms")


def storm_with(load: LoadGen, seconds: float, consume: Callable[[], int] | None) -> float:
    """The storm at full speed; with ``consume``, drain a ring buffer every millisecond meanwhile."""
    p = subprocess.Popen(load.cmd(0, seconds, 100), stdout=subprocess.PIPE, text=True)
    while p.poll() is None:
        if consume is not None:
            consume()
        time.sleep(0.001)
    out, _ = p.communicate()
    n, _m, dt = out.split()
    return int(n) / float(dt)


def storm_bcc(load: LoadGen, seconds: float, text: str, ring: bool) -> float:
    b = bcc().BPF(text=text)
    consume: Callable[[], int] | None = None
    if ring:
        b[b"out"].open_ring_buffer(lambda _c, _d, _s: 0)

        def consume() -> int:
            b.ring_buffer_consume()
            return 0

    try:
        return storm_with(load, seconds, consume)
    finally:
        b.cleanup()


def start(rules: str) -> tuple[Stack, Any]:
    from stack import Subscriber

    stack = Stack([STABLE_RULES], rules)
    if not stack.wait_ready() or not stack.wait_spec():
        stack.stop()
        raise SystemExit(f"services did not come up; see {stack.state}/logs")
    sub = Subscriber()
    sub.start()
    time.sleep(2.0)
    return stack, sub


def forced(load: LoadGen, secs: float, rates: str) -> tuple[list[Step], list[Step]]:
    """Section 3: paced steps at 1k/s and 10k/s (latency, CPU per event), then rising rates until the first loss."""
    print("3. every open forced to userspace (stable rules + a rule the kernel cannot decide)", flush=True)
    stack, sub = start(marker_rule(load.marker, force_userspace=True))
    fixed: list[Step] = []
    rising: list[Step] = []
    try:
        for rate, every in ((1000, 10), (10000, 100)):
            fixed.append(run_step(stack, sub, load, rate, secs, every, forced=True))
            print_step(fixed[-1])
            print_hops(fixed[-1])
        for target in (float(r) for r in rates.split(",")):
            step = run_step(stack, sub, load, target, secs, 100, forced=True)
            rising.append(step)
            print_step(step)
            if not step.lossless:
                break
    finally:
        stack.stop()
    return fixed, rising


def loss_free_rate(steps: list[Step]) -> float:
    """The highest rate reached with no loss in that step nor in any slower one (0 when the slowest lost)."""
    best = 0.0
    for s in sorted(steps, key=lambda s: s.rate):
        if not s.lossless:
            break
        best = s.rate
    return best


Row = tuple[str, str, str, str]


def forced_rows(fixed: list[Step], rising: list[Step]) -> tuple[list[Row], list[Row]]:
    """The summary rows of section 3: the loss-free rate with the per-stage counts of its step and of the first
    step that lost, and CPU µs per event per service at each rate."""
    steps = fixed + rising
    loss_free = loss_free_rate(steps)
    best = next((s for s in steps if s.lossless and s.rate == loss_free), None)
    first_loss = next((s for s in sorted(steps, key=lambda s: s.rate) if not s.lossless), None)
    rows = [("forced to userspace, loss-free events/s", f"{loss_free:,.0f}", ">= 50,000", "3")]
    for label, s in (("  per stage, at that rate", best), ("  per stage, first step with a loss", first_loss)):
        if s is None:
            continue
        why = "no loss" if s.lossless else f"LOST {s.lost:.0f}"
        if s.filter_short:
            why += f", filter short by {s.filter_short:.0f}"
        i = s.stage_in
        rows.append(
            (
                label,
                f"{s.rate / 1000:.1f}k/s {why}: load {s.opens:,} opens -> kernel passed {s.kernel_passed:,.0f}, ring "
                f"drops {s.ring_drops:.0f} -> collector {i.get('collector', 0):,.0f} -> enricher "
                f"{i.get('enricher', 0):,.0f} -> rule engine {i.get('ruleengine', 0):,.0f} (stage drops "
                f"{sum(s.stage_drops.values()):.0f}, vanished {s.vanished:.0f}) -> markers {s.alerts}/{s.markers}",
                "",
                "3",
            )
        )
    cpu_rows = []
    for s in (fixed[1], *rising):
        cpu = " ".join(f"{n[:4]} {v:.1f}" for n, v in s.cpu_us.items())
        cpu_rows.append(
            (
                f"CPU µs/event @{s.rate / 1000:.0f}k/s (forced)",
                f"{cpu} = {sum(s.cpu_us.values()):.1f}",
                "<= 15 total",
                "3",
            )
        )
    return rows, cpu_rows


def print_rows(rows: list[Row]) -> None:
    print(f"  {'figure':<42} {'measured':<44} {'target':<24} sec")
    for name, got, target, sec in rows:
        print(f"  {name:<42} {got:<44} {target:<24} [{sec}]")


def print_forced(fixed: list[Step], rising: list[Step], cmd: str, la0: tuple[float, float, float]) -> None:
    la = os.getloadavg()
    print(f"\nSECTION 3 SUMMARY, load average {la0[0]:.1f} at start, {la[0]:.1f} at end; from: {cmd}")
    loss_rows, cpu_rows = forced_rows(fixed, rising)
    rows = [
        *loss_rows,
        ("latency p50 @1k/s (forced)", f"{fixed[0].p(50):.1f} ms", "<= 10 ms", "3"),
        ("latency p99 @10k/s (forced)", f"{fixed[1].p(99):.1f} ms", "<= 50 ms", "3"),
        *cpu_rows,
    ]
    print_rows(rows)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="shorter steps and idle windows (about 4 minutes)")
    ap.add_argument("--rates", default="20000,35000,50000,70000,100000", help="forced-to-userspace rising rates")
    ap.add_argument("--json", metavar="FILE", help="also write the figures here")
    ap.add_argument("--forced-only", action="store_true", help="run only section 3 (forced to userspace)")
    ap.add_argument("--step-seconds", type=float, default=0.0, help="seconds per load step (default 2 or 4)")
    ap.add_argument("--storm-only", action="store_true", help="run only section 1 (the storm), without the idle window")
    ap.add_argument(
        "--distinct",
        action="store_true",
        help="with --forced-only: a load whose opens do not repeat (files, fds and processes vary, as on a real host)",
    )
    args = ap.parse_args()
    if os.geteuid() != 0:
        print("bench_pipeline: needs root (eBPF)", file=sys.stderr)
        return 2
    if not STABLE_RULES.exists():
        print(f"bench_pipeline: {STABLE_RULES} is missing (the stable Falco ruleset)", file=sys.stderr)
        return 2
    secs, rounds, idle_s = (2.0, 2, 10.0) if args.quick else (4.0, 3, 30.0)
    if args.step_seconds:
        secs = args.step_seconds
    load = LoadGen(distinct=args.distinct)
    if args.forced_only:
        la0 = os.getloadavg()
        fixed, rising = forced(load, secs, args.rates)
        print_forced(fixed, rising, " ".join([CMD, *sys.argv[1:]]), la0)
        return 0
    fig: dict[str, Any] = {"load_average_start": os.getloadavg()}

    print(
        f"1. open/close storm, median of {rounds} x {secs:.0f} s per setup (1 open in 100 is the marker); "
        f"load average {fig['load_average_start'][0]:.1f}",
        flush=True,
    )
    # Medians, not bests: on a shared machine a best-of favours whichever setup had the luckiest moment.
    runs: dict[str, list[float]] = {}
    for _ in range(rounds):
        for label, fn in (
            ("alone", lambda: storm_with(load, secs, None)),
            ("empty tracepoints", lambda: storm_bcc(load, secs, EMPTY_BPF, False)),
            ("bare bcc consumer", lambda: storm_bcc(load, secs, FLOOR_BPF, True)),
        ):
            runs.setdefault(label, []).append(fn())
    stack, sub = start(marker_rule(load.marker, force_userspace=False))
    try:
        time.sleep(3.0)
        idle: dict[str, Any] = {"events_at_ruleengine_per_s": 0.0}
        if not args.storm_only:
            print(f"2. idle: nothing asked of `lanner up` for {idle_s:.0f} s", flush=True)
            idle = measure_idle(stack, idle_s)
            print_idle(idle)
        storms = [run_step(stack, sub, load, 0, secs, 100) for _ in range(rounds)]
        runs["Lanner (lanner up, stable rules)"] = [s.rate for s in storms]
        # The same without markers: what the kernel side and the host's background cost, without 1% of alerts.
        quiets = [run_step(stack, sub, load, 0, secs, 0) for _ in range(rounds)]
        runs["Lanner, no marker opens (no alerts)"] = [s.rate for s in quiets]
        # The collector's busy gather (collector.contention) outlasts a storm by 2-3 s, by design: the fixed rates
        # measure the quiet host's latency, not that tail.
        time.sleep(STORM_SETTLE_S)
        stable_fixed = [run_step(stack, sub, load, r, secs, 100) for r in (1000, 10000)]
    finally:
        stack.stop()
    # The machine may be shared: the workload alone again, after the stack, so "alone" is not one unlucky moment.
    runs["alone"].append(storm_with(load, secs, None))
    best = {label: statistics.median(rates) for label, rates in runs.items()}
    alone = best["alone"]
    for label, rate in best.items():
        each = " ".join(f"{r / 1000:.0f}k" for r in runs[label])
        print(f"  {label:<36} {rate:>10,.0f} opens/s  slowdown {alone / rate:5.2f}x   ({each})")
    print(
        f"  (the host's own events reaching the rule engine meanwhile: {idle['events_at_ruleengine_per_s']:.0f}/s; "
        "bench/bench_storm.py splits the slowdown further)"
    )
    for s in [*storms, *quiets]:
        print_step(s)
        if args.storm_only and s.latency:
            print_hops(s)
    print("  stable rules at fixed rates (1 open in 100 reaches userspace):")
    for s in stable_fixed:
        print_step(s)
        print_hops(s)
    if args.storm_only:
        print(f"  load average at end: {' '.join(f'{v:.1f}' for v in os.getloadavg())}")
        return 0

    fixed, rising = forced(load, secs, args.rates)

    print(f"4. idle with no events at all (the collector replays an empty file) for {idle_s:.0f} s", flush=True)
    bare_idle = idle_run(no_event_stack(), idle_s, 3.0, kernel=False)
    print_idle(bare_idle)

    loss_free = loss_free_rate(fixed + rising)
    loss_rows, cpu_rows = forced_rows(fixed, rising)
    ok_storm = all(s.lossless for s in storms)
    # With the stable rules the storm at full speed is the fastest load there is: its rate is the loss-free rate
    # when none of its rounds lost anything.
    stable_loss_free = loss_free_rate([*storms, *stable_fixed])
    cpu10k = fixed[1].cpu_us
    la = os.getloadavg()
    fig.update(
        {
            "storm_opens_per_s": best,
            "storm_lossless": ok_storm,
            "idle": idle,
            "idle_no_events": bare_idle,
            "loss_free_forced_per_s": loss_free,
            "loss_free_stable_per_s": stable_loss_free,
            "latency_ms": {f"{int(s.target)}": {"p50": s.p(50), "p99": s.p(99)} for s in fixed},
            "cpu_us_per_event_10k": cpu10k,
            "load_average_end": la,
        }
    )
    empty = best["empty tracepoints"]
    # The medians printed in section 1 (with an even number of rounds, between two rounds).
    up, up_quiet = best["Lanner (lanner up, stable rules)"], best["Lanner, no marker opens (no alerts)"]
    rows = [
        ("storm alone, opens/s", f"{alone:,.0f}", "", "1"),
        ("storm, empty tracepoints", f"{empty:,.0f} ({alone / empty:.2f}x)", "", "1"),
        (
            "storm, bare bcc consumer (floor)",
            f"{best['bare bcc consumer']:,.0f} ({alone / best['bare bcc consumer']:.2f}x)",
            "",
            "1",
        ),
        (
            "storm with lanner up, stable rules",
            f"{up:,.0f} ({alone / up:.2f}x); {up / empty:.0%} of empty",
            ">= 300k or >= 90% of empty; <= 1.4x",
            "1",
        ),
        (
            "storm with lanner up, no alerting opens",
            f"{up_quiet:,.0f} ({alone / up_quiet:.2f}x); {up_quiet / empty:.0%} of empty",
            "",
            "1",
        ),
        (
            "  every marker alert delivered, no drop",
            f"{sum(s.alerts for s in storms)}/{sum(s.markers for s in storms)}, "
            f"drops {sum(s.dropped for s in storms):.0f}",
            "all, 0",
            "1",
        ),
        (
            "stable rules, loss-free opens/s",
            f"{stable_loss_free:,.0f}" + (" (the storm at full speed)" if ok_storm else ""),
            "",
            "1",
        ),
        *loss_rows,
        ("latency p50 @1k/s (forced)", f"{fixed[0].p(50):.1f} ms", "<= 10 ms", "3"),
        ("latency p99 @10k/s (forced)", f"{fixed[1].p(99):.1f} ms", "<= 50 ms", "3"),
        (
            "latency p50/p99 @1k/s, @10k/s (stable)",
            " ".join(f"{s.p(50):.1f}/{s.p(99):.1f}" for s in stable_fixed) + " ms",
            "",
            "1",
        ),
        *cpu_rows,
        (
            "idle, % of a core, four services",
            f"{idle['total_pct']:.2f}% ({idle['events_at_ruleengine_per_s']:.0f} background events/s)",
            "< 2%",
            "2",
        ),
        (
            "idle, no events at all (timers, polling)",
            " ".join(f"{n[:4]} {v:.2f}" for n, v in bare_idle["cpu_pct"].items()) + f" = {bare_idle['total_pct']:.2f}%",
            "< 2%",
            "4",
        ),
    ]
    print(
        f"\nSUMMARY (issue 6), load average {fig['load_average_start'][0]:.1f} at start, {la[0]:.1f} at end; "
        f"every figure from: {CMD}{' --quick' if args.quick else ''} (section in brackets)"
    )
    print_rows(rows)
    if args.json:
        Path(args.json).write_text(json.dumps(fig, default=str))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
