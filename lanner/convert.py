# SPDX-License-Identifier: Apache-2.0
"""The one place where protobuf events become domain events and back (``lanner.model`` <-> ``lanner.v1``).

Fields a process controls (argv, env, paths...) are ``bytes`` on the wire and text that keeps every byte in the
model (``lanner.text``); this module is the only place that converts between the two.
"""

from __future__ import annotations

import base64
from collections.abc import Callable
from dataclasses import fields
from types import MappingProxyType
from typing import Any, Generic, TypeVar

from google.protobuf import json_format
from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message

from lanner import model
from lanner.present import present_reader
from lanner.text import from_bytes, to_bytes
from lanner.v1 import event_pb2


def _text_as_bytes(desc: Descriptor, raw: frozenset[str] = frozenset()) -> frozenset[str]:
    """The ``bytes`` fields of a message that the model holds as text (all of them but ``raw``)."""
    return frozenset(f.name for f in desc.fields if f.type == FieldDescriptor.TYPE_BYTES) - raw


_PROCESS_TEXT = _text_as_bytes(event_pb2.Process.DESCRIPTOR)
_FD_TEXT = _text_as_bytes(event_pb2.Fd.DESCRIPTOR, frozenset({"client_ip", "server_ip"}))
_ARG_TEXT = frozenset({"str_value"})
_TEXT_FIELDS = {
    event_pb2.Process.DESCRIPTOR.full_name: _PROCESS_TEXT,
    event_pb2.Fd.DESCRIPTOR.full_name: _FD_TEXT,
    event_pb2.Arg.DESCRIPTOR.full_name: _ARG_TEXT,
}
_PROCESS_SCALAR = tuple(f.name for f in fields(model.Process) if f.name not in {"args", "env", "cgroups"})
_FD_OPTIONAL = frozenset(f.name for f in event_pb2.Fd.DESCRIPTOR.fields if f.has_presence and f.message_type is None)
_FD_PLAIN = tuple(f.name for f in fields(model.Fd) if f.name not in _FD_OPTIONAL | {"type", "l4proto"})
_CONTAINER_OPTIONAL = frozenset({"privileged", "host_pid", "host_network", "host_ipc"})
_CONTAINER_PLAIN = tuple(
    f.name for f in fields(model.Container) if f.name not in _CONTAINER_OPTIONAL | {"labels", "mounts"}
)
_FD_TYPES = {int(t): t for t in model.FdType}
_L4_PROTOS = {int(t): t for t in model.L4Proto}
_K8S_PLAIN = tuple(f.name for f in fields(model.K8s) if f.name not in ("pod_labels", "exec_groups"))


_REPEATED = frozenset({"args", "env", "cgroups"})


_Decoded = TypeVar("_Decoded")
_Message = TypeVar("_Message", bound=Message)

# Each memo is bounded in entries and in bytes (of wire form; the decoded objects take about as much again), and
# a message above MEMO_ITEM_BYTES is decoded without being kept: a huge argv is one process's, it does not repeat,
# and keeping a few thousand of them is how a forged batch could take gigabytes.
MEMO_ENTRIES = 8192
MEMO_BYTES = 32 * 1024 * 1024
MEMO_ITEM_BYTES = 64 * 1024


class _Memo(Generic[_Decoded]):
    __slots__ = ("bytes", "items")

    def __init__(self) -> None:
        self.items: dict[bytes, _Decoded] = {}
        self.bytes = 0


# Keyed by wire form: a process (or container) decoded for one batch serves every later batch that carries it.
# Decoded objects are shared between events, which is safe because nothing after the decoder mutates them.
_process_cache: _Memo[model.Process] = _Memo()
_container_cache: _Memo[model.Container] = _Memo()
_fd_cache: _Memo[model.Fd] = _Memo()
_arg_cache: _Memo[model.Arg] = _Memo()
MEMOS: tuple[_Memo[Any], ...] = (_process_cache, _container_cache, _fd_cache, _arg_cache)


def _keep(memo: _Memo[_Decoded], key: bytes, found: _Decoded) -> _Decoded:
    if len(key) <= MEMO_ITEM_BYTES:
        if len(memo.items) >= MEMO_ENTRIES or memo.bytes + len(key) > MEMO_BYTES:
            memo.items.clear()
            memo.bytes = 0
        memo.items[key] = found
        memo.bytes += len(key)
    return found


