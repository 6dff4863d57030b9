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

from lanner.convert import event_to_pb, process_to_pb
from lanner.model import HOST_CONTAINER, NO_K8S, Arg, Event, Fd, Process
from lanner.v1 import event_pb2
from lanner.wire import SharedEvent, event_batch_wire
from lanner.wire import varint as _varint

_PROC_TAG = b"\x3a"  # field 7 (proc), wire type 2
_ANCESTOR_TAG = b"\x42"  # field 8 (ancestors), wire type 2


_HI_SHIFT = 28
_hi_cache: dict[int, bytes] = {}


def _varint_ns(n: int) -> bytes:
    """varint of a nanosecond timestamp: the low 28 bits are four fixed groups, the rest changes every ~0.27 s and
    is cached, which beats a nine-round loop."""
    hi = n >> _HI_SHIFT
    if hi <= 0:
        return _varint(n)
    tail = _hi_cache.get(hi)
    if tail is None:
        if len(_hi_cache) > 64:
            _hi_cache.clear()
        tail = _hi_cache[hi] = _varint(hi)
    return (
        bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, ((n >> 14) & 0x7F) | 0x80, ((n >> 21) & 0x7F) | 0x80))
        + tail
    )


def _field(tag: bytes, payload: bytes) -> bytes:
    return tag + _varint(len(payload)) + payload


def _str(tag: bytes, text: str) -> bytes:
    return _field(tag, text.encode("utf-8", "surrogateescape"))


def _bool(tag: bytes, value: bool) -> bytes:
    return tag + (b"\x01" if value else b"\x00")


def fd_bytes(fd: Fd) -> bytes:
    """``lanner.v1.Fd`` wire bytes; only fields with a value are written, as protobuf itself does."""
    parts: list[bytes] = []
    if fd.num:
        parts.append(b"\x08" + _varint(fd.num))
    if fd.type:
        parts.append(b"\x10" + _varint(int(fd.type)))
    if fd.path:
        parts.append(_str(b"\x1a", fd.path))
    if fd.path_raw:
        parts.append(_str(b"\x22", fd.path_raw))
    if fd.open_flags is not None:
        parts.append(b"\x28" + _varint(fd.open_flags))
    if fd.mode is not None:
        parts.append(b"\x30" + _varint(fd.mode))
    if fd.client_ip:
        parts.append(_field(b"\x3a", fd.client_ip))
    if fd.server_ip:
        parts.append(_field(b"\x42", fd.server_ip))
    if fd.client_port is not None:
        parts.append(b"\x48" + _varint(fd.client_port))
    if fd.server_port is not None:
        parts.append(b"\x50" + _varint(fd.server_port))
    if fd.l4proto:
        parts.append(b"\x58" + _varint(int(fd.l4proto)))
    if fd.is_server is not None:
        parts.append(_bool(b"\x60", fd.is_server))
    if fd.connected is not None:
        parts.append(_bool(b"\x68", fd.connected))
    if fd.dev is not None:
        parts.append(b"\x70" + _varint(fd.dev))
    if fd.ino is not None:
        parts.append(b"\x78" + _varint(fd.ino))
    if fd.name_changed is not None:
        parts.append(_bool(b"\x80\x01", fd.name_changed))
    if fd.family is not None:
        parts.append(b"\x88\x01" + _varint(fd.family))
    return b"".join(parts)


def arg_bytes(a: Arg) -> bytes:
    """``lanner.v1.Arg`` wire bytes, with the value in the oneof member ``lanner.convert`` would choose."""
    v = a.value
    if isinstance(v, int):
        value = (b"\x10" if v < 0 else b"\x18") + _varint(int(v))
    elif isinstance(v, str):
        value = _str(b"\x22", v)
    else:
        value = _field(b"\x2a", bytes(v))
    return _str(b"\x0a", a.name) + value


