# SPDX-License-Identifier: Apache-2.0
"""Ring-buffer records straight to ``lanner.v1.Event`` wire bytes, for the record types that dominate a busy host.

The general path decodes a record into model objects (``collector.decode``) and encodes those again
(``collector.encode``). For the hot types that round trip was most of the collector's cost, so ``WirePath``
writes the event's bytes from the unpacked record itself: one ``struct.Struct`` unpacks header and body together,
the kernel's strings go to the wire as the bytes they are, and only what later events need is kept (the fd table
entry of a new fd; the process table is looked up as before). Field keys come from ``lanner.codec``.

The result is byte for byte what the general path produces (``tests/collector/test_collector_wirepath.py``
compares them over a corpus of records, hostile ones included). Anything a handler does not take, including a
record it finds malformed, goes through the general path, which also does the counting and logging of bad
records.

The handlers, one per record type, and their table ``HANDLERS`` are in ``collector.wire_handlers``; adding a
record type is described in collector/README.md.
"""

from __future__ import annotations

import ctypes
import struct
from collections.abc import Callable, Iterable
from typing import Any

from collector import layout
from collector.decode import Decoder, MalformedRecord
from collector.encode import EventEncoder
from lanner import codec
from lanner.codec import SharedEvent, field, varint, varint_ns
from lanner.model import SOURCE_SYSCALL, Fd

# A handler's answer for a record it leaves to the general path (compared by identity).
GENERAL: SharedEvent = (b"<general path>", ())
Handler = Callable[["WirePath", tuple[Any, ...], bytes], "SharedEvent | None"]

_E = codec.EVENT
_ID, _TIMING, _RES, _CPU, _ARGS = _E["id"], _E["timing"], _E["res"], _E["cpu"], _E["args"]
_SOURCE = codec.text(_E["source"], SOURCE_SYSCALL)
_TIMING_EVENT = codec.TIMING_EVENT
_SMALL_LEN = [varint(n) for n in range(128)]
_INCOMPLETE = codec.boolean(_E["proc_incomplete"], True)
_STR_ARG_CACHE = 4096
_TAIL_CACHE = 4096
_LOW_BITS = 28
_LOW_MASK = (1 << _LOW_BITS) - 1
# Two 7-bit groups of a varint that goes on (both continuation bits set), by their 14 bits: an event's time and
# sequence number are written from these pieces and cached high parts instead of byte by byte.
_PAIR = [bytes(((i & 0x7F) | 0x80, ((i >> 7) & 0x7F) | 0x80)) for i in range(1 << 14)]
_GROUP = [bytes(((i & 0x7F) | 0x80,)) for i in range(128)]
_TS = struct.Struct("<Q").unpack_from


def joined(body: struct.Struct) -> struct.Struct:
    """Header and body as one struct (one unpack per record); the header's fields come first."""
    return struct.Struct(layout.HDR.format + str(body.format).lstrip("<"))


def body_index(body: type[ctypes.Structure], name: str) -> int:
    """Where field ``name`` of a record body sits in the tuple ``joined`` unpacks (``layout.struct_of`` makes one
    item of each field, arrays included)."""
    names = [f[0] for f in body._fields_]
    return len(layout.Hdr._fields_) + names.index(name)


def event_type(name: str) -> bytes:
    """The ``type`` field of an event type, to prebuild in a handler's table."""
    return codec.text(_E["type"], name)