def _memoized(memo: _Memo[_Decoded], decode: Callable[[_Message], _Decoded], pb: _Message) -> _Decoded:
    """Decode ``pb`` once per distinct wire form: ancestors, files and containers repeat event after event."""
    key = pb.SerializeToString()
    found = memo.items.get(key)
    return _keep(memo, key, decode(pb)) if found is None else found


def process_from_pb(pb: event_pb2.Process) -> model.Process:
    """Decode a process; identical processes (the same ancestors, event after event) share one object."""
    return _memoized(_process_cache, _decode_process, pb)


def _decode_process(pb: event_pb2.Process) -> model.Process:
    # ListFields yields only fields that carry a value, so unset optionals stay None and the rest keep the
    # dataclass defaults, which equal proto3's.
    kw: dict[str, Any] = {}
    for f, value in pb.ListFields():
        name = f.name
        if name in _PROCESS_TEXT:
            kw[name] = tuple(map(from_bytes, value)) if name in _REPEATED else from_bytes(value)
        else:
            kw[name] = tuple(value) if name in _REPEATED else value
    return model.Process(**kw)


def process_to_pb(p: model.Process, out: event_pb2.Process) -> None:
    for name in _PROCESS_SCALAR:
        value = getattr(p, name)
        if value is not None:
            setattr(out, name, to_bytes(value) if name in _PROCESS_TEXT else value)
    out.args.extend(map(to_bytes, p.args))
    out.env.extend(map(to_bytes, p.env))
    out.cgroups.extend(map(to_bytes, p.cgroups))


def cgroups_of(pb: event_pb2.Process) -> tuple[str, ...]:
    """A wire process's cgroup paths as text, for stages that work on the wire form (the enricher)."""
    return tuple(map(from_bytes, pb.cgroups))


def fd_from_pb(pb: event_pb2.Fd) -> model.Fd:
    """Decode an fd; the same file or socket, event after event, shares one object."""
    return _memoized(_fd_cache, _decode_fd, pb)


def _fd_type(value: int) -> model.FdType:
    # proto3 enums are open: a value this build does not know reads as "unspecified", not as an error.
    return _FD_TYPES.get(value, model.FdType.UNSPECIFIED)


def _l4proto(value: int) -> model.L4Proto:
    return _L4_PROTOS.get(value, model.L4Proto.UNSPECIFIED)


# Only the fields present: ``num`` has presence, so fd 0 is kept, and an absent number (data from before it had
# presence) keeps the model's -1. Read field by field (lanner.present): the rule engine decodes an fd for nearly
# every event of a host whose files do not repeat.
_decode_fd: Callable[[event_pb2.Fd], model.Fd] = present_reader(
    event_pb2.Fd.DESCRIPTOR,
    {**dict.fromkeys(_FD_TEXT, from_bytes), "type": _fd_type, "l4proto": _l4proto},
    model.Fd,
)


def fd_to_pb(fd: model.Fd, out: event_pb2.Fd) -> None:
    for name in _FD_PLAIN:
        value = getattr(fd, name)
        setattr(out, name, to_bytes(value) if name in _FD_TEXT else value)
    for name in _FD_OPTIONAL:
        value = getattr(fd, name)
        if value is not None:
            setattr(out, name, value)
    out.type = int(fd.type)  # type: ignore[assignment]
    out.l4proto = int(fd.l4proto)  # type: ignore[assignment]


def container_from_pb(pb: event_pb2.Container) -> model.Container:
    if not pb.id:
        return model.HOST_CONTAINER
    return _memoized(_container_cache, _decode_container, pb)


def _decode_container(pb: event_pb2.Container) -> model.Container:
    kw: dict[str, Any] = {name: getattr(pb, name) for name in _CONTAINER_PLAIN}
    for name in _CONTAINER_OPTIONAL:
        if pb.HasField(name):  # type: ignore[arg-type]
            kw[name] = getattr(pb, name)
    mounts = tuple(
        model.Mount(source=m.source, dest=m.dest, mode=m.mode, rw=m.rw, propagation=m.propagation) for m in pb.mounts
    )
    labels = MappingProxyType(dict(pb.labels)) if pb.labels else model.EMPTY_MAP
    return model.Container(labels=labels, mounts=mounts, **kw)


