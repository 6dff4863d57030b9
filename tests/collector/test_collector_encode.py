# SPDX-License-Identifier: Apache-2.0
"""The cached encoder produces exactly what lanner.convert produces."""

from __future__ import annotations

import socket
import struct

from collector import layout
from collector.decode import Decoder
from collector.encode import EventEncoder, make_batch_bytes
from collector.proctable import ProcessTable
from lanner.convert import BatchTables, event_from_pb, event_to_pb, inline_events
from lanner.v1 import event_pb2
from lanner.wire import shared_batch_wire
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc


def test_encoder_matches_convert(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 1, 0, "init", args=("--x",))
    add_proc(table, 10, 1, "sshd")
    add_proc(table, 20, 10, "bash", uid=1000)
    records = [
        rec.open_record(20, "/etc/passwd", comm="bash", uid=1000),
        rec.fork_record(20, 21),
        rec.exec_record(21, "/usr/bin/cat", ["cat", "/etc/shadow"]),
        rec.open_record(21, "/etc/shadow"),
        rec.open_record(21, "/etc/shadow"),
        rec.exit_record(21),
        rec.exec_record(20, "/nope", ["nope", "x"], res=-2, comm="bash"),
        rec.socket_record(20, 4, socket.AF_INET6, socket.SOCK_STREAM, 6, comm="bash"),
        rec.sock_record(
            layout.MSG_CONNECT,
            20,
            4,
            struct.pack("<HHI", socket.AF_INET6, 0x5000, 0) + socket.inet_pton(socket.AF_INET6, "::1") + b"\0" * 4,
            res=-111,
            comm="bash",
        ),
        rec.sock_record(
            layout.MSG_ACCEPT,
            20,
            4,
            struct.pack("<H", socket.AF_UNIX) + b"/run/x.sock\0",
            res=5,
            sc=layout.SC_ACCEPT4,
            flags=0o2000000,
            comm="bash",
        ),
        rec.fileop_record(20, layout.SC_RENAME, "a", "b", comm="bash"),
    ]
    enc = EventEncoder()
    for r in records:
        ev = decoder.decode(r)
        assert ev is not None
        fast = enc.encode_pb(ev)
        assert fast == event_to_pb(ev), ev.type
        assert event_from_pb(fast).proc == ev.proc
        assert fast.ancestors[0].comm == ev.ancestors[0].comm.encode()


def test_encoder_general_path_for_other_sources() -> None:
    from lanner.model import Container, Event

    ev = Event(type="k8s_audit", source="k8s_audit", audit_json='{"verb":"get"}', container=Container(id="abc"))
    assert EventEncoder().encode_pb(ev) == event_to_pb(ev)


def test_encoder_cache_is_bounded(decoder: Decoder, table: ProcessTable) -> None:
    enc = EventEncoder(cache_size=2)
    for pid in range(100, 110):
        add_proc(table, pid, 1, f"p{pid}")
        ev = decoder.decode(rec.open_record(pid, "/x", comm=f"p{pid}"))
        assert ev is not None and enc.encode_pb(ev) == event_to_pb(ev)
    assert len(enc._procs) <= 2


def test_batch_from_bytes(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 30, 1, "sh")
    evs = [decoder.decode(rec.open_record(30, f"/f{i}", comm="sh")) for i in range(3)]
    enc = EventEncoder()
    batch = make_batch_bytes(7, [enc.encode(e) for e in evs if e is not None], 300)
    assert batch.batch_seq == 7 and batch.dropped_since_last == 300
    assert [e.fd.path for e in batch.events] == [b"/f0", b"/f1", b"/f2"]
    assert list(batch.events) == [event_to_pb(e) for e in evs if e is not None]


def test_shared_batch_carries_each_process_once(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 1, 0, "init")
    add_proc(table, 10, 1, "sshd")
    add_proc(table, 20, 10, "bash", uid=1000, args=("-l", "--norc"), exepath="/usr/bin/bash")
    records = [rec.open_record(20, f"/etc/f{i}", comm="bash", uid=1000) for i in range(50)]
    records += [rec.fork_record(20, 21), rec.exec_record(21, "/usr/bin/cat", ["cat", "/etc/shadow"])]
    records += [rec.open_record(21, "/etc/shadow")]
    enc = EventEncoder()
    events = [ev for r in records if (ev := decoder.decode(r)) is not None]
    wire = shared_batch_wire(9, [enc.encode_shared(ev) for ev in events], 4)
    batch = event_pb2.EventBatch.FromString(wire)
    assert batch.batch_seq == 9 and batch.dropped_since_last == 4
    # bash, sshd, init, then the clone's child and the exec'd cat: each process once, not once per event.
    assert len(batch.processes) == len({p.SerializeToString() for p in batch.processes}) <= 6
    assert inline_events(batch) == [event_to_pb(ev) for ev in events]
    assert len(wire) < sum(len(enc.encode(ev)) for ev in events) / 2

    frame = event_pb2.EventBatchFrame.FromString(wire)
    tables = BatchTables(frame)
    decoded = [event_from_pb(event_pb2.Event.FromString(data), tables) for data in frame.events]
    assert decoded == events
    # Decoded processes are shared between the events of a batch.
    assert decoded[0].proc is decoded[49].proc and decoded[0].ancestors[0] is decoded[49].ancestors[0]


def test_event_with_dangling_reference_is_refused_alone() -> None:
    ev = event_pb2.Event(type="openat", proc_ref=3)
    frame = event_pb2.EventBatchFrame(events=[ev.SerializeToString()], processes=[b""])
    try:
        event_from_pb(event_pb2.Event.FromString(frame.events[0]), BatchTables(frame))
    except IndexError:
        pass
    else:
        raise AssertionError("a reference past the table must not decode")