class EventEncoder:
    """model.Event -> event_pb2.Event, reusing the encoding of unchanged processes."""

    def __init__(self, cache_size: int = 8192) -> None:
        self._cache_size = cache_size
        self._procs: dict[int, tuple[Process, bytes, bytes]] = {}
        self._chains: dict[int, tuple[tuple[Process, ...], bytes]] = {}
        self._shared: dict[tuple[int, int], tuple[Process, tuple[Process, ...], tuple[bytes, ...]]] = {}
        self._args: dict[tuple[str, object], bytes] = {}
        self._texts: dict[tuple[bytes, str], bytes] = {}
        self._ident_key: tuple[str, str, str] | None = None
        self._ident = b""

    def _proc_field(self, p: Process) -> bytes:
        return self._proc(p)[1]

    def _proc(self, p: Process) -> tuple[Process, bytes, bytes]:
        """(p, its ``proc`` field bytes, its bare serialized message)."""
        hit = self._procs.get(id(p))
        if hit is not None and hit[0] is p:
            return hit
        pb = event_pb2.Process()
        process_to_pb(p, pb)
        payload = pb.SerializeToString()
        if len(self._procs) >= self._cache_size:
            self._procs.clear()
        # Keeping a reference to p pins its id, so a cached id can never name a different object.
        hit = self._procs[id(p)] = (p, _field(_PROC_TAG, payload), payload)
        return hit

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
        """The serialized ``lanner.v1.Event`` of one event, its processes inline."""
        if ev.container is not HOST_CONTAINER or ev.k8s is not NO_K8S:
            # Only other sources set these; take the general path.
            return event_to_pb(ev).SerializeToString()
        return self._body(ev) + self._proc_field(ev.proc) + self._chain_field(ev.ancestors)

    def encode_shared(self, ev: Event) -> SharedEvent:
        """The event without its processes, and their serialized forms for the batch's process table
        (``lanner.wire.shared_batch_wire``): the tuple is the same object for every event of the same process and
        chain, which lets the batch resolve its references once per run of events."""
        if ev.container is not HOST_CONTAINER or ev.k8s is not NO_K8S:
            return event_to_pb(ev).SerializeToString(), ()
        key = (id(ev.proc), id(ev.ancestors))
        hit = self._shared.get(key)
        if hit is None or hit[0] is not ev.proc or hit[1] is not ev.ancestors:
            procs = (self._proc(ev.proc)[2], *(self._proc(a)[2] for a in ev.ancestors))
            if len(self._shared) >= self._cache_size:
                self._shared.clear()
            hit = self._shared[key] = (ev.proc, ev.ancestors, procs)
        return self._body(ev), hit[2]

    def _body(self, ev: Event) -> bytes:
        i = ev.identity
        ident = self._identity_prefix(i.node, i.boot_id, i.producer_id)
        if i.seq:
            ident += b"\x18" + _varint(i.seq)
        t = ev.timing
        timing = b""
        if t.event_ns:
            timing += b"\x08" + _varint_ns(t.event_ns)
        if t.collected_ns:
            timing += b"\x10" + _varint_ns(t.collected_ns)
        if t.enriched_ns:
            timing += b"\x18" + _varint_ns(t.enriched_ns)
        if t.evaluated_ns:
            timing += b"\x20" + _varint_ns(t.evaluated_ns)
        parts = [
            _field(b"\x0a", ident),
            _field(b"\x12", timing),
            self._text(b"\x1a", ev.source),
            self._text(b"\x22", ev.type),
        ]
        if ev.res:
            parts.append(b"\x28" + _varint(ev.res))
        if ev.cpu:
            parts.append(b"\x30" + _varint(ev.cpu))
        if ev.fd is not None:
            parts.append(_field(b"\x4a", fd_bytes(ev.fd)))
        args = self._args
        for a in ev.args:
            key = (a.name, a.value)
            data = args.get(key)
            if data is None:
                data = _field(b"\x52", arg_bytes(a))
                if len(args) >= self._cache_size:
                    args.clear()
                args[key] = data
            parts.append(data)
        if ev.audit_json:
            parts.append(_str(b"\x6a", ev.audit_json))
        if ev.proc_incomplete:
            parts.append(b"\x70\x01")
        return b"".join(parts)

    def _identity_prefix(self, node: str, boot_id: str, producer_id: str) -> bytes:
        key = (node, boot_id, producer_id)
        if self._ident_key != key:
            data = b""
            if node:
                data += _str(b"\x0a", node)
            if boot_id:
                data += _str(b"\x12", boot_id)
            if producer_id:
                data += _str(b"\x22", producer_id)
            self._ident_key, self._ident = key, data
        return self._ident

    def _text(self, tag: bytes, text: str) -> bytes:
        if not text:
            return b""
        key = (tag, text)
        data = self._texts.get(key)
        if data is None:
            data = self._texts[key] = _str(tag, text)
        return data

    def encode_pb(self, ev: Event) -> event_pb2.Event:
        """The same as a message object."""
        return event_pb2.Event.FromString(self.encode(ev))


def make_batch_bytes(seq: int, events: Sequence[bytes], dropped: int) -> event_pb2.EventBatch:
    """The same batch as a message object."""
    return event_pb2.EventBatch.FromString(event_batch_wire(seq, events, dropped))