def container_to_pb(c: model.Container, out: event_pb2.Container) -> None:
    for name in _CONTAINER_PLAIN:
        setattr(out, name, getattr(c, name))
    for name in _CONTAINER_OPTIONAL:
        value = getattr(c, name)
        if value is not None:
            setattr(out, name, value)
    out.labels.update(c.labels)
    for m in c.mounts:
        out.mounts.add(source=m.source, dest=m.dest, mode=m.mode, rw=m.rw, propagation=m.propagation)


def k8s_from_pb(pb: event_pb2.K8s) -> model.K8s:
    if not pb.pod_name and not pb.pod_uid and not pb.ns_name:
        return model.NO_K8S
    labels = MappingProxyType(dict(pb.pod_labels)) if pb.pod_labels else model.EMPTY_MAP
    return model.K8s(
        pod_labels=labels, exec_groups=tuple(pb.exec_groups), **{name: getattr(pb, name) for name in _K8S_PLAIN}
    )


def k8s_to_pb(k: model.K8s, out: event_pb2.K8s) -> None:
    for name in _K8S_PLAIN:
        setattr(out, name, getattr(k, name))
    out.pod_labels.update(k.pod_labels)
    out.exec_groups.extend(k.exec_groups)


def _arg_from_pb(pb: event_pb2.Arg) -> model.Arg:
    return _memoized(_arg_cache, _decode_arg, pb)


def _decode_arg(pb: event_pb2.Arg) -> model.Arg:
    kind = pb.WhichOneof("value")
    value: model.ArgValue = getattr(pb, kind) if kind else b""
    if kind == "str_value":
        value = from_bytes(pb.str_value)
    return model.Arg(pb.name, value)


def _arg_to_pb(a: model.Arg, out: event_pb2.Arg) -> None:
    out.name = a.name
    v = a.value
    if isinstance(v, bool | int):
        if v < 0:
            out.int_value = int(v)
        else:
            out.uint_value = int(v)
    elif isinstance(v, str):
        out.str_value = to_bytes(v)
    else:
        out.bytes_value = bytes(v)


# What the enricher says of a process that runs on the host: Falco's container fields for the host.
HOST_PB = event_pb2.Container(
    id=model.HOST_CONTAINER_ID,
    full_id=model.HOST_CONTAINER_ID,
    name=model.HOST_CONTAINER_ID,
    type=model.HOST_CONTAINER_ID,
    privileged=False,
    metadata_complete=True,
)


def _host() -> model.Container:
    return container_from_pb(HOST_PB)


class BatchTables:
    """The shared tables of one ``EventBatchFrame``: processes, and the container each runs in, decoded on first
    use and at most once per distinct wire form across batches."""

    __slots__ = ("_containers", "_frame", "_procs", "enriched_ns", "placement_keys", "process_keys")

    def __init__(self, frame: event_pb2.EventBatchFrame) -> None:
        self._frame = frame
        self._procs: dict[int, model.Process] = {}
        self._containers: dict[int, tuple[model.Container, model.K8s]] = {}
        self.enriched_ns = frame.enriched_ns
        # Wire forms by reference, for the rule engine's decision memo (lanner.lazy_event.PART_KEYS): one bytes
        # object per entry and batch, so its hash is computed once.
        self.process_keys: dict[int, bytes] = {}
        self.placement_keys: dict[int, object] = {}

    def process(self, ref: int) -> model.Process:
        """The process at a 1-based reference; IndexError when the batch has no such entry."""
        found = self._procs.get(ref)
        if found is None:
            if ref <= 0:
                raise IndexError(f"process reference {ref}")
            data = self._frame.processes[ref - 1]
            found = _process_cache.items.get(data)
            if found is None:
                found = _keep(_process_cache, data, _decode_process(event_pb2.Process.FromString(data)))
            self._procs[ref] = found
        return found

    def placement(self, proc_ref: int) -> tuple[model.Container, model.K8s] | None:
        """Where the enricher placed this process (None when the batch was not enriched by reference)."""
        refs = self._frame.process_containers
        if proc_ref > len(refs):
            return None
        found = self._containers.get(proc_ref)
        if found is None:
            index = refs[proc_ref - 1]
            if index == 0:
                found = (_host(), model.NO_K8S)
            else:
                found = (
                    _container_from_wire(self._frame.containers[index - 1]),
                    _k8s_from_wire(self._frame.k8s[index - 1]) if index <= len(self._frame.k8s) else model.NO_K8S,
                )
            self._containers[proc_ref] = found
        return found


