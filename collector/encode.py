# SPDX-License-Identifier: Apache-2.0
"""Fast protobuf encoding of the collector's events.

An event carries its process and up to a few dozen ancestors, and those Process objects are shared from event
to event until the process changes. Encoding them field by field for every event dominated the collector's cost,
so each Process (and each ancestors tuple) is serialized once, cached by identity, and spliced into the event's
wire bytes: a protobuf message is the concatenation of its encoded fields. The result equals
``lanner.convert.event_to_pb`` (tests/collector/test_collector_encode.py checks that).
"""

from __future__ import annotations

from collections.abc import Sequence

from lanner.convert import event_to_pb, fd_to_pb, process_to_pb
from lanner.model import HOST_CONTAINER, NO_K8S, Event, Process
from lanner.v1 import event_pb2

_PROC_TAG = b"\x3a"  # field 7 (proc), wire type 2
_ANCESTOR_TAG = b"\x42"  # field 8 (ancestors), wire type 2


def _varint(n: int) -> bytes:
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


class EventEncoder:
    """model.Event -> event_pb2.Event, reusing the encoding of unchanged processes."""

    def __init__(self, cache_size: int = 8192) -> None:
        self._cache_size = cache_size
        self._procs: dict[int, tuple[Process, bytes]] = {}
        self._chains: dict[int, tuple[tuple[Process, ...], bytes]] = {}

    def _proc_field(self, p: Process) -> bytes:
        hit = self._procs.get(id(p))
        if hit is not None and hit[0] is p:
            return hit[1]
        pb = event_pb2.Process()
        process_to_pb(p, pb)
        data = _field(_PROC_TAG, pb.SerializeToString())
        if len(self._procs) >= self._cache_size:
            self._procs.clear()
        # Keeping a reference to p pins its id, so a cached id can never name a different object.
        self._procs[id(p)] = (p, data)
        return data

    def _chain_field(self, chain: tuple[Process, ...]) -> bytes:
        if not chain:
            return b""
        hit = self._chains.get(id(chain))
        if hit is not None and hit[0] is chain:
            return hit[1]
        data = b"".join(_ANCESTOR_TAG + self._proc_field(a)[1:] for a in chain)
        if len(self._chains) >= self._cache_size:
            self._chains.clear()
        self._chains[id(chain)] = (chain, data)
        return data

    def encode(self, ev: Event) -> bytes:
        """The serialized ``lanner.v1.Event`` of one event."""
        pb = event_pb2.Event()
        i = ev.identity
        ident = pb.id
        ident.node, ident.boot_id, ident.seq, ident.producer_id = i.node, i.boot_id, i.seq, i.producer_id
        t = ev.timing
        timing = pb.timing
        timing.event_ns, timing.collected_ns = t.event_ns, t.collected_ns
        pb.source = ev.source
        pb.type = ev.type
        if ev.res:
            pb.res = ev.res
        if ev.cpu:
            pb.cpu = ev.cpu
        if ev.fd is not None:
            fd_to_pb(ev.fd, pb.fd)
        args = pb.args
        for a in ev.args:
            out = args.add()
            out.name = a.name
            v = a.value
            if isinstance(v, int):
                if v < 0:
                    out.int_value = v
                else:
                    out.uint_value = v
            elif isinstance(v, str):
                out.str_value = v
            else:
                out.bytes_value = bytes(v)
        if ev.audit_json:
            pb.audit_json = ev.audit_json
        if ev.proc_incomplete:
            pb.proc_incomplete = True
        if ev.container is not HOST_CONTAINER or ev.k8s is not NO_K8S:
            # Only other sources set these; take the general path.
            return event_to_pb(ev).SerializeToString()
        return pb.SerializeToString() + self._proc_field(ev.proc) + self._chain_field(ev.ancestors)

    def encode_pb(self, ev: Event) -> event_pb2.Event:
        """The same as a message object."""
        return event_pb2.Event.FromString(self.encode(ev))


def make_batch_bytes(seq: int, events: Sequence[bytes], dropped: int) -> event_pb2.EventBatch:
    """An EventBatch from serialized events, parsed once in C instead of merging message objects."""
    parts = [b"\x08" + _varint(seq)]
    for data in events:
        parts.append(b"\x12" + _varint(len(data)) + data)
    if dropped:
        parts.append(b"\x18" + _varint(dropped))
    return event_pb2.EventBatch.FromString(b"".join(parts))
