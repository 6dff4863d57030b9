# SPDX-License-Identifier: Apache-2.0
"""The direct record-to-wire path gives byte for byte what decode + encode gives, and leaves the same tables."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from collector import layout
from collector.cgroups import CgroupMap
from collector.decode import Decoder, Identity
from collector.encode import EventEncoder
from collector.procfs import BootClock
from collector.proctable import ProcessTable
from collector.users import UserDb
from collector.wirepath import WirePath
from lanner.codec import SharedEvent, shared_batch_wire
from lanner.v1 import event_pb2
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc

COLLECTED_NS = 1_796_000_000_123_456_789
O_DIRECTORY = 0o200000
O_CLOEXEC = 0o2000000


class World:
    """One process table, decoder and encoder over an empty /proc, seeded with a few processes."""

    def __init__(self, root: Path, clock: BootClock) -> None:
        proc_root = root / "proc"
        proc_root.mkdir(parents=True, exist_ok=True)
        users = UserDb(host_mntns=1, proc_root=str(proc_root), host_root=str(root))
        self.table = ProcessTable(
            users, CgroupMap(cgroup2_root="", proc_root=str(proc_root)), clock, proc_root=str(proc_root)
        )
        self.decoder = Decoder(self.table, Identity(node="node-a", boot_id="boot-1", producer_id="prod-1"))
        self.encoder = EventEncoder()
        self.wire = WirePath(self.decoder, self.encoder)
        add_proc(self.table, 1, 0, "init")
        add_proc(self.table, 10, 1, "sshd", args=("-D",))
        add_proc(self.table, 20, 10, "bash", uid=1000, cwd="/home/alice")
        add_proc(self.table, 30, 20, "cat\udcff", cwd="/tmp/\udcfe")

    def general(self, records: list[bytes]) -> list[SharedEvent]:
        return [self.encoder.encode_shared(e) for e in self.decoder.decode_many(records, COLLECTED_NS)]

    def direct(self, records: list[bytes]) -> list[SharedEvent]:
        return self.wire.run(records, COLLECTED_NS)[0]

    def state(self) -> object:
        return (
            self.decoder.seq,
            self.decoder.malformed,
            {pid: (e.proc, e.fds, e.cloexec, e.fd_ns, e.complete) for pid, e in self.table.procs.items()},
        )


def _worlds(tmp_path: Path) -> tuple[World, World]:
    clock = BootClock()
    clock.maybe_refresh = lambda: None  # type: ignore[method-assign]  # both worlds see one clock offset
    (tmp_path / "etc").mkdir(exist_ok=True)
    (tmp_path / "etc/passwd").write_text("root:x:0:0:root:/root:/bin/bash\nalice:x:1000:1000::/home/alice:/bin/zsh\n")
    return World(tmp_path / "a", clock), World(tmp_path / "b", clock)


def raw_open(
    pid: int,
    name: bytes,
    *,
    res: int = 3,
    sc: int = layout.SC_OPENAT,
    dirfd: int = -100,
    flags: int = 0,
    mode: int = 0,
    resolve: int = 0,
    nul: bool = True,
    name_len: int | None = None,
    **hdr: object,
) -> bytes:
    tail = name + (b"\0" if nul else b"")
    body = layout.OPEN.pack(
        res, resolve, sc, dirfd, flags, mode, len(tail) if name_len is None else name_len, b"\0" * 6
    )
    return rec.hdr(layout.MSG_OPEN, body + tail, pid=pid, **hdr)  # type: ignore[arg-type]


def raw_fileop(sc: int, p1: bytes, p2: bytes, *, res: int = 0, dirfd1: int = -100, dirfd2: int = -100) -> bytes:
    b1 = p1 + b"\0" if p1 else b""
    b2 = p2 + b"\0" if p2 else b""
    body = layout.FILEOP.pack(res, sc, dirfd1, dirfd2, 0x200, 0o755, len(b1), len(b2))
    return rec.hdr(layout.MSG_FILEOP, body + b1 + b2, pid=20, comm="bash", uid=1000, gid=1000)


def fileops() -> list[bytes]:
    """Every file operation, with hostile strings, a failure, and the general path's chdir and unknown ones."""
    out = []
    for sc in range(layout.SC_UNLINK, layout.SC_LINKAT + 1):
        out.append(raw_fileop(sc, b"/tmp/\xff", b"b\xc3(", dirfd1=3))
        out.append(rec.fileop_record(20, sc, "", "", res=-2, comm="bash"))
    long_name = "/" + "x" * 4000
    out += [
        rec.fileop_record(20, layout.SC_RENAME, long_name, long_name + "2", comm="bash"),
        rec.fileop_record(20, layout.SC_SYMLINKAT, "t", "l", dirfd2=7, comm="bash"),
        rec.fileop_record(20, 99, "/x", comm="bash"),
    ]
    bad = bytearray(rec.fileop_record(20, layout.SC_RENAME, "/a", "/b", comm="bash"))
    bad[layout.HDR.size + layout.FILEOP.size - 4 : layout.HDR.size + layout.FILEOP.size - 2] = (900).to_bytes(
        2, "little"
    )
    out.append(bytes(bad))  # path1_len past the record's end
    return out


