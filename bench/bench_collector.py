# SPDX-License-Identifier: Apache-2.0
"""Collector throughput: events/s read from the ring buffer and decoded into Events, under a synthetic load.

A child process calls openat/close in a tight loop (optionally rate-limited) while this process drains the
ring buffer every millisecond, decodes every record and (with --pb) converts it to protobuf as the service does.
Prints the load's syscall rate, events decoded per second, kernel drops and the per-event decode cost.

    sudo .venv/bin/python bench/bench_collector.py --seconds 5 [--rate 50000] [--pb] [--pages 1024]

The synthetic part compares, on the same prebuilt openat records, the general path (decode into model objects,
then encode) with the direct path (``collector.wirepath``: record straight to wire bytes).

With --service it instead runs the collector's real loop (KernelSource -> CollectorService -> BatchSender over
gRPC to a sink process that acks every batch) under the open storm, alternating rounds of the general path and
the direct path, and prints the collector process's CPU (user + system) per event for each, side by side:

    sudo .venv/bin/python bench/bench_collector.py --service --rounds 3 --round-seconds 3
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time
from typing import Any

LOAD = r"""
import os, sys, time
rate, seconds = float(sys.argv[1]), float(sys.argv[2])
n = 0
end = time.monotonic() + seconds
batch = 100
while time.monotonic() < end:
    t0 = time.monotonic()
    for _ in range(batch):
        os.close(os.open("/etc/hostname", os.O_RDONLY))
    n += batch
    if rate > 0:
        lag = n / rate - (time.monotonic() - (end - seconds))
        if lag > 0:
            time.sleep(lag)