def _container_from_wire(data: bytes) -> model.Container:
    found = _container_cache.items.get(data)
    if found is None:
        found = _keep(_container_cache, data, container_from_pb(event_pb2.Container.FromString(data)))
    return found


def _k8s_from_wire(data: bytes) -> model.K8s:
    return k8s_from_pb(event_pb2.K8s.FromString(data)) if data else model.NO_K8S


def _from_wire(
    memo: _Memo[_Decoded], parse: Callable[[bytes], Any], decode: Callable[[Any], _Decoded], data: bytes
) -> _Decoded:
    found = memo.items.get(data)
    return _keep(memo, data, decode(parse(data))) if found is None else found


def _process_wire(data: bytes) -> model.Process:
    return _from_wire(_process_cache, event_pb2.Process.FromString, _decode_process, data)


def _arg_wire(data: bytes) -> model.Arg:
    return _from_wire(_arg_cache, event_pb2.Arg.FromString, _decode_arg, data)


def event_from_view(view: event_pb2.EventView, tables: BatchTables | None = None) -> model.Event:
    """Decode one event read as an ``EventView``: its nested messages are still bytes, so each is looked up by
    its wire form and decoded only the first time it is seen (the same as ``event_from_pb``, for less work)."""
    ident = view.id
    t = view.timing
    container: model.Container | None = None
    k8s = model.NO_K8S
    if view.proc_ref and tables is not None:
        proc = tables.process(view.proc_ref)
        ancestors = tuple(tables.process(r) for r in view.ancestor_refs)
        placed = tables.placement(view.proc_ref)
        if placed is not None and not view.container:
            container, k8s = placed
    else:
        proc = _process_wire(view.proc)
        ancestors = tuple(_process_wire(a) for a in view.ancestors)
    if container is None:
        container = _container_from_wire(view.container) if view.container else model.HOST_CONTAINER
        k8s = _k8s_from_wire(view.k8s)
    fd = None
    if view.HasField("fd"):
        fd = _from_wire(_fd_cache, event_pb2.Fd.FromString, _decode_fd, view.fd)
    return model.Event(
        type=view.type,
        source=view.source or model.SOURCE_SYSCALL,
        identity=model.EventIdentity(ident.node, ident.boot_id, ident.seq, ident.producer_id),
        timing=model.EventTiming(
            t.event_ns, t.collected_ns, t.enriched_ns or (tables.enriched_ns if tables else 0), t.evaluated_ns
        ),
        res=view.res,
        cpu=view.cpu,
        proc=proc,
        ancestors=ancestors,
        fd=fd,
        args=tuple(map(_arg_wire, view.args)),
        container=container,
        k8s=k8s,
        audit_json=view.audit_json,
        proc_incomplete=view.proc_incomplete,
    )


def event_from_pb(pb: event_pb2.Event, tables: BatchTables | None = None) -> model.Event:
    """Decode one wire event into the domain model; ``tables`` resolves processes given by reference."""
    ident = pb.id
    t = pb.timing
    container: model.Container | None = None
    k8s = model.NO_K8S
    if pb.proc_ref and tables is not None:
        proc = tables.process(pb.proc_ref)
        ancestors = tuple(tables.process(r) for r in pb.ancestor_refs)
        placed = tables.placement(pb.proc_ref)
        if placed is not None and not pb.HasField("container"):
            container, k8s = placed
    else:
        proc = process_from_pb(pb.proc)
        ancestors = tuple(process_from_pb(a) for a in pb.ancestors)
    if container is None:
        container, k8s = container_from_pb(pb.container), k8s_from_pb(pb.k8s)
    enriched_ns = t.enriched_ns or (tables.enriched_ns if tables is not None else 0)
    return model.Event(
        type=pb.type,
        source=pb.source or model.SOURCE_SYSCALL,
        identity=model.EventIdentity(ident.node, ident.boot_id, ident.seq, ident.producer_id),
        timing=model.EventTiming(t.event_ns, t.collected_ns, enriched_ns, t.evaluated_ns),
        res=pb.res,
        cpu=pb.cpu,
        proc=proc,
        ancestors=ancestors,
        fd=fd_from_pb(pb.fd) if pb.HasField("fd") else None,
        args=tuple(_arg_from_pb(a) for a in pb.args),
        container=container,
        k8s=k8s,
        audit_json=pb.audit_json,
        proc_incomplete=pb.proc_incomplete,
    )


