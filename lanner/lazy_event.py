# SPDX-License-Identifier: Apache-2.0
"""The rule engine's form of a wire event: a ``model.Event`` whose parts are decoded on first read.

The rule engine reads each event as an ``EventView`` (nested messages left as bytes). Building the whole model
event from it cost about 8 us per event, while the rules that can match an ``openat`` read a handful of fields:
most of that work was thrown away. A ``LazyEvent`` is a ``model.Event`` that holds the view and decodes a part
(the process and its ancestors, the fd, the args, the container...) the first time an extractor reads it, with
the same decoders and per-wire-form memos as ``lanner.convert.event_from_view``, so it reads exactly as the
eager event would. The candidate rules of each event type are compiled into one function that extracts each
field at most once (``ruleengine.compiler``), so what an event of a type costs is what its candidate rules read,
and a type no rule reads costs only its ``EventView`` parse.

A part is decoded into the event's own slot, so every later read is a plain attribute read; nothing after the
decoder mutates it (``model`` says why the event classes are not frozen). A nested message that does not parse,
or a process reference past the batch's table, raises ``MalformedEvent`` at the first read: the engine lets it
through and the service counts the event as malformed; it costs only that event.
"""

from __future__ import annotations

from collections.abc import Callable

from google.protobuf.message import DecodeError

from lanner import model
from lanner.convert import (
    BatchTables,
    _arg_wire,
    _container_from_wire,
    _decode_fd,
    _fd_cache,
    _from_wire,
    _k8s_from_wire,
    _process_wire,
)
from lanner.v1 import event_pb2


class MalformedEvent(ValueError):
    """A part of the event does not decode: the event is dropped, and only it."""


