# SPDX-License-Identifier: Apache-2.0
"""The byte-level codec of ``lanner.v1.Event`` and ``EventBatch``: the one place where events are written as
protobuf wire bytes without going through message objects.

Why bytes at all: building message objects per event and serializing them cost more than everything else the
collector does, and batches are relayed by later stages without being rebuilt. A protobuf message is the
concatenation of its encoded fields (key varint, then a varint or a length-prefixed payload), so an event can be
assembled from pieces, some of them cached (a process, an argument, the identity prefix).

Every key byte here is derived at import from the generated descriptors (``field_key``), never written by hand:
renumbering a field in ``protos/`` changes the codec with it. ``tests/lanner/test_codec.py`` checks the output
against the official protobuf serializer and parser.

Who uses it: ``collector.encode`` (model events), ``collector.wirepath`` (ring-buffer records straight to bytes)
and ``lanner.wire`` (gRPC streams of pre-serialized batches).
"""

from __future__ import annotations

from collections.abc import Sequence

from google.protobuf.descriptor import Descriptor, FieldDescriptor

from lanner.model import Arg, Fd
from lanner.text import to_bytes
from lanner.v1 import event_pb2

# ---------------------------------------------------------------------------------------------------- primitives

_SMALL = [bytes([i]) for i in range(128)]


def varint(n: int) -> bytes:
    """Protobuf base-128 varint; int64 negatives travel as ten-byte two's complement."""
    if n < 0x80:
        if n >= 0:
            return _SMALL[n]
        n += 1 << 64
    elif n < 0x4000:  # the common sizes unrolled: lengths, fds, sequence numbers
        return bytes(((n & 0x7F) | 0x80, n >> 7))
    elif n < 0x200000:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, n >> 14))
    elif n < 0x10000000:
        return bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, ((n >> 14) & 0x7F) | 0x80, n >> 21))
    out = bytearray()
    while n > 0x7F:
        out.append((n & 0x7F) | 0x80)
        n >>= 7
    out.append(n)
    return bytes(out)


_HI_SHIFT = 28
_hi_cache: dict[int, bytes] = {}


def varint_ns(n: int) -> bytes:
    """varint of a nanosecond timestamp: the low 28 bits are four fixed groups, the rest changes every ~0.27 s and
    is cached, which beats a nine-round loop."""
    hi = n >> _HI_SHIFT
    if hi <= 0:
        return varint(n)
    tail = _hi_cache.get(hi)
    if tail is None:
        if len(_hi_cache) > 64:
            _hi_cache.clear()
        tail = _hi_cache[hi] = varint(hi)
    return (
        bytes(((n & 0x7F) | 0x80, ((n >> 7) & 0x7F) | 0x80, ((n >> 14) & 0x7F) | 0x80, ((n >> 21) & 0x7F) | 0x80))
        + tail
    )


def read_varint(data: bytes, i: int) -> tuple[int, int]:
    """The varint at ``data[i]`` and the offset after it."""
    shift = result = 0
    while True:
        b = data[i]
        i += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, i
        shift += 7


# ---------------------------------------------------------------------------------------------------- field keys

WIRE_VARINT, WIRE_I64, WIRE_LEN, WIRE_I32 = 0, 1, 2, 5
_WIRE_TYPES = {
    FieldDescriptor.TYPE_STRING: WIRE_LEN,
    FieldDescriptor.TYPE_BYTES: WIRE_LEN,
    FieldDescriptor.TYPE_MESSAGE: WIRE_LEN,
    FieldDescriptor.TYPE_DOUBLE: WIRE_I64,
    FieldDescriptor.TYPE_FIXED64: WIRE_I64,
    FieldDescriptor.TYPE_SFIXED64: WIRE_I64,
    FieldDescriptor.TYPE_FLOAT: WIRE_I32,
    FieldDescriptor.TYPE_FIXED32: WIRE_I32,
    FieldDescriptor.TYPE_SFIXED32: WIRE_I32,
}


def field_key(message: Descriptor, name: str) -> bytes:
    """The key bytes (field number and wire type) that precede ``name`` of ``message`` on the wire; a packed
    repeated scalar is one length-delimited field."""
    f = message.fields_by_name[name]
    if f.type in (FieldDescriptor.TYPE_SINT32, FieldDescriptor.TYPE_SINT64):
        raise ValueError(f"{message.full_name}.{name}: zigzag fields are not supported by this codec")
    wire = WIRE_LEN if f.is_packed else _WIRE_TYPES.get(f.type, WIRE_VARINT)
    return varint(f.number << 3 | wire)


def keys(message: Descriptor) -> dict[str, bytes]:
    """``field_key`` of every field of ``message``, by field name."""
    return {name: field_key(message, name) for name in message.fields_by_name}


EVENT = keys(event_pb2.Event.DESCRIPTOR)
IDENTITY = keys(event_pb2.EventIdentity.DESCRIPTOR)
TIMING = keys(event_pb2.EventTiming.DESCRIPTOR)
FD = keys(event_pb2.Fd.DESCRIPTOR)
ARG = keys(event_pb2.Arg.DESCRIPTOR)
BATCH = keys(event_pb2.EventBatch.DESCRIPTOR)