print(n)
"""


def synthetic(src: Any, n: int, encode: Any, make_batch: Any) -> None:
    """Decode (and encode) prebuilt records of this process: the Python cost alone, no kernel involved; then the
    same records through the direct path."""
    import os

    from collector import layout

    name = b"/etc/hostname\0"
    body = layout.OPEN.pack(3, 0, layout.SC_OPENAT, -100, 0o2000000, 0, len(name), b"\0" * 6)
    size = layout.HDR.size + len(body) + len(name)
    head = layout.HDR.pack(
        time.clock_gettime_ns(time.CLOCK_BOOTTIME),
        1,
        layout.MSG_OPEN,
        size,
        os.getpid(),
        os.getpid(),
        0,
        0,
        0,
        0,
        b"python3",
        0,
        0,
    )
    records = [head + body + name] * n
    # CPU time, so the figure holds on a shared machine too.
    t0 = time.process_time()
    events = src.decoder.decode_many(records, time.time_ns())
    t1 = time.process_time()
    for i in range(0, len(events), 256):
        make_batch(i, [encode(ev) for ev in events[i : i + 256]], 0)
    t2 = time.process_time()
    print(
        f"synthetic (CPU time): decode {(t1 - t0) / n * 1e6:.2f} us/event ({n / (t1 - t0):,.0f}/s), "
        f"encode+batch {(t2 - t1) / n * 1e6:.2f} us/event; together {n / (t2 - t0):,.0f} events/s per core"
    )
    from collector.encode import EventEncoder
    from collector.wirepath import WirePath

    wire = WirePath(src.decoder, EventEncoder())
    for _ in range(2):  # the second round is the steady state, caches warm, as in the first path's figure
        t3 = time.process_time()
        for i in range(0, n, 256):
            make_batch(i, wire.run(records[i : i + 256], time.time_ns())[0], 0)
        t4 = time.process_time()
    print(
        f"synthetic (CPU time): direct record->wire+batch {(t4 - t3) / n * 1e6:.2f} us/event "
        f"({(t2 - t0) / (t4 - t3):.1f}x less than decode+encode)"
    )


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seconds", type=float, default=5.0)
    ap.add_argument("--rate", type=float, default=0.0, help="opens/s of the load (0 = as fast as it goes)")
    ap.add_argument("--pages", type=int, default=1024, help="ring buffer pages")
    ap.add_argument(
        "--synthetic",
        type=int,
        default=50000,
        metavar="N",
        help="first decode N prebuilt openat records without the kernel (0 to skip)",
    )
    ap.add_argument("--pb", action="store_true", help="also encode each event and build the batch, as the service does")
    ap.add_argument("--service", action="store_true", help="measure the service loop, general vs direct path")
    ap.add_argument("--rounds", type=int, default=3, help="--service: rounds of each path")
    ap.add_argument("--round-seconds", type=float, default=3.0, help="--service: length of one round")
    ap.add_argument("--profile", action="store_true", help="--service: cProfile the direct path's rounds")
    ap.add_argument("--batch-size", type=int, default=0, help="--service: sender batch size (0: the config's)")
    ap.add_argument("--per-poll", type=int, default=0, help="--service: records per poll (0: the service's choice)")
    args = ap.parse_args()
    if args.service:
        from bench_collector_service import run_service_bench

        return run_service_bench(args, LOAD)

    from collector.encode import EventEncoder
    from collector.preflight import SetupError
    from collector.source import BpfProbe, KernelSource
    from lanner.wire import shared_batch_wire as batch_wire

    encode = EventEncoder().encode_shared
    src = KernelSource(BpfProbe(ring_buffer_pages=args.pages, exclude_self=False))
    try:
        t0 = time.monotonic()
        src.start()
    except SetupError as exc:
        print(exc, file=sys.stderr)
        return 1
    print(f"probes loaded in {time.monotonic() - t0:.2f}s")
    if args.synthetic:
        # After start(): same process table and garbage-collector settings as the service.
        synthetic(src, args.synthetic, encode, batch_wire)
    src.poll()
    load = subprocess.Popen(
        [sys.executable, "-c", LOAD, str(args.rate), str(args.seconds)], stdout=subprocess.PIPE, text=True
    )
    events = 0
    opens = 0
    lat: list[int] = []
    decode_s = 0.0
    start = time.monotonic()
    while load.poll() is None:
        t = time.process_time()
        batch = src.poll()
        if args.pb:
            batch_wire(1, [encode(ev) for ev in batch], 0)
        decode_s += time.process_time() - t
        events += len(batch)
        opens += sum(1 for e in batch if e.type == "openat" and e.proc.pid == load.pid)
        lat.extend(e.timing.collected_ns - e.timing.event_ns for e in batch[::50])
        if len(batch) < 256:
            time.sleep(0.001)
    # Drain what is left.
    for _ in range(200):
        t = time.process_time()
        batch = src.poll()
        decode_s += time.process_time() - t
        events += len(batch)
        opens += sum(1 for e in batch if e.type == "openat" and e.proc.pid == load.pid)
        if not batch:
            break
    elapsed = time.monotonic() - start
    out, _ = load.communicate()
    generated = int(out.strip() or 0)
    dropped = src.dropped()
    src.close()
    print(
        f"load: {generated} openat in {args.seconds:.1f}s = {generated / args.seconds:,.0f}/s"
        f"{' (rate-limited)' if args.rate else ''}"
    )
    print(
        f"decoded: {events:,} events in {elapsed:.2f}s = {events / elapsed:,.0f} events/s "
        f"(openat of the load: {opens:,}, {opens / max(generated, 1):.1%} of generated)"
    )
    print(
        f"cost: {decode_s / max(events, 1) * 1e6:.2f} us/event read+decode{' +pb' if args.pb else ''}, "
        f"busy {decode_s / elapsed:.0%} of one core"
    )
    print(f"kernel drops (ring buffer full): {dropped:,}")
    if lat:
        lat.sort()
        p50, p99 = lat[len(lat) // 2], lat[min(len(lat) - 1, len(lat) * 99 // 100)]
        print(f"latency syscall -> decoded event: p50 {p50 / 1e6:.2f} ms, p99 {p99 / 1e6:.2f} ms")
    return 0


if __name__ == "__main__":
    sys.exit(main())
