# SPDX-License-Identifier: Apache-2.0
"""Protobuf encoding of the collector's model events (the general path; ``collector.wirepath`` writes the hot
record types straight from the ring buffer).

An event carries its process and up to a few dozen ancestors, and those Process objects are shared from event
to event until the process changes. Encoding them field by field for every event dominated the collector's cost,
so each Process (and each ancestors tuple) is serialized once, cached by identity, and spliced into the event's
wire bytes. The field keys and wire pieces come from ``lanner.codec``. The result equals
``lanner.convert.event_to_pb`` (tests/collector/test_collector_encode.py checks that).
"""

from __future__ import annotations

from collections.abc import Sequence

from lanner import codec
from lanner.codec import SharedEvent, event_batch_wire, field, varint, varint_ns
from lanner.convert import event_to_pb, process_to_pb
from lanner.model import HOST_CONTAINER, NO_K8S, Arg, Event, Process
from lanner.v1 import event_pb2

_E = codec.EVENT
_PROC, _ANCESTOR = _E["proc"], _E["ancestors"]
_ID, _TIMING, _SOURCE, _TYPE = _E["id"], _E["timing"], _E["source"], _E["type"]
_RES, _CPU, _FD, _ARGS = _E["res"], _E["cpu"], _E["fd"], _E["args"]
_AUDIT, _INCOMPLETE = _E["audit_json"], _E["proc_incomplete"]
_INCOMPLETE_FIELD = codec.boolean(_INCOMPLETE, True)


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
        self._ident = (b"", b"")

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
        hit = self._procs[id(p)] = (p, field(_PROC, payload), payload)
        return hit

    def _chain_field(self, chain: tuple[Process, ...]) -> bytes:
        if not chain:
            return b""
        hit = self._chains.get(id(chain))
        if hit is not None and hit[0] is chain:
            return hit[1]
        data = b"".join(field(_ANCESTOR, self._proc(a)[2]) for a in chain)
        if len(self._chains) >= self._cache_size:
            self._chains.clear()
        self._chains[id(chain)] = (chain, data)
        return data

    def encode(self, ev: Event) -> bytes:
        """The serialized ``lanner.v1.Event`` of one event, its processes inline."""
        if ev.container is not HOST_CONTAINER or ev.k8s is not NO_K8S:
            # Only other sources set these; take the general path.
            return event_to_pb(ev).SerializeToString()
        # Field order as protobuf writes it: proc (7) and ancestors (8) after cpu (6), before fd (9).
        return self._body(ev, self._proc_field(ev.proc) + self._chain_field(ev.ancestors))

    def shared_procs(self, proc: Process, ancestors: tuple[Process, ...]) -> tuple[bytes, ...]:
        """The serialized thread and ancestors for a batch's process table: the same tuple object for every event
        of the same process and chain, which lets the batch resolve its references once per run of events."""
        key = (id(proc), id(ancestors))
        hit = self._shared.get(key)
        if hit is None or hit[0] is not proc or hit[1] is not ancestors:
            procs = (self._proc(proc)[2], *(self._proc(a)[2] for a in ancestors))
            if len(self._shared) >= self._cache_size:
                self._shared.clear()
            hit = self._shared[key] = (proc, ancestors, procs)
        return hit[2]

    def encode_shared(self, ev: Event) -> SharedEvent:
        """The event without its processes, and their serialized forms for the batch's process table
        (``lanner.codec.shared_batch_wire``)."""
        if ev.container is not HOST_CONTAINER or ev.k8s is not NO_K8S:
            return event_to_pb(ev).SerializeToString(), ()
        return self._body(ev, b""), self.shared_procs(ev.proc, ev.ancestors)

    def identity(self, node: str, boot_id: str, producer_id: str) -> tuple[bytes, bytes]:
        """The identity fields before and after ``seq`` (cached for the producer's lifetime)."""
        key = (node, boot_id, producer_id)
        if self._ident_key != key:
            self._ident_key = key
            self._ident = (codec.identity_prefix(node, boot_id, producer_id), codec.identity_suffix(producer_id))
        return self._ident

    def arg(self, name: str, value: int | str | bytes) -> bytes:
        """One ``args`` field of an event, cached by (name, value): a storm repeats the same arguments."""
        key = (name, value)
        data = self._args.get(key)
        if data is None:
            data = field(_ARGS, codec.arg_bytes(Arg(name, value)))
            if len(self._args) >= self._cache_size:
                self._args.clear()
            self._args[key] = data
        return data

    def _body(self, ev: Event, procs: bytes) -> bytes:
        i = ev.identity
        head, tail = self.identity(i.node, i.boot_id, i.producer_id)
        ident = head + codec.IDENTITY_SEQ + varint(i.seq) + tail if i.seq else head + tail
        t = ev.timing
        timing = b""
        if t.event_ns:
            timing += codec.TIMING_EVENT + varint_ns(t.event_ns)
        if t.collected_ns:
            timing += codec.TIMING_COLLECTED + varint_ns(t.collected_ns)
        if t.enriched_ns:
            timing += codec.TIMING_ENRICHED + varint_ns(t.enriched_ns)
        if t.evaluated_ns:
            timing += codec.TIMING_EVALUATED + varint_ns(t.evaluated_ns)
        parts = [field(_ID, ident), field(_TIMING, timing), self.text(_SOURCE, ev.source), self.text(_TYPE, ev.type)]
        if ev.res:
            parts.append(_RES + varint(ev.res))
        if ev.cpu:
            parts.append(_CPU + varint(ev.cpu))
        if procs:
            parts.append(procs)
        if ev.fd is not None:
            parts.append(field(_FD, codec.fd_bytes(ev.fd)))
        arg = self.arg
        for a in ev.args:
            parts.append(arg(a.name, a.value))
        if ev.audit_json:
            parts.append(codec.text(_AUDIT, ev.audit_json))
        if ev.proc_incomplete:
            parts.append(_INCOMPLETE_FIELD)
        return b"".join(parts)

    def text(self, key: bytes, value: str) -> bytes:
        """A string field, cached (event types and sources repeat)."""
        if not value:
            return b""
        k = (key, value)
        data = self._texts.get(k)
        if data is None:
            data = self._texts[k] = codec.text(key, value)
        return data

    def encode_pb(self, ev: Event) -> event_pb2.Event:
        """The same as a message object."""
        return event_pb2.Event.FromString(self.encode(ev))


def make_batch_bytes(seq: int, events: Sequence[bytes], dropped: int) -> event_pb2.EventBatch:
    """The same batch as a message object."""
    return event_pb2.EventBatch.FromString(event_batch_wire(seq, events, dropped))
