# SPDX-License-Identifier: Apache-2.0
"""MappedRingBuffer.read over a file laid out as the kernel lays out a ring buffer map: consumer page, producer
page, data. Records of every length, discarded ones, one still being written, and a cap on records per read."""

from __future__ import annotations

import mmap
import os
import struct
import subprocess
import sys
import textwrap
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from collector.ringbuf import BUSY_BIT, DISCARD_BIT, MappedRingBuffer

PAGE = mmap.PAGESIZE
SIZE = 1 << 16


class Ring:
    def __init__(self, path: Path) -> None:
        self.fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
        os.ftruncate(self.fd, 2 * PAGE + 2 * SIZE)
        self.mem = mmap.mmap(self.fd, 2 * PAGE + 2 * SIZE)
        self.produced = 0
        self.reader = MappedRingBuffer(self.fd, SIZE)

    def put(self, data: bytes, flags: int = 0) -> int:
        at = 2 * PAGE + self.produced % SIZE
        struct.pack_into("<II", self.mem, at, len(data) | flags, 0)
        self.mem[at + 8 : at + 8 + len(data)] = data
        self.produced += (len(data) + 8 + 7) & ~7
        struct.pack_into("<Q", self.mem, PAGE, self.produced)
        return at

    def consumed(self) -> int:
        return int(struct.unpack_from("<Q", self.mem, 0)[0])

    def close(self) -> None:
        self.reader.close()
        self.mem.close()
        os.close(self.fd)


@settings(max_examples=60, deadline=None)
@given(
    records=st.lists(st.tuples(st.binary(max_size=40), st.sampled_from([0, 0, 0, DISCARD_BIT])), max_size=40),
    cap=st.integers(1, 50),
)
def test_read_gives_each_committed_record_once_in_order(tmp_path_factory: object, records: list, cap: int) -> None:
    ring = Ring(tmp_path_factory.mktemp("ring") / "map")  # type: ignore[attr-defined]
    try:
        for data, flags in records:
            ring.put(data, flags)
        want = [data for data, flags in records if not flags]
        got: list[bytes] = []
        for _ in range(len(records) + 2):
            chunk = ring.reader.read(cap)
            assert len(chunk) <= cap
            if not chunk and ring.consumed() == ring.produced:
                break
            got += chunk
        assert got == want
        assert ring.consumed() == ring.produced
    finally:
        ring.close()


def test_a_record_still_being_written_holds_back_the_ones_behind_it(tmp_path: Path) -> None:
    ring = Ring(tmp_path / "map")
    try:
        ring.put(b"first")
        busy_at = ring.put(b"second", BUSY_BIT)
        ring.put(b"third")
        assert ring.reader.read() == [b"first"]
        assert ring.consumed() == busy_at - 2 * PAGE
        assert ring.reader.read() == []
        struct.pack_into("<I", ring.mem, busy_at, len(b"second"))  # committed
        assert ring.reader.read() == [b"second", b"third"]
        assert ring.consumed() == ring.produced
    finally:
        ring.close()


# Watches the consumer position from another process, as the kernel's producers do, until told to stop (the byte
# after the producer position): prints how many reads it made and how many saw the position lower than before.
WATCH = textwrap.dedent(
    """
    import mmap, os, sys
    fd = os.open(sys.argv[1], os.O_RDONLY)
    mem = mmap.mmap(fd, 2 * mmap.PAGESIZE, mmap.MAP_SHARED, mmap.PROT_READ)
    pos = memoryview(mem)[:8].cast("Q")
    stop = memoryview(mem)[mmap.PAGESIZE + 8 : mmap.PAGESIZE + 9]
    print("ready", flush=True)
    reads = back = last = 0
    while not stop[0]:
        now = pos[0]
        reads += 1
        if now < last:
            back += 1
        last = now
    print(reads, back, flush=True)
    """
)


def test_another_process_never_sees_the_consumer_position_go_back(tmp_path: Path) -> None:
    """The consumer position is written with one 8-byte store. It was written with ``struct.pack_into``, which zeroes
    the field before packing it: a kernel producer reading it then saw 0 and took the ring for full (the
    `ring_buffer_full` losses with the ring nearly empty). A watcher on another CPU caught such a dip in about half of
    the runs of 30k writes, hence 100k; on one CPU it rarely can. Passing proves little, failing proves the bug."""
    ring = Ring(tmp_path / "map")
    watcher = subprocess.Popen([sys.executable, "-c", WATCH, str(tmp_path / "map")], stdout=subprocess.PIPE, text=True)
    try:
        assert watcher.stdout is not None and watcher.stdout.readline().strip() == "ready"
        # Positions that carry into a new byte often (each write changes several of its 8 bytes).
        record = b"x" * 240
        for _ in range(100_000):
            ring.put(record)
            assert ring.reader.read() == [record]
        ring.mem[PAGE + 8] = 1
        reads, back = (int(w) for w in watcher.stdout.read().split())
        assert watcher.wait(timeout=60) == 0
        assert reads > 0
        assert back == 0, f"{back} of {reads} reads saw the consumer position lower than before"
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
        ring.close()
