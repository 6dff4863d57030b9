# SPDX-License-Identifier: Apache-2.0
"""The ring buffer takes every record at the first try while open storms on both CPUs go through the kernel filter to
userspace, and the collector's consumer receives every one of them (real kernel, real consumer).

The bug this guards against: the consumer wrote its position with ``struct.pack_into``, which zeroes the 8 bytes
before packing them. A producer reading the position in between took the ring for full with 45 KB of 8 MB in use, and
lost the record (1-3 a step at 20-70k events/s in the forced bench, once 83 in a row when the consumer was preempted
inside the window). Each producer read is a chance to hit the window, so the storms run on both CPUs at once.
"""

from __future__ import annotations

import os
import struct
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from collector import layout
from collector.metrics import RING_RETRIES
from collector.source import KernelSource
from tests.support.kernel_source import WAIT_S, drain, kernel_source

pytestmark = pytest.mark.bpf

COMM = "lanner-rstorm"
# 16 MB, twice the collector's default: a consumer starved of CPU on a busy host has 1.2 s at 100k records/s before
# the ring is genuinely full. The failure guarded against needs no backlog at all, only a ring that has wrapped
# (the producer position past the ring's size), which the storms do several times over.
PAGES = 4096
PER_CPU = 250_000
RATE_PER_CPU = 50_000
# What a storm process runs: pinned to one CPU under its own name, it opens and closes one file at a steady rate
# once told to go, then prints how many opens it made.
STORM = textwrap.dedent(
    """
    import ctypes, os, sys, time
    ctypes.CDLL(None).prctl(15, sys.argv[1].encode(), 0, 0, 0)
    os.sched_setaffinity(0, {int(sys.argv[2])})
    path, n, rate = sys.argv[3], int(sys.argv[4]), float(sys.argv[5])
    print("ready", flush=True)
    sys.stdin.readline()
    done, t0 = 0, time.monotonic()
    while done < n:
        for _ in range(500):
            os.close(os.open(path, os.O_RDONLY))
        done += 500
        ahead = done / rate - (time.monotonic() - t0)
        if ahead > 0:
            time.sleep(ahead)
    print(done, flush=True)
    """
)
# Every open of the storm processes must reach userspace: the kernel cannot decide a container image.
FORCE = f"""
- rule: every storm open to userspace
  desc: never true; the image cannot be decided in the kernel, so the filter passes every open of the storm
  condition: >
    evt.type in (open, openat, openat2) and evt.dir = < and proc.name = {COMM}
    and container.image.repository = lanner-test/none
  output: never (proc=%proc.name)
  priority: NOTICE
"""
_TYPE_PID = struct.Struct("<I4xI")  # lanner_hdr.type and .pid
_TYPE_AT = layout.Hdr.type.offset


@pytest.fixture(scope="module")
def source(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KernelSource]:
    rules = tmp_path_factory.mktemp("ring") / "force.yaml"
    rules.write_text(FORCE)
    yield from kernel_source([str(rules)], pages=PAGES)


def _storm(source: KernelSource, target: Path) -> tuple[dict[int, int], dict[int, int], int]:
    """One storm per CPU (two on a one-CPU host), read by the collector's ring buffer consumer: (opens each storm
    process reported, open records received from each, the largest backlog the consumer saw in bytes)."""
    cpus = sorted(os.sched_getaffinity(0))
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", STORM, COMM, str(cpus[i % len(cpus)]), str(target), str(PER_CPU), str(RATE_PER_CPU)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
        )
        for i in range(2)
    ]
    try:
        for p in procs:
            assert p.stdout is not None and p.stdout.readline().strip() == "ready"
        # Their start-up opens are queued by now (a record is committed before its syscall returns): forget them.
        drain(source)
        reader = source.reader
        ring = reader._mapped  # type: ignore[attr-defined]
        got = {p.pid: 0 for p in procs}
        backlog = 0
        for p in procs:
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.close()
        deadline = time.monotonic() + WAIT_S
        while time.monotonic() < deadline:
            running = any(p.poll() is None for p in procs)
            backlog = max(backlog, ring.pending_bytes())
            records = reader.read()
            for raw in records:
                kind, pid = _TYPE_PID.unpack_from(raw, _TYPE_AT)
                if kind == layout.MSG_OPEN and pid in got:
                    got[pid] += 1
            if not records:
                if not running:
                    break  # they exited after their last open returned, so its record was queued before: all read
                time.sleep(0.0005)  # the collector's loop, too, waits a little when it finds nothing
        made = {}
        for p in procs:
            assert p.stdout is not None
            made[p.pid] = int(p.stdout.read().strip())
            assert p.wait(timeout=WAIT_S) == 0
        return made, got, backlog
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
                p.wait()


def test_storms_on_both_cpus_reach_userspace_without_a_failed_reservation(source: KernelSource, tmp_path: Path) -> None:
    """Two storms of 50k forced opens/s each, one pinned to each CPU, while the consumer reads: every reservation
    succeeds at the first try (no retry, no `ring_buffer_full`), and every open arrives. Only a backlog near the
    ring's size could make a reservation fail honestly; a host so busy that the consumer fell that far behind
    gets another attempt, anything else is the bug."""
    target = tmp_path / "target"
    target.write_text("")
    reader = source.reader
    for _ in range(3):
        dropped0, retried0 = reader.dropped(), reader.retried()  # type: ignore[attr-defined]
        made, got, backlog = _storm(source, target)
        dropped, retried = reader.dropped() - dropped0, reader.retried() - retried0  # type: ignore[attr-defined]
        if (dropped or retried) and backlog >= PAGES * 4096 // 2:
            continue  # genuinely full: the consumer was starved, not the bug
        break
    assert sum(made.values()) == 2 * PER_CPU
    assert (retried, dropped) == (0, 0), f"failed reservations with at most {backlog} bytes of backlog"
    assert got == made


def test_first_try_failures_reach_prometheus() -> None:
    """`lanner_collector_ring_retries_total` follows the probes' count of first-try failures: a real overflow (a
    one-page ring nobody reads) shows as retries, and every loss was retried first."""
    from collector.source import BpfProbe

    src = KernelSource(BpfProbe(ring_buffer_pages=1, families=("process", "file"), exclude_self=False))
    src.start()
    try:
        before = RING_RETRIES._value.get()
        for _ in range(2000):
            os.close(os.open("/etc/hostname", os.O_RDONLY))
        lost = src.dropped()
        retried = src.reader.retried()  # type: ignore[attr-defined]
        assert lost > 0 and retried >= lost
        deadline = time.monotonic() + WAIT_S
        while RING_RETRIES._value.get() - before < retried and time.monotonic() < deadline:
            src.poll()
            time.sleep(0.05)
        assert RING_RETRIES._value.get() - before >= retried
    finally:
        src.close()