class WirePath:
    """Records -> shared-table events; owns no state of its own beyond caches (the decoder's sequence and the
    process table are shared with the general path, which handles every other record in between)."""

    def __init__(self, decoder: Decoder, encoder: EventEncoder) -> None:
        self.decoder = decoder
        self.table = decoder.table
        self.encoder = encoder
        self.incomplete = 0
        self._str_args: dict[tuple[str, bytes], bytes] = {}
        self.opens: dict[tuple[int, int, int, int, int, int, bytes, bytes], tuple[bytes, bytes, Fd, bool]] = {}
        self.opens_by_body: dict[bytes, tuple[bytes, bytes, Fd, bool]] = {}
        self.open_shapes: dict[tuple[int, ...], Any] = {}  # collector.wire_handlers._open_shape
        self._offset = 0
        self._collected = b""
        from collector.wire_handlers import HANDLERS  # here: the handlers are built on this module

        self._handlers = HANDLERS
        self._thread: tuple[bytes, Any, tuple[bytes, ...]] | None = None
        self._id_head = self._id_tail = self._id_end = b""
        self._id_size = 0
        self._id_starts: list[bytes] = []
        self._tails: dict[tuple[bytes, int, int, bytes, bool], bytes] = {}
        self._hi = -1
        self._timing_head = self._timing_rest = b""
        self._seq_hi = -1
        self._seq_head = self._seq_rest = b""
        # The open record just taken (see ``run``): its length, its bytes after the time, the thread's entry and
        # processes, the fd to set (or None) and its close-on-exec, cpu, and the event's type, res and fd and args.
        self.repeat: tuple[int, bytes, Any, tuple[bytes, ...], Fd | None, bool, int, bytes, int, bytes] | None = None

    def run(self, records: Iterable[bytes], collected_ns: int) -> tuple[list[SharedEvent], int]:
        """The events of ``records`` read at ``collected_ns`` (epoch ns), and the newest one's event time."""
        d = self.decoder
        d._collected_ns = collected_ns
        clock = self.table.clock
        clock.maybe_refresh()
        self._offset = d._clock_offset = clock.to_wall(0)
        self._collected = codec.TIMING_COLLECTED + varint_ns(collected_ns) if collected_ns else b""
        self._hi = -1  # the high part of the last event time written (event); its pieces hold this collection time
        i = d.identity
        head, self._id_tail = self.encoder.identity(i.node, i.boot_id, i.producer_id)
        self._id_head = head + codec.IDENTITY_SEQ
        self._id_size = len(self._id_head) + len(self._id_tail)
        # Per length of the sequence number's varint: the identity's key, length and head, all one piece.
        self._id_starts = [_ID + varint(self._id_size + n) + self._id_head if n else b"" for n in range(11)]
        self._id_end = self._id_tail + _TIMING
        self._thread = None  # the table may have changed since the last run (a sweep, a spec)
        self._seq_hi = -1
        out: list[SharedEvent] = []
        append = out.append
        handlers = self._handlers
        encode = self.encoder.encode_shared
        table = self.table
        newest = 0
        rep = None
        for raw in records:
            if rep is not None and len(raw) == rep[0] and raw.endswith(rep[1]):
                # The previous record again but for its time (a storm of one open): everything the handler
                # found from the header and body holds, and only what depends on the time is done again.
                ts = _TS(raw)[0]
                table.now_ns = ts
                if rep[4] is not None:
                    table.set_fd(rep[2], rep[4], rep[5])
                append(self.event(ts, rep[6], rep[2], rep[3], rep[7], rep[8], rep[9]))
                newest = self._last_ns
                continue
            entry = handlers.get(raw[16:20])
            ev: SharedEvent | None = GENERAL
            self.repeat = None
            if entry is not None and len(raw) >= entry[0].size:
                try:
                    ev = entry[1](self, entry[0].unpack_from(raw), raw)
                except Exception:
                    ev = GENERAL  # the general path decodes it again and counts and logs what is wrong
            rep = self.repeat
            if ev is GENERAL:
                rep = None
                self._thread = None  # any other record may change the tables
                model = d.decode(raw)
                if model is None:
                    continue
                newest = model.timing.event_ns
                self.incomplete += model.proc_incomplete
                append(encode(model))
            elif ev is not None:
                newest = self._last_ns
                append(ev)
        return out, newest

    _last_ns = 0

    def thread(self, t: tuple[Any, ...], raw: bytes) -> tuple[Any, tuple[bytes, ...]]:
        """The process-table entry of the record's thread group, after the lookup the decoder does, and the
        serialized thread and ancestors for the batch's process table.

        Records come in runs from one thread (a process opening file after file). Between two records of a run
        with the same header facts (cgroup, pid, tid, ids, comm, namespaced ids) nothing can change the answer:
        the direct path's handlers touch only fds, and any other record resets this one-thread memo."""
        who = raw[8:16] + raw[24:40] + raw[48:72]  # the header without time, type, size, cpu and flags
        last = self._thread
        if last is not None and last[0] == who:
            return last[1], last[2]
        d = self.decoder
        comm = d._comms.get(t[10])
        if comm is None:
            comm = d._comm(t[10])
        table = self.table
        entry = table.get(t[4], comm, t[6], t[7], t[1], t[11])
        procs = self.encoder.shared_procs(table.view(entry, t[5], comm, t[12]), table.ancestors(entry))
        self._thread = (who, entry, procs)
        return entry, procs

    def int_arg(self, name: str, value: int) -> bytes:
        """An integer ``args`` field (cached by the encoder)."""
        return self.encoder.arg(name, value)

    def str_arg(self, name: str, value: bytes) -> bytes:
        """A string ``args`` field from the kernel's bytes."""
        key = (name, value)
        data = self._str_args.get(key)
        if data is None:
            data = field(_ARGS, codec.text(codec.ARG_NAME, name) + field(codec.ARG_STR, value))
            if len(self._str_args) >= _STR_ARG_CACHE:
                self._str_args.clear()
            self._str_args[key] = data
        return data

    def event(
        self, ts: int, cpu: int, entry: Any, procs: tuple[bytes, ...], type_: bytes, res: int, rest: bytes
    ) -> SharedEvent:
        """Assemble the event of a record of boot time ``ts`` read on ``cpu`` (its thread's entry and processes
        from ``thread``) from the parts after ``cpu`` (fd, args) and take the next sequence number; call it last,
        once nothing can fail any more."""
        d = self.decoder
        d.seq = seq = d.seq + 1
        event_ns = ts + self._offset
        self._last_ns = event_ns
        # Everything after the timing repeats from event to event of a storm: built once per distinct form.
        key = (type_, res, cpu, rest, entry.complete)
        tail = self._tails.get(key)
        if tail is None:
            tail = self._tail(key)
        if not entry.complete:
            self.incomplete += 1
        if event_ns >> _LOW_BITS == self._hi and event_ns > 0 and seq >> 7 == self._seq_hi:
            # The time's varint: four groups of its low 28 bits, then the high part, the same for ~0.27 s and
            # written with the timing's key, length and collection time around it (codec.varint_ns, unrolled).
            # The sequence number likewise: its low group, then the rest, the same for 128 events.
            low = event_ns & _LOW_MASK
            pair = _PAIR
            return b"".join(
                (
                    self._seq_head,
                    _GROUP[seq & 0x7F],
                    self._seq_rest,
                    self._timing_head,
                    pair[low & 0x3FFF],
                    pair[low >> 14],
                    self._timing_rest,
                    tail,
                )
            ), procs
        seq_bytes = varint(seq)
        if seq > 0x7F:
            self._seq_hi = seq >> 7
            self._seq_rest = seq_bytes[1:] + self._id_end
            self._seq_head = self._id_starts[len(seq_bytes)]
        timing = (_TIMING_EVENT + varint_ns(event_ns) if event_ns else b"") + self._collected
        if event_ns > 0:
            self._hi = event_ns >> _LOW_BITS
            self._timing_rest = varint(self._hi) + self._collected
            self._timing_head = _SMALL_LEN[len(timing)] + _TIMING_EVENT
        ident = (self._id_starts[len(seq_bytes)], seq_bytes, self._id_end)
        return b"".join((*ident, _SMALL_LEN[len(timing)], timing, tail)), procs  # two int64s: at most 22 bytes

    def _tail(self, key: tuple[bytes, int, int, bytes, bool]) -> bytes:
        type_, res, cpu, rest, complete = key
        tail = b"".join(
            (
                _SOURCE,
                type_,
                _RES + varint(res) if res else b"",
                _CPU + varint(cpu) if cpu else b"",
                rest,
                b"" if complete else _INCOMPLETE,
            )
        )
        if len(self._tails) >= _TAIL_CACHE:
            self._tails.clear()
        self._tails[key] = tail
        return tail


def cstring(raw: bytes, start: int, length: int) -> bytes:
    """The bytes of a NUL-terminated string field of ``length`` bytes (as ``collector.decode.cstr``)."""
    if length <= 0:
        return b""
    end = start + length
    if end > len(raw):
        raise MalformedRecord(f"string at {start}+{length} past record end {len(raw)}")
    value = raw[start:end]
    nul = value.find(b"\0")
    return value[:nul] if nul >= 0 else value


def is_normal_absolute(path: bytes) -> bool:
    """Whether ``collector.entry.normalize`` would return ``path`` unchanged (bytes and their surrogateescape text
    agree on every ASCII byte, so the test carries over)."""
    return path[:1] == b"/" and b"/." not in path and b"//" not in path and (len(path) == 1 or path[-1:] != b"/")