def field(key: bytes, payload: bytes) -> bytes:
    """A length-delimited field."""
    return key + varint(len(payload)) + payload


def text(key: bytes, value: str) -> bytes:
    """A string or bytes field from text that may carry undecodable bytes (``lanner.text``): the kernel's bytes
    come back unchanged."""
    return field(key, to_bytes(value))


_TRUE = b"\x01"
_FALSE = b"\x00"


def boolean(key: bytes, value: bool) -> bytes:
    return key + (_TRUE if value else _FALSE)


# ---------------------------------------------------------------------------------------------------- messages

_FD_NUM, _FD_TYPE, _FD_PATH, _FD_PATH_RAW = FD["num"], FD["type"], FD["path"], FD["path_raw"]
_FD_FLAGS, _FD_MODE, _FD_CIP, _FD_SIP = FD["open_flags"], FD["mode"], FD["client_ip"], FD["server_ip"]
_FD_CPORT, _FD_SPORT, _FD_L4, _FD_SERVER = FD["client_port"], FD["server_port"], FD["l4proto"], FD["is_server"]
_FD_CONNECTED, _FD_DEV, _FD_INO = FD["connected"], FD["dev"], FD["ino"]
_FD_CHANGED, _FD_FAMILY = FD["name_changed"], FD["family"]


def fd_num(num: int) -> bytes:
    """The ``num`` field of an Fd, written whatever its value (it has presence): without it, fd 0 read back as -1."""
    return _FD_NUM + varint(num)


def fd_bytes(fd: Fd) -> bytes:
    """``lanner.v1.Fd`` wire bytes; only fields with a value are written, as protobuf itself does. The fd number
    always is: fd 0 is a real fd, and an absent number reads as -1 (see ``fd_num``)."""
    parts: list[bytes] = [fd_num(fd.num)]
    if fd.type:
        parts.append(_FD_TYPE + varint(int(fd.type)))
    if fd.path:
        parts.append(text(_FD_PATH, fd.path))
    if fd.path_raw:
        parts.append(text(_FD_PATH_RAW, fd.path_raw))
    if fd.open_flags is not None:
        parts.append(_FD_FLAGS + varint(fd.open_flags))
    if fd.mode is not None:
        parts.append(_FD_MODE + varint(fd.mode))
    if fd.client_ip:
        parts.append(field(_FD_CIP, fd.client_ip))
    if fd.server_ip:
        parts.append(field(_FD_SIP, fd.server_ip))
    if fd.client_port is not None:
        parts.append(_FD_CPORT + varint(fd.client_port))
    if fd.server_port is not None:
        parts.append(_FD_SPORT + varint(fd.server_port))
    if fd.l4proto:
        parts.append(_FD_L4 + varint(int(fd.l4proto)))
    if fd.is_server is not None:
        parts.append(boolean(_FD_SERVER, fd.is_server))
    if fd.connected is not None:
        parts.append(boolean(_FD_CONNECTED, fd.connected))
    if fd.dev is not None:
        parts.append(_FD_DEV + varint(fd.dev))
    if fd.ino is not None:
        parts.append(_FD_INO + varint(fd.ino))
    if fd.name_changed is not None:
        parts.append(boolean(_FD_CHANGED, fd.name_changed))
    if fd.family is not None:
        parts.append(_FD_FAMILY + varint(fd.family))
    return b"".join(parts)


ARG_NAME, ARG_INT, ARG_UINT, ARG_STR, ARG_BYTES = (
    ARG["name"],
    ARG["int_value"],
    ARG["uint_value"],
    ARG["str_value"],
    ARG["bytes_value"],
)


def arg_int_value(v: int) -> bytes:
    """The value part of an integer ``lanner.v1.Arg``: negatives in ``int_value``, the rest in ``uint_value``
    (the member ``lanner.convert`` chooses)."""
    return (ARG_INT if v < 0 else ARG_UINT) + varint(v)


def arg_bytes(a: Arg) -> bytes:
    """``lanner.v1.Arg`` wire bytes, with the value in the oneof member ``lanner.convert`` would choose."""
    v = a.value
    if isinstance(v, int):
        value = arg_int_value(int(v))
    elif isinstance(v, str):
        value = text(ARG_STR, v)
    else:
        value = field(ARG_BYTES, bytes(v))
    return text(ARG_NAME, a.name) + value


def identity_prefix(node: str, boot_id: str, producer_id: str) -> bytes:
    """The ``EventIdentity`` fields a producer writes into every event (all but ``seq``, which comes after
    ``boot_id`` and before ``producer_id`` by number, so the identity is written as prefix + seq + suffix)."""
    return _ident_part("node", node) + _ident_part("boot_id", boot_id)


def identity_suffix(producer_id: str) -> bytes:
    return _ident_part("producer_id", producer_id)