def event_to_pb(ev: model.Event, out: event_pb2.Event | None = None) -> event_pb2.Event:
    """Encode one domain event for the wire."""
    pb = out if out is not None else event_pb2.Event()
    i = ev.identity
    pb.id.node, pb.id.boot_id, pb.id.seq, pb.id.producer_id = i.node, i.boot_id, i.seq, i.producer_id
    t = ev.timing
    pb.timing.event_ns, pb.timing.collected_ns = t.event_ns, t.collected_ns
    pb.timing.enriched_ns, pb.timing.evaluated_ns = t.enriched_ns, t.evaluated_ns
    pb.source = ev.source
    pb.type = ev.type
    pb.res = ev.res
    pb.cpu = ev.cpu
    process_to_pb(ev.proc, pb.proc)
    for a in ev.ancestors:
        process_to_pb(a, pb.ancestors.add())
    if ev.fd is not None:
        fd_to_pb(ev.fd, pb.fd)
    for arg in ev.args:
        _arg_to_pb(arg, pb.args.add())
    if ev.container is not model.HOST_CONTAINER:
        container_to_pb(ev.container, pb.container)
    if ev.k8s is not model.NO_K8S:
        k8s_to_pb(ev.k8s, pb.k8s)
    pb.audit_json = ev.audit_json
    pb.proc_incomplete = ev.proc_incomplete
    return pb


def inline_events(batch: event_pb2.EventBatch) -> list[event_pb2.Event]:
    """The batch's events with their processes, containers and pods written into each event, as a reader that
    knows nothing of the batch's tables expects them (tests, recordings, debugging)."""
    out: list[event_pb2.Event] = []
    for src in batch.events:
        ev = event_pb2.Event()
        ev.CopyFrom(src)
        if ev.proc_ref:
            ev.proc.CopyFrom(batch.processes[ev.proc_ref - 1])
            for ref in ev.ancestor_refs:
                ev.ancestors.add().CopyFrom(batch.processes[ref - 1])
            if ev.proc_ref <= len(batch.process_containers) and not ev.HasField("container"):
                index = batch.process_containers[ev.proc_ref - 1]
                if index:
                    ev.container.CopyFrom(batch.containers[index - 1])
                    if batch.k8s[index - 1].ByteSize():
                        ev.k8s.CopyFrom(batch.k8s[index - 1])
                else:
                    ev.container.CopyFrom(HOST_PB)
            ev.ClearField("proc_ref")
            ev.ClearField("ancestor_refs")
        if batch.enriched_ns and not ev.timing.enriched_ns:
            ev.timing.enriched_ns = batch.enriched_ns
        out.append(ev)
    return out


def _walk_text_json(data: dict[str, Any], desc: Descriptor, convert: Callable[[Any], Any]) -> None:
    text = _TEXT_FIELDS.get(desc.full_name, frozenset())
    for f in desc.fields:
        value = data.get(f.json_name, data.get(f.name))
        if value is None:
            continue
        key = f.json_name if f.json_name in data else f.name
        if f.message_type is not None and not f.message_type.GetOptions().map_entry:
            for item in value if isinstance(value, list) else [value]:
                if isinstance(item, dict):
                    _walk_text_json(item, f.message_type, convert)
        elif f.name in text:
            data[key] = [convert(v) for v in value] if isinstance(value, list) else convert(value)


def event_to_json_dict(pb: event_pb2.Event) -> dict[str, Any]:
    """The protobuf JSON mapping of an event, except that argv, paths and other process text are JSON strings
    rather than base64, so recordings stay readable; bytes that are not UTF-8 appear as ``\\udcXX`` escapes."""
    data: dict[str, Any] = json_format.MessageToDict(pb)
    _walk_text_json(data, event_pb2.Event.DESCRIPTOR, lambda v: from_bytes(base64.b64decode(v)))
    return data


def event_from_json_dict(data: dict[str, Any]) -> event_pb2.Event:
    """The inverse of ``event_to_json_dict`` (json_format.ParseError on a bad document). ``data`` is changed."""
    _walk_text_json(data, event_pb2.Event.DESCRIPTOR, lambda v: base64.b64encode(to_bytes(str(v))).decode())
    return json_format.ParseDict(data, event_pb2.Event())
