# SPDX-License-Identifier: Apache-2.0
"""lanner.codec against the official protobuf serializer and parser."""

from __future__ import annotations

import random

from google.protobuf.descriptor import Descriptor, FieldDescriptor
from google.protobuf.message import Message
from hypothesis import given, settings
from hypothesis import strategies as st

from collector.encode import EventEncoder
from lanner import codec
from lanner.convert import event_to_pb
from lanner.model import Arg, Event, EventIdentity, EventTiming, Fd, FdType, L4Proto, Process
from lanner.v1 import event_pb2

_MESSAGES = [
    event_pb2.Event,
    event_pb2.EventIdentity,
    event_pb2.EventTiming,
    event_pb2.Fd,
    event_pb2.Arg,
    event_pb2.EventBatch,
    event_pb2.Process,
]


def _set_one(msg: Message, f: FieldDescriptor) -> None:
    """Give ``f`` a value protobuf will write (non-default)."""
    name = f.name
    if f.message_type is not None:
        if f.message_type.GetOptions().map_entry:
            getattr(msg, name)["k"] = "v" if f.message_type.fields_by_name["value"].type == f.TYPE_STRING else None
        elif f.is_repeated:
            getattr(msg, name).add()
        else:
            getattr(msg, name).SetInParent()
        return
    value: object = {
        f.TYPE_STRING: "x",
        f.TYPE_BYTES: b"x",
        f.TYPE_BOOL: True,
        f.TYPE_DOUBLE: 1.5,
        f.TYPE_FLOAT: 1.5,
    }.get(f.type, 1)
    if f.is_repeated:
        getattr(msg, name).append(value)
    else:
        setattr(msg, name, value)


def test_every_key_is_what_protobuf_writes() -> None:
    for cls in _MESSAGES:
        desc: Descriptor = cls.DESCRIPTOR
        keys = codec.keys(desc)
        assert set(keys) == set(desc.fields_by_name)
        for f in desc.fields:
            msg = cls()
            _set_one(msg, f)
            data = msg.SerializeToString()
            assert data.startswith(keys[f.name]), (desc.name, f.name, data[:4].hex())


@given(st.integers(min_value=0, max_value=2**64 - 1))
def test_varint_matches_protobuf(n: int) -> None:
    data = event_pb2.BatchAck(batch_seq=n).SerializeToString()
    assert data == (codec.field_key(event_pb2.BatchAck.DESCRIPTOR, "batch_seq") + codec.varint(n) if n else b"")
    assert codec.read_varint(codec.varint(n), 0) == (n, len(codec.varint(n)))


def test_timestamp_varint_matches_plain_varint() -> None:
    rng = random.Random(7)
    values = [0, 1, 127, 128, 2**28 - 1, 2**28, 2**28 + 5, 1_796_008_201_668_637_948, -5, 2**63 - 1]
    for n in values + [rng.randrange(0, 2**63) for _ in range(2000)]:
        assert codec.varint_ns(n) == codec.varint(n), n