def _ident_part(name: str, value: str) -> bytes:
    return text(IDENTITY[name], value) if value else b""


IDENTITY_SEQ = IDENTITY["seq"]
TIMING_EVENT, TIMING_COLLECTED = TIMING["event_ns"], TIMING["collected_ns"]
TIMING_ENRICHED, TIMING_EVALUATED = TIMING["enriched_ns"], TIMING["evaluated_ns"]


# ---------------------------------------------------------------------------------------------------- batches

# An event whose processes travel in its batch's table: the event's own fields without ``proc``/``ancestors``, and
# the serialized Process messages of its thread and then its ancestors, nearest first (empty: no process).
SharedEvent = tuple[bytes, tuple[bytes, ...]]

_BATCH_SEQ, _BATCH_EVENT, _BATCH_DROPPED = BATCH["batch_seq"], BATCH["events"], BATCH["dropped_since_last"]
_BATCH_PROCESS = BATCH["processes"]
_PROC, _ANCESTOR = EVENT["proc"], EVENT["ancestors"]
_PROC_REF, _ANCESTOR_REFS = EVENT["proc_ref"], EVENT["ancestor_refs"]


def event_batch_wire(seq: int, events: Sequence[bytes], dropped: int) -> bytes:
    """The serialized ``lanner.v1.EventBatch`` of already-serialized events: field ``events`` is repeated and
    length-delimited, so the concatenation is byte for byte a valid batch."""
    parts = [_BATCH_SEQ + varint(seq)]
    for data in events:
        parts.append(_BATCH_EVENT + varint(len(data)) + data)
    if dropped:
        parts.append(_BATCH_DROPPED + varint(dropped))
    return b"".join(parts)


def shared_batch_wire(seq: int, events: Sequence[SharedEvent], dropped: int) -> bytes:
    """The serialized ``lanner.v1.EventBatch`` whose events refer to one table of the batch's processes.

    Events of one process come in runs (a process opening file after file), so the references of an event are
    remembered by the identity of its process tuple for the length of the batch."""
    index: dict[bytes, int] = {}
    suffixes: dict[int, bytes] = {}
    event_key = _BATCH_EVENT
    parts = [_BATCH_SEQ + varint(seq)]
    extend = parts.extend
    for body, procs in events:
        if not procs:
            extend((event_key, varint(len(body)), body))
            continue
        suffix = suffixes.get(id(procs))
        if suffix is None:
            refs = []
            for proc in procs:
                ref = index.get(proc)
                if ref is None:
                    ref = index[proc] = len(index) + 1
                refs.append(ref)
            suffix = _PROC_REF + varint(refs[0])
            if len(refs) > 1:
                packed = b"".join(varint(r) for r in refs[1:])
                suffix += _ANCESTOR_REFS + varint(len(packed)) + packed
            suffixes[id(procs)] = suffix
        # Pieces, not concatenations: the one join at the end copies each body once.
        extend((event_key, varint(len(body) + len(suffix)), body, suffix))
    if dropped:
        parts.append(_BATCH_DROPPED + varint(dropped))
    for proc in index:
        extend((_BATCH_PROCESS, varint(len(proc)), proc))
    return b"".join(parts)


def inline_event_wire(event: SharedEvent) -> bytes:
    """A shared-table event as a self-contained ``lanner.v1.Event``: its processes written into it as ``proc``
    and ``ancestors`` (for a spill journal, which outlives any batch)."""
    body, procs = event
    if not procs:
        return body
    parts = [body, field(_PROC, procs[0])]
    parts.extend(field(_ANCESTOR, p) for p in procs[1:])
    return b"".join(parts)


def frame_batch_wire(seq: int, frames: Sequence[bytes], dropped: int) -> bytes:
    """The serialized ``lanner.v1.EventBatch`` of one forwarded frame (an ``EventBatchFrame`` without
    ``batch_seq`` and ``dropped_since_last``). Two frames are never merged: their process tables would clash."""
    if len(frames) != 1:
        raise ValueError(f"a forwarded batch is one frame, got {len(frames)}")
    out = _BATCH_SEQ + varint(seq) + frames[0]
    return out + _BATCH_DROPPED + varint(dropped) if dropped else out


_EVENTS_NUMBER = event_pb2.EventBatch.DESCRIPTOR.fields_by_name["events"].number


def frame_size(frame: bytes) -> int:
    """How many events a serialized frame holds, for queue bounds and counters (one pass over its top-level
    fields, without decoding them)."""
    n = i = 0
    end = len(frame)
    while i < end:
        key, i = read_varint(frame, i)
        wire = key & 7
        if wire == WIRE_VARINT:
            _, i = read_varint(frame, i)
        elif wire == WIRE_LEN:
            length, i = read_varint(frame, i)
            i += length
            n += (key >> 3) == _EVENTS_NUMBER
        elif wire == WIRE_I64:
            i += 8
        elif wire == WIRE_I32:
            i += 4
        else:
            raise ValueError(f"unexpected wire type {wire} at byte {i}")
    return n
