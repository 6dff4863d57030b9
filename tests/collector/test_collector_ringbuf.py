# SPDX-License-Identifier: Apache-2.0
"""The ring buffer read through its memory mapping, on the real kernel: every record intact, across wrap-arounds."""

from __future__ import annotations

import os
import select
import subprocess
import sys
import time

import pytest

from collector import preflight
from collector.source import BpfProbe, KernelSource
from tests.support.kernel_source import WAIT_S, confine, drain

pytestmark = pytest.mark.bpf

OPENER = """
import os, sys
for i in range(int(sys.argv[1])):
    try:
        os.close(os.open(f"/lanner-ringbuf-test-{i}", os.O_RDONLY))
    except FileNotFoundError:
        pass
"""


def test_mapped_ring_buffer_reads_every_record_across_wraps() -> None:
    if preflight.problems():
        pytest.skip("eBPF unavailable")
    # 16 pages (64 KiB) wrap every few hundred records; draining between bursts keeps it from overflowing.
    probe = BpfProbe(ring_buffer_pages=16, families=("process", "file"), exclude_self=False)
    src = KernelSource(probe)
    src.start()
    try:
        assert probe._mapped is not None, "the ring buffer should be read through its mapping here"
        # Only the test's own records: another's open storm on this host would overflow 64 KiB between two reads.
        confine(probe)
        drain(src)
        n = 3000
        child = subprocess.Popen([sys.executable, "-c", OPENER, str(n)], stdout=subprocess.DEVNULL)
        seen: set[str] = set()

        def take() -> int:
            events = src.poll()
            for ev in events:
                if ev.proc.pid == child.pid and ev.fd is not None and ev.fd.path.startswith("/lanner-ringbuf-test-"):
                    seen.add(ev.fd.path)
            return len(events)

        while child.poll() is None:
            take()
            os.sched_yield()
        deadline = time.monotonic() + WAIT_S
        while len(seen) + src.dropped() < n and time.monotonic() < deadline:
            if not take():
                time.sleep(0.001)
        assert src.decoder.malformed == 0
        lost = src.dropped()
        # Every open the kernel queued arrives whole; the only gap allowed is what the kernel counted as lost.
        assert len(seen) + lost >= n, (len(seen), lost)
        assert len(seen) > 0
    finally:
        src.close()


def test_ring_buffer_wakes_a_reader_that_sleeps_on_it() -> None:
    """A quiet collector sleeps on the ring buffer's descriptor: once it has caught up, the next record must wake
    it (records are submitted with the kernel's adaptive wake-up, not BPF_RB_NO_WAKEUP, which would leave it asleep
    until its timeout)."""
    if preflight.problems():
        pytest.skip("eBPF unavailable")
    probe = BpfProbe(ring_buffer_pages=16, families=("process", "file"), exclude_self=False)
    src = KernelSource(probe)
    src.start()
    try:
        confine(probe)  # else the buffer may never be empty on a busy host, and a wake-up proves nothing
        fd = probe.wait_fd()
        assert fd is not None
        poller = select.poll()
        poller.register(fd, select.POLLIN)
        while probe.read():  # catch up: the next record lands in an empty buffer
            pass
        later = subprocess.Popen(
            [sys.executable, "-c", "import os, time; time.sleep(0.5); os.close(os.open('/etc/hostname', 0))"]
        )
        assert poller.poll(120_000), "no wake-up although a record was written"
        later.wait()
    finally:
        src.close()