# Text as the decoders make it: kernel bytes, invalid UTF-8 included, decoded with surrogateescape.
_kernel_text = st.binary(max_size=40).map(lambda b: b.decode("utf-8", "surrogateescape"))
_u32 = st.integers(min_value=0, max_value=2**32 - 1)
_i64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
_fds = st.builds(
    Fd,
    num=st.integers(min_value=-1, max_value=2**31),
    type=st.sampled_from(list(FdType)),
    path=_kernel_text,
    path_raw=_kernel_text,
    open_flags=st.none() | _u32,
    mode=st.none() | _u32,
    client_ip=st.sampled_from([b"", b"\x7f\0\0\x01", bytes(16)]),
    server_ip=st.sampled_from([b"", b"\n\0\0\x02"]),
    client_port=st.none() | st.integers(min_value=0, max_value=65535),
    server_port=st.none() | st.integers(min_value=0, max_value=65535),
    l4proto=st.sampled_from(list(L4Proto)),
    is_server=st.none() | st.booleans(),
    connected=st.none() | st.booleans(),
    dev=st.none() | _u32,
    ino=st.none() | st.integers(min_value=0, max_value=2**64 - 1),
    name_changed=st.none() | st.booleans(),
    family=st.none() | st.integers(min_value=0, max_value=45),
)
_args = st.builds(
    Arg,
    name=st.sampled_from(["fd", "name", "flags", "path", "data"]),
    value=st.integers(min_value=-(2**63), max_value=2**64 - 1) | _kernel_text | st.binary(max_size=20),
)
_events = st.builds(
    Event,
    type=st.sampled_from(["openat", "connect", "execve", ""]),
    identity=st.builds(
        EventIdentity,
        node=st.sampled_from(["", "node-a"]),
        boot_id=st.sampled_from(["", "b-1"]),
        seq=st.integers(min_value=0, max_value=2**64 - 1),
        producer_id=st.sampled_from(["", "p-1"]),
    ),
    timing=st.builds(EventTiming, event_ns=_i64, collected_ns=_i64, enriched_ns=_i64, evaluated_ns=_i64),
    res=_i64,
    cpu=_u32,
    proc=st.builds(Process, pid=st.integers(min_value=1, max_value=2**22), comm=_kernel_text, cwd=_kernel_text),
    ancestors=st.lists(st.builds(Process, pid=st.integers(min_value=1, max_value=9)), max_size=3).map(tuple),
    fd=st.none() | _fds,
    args=st.lists(_args, max_size=6).map(tuple),
    proc_incomplete=st.booleans(),
)


@settings(max_examples=300, deadline=None)
@given(_events)
def test_event_bytes_equal_the_official_serializer(ev: Event) -> None:
    enc = EventEncoder()
    official = event_to_pb(ev)
    assert enc.encode(ev) == official.SerializeToString()
    body, procs = enc.encode_shared(ev)
    batch = event_pb2.EventBatch.FromString(codec.shared_batch_wire(3, [(body, procs)] * 2, 0))
    assert batch.events[0].proc_ref == 1 and len(batch.processes) == len(set(procs))
    inline = event_pb2.Event.FromString(codec.inline_event_wire((body, procs)))
    assert inline == official


@given(st.lists(st.binary(max_size=30), max_size=20), st.integers(min_value=1, max_value=2**40), _u32)
def test_batches_parse_as_protobuf_does(events: list[bytes], seq: int, dropped: int) -> None:
    msgs = [event_pb2.Event(type=str(len(e)), res=-len(e)).SerializeToString() for e in events]
    data = codec.event_batch_wire(seq, msgs, dropped)
    batch = event_pb2.EventBatch.FromString(data)
    assert (batch.batch_seq, batch.dropped_since_last) == (seq, dropped)
    assert [e.SerializeToString() for e in batch.events] == msgs
    frame = event_pb2.EventBatchFrame.FromString(data)
    frame.ClearField("batch_seq")
    frame.ClearField("dropped_since_last")
    frame.processes.append(b"")
    assert codec.frame_size(frame.SerializeToString()) == len(msgs)
    assert event_pb2.EventBatch.FromString(codec.frame_batch_wire(seq, [frame.SerializeToString()], dropped)) == (
        event_pb2.EventBatch(batch_seq=seq, events=batch.events, dropped_since_last=dropped, processes=[{}])
    )


def test_event_batch_frame_mirrors_event_batch() -> None:
    """The enricher and rule engine read a batch as ``EventBatchFrame``, the codec writes ``EventBatch``: same
    fields by name, number and repetition (EventView against Event: tests/ruleengine/test_lazy_event.py)."""
    batch = event_pb2.EventBatch.DESCRIPTOR
    frame = event_pb2.EventBatchFrame.DESCRIPTOR
    assert [(f.name, f.number, f.is_repeated) for f in frame.fields] == [
        (f.name, f.number, f.is_repeated) for f in batch.fields
    ]
