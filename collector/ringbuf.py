# SPDX-License-Identifier: Apache-2.0
"""Reading a BPF ring buffer through its memory mapping, in bulk.

bcc's ``ring_buffer_consume`` calls back into Python once per record (a ctypes callback and a copy each), which
cost more than decoding the record. The ring buffer's memory can be mapped instead, as libbpf does, and drained
in one pass:

* page 0 holds the consumer position, the only page user space may write;
* page 1 holds the producer position, and the data pages follow it, mapped twice in a row so that a record that
  wraps around the end is still contiguous;
* each record starts with an 8-byte header (``u32 len``, ``u32 page offset``); the top two bits of ``len`` say
  "still being written" (busy) and "discarded"; records are 8-byte aligned.

The kernel publishes the producer position after the record's header is final. Both positions are read and
written through a ``memoryview`` cast to one u64 (``Q``): CPython moves such an item with one 8-byte ``memcpy``,
which compilers emit as a single load or store (checked in this build's ``pack_single``), and x86 and arm64 make an
aligned 8-byte access single-copy atomic. The consumer position is written back once per drain, after every record of
it has been copied out.

Never write the consumer position with ``struct.pack_into``: CPython zeroes the field (``memset``) before packing
it byte by byte, and a producer that reads the position in between sees 0, takes the ring for full (everything ever
produced looks unread) and drops the record with the ring nearly empty. That was the rare ``ring_buffer_full`` at
20-70k events/s (1-3 a step, and once 83 in a row when the collector was preempted inside the window).
"""

from __future__ import annotations

import mmap
import struct

BUSY_BIT = 1 << 31
DISCARD_BIT = 1 << 30
LENGTH_MASK = DISCARD_BIT - 1
HEADER_SIZE = 8
_FLAGS = BUSY_BIT | DISCARD_BIT
_HEADER = struct.Struct("<I")


class MappedRingBuffer:
    """The consumer side of a ``BPF_MAP_TYPE_RINGBUF`` map of ``data_size`` bytes (a power of two)."""

    def __init__(self, map_fd: int, data_size: int) -> None:
        if data_size <= 0 or data_size & (data_size - 1):
            raise ValueError(f"ring buffer size must be a power of two, got {data_size}")
        page = mmap.PAGESIZE
        self._consumer = mmap.mmap(map_fd, page, mmap.MAP_SHARED, mmap.PROT_READ | mmap.PROT_WRITE, offset=0)
        try:
            self._producer = mmap.mmap(map_fd, page + 2 * data_size, mmap.MAP_SHARED, mmap.PROT_READ, offset=page)
        except BaseException:
            self._consumer.close()
            raise
        self._data = memoryview(self._producer)[page:]
        self._mask = data_size - 1
        # One u64 each, accessed with single 8-byte loads and stores (see the module docstring).
        self._consumer_pos = memoryview(self._consumer)[:8].cast("Q")
        self._producer_pos = memoryview(self._producer)[:8].cast("Q")

    def pending_bytes(self) -> int:
        """How far the producer is ahead of the consumer."""
        return int(self._producer_pos[0] - self._consumer_pos[0])

    def read(self, max_records: int = 1 << 20) -> list[bytes]:
        """Copy out every committed record (up to ``max_records``) and release their space to the producer.

        Two passes: the headers are walked in the shared memory up to the first record still being written, then
        that whole committed stretch is copied in one go (the data pages are mapped twice in a row, so it is
        contiguous even across the wrap) and the records are cut from the copy. Copying only what was seen
        committed keeps the copy's order of bytes irrelevant; cutting from one bytes object is cheaper than a
        memoryview slice and copy per record."""
        consumer = self._consumer_pos[0]
        producer = self._producer_pos[0]
        if consumer >= producer:
            return []
        data = self._data
        unpack = _HEADER.unpack_from
        start = consumer & self._mask
        offset = start
        end = start + (producer - consumer)
        rel = HEADER_SIZE - start  # a record's data, relative to ``start``, is at its header's offset + rel
        spans: list[int] = []  # start and end of each record kept, relative to ``start``
        append = spans.append
        left = max_records
        while offset < end and left:
            (length,) = unpack(data, offset)
            if length & _FLAGS:
                if length & BUSY_BIT:
                    break  # reserved but not yet committed: the records behind it wait for the next drain
                offset += ((length & LENGTH_MASK) + HEADER_SIZE + 7) & ~7  # discarded
                continue
            at = offset + rel
            append(at)
            append(at + length)
            left -= 1
            offset += (length + HEADER_SIZE + 7) & ~7
        chunk = data[start:offset].tobytes()
        ends = iter(spans)
        out = [chunk[a:b] for a, b in zip(ends, ends, strict=False)]  # pairs of one iterator
        self._consumer_pos[0] = consumer + (offset - start)  # one 8-byte store, never zeroed first
        return out

    def close(self) -> None:
        """Unmap (the map itself belongs to whoever loaded it)."""
        self._consumer_pos.release()
        self._producer_pos.release()
        self._data.release()
        self._producer.close()
        self._consumer.close()
