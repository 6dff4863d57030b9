# SPDX-License-Identifier: Apache-2.0
"""MappedRingBuffer.read over a file laid out as the kernel lays out a ring buffer map: consumer page, producer
page, data. Records of every length, discarded ones, one still being written, and a cap on records per read."""

from __future__ import annotations

import mmap
import os
import struct
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
        at = 2 * PAGE + self.produced
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
