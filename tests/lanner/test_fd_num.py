# SPDX-License-Identifier: Apache-2.0
"""``fd.num`` through every wire form: fd 0 (stdin) is a real fd and must read back as 0, not as "no fd" (-1).

proto3 leaves a plain scalar's 0 off the wire, so a decoder could not tell fd 0 from a missing number and took the
model's default, -1. ``Fd.num`` has presence now, every encoder writes it (0 and -1 included), and an absent number
(data written before) still reads as -1.
"""

from __future__ import annotations

import json

import pytest
from google.protobuf import json_format

from collector.encode import EventEncoder
from lanner import model
from lanner.codec import EVENT, FD, fd_bytes, field
from lanner.convert import BatchTables, event_from_pb, event_from_view, event_to_pb
from lanner.lazy_event import LazyEvent
from lanner.recording import event_line, parse_line
from lanner.v1 import event_pb2
from lanner.wire import shared_batch_wire


def _event(num: int) -> model.Event:
    fd = model.Fd(num=num, type=model.FdType.FILE, path="/etc/hostname", open_flags=0)
    return model.Event(type="openat", res=num, proc=model.Process(pid=7, comm="cat"), fd=fd)


@pytest.mark.parametrize("num", [0, 1, 3, -1])
def test_the_number_reads_back_from_every_decoder(num: int) -> None:
    ev = _event(num)
    official = event_to_pb(ev)
    assert official.fd.HasField("num")
    data = official.SerializeToString()
    # The collector's byte codec writes what the official serializer writes.
    assert EventEncoder().encode(ev) == data
    assert fd_bytes(ev.fd) == official.fd.SerializeToString()  # type: ignore[arg-type]
    assert event_from_pb(event_pb2.Event.FromString(data)).fd == ev.fd
    assert event_from_view(event_pb2.EventView.FromString(data)).fd == ev.fd
    # The rule engine's form: processes in the batch's table, the event decoded lazily.
    frame = event_pb2.EventBatchFrame.FromString(shared_batch_wire(1, [EventEncoder().encode_shared(ev)], 0))
    lazy = LazyEvent(event_pb2.EventView.FromString(frame.events[0]), BatchTables(frame), "syscall")
    assert lazy.fd == ev.fd and lazy.fd is not None and lazy.fd.num == num
    # Recordings (protobuf JSON lines).
    assert parse_line(event_line(ev), "rec", 1).fd == ev.fd


def test_fd_zero_is_on_the_wire_and_in_json() -> None:
    pb = event_to_pb(_event(0))
    assert pb.fd.SerializeToString().startswith(FD["num"] + b"\x00")
    assert json.loads(json_format.MessageToJson(pb))["fd"]["num"] == "0"


def test_an_fd_without_a_number_reads_as_no_fd() -> None:
    # What encoders wrote before the number had presence for fd 0: no num field at all.
    fd = event_pb2.Fd(path=b"/x").SerializeToString()
    old = event_pb2.Event(type="openat").SerializeToString() + field(EVENT["fd"], fd)
    assert event_from_pb(event_pb2.Event.FromString(old)).fd == model.Fd(path="/x")
    assert event_from_view(event_pb2.EventView.FromString(old)).fd == model.Fd(num=-1, path="/x")