def network() -> list[bytes]:
    """Sockets of each kind, then connects to them and to unknown fds, with every address shape."""
    inet = struct.pack("<HH", socket.AF_INET, socket.htons(443)) + socket.inet_aton("10.1.2.3") + b"\0" * 8
    inet6 = struct.pack("<HHI", socket.AF_INET6, socket.htons(53), 0) + socket.inet_pton(socket.AF_INET6, "::1")
    out = [
        rec.socket_record(20, 5, socket.AF_INET, socket.SOCK_STREAM | 0o2000000, 6),
        rec.socket_record(20, 6, socket.AF_INET6, socket.SOCK_DGRAM, 17),
        rec.socket_record(20, 7, socket.AF_INET, socket.SOCK_RAW, 1),
        rec.socket_record(20, 8, socket.AF_UNIX, socket.SOCK_STREAM, 0),
        rec.socket_record(20, 9, 16, socket.SOCK_RAW, 0),
        rec.socket_record(20, -97, 99, 1, 0),
    ]
    for fd, addr, res in [
        (5, inet, 0),
        (6, inet6 + b"\0" * 4, -115),
        (7, inet, 0),
        (8, struct.pack("<H", socket.AF_UNIX) + b"/run/\xffx.sock\0", 0),
        (8, struct.pack("<H", socket.AF_UNIX) + b"\0abstract", -111),
        (9, b"\x10", 0),
        (33, struct.pack("<H", 77) + b"zz", 0),
        (34, b"", -9),
    ]:
        out.append(rec.sock_record(layout.MSG_CONNECT, 20, fd, addr, res=res))
    for lfd, addr, res, sc in [
        (5, inet, 11, layout.SC_ACCEPT),
        (5, inet6, 12, layout.SC_ACCEPT4),
        (8, struct.pack("<H", socket.AF_UNIX) + b"\0", 13, layout.SC_ACCEPT4),
        (40, b"", 14, layout.SC_ACCEPT),
        (5, inet, -11, layout.SC_ACCEPT4),
    ]:
        out.append(rec.sock_record(layout.MSG_ACCEPT, 20, lfd, addr, res=res, sc=sc, flags=0o2000000 | 0o4000))
    big = bytearray(rec.sock_record(layout.MSG_CONNECT, 20, 5, inet))
    struct.pack_into("<I", big, layout.HDR.size + 20, 5000)  # addr_len beyond the record's buffer
    out.append(bytes(big))
    return out


