# SPDX-License-Identifier: Apache-2.0
"""The cached encoder produces exactly what lanner.convert produces."""

from __future__ import annotations

import socket
import struct

from collector import layout
from collector.decode import Decoder
from collector.encode import EventEncoder, make_batch_bytes
from collector.proctable import ProcessTable
from lanner.convert import event_from_pb, event_to_pb
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
        assert fast.ancestors[0].comm == ev.ancestors[0].comm


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
    assert [e.fd.path for e in batch.events] == ["/f0", "/f1", "/f2"]
    assert list(batch.events) == [event_to_pb(e) for e in evs if e is not None]


def test_timestamp_varint_matches_plain_varint() -> None:
    import random

    from collector.encode import _varint, _varint_ns

    rng = random.Random(7)
    values = [0, 1, 127, 128, 2**28 - 1, 2**28, 2**28 + 5, 1_796_008_201_668_637_948, -5, 2**63 - 1]
    for n in values + [rng.randrange(0, 2**63) for _ in range(2000)]:
        assert _varint_ns(n) == _varint(n), n