def _identity(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    i = view.id
    ev.identity = model.EventIdentity(i.node, i.boot_id, i.seq, i.producer_id)


def _timing(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    t = view.timing
    enriched = t.enriched_ns or (tables.enriched_ns if tables is not None else 0)
    ev.timing = model.EventTiming(t.event_ns, t.collected_ns, enriched, t.evaluated_ns)


def _proc(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    ev.proc = tables.process(view.proc_ref) if view.proc_ref and tables is not None else _process_wire(view.proc)


def _ancestors(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    # Apart from the process: most rules read proc.name and never an ancestor, and a process under a deep tree
    # (a service, a shell, a terminal, ...) carries eight or more of them.
    if view.proc_ref and tables is not None:
        ev.ancestors = tuple(map(tables.process, view.ancestor_refs))
    else:
        ev.ancestors = tuple(map(_process_wire, view.ancestors))


def _placement(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    if view.proc_ref and tables is not None and not view.container:
        placed = tables.placement(view.proc_ref)
        if placed is not None:
            ev.container, ev.k8s = placed
            return
    ev.container = _container_from_wire(view.container) if view.container else model.HOST_CONTAINER
    ev.k8s = _k8s_from_wire(view.k8s)


def _fd(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    ev.fd = _from_wire(_fd_cache, event_pb2.Fd.FromString, _decode_fd, view.fd) if view.HasField("fd") else None


def _args(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    ev.args = tuple(map(_arg_wire, view.args))


def _res(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    ev.res = view.res


def _cpu(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    ev.cpu = view.cpu


def _audit_json(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    ev.audit_json = view.audit_json


def _proc_incomplete(ev: LazyEvent, view: event_pb2.EventView, tables: BatchTables | None) -> None:
    ev.proc_incomplete = view.proc_incomplete


_Decoder = Callable[["LazyEvent", event_pb2.EventView, BatchTables | None], None]
# Each part of model.Event and the decoder that fills it (container and k8s come from one place, together).
_DECODERS: dict[str, _Decoder] = {
    "identity": _identity,
    "timing": _timing,
    "proc": _proc,
    "ancestors": _ancestors,
    "container": _placement,
    "k8s": _placement,
    "fd": _fd,
    "args": _args,
    "res": _res,
    "cpu": _cpu,
    "audit_json": _audit_json,
    "proc_incomplete": _proc_incomplete,
}
# The name a part is traced under (lanner.lazy_event.PART_KEYS): one per decoder.
_PART_OF: dict[str, str] = {name: "container" if name == "k8s" else name for name in _DECODERS}


class LazyEvent(model.Event):
    """A ``model.Event`` read from an ``EventView`` (and its batch's tables), each part decoded on first read.

    Only ``type``, ``source`` and ``given`` (None: a live event) are set at construction; a read of any other
    field finds its slot empty, which lands in ``__getattr__``, which decodes it into the slot."""

    __slots__ = ("_tables", "_trace", "_view")

    def __init__(
        self, view: event_pb2.EventView, tables: BatchTables | None, source: str, evt_type: str | None = None
    ) -> None:
        self._view = view
        self._tables = tables
        self.type = view.type if evt_type is None else evt_type
        self.source = source
        self.given = None
        # While not None, the name of each part decoded, in order (the rule engine's decision memo reads it).
        self._trace: list[str] | None = None

    def __getattr__(self, name: str) -> object:
        # Python calls this only when the normal lookup failed, i.e. for a part not decoded yet.
        decode = _DECODERS.get(name)
        if decode is None:
            raise AttributeError(name)
        if self._trace is not None:
            self._trace.append(_PART_OF[name])
        try:
            decode(self, self._view, self._tables)
        except (DecodeError, IndexError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"event field {name!r} does not decode: {exc}") from exc
        return object.__getattribute__(self, name)

    def preload(self, name: str) -> None:
        """Decode part ``name`` now. The rule engine's hook for a part that its first test reads for every event:
        a first read through ``__getattr__`` pays for a failed attribute lookup (~0.5 µs) before decoding."""
        if self._trace is not None:
            self._trace.append(_PART_OF[name])
        try:
            _DECODERS[name](self, self._view, self._tables)
        except (DecodeError, IndexError, UnicodeDecodeError) as exc:
            raise MalformedEvent(f"event field {name!r} does not decode: {exc}") from exc

    def decoded(self) -> model.Event:
        """The same event as a plain, fully decoded ``model.Event`` (for recording and comparison)."""
        return model.Event(
            type=self.type,
            source=self.source,
            identity=self.identity,
            timing=self.timing,
            res=self.res,
            cpu=self.cpu,
            proc=self.proc,
            ancestors=self.ancestors,
            fd=self.fd,
            args=self.args,
            container=self.container,
            k8s=self.k8s,
            audit_json=self.audit_json,
            proc_incomplete=self.proc_incomplete,
        )


# ---- wire keys --------------------------------------------------------------------------------------------------
# For each part, a key computed from the event's wire form alone (no decoding) such that two events with equal keys
# decode that part to equal values. The rule engine's decision memo (ruleengine.decision_memo) walks these keys in
# the order its dispatcher read the parts. None marks a part that differs for every event (identity, timing): no
# memo is kept past it. A key function raises where the decoder would (a reference past the table): the caller
# then takes the decoding path, which raises MalformedEvent.
_PartKey = Callable[[event_pb2.EventView, BatchTables | None], object]


def _process_key(tables: BatchTables, ref: int) -> bytes:
    found = tables.process_keys.get(ref)
    if found is None:
        if ref <= 0:
            raise IndexError(f"process reference {ref}")
        found = tables.process_keys[ref] = tables._frame.processes[ref - 1]
    return found


def _proc_key(view: event_pb2.EventView, tables: BatchTables | None) -> object:
    # By reference or inline, a process decodes from its bytes alone, the same way.
    return _process_key(tables, view.proc_ref) if view.proc_ref and tables is not None else view.proc


def _ancestors_key(view: event_pb2.EventView, tables: BatchTables | None) -> object:
    if view.proc_ref and tables is not None:
        return tuple([_process_key(tables, r) for r in view.ancestor_refs])
    return tuple(view.ancestors)


def _placement_key(view: event_pb2.EventView, tables: BatchTables | None) -> object:
    ref = view.proc_ref
    if ref and tables is not None and not view.container:
        found = tables.placement_keys.get(ref)
        if found is None:
            frame = tables._frame
            refs = frame.process_containers
            if ref > len(refs):
                found = False  # not placed by reference: the event's own (empty) container, as below
            else:
                index = refs[ref - 1]
                if index == 0:
                    found = True  # the host, as BatchTables.placement gives it
                else:
                    k8s = frame.k8s[index - 1] if index <= len(frame.k8s) else b""
                    found = (frame.containers[index - 1], k8s)
            tables.placement_keys[ref] = found
        if found is not False:
            return found
    return (view.container, view.k8s, None)


PART_KEYS: dict[str, _PartKey | None] = {
    "identity": None,
    "timing": None,
    "proc": _proc_key,
    "ancestors": _ancestors_key,
    "container": _placement_key,
    "fd": lambda view, tables: view.fd if view.HasField("fd") else None,
    "args": lambda view, tables: tuple(view.args),
    "res": lambda view, tables: view.res,
    "cpu": lambda view, tables: view.cpu,
    "audit_json": lambda view, tables: view.audit_json,
    "proc_incomplete": lambda view, tables: view.proc_incomplete,
}