def corpus() -> list[bytes]:
    long_path = b"/" + b"d/" * 2047 + b"f"  # 4096 bytes
    records = [
        raw_open(20, b"/etc/passwd", comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/etc/passwd", comm="bash", uid=1000, gid=1000, cpu=1),
        raw_open(20, b"notes.txt", res=4, comm="bash", uid=1000, gid=1000, flags=0o101 | O_CLOEXEC, mode=0o644),
        raw_open(20, b"/home/alice", res=5, comm="bash", uid=1000, gid=1000, flags=O_DIRECTORY),
        raw_open(20, b"sub/../x", dirfd=5, res=6, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"y", dirfd=77, res=7, comm="bash", uid=1000, gid=1000),  # unknown dirfd: /proc, then <UNKNOWN>
        raw_open(20, b"/etc//shadow", res=-13, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/etc/./x/", res=0, comm="bash", uid=1000, gid=1000),  # fd 0: on the wire although 0
        raw_open(20, b"/", comm="bash", uid=1000, gid=1000, flags=O_DIRECTORY),
        raw_open(20, b"//x", comm="bash", uid=1000, gid=1000),
        raw_open(20, b"", res=-2, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/tmp/\xff\xfe\xc3(", comm="bash", uid=1000, gid=1000),
        raw_open(20, b"rel\xff/..//\x80", comm="bash", uid=1000, gid=1000),
        raw_open(20, long_path, comm="bash", uid=1000, gid=1000),
        raw_open(20, long_path[1:], comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/no/nul", nul=False, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/a\0after-nul", comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/etc/hosts", sc=layout.SC_OPEN, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/etc/hosts", sc=layout.SC_OPENAT2, resolve=0x10, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/tmp/new", sc=layout.SC_CREAT, mode=0o600, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"", sc=layout.SC_OPEN_BY_HANDLE_AT, dirfd=5, res=8, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/x", sc=99, comm="bash", uid=1000, gid=1000),  # unknown open syscall
        # two threads interleaved, record by record
        raw_open(20, b"/i/1", tid=22, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/i/2", comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/i/3", tid=22, comm="bash", uid=1000, gid=1000),
        # another thread of bash, with its own comm, then the same thread again
        raw_open(20, b"/etc/group", tid=21, comm="worker", uid=1000, gid=1000),
        raw_open(20, b"/etc/group", tid=21, comm="worker", uid=1000, gid=1000, vtid=3),
        # the real ids changed (setuid): the process is rebuilt
        raw_open(20, b"/etc/group", comm="bash", uid=0, gid=0),
        # invalid UTF-8 in comm and cwd
        raw_open(30, b"rel", comm="cat\xff", uid=0),
        # a pid the table does not know (its /proc is empty): an incomplete process
        raw_open(999, b"/etc/passwd", comm="ghost"),
        raw_open(10, b"/var/log/x", vpid=7, comm="sshd"),
        # bad records: a name past the record's end, a body too short, an unknown message type
        raw_open(20, b"/etc/passwd", name_len=4000, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/etc/passwd", comm="bash")[: layout.HDR.size + 10],
        rec.hdr(77, b"\0" * 40, pid=20),
        b"\0" * 5,
        # other record types on the general path, in between: the sequence stays one
        rec.fork_record(20, 40),
        # the same header before and after an exec that changes the process: the one-thread memo must not serve
        # the old process (the exec goes through the general path, which resets it)
        raw_open(40, b"/before/exec", comm="cat"),
        rec.exec_record(40, "/usr/bin/cat", ["cat", "/etc/shadow"]),
        raw_open(40, b"/etc/shadow", comm="cat"),
        rec.sock_record(
            layout.MSG_CONNECT,
            40,
            3,
            struct.pack("<HH", socket.AF_INET, socket.htons(80)) + socket.inet_aton("10.0.0.1") + b"\0" * 8,
            comm="cat",
        ),
        rec.fileop_record(40, layout.SC_CHDIR, "/var", comm="cat"),
        raw_open(40, b"log", comm="cat", res=9),
        rec.exit_record(40),
        *fileops(),
        *network(),
        raw_open(40, b"/after/exit", comm="cat"),
    ]
    return records


def _same(a: World, b: World, records: list[bytes]) -> None:
    general = a.general(records)
    direct = b.direct(records)
    assert [e[0] for e in direct] == [e[0] for e in general]
    assert [e[1] for e in direct] == [e[1] for e in general]
    assert shared_batch_wire(1, direct, 0) == shared_batch_wire(1, general, 0)
    assert b.state() == a.state()


def test_direct_path_equals_decode_and_encode(tmp_path: Path) -> None:
    a, b = _worlds(tmp_path)
    records = corpus()
    _same(a, b, records)
    # Run it again over the now warm caches and tables.
    _same(a, b, records)
    assert a.decoder.malformed == 10
    batch = event_pb2.EventBatch.FromString(shared_batch_wire(1, b.direct(records[:1]), 0))
    assert batch.events[0].fd.path == b"/etc/passwd"


def test_direct_path_reports_the_newest_time_and_incomplete_processes(tmp_path: Path) -> None:
    _, b = _worlds(tmp_path)
    events, newest = b.wire.run([raw_open(999, b"/x", comm="ghost", ts_ns=rec.BOOT_NS + 5)], COLLECTED_NS)
    assert len(events) == 1 and b.wire.incomplete == 1
    assert newest == b.table.clock.to_wall(rec.BOOT_NS + 5)


_names = st.one_of(
    st.binary(max_size=64),
    st.lists(st.sampled_from([b"/", b".", b"..", b"a", b"\xff", b"//", b"etc", b"\0"]), max_size=12).map(b"".join),
)


@settings(max_examples=200, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from([20, 30, 999]),
            _names,
            st.integers(min_value=-4096, max_value=40),
            st.sampled_from([layout.SC_OPEN, layout.SC_OPENAT, layout.SC_OPENAT2, layout.SC_CREAT, 50]),
            st.sampled_from([-100, 3, 4, 5, -1]),
            st.sampled_from([0, 1, 0o101, O_DIRECTORY, O_CLOEXEC | 2, 0xFFFFFFFF]),
            st.integers(min_value=0, max_value=2**32 - 1),
            st.sampled_from([21, None]),
        ),
        max_size=12,
    )
)
def test_generated_opens_agree(tmp_path_factory: object, opens: list[tuple[object, ...]]) -> None:
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        a, b = _worlds(Path(tmp))
        records = [
            raw_open(pid, name, res=res, sc=sc, dirfd=dirfd, flags=flags, mode=mode, tid=tid, comm="bash")  # type: ignore[arg-type]
            for pid, name, res, sc, dirfd, flags, mode, tid in opens
        ]
        _same(a, b, records)


class _Records:
    """A record reader over a fixed list (the ring buffer's part of ``BpfProbe``)."""

    def __init__(self, records: list[bytes]) -> None:
        self.records = records

    def start(self) -> None:
        pass

    def read(self) -> list[bytes]:
        out, self.records = self.records, []
        return out

    def dropped(self) -> int:
        return 0

    def close(self) -> None:
        pass


def test_service_takes_kernel_records_through_the_direct_path_one_batch_per_poll() -> None:
    import os

    from collector.service import CollectorService, make_batch, open_enricher_stream
    from collector.source import KernelSource
    from lanner.convert import inline_events
    from lanner.streaming import BatchSender

    me = os.getpid()
    records = [raw_open(me, f"/etc/f{i}".encode(), comm="pytest") for i in range(10)]
    src = KernelSource(_Records(records), identity=Identity("node-a", "boot-1", "prod-1"))
    sender: BatchSender[SharedEvent] = BatchSender("t", "127.0.0.1:1", open_enricher_stream, make_batch, batch_size=4)
    service = CollectorService([src], sender)
    assert src.max_per_poll == 4
    src.decoder.decode = None  # type: ignore[assignment,method-assign]  # the general path must not be needed
    assert [service.pump(), service.pump(), service.pump(), service.pump()] == [4, 4, 2, 0]
    batch = event_pb2.EventBatch.FromString(make_batch(1, list(sender._queue), 0))
    events = inline_events(batch)
    assert [e.fd.path for e in events] == [f"/etc/f{i}".encode() for i in range(10)]
    assert [e.id.seq for e in events] == list(range(1, 11))
    assert all(e.proc.pid == me and e.type == "openat" for e in events)


@settings(max_examples=100, deadline=None)
@given(
    times=st.lists(
        st.one_of(
            st.integers(0, 2**62),
            st.integers(-(2**30), 2**30),  # before the boot clock's offset: times at or below 0
            st.integers(0, 3).map(lambda k: rec.BOOT_NS + (k << 28) - 1),  # on the 2**28 boundaries
        ),
        min_size=1,
        max_size=12,
    ),
    collected=st.sampled_from([COLLECTED_NS, 0, 1]),
)
def test_event_times_across_the_high_part_agree(times: list[int], collected: int) -> None:
    """The direct path writes an event's time from its cached high part while it stays the same."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        a, b = _worlds(Path(d))
        records = [raw_open(30, b"/etc/hostname", ts_ns=max(0, ts)) for ts in times]
        general = [a.encoder.encode_shared(e) for e in a.decoder.decode_many(records, collected)]
        direct = b.wire.run(records, collected)[0]
        assert direct == general


def _repeatable_pool() -> list[bytes]:
    """Records whose repeats (same bytes but the time) the direct path answers from the record before; and records
    in between that change what a repeat would mean (a cwd, an exec, an exit, another thread)."""
    return [
        raw_open(20, b"/etc/hostname", comm="bash", uid=1000, gid=1000),
        raw_open(20, b"notes.txt", res=4, comm="bash", uid=1000, gid=1000, flags=O_CLOEXEC),
        raw_open(20, b"/etc/shadow", res=-13, comm="bash", uid=1000, gid=1000),
        raw_open(20, b"/etc/hostname", tid=21, comm="worker", uid=1000, gid=1000, cpu=300),
        raw_open(999, b"/etc/passwd", comm="ghost"),
        raw_open(40, b"log", comm="cat", res=9),
        rec.fileop_record(20, layout.SC_CHDIR, "/var", comm="bash"),
        rec.fileop_record(40, layout.SC_CHDIR, "/tmp", comm="cat"),
        rec.fork_record(20, 40),
        rec.exec_record(40, "/usr/bin/cat", ["cat", "/etc/shadow"]),
        rec.exit_record(40),
        raw_open(20, b"/etc/passwd", name_len=4000, comm="bash", uid=1000, gid=1000),  # malformed
    ]


def _at(record: bytes, ts: int) -> bytes:
    return struct.pack("<Q", ts) + record[8:]


@settings(max_examples=150, deadline=None)
@given(
    st.lists(
        st.tuples(st.integers(0, 11), st.integers(1, 40), st.integers(0, 2**40)),
        min_size=1,
        max_size=30,
    )
)
def test_repeated_records_agree(runs: list[tuple[int, int, int]]) -> None:
    """Runs of one record at changing times, between records that change the tables: the direct path's repeat
    of the record before gives the general path's events and leaves its tables (sequence numbers cross 128)."""
    import tempfile

    pool = _repeatable_pool()
    records = []
    for which, count, start in runs:
        records += [_at(pool[which], rec.BOOT_NS + start + k * 4_000_000) for k in range(count)]
    with tempfile.TemporaryDirectory() as d:
        a, b = _worlds(Path(d))
        _same(a, b, records)


def test_a_storm_of_one_open_across_the_time_and_sequence_boundaries(tmp_path: Path) -> None:
    a, b = _worlds(tmp_path)
    base = rec.BOOT_NS + (1 << 28) - 500 * 997
    storm = [_at(raw_open(20, b"/etc/hostname", comm="bash", uid=1000, gid=1000), base + k * 997) for k in range(1000)]
    relative = [_at(raw_open(20, b"x", res=5, comm="bash", uid=1000, gid=1000), base + k) for k in range(300)]
    chdir = rec.fileop_record(20, layout.SC_CHDIR, "/var", comm="bash")
    _same(a, b, storm + relative + [chdir] + relative + storm)
    _same(a, b, storm)  # a new run: the repeat starts afresh


def test_a_repeat_relative_to_an_fd_is_resolved_again(tmp_path: Path) -> None:
    """Whether the dirfd's table entry is stale depends on the record's time (a kernel mark of a filtered open of
    that fd number in between): such an open is resolved again, never repeated from the record before."""
    a, b = _worlds(tmp_path)
    mark = rec.BOOT_NS + 2_000
    for world in (a, b):
        world.table.stale_fd = lambda pid, fd: mark if fd == 5 else 0
    hdr = {"comm": "bash", "uid": 1000, "gid": 1000}
    records = [
        _at(raw_open(20, b"/home/alice", res=5, flags=O_DIRECTORY, **hdr), rec.BOOT_NS),  # type: ignore[arg-type]
        *(_at(raw_open(20, b"x", dirfd=5, res=6, **hdr), rec.BOOT_NS + k * 1_000) for k in (1, 3, 4)),  # type: ignore[arg-type]
    ]
    _same(a, b, records)
    paths = [event_pb2.Event.FromString(e[0]).fd.path for e in b.direct(records[1:2])]
    assert paths == [b"<UNKNOWN>/x"]
