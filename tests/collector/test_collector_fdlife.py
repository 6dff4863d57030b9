# SPDX-License-Identifier: Apache-2.0
"""The issue-8 records decoded without a kernel: pipe/socketpair, close, eventfd, fcntl dup, recvfrom, mount and
module loads; the close stamps' interval logic; /proc link typing; the attach units of the new syscalls."""

from __future__ import annotations

import socket
import struct
from pathlib import Path

from collector import layout
from collector.decode import Decoder
from collector.fdclose import closed_between
from collector.fdtable import fd_of_target
from collector.kfilter import RAW_UNIT, _unit, compiled_syscalls, syscalls_of
from collector.proctable import ProcessTable
from lanner.model import Fd, FdType
from ruleengine.engine import load_rules
from ruleengine.ksyscalls import needed
from tests.collector import collector_testlib as rec
from tests.collector.collector_testlib import add_proc
from tests.support.upstream_rules import locate


def _fdpair(pid: int, sc: int, res: int, fd1: int, fd2: int, *, flags: int = 0, dom: int = 0, ty: int = 0) -> bytes:
    body = layout.FDPAIR.pack(
        res, sc, fd1, fd2, flags, dom, ty, 0, 0, 4242, 4243 if sc == layout.SC_SOCKETPAIR else 4242
    )
    return rec.hdr(layout.MSG_FDPAIR, body, pid=pid)


def _strs(pid: int, sc: int, res: int, strings: tuple[str, ...], *, flags: int = 0, n0: int = 0) -> bytes:
    raw = [rec.cbytes(s) for s in strings] + [b""] * (3 - len(strings))
    body = layout.STRS.pack(res, sc, flags, n0, 0, len(raw[0]), len(raw[1]), len(raw[2]), 0)
    return rec.hdr(layout.MSG_STRS, body + b"".join(raw), pid=pid)


def test_pipe_gives_both_ends_their_pipe_name(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 10, 1, "sh")
    decoder.decode(rec.open_record(10, "/etc/passwd", res=3))
    ev = decoder.decode(_fdpair(10, layout.SC_PIPE2, 0, 3, 4, flags=0o2000000))
    assert ev is not None and ev.type == "pipe2"
    assert [(a.name, a.value) for a in ev.args] == [
        ("res", 0),
        ("fd1", 3),
        ("fd2", 4),
        ("ino", 4242),
        ("flags", 0o2000000),
    ]
    fds = table.procs[10].fds
    assert fds[3].type == FdType.PIPE and fds[3].path == "pipe:[4242]" and fds[4].path == "pipe:[4242]"
    assert 3 in table.procs[10].cloexec


def test_socketpair_ends_are_unix_sockets_named_by_inode(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 11, 1, "sh")
    ev = decoder.decode(_fdpair(11, layout.SC_SOCKETPAIR, 0, 5, 6, dom=socket.AF_UNIX, ty=socket.SOCK_STREAM))
    assert ev is not None and ev.type == "socketpair" and ev.arg("domain") == socket.AF_UNIX
    fds = table.procs[11].fds
    assert fds[5].type == FdType.UNIX and fds[5].path == "socket:[4242]" and fds[6].path == "socket:[4243]"


def test_a_failed_pipe_changes_nothing(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 12, 1, "sh")
    decoder.decode(rec.open_record(12, "/etc/passwd", res=3))
    ev = decoder.decode(_fdpair(12, layout.SC_PIPE, -24, -1, -1))
    assert ev is not None and ev.res == -24 and ev.fd is None
    assert table.procs[12].fds[3].path == "/etc/passwd"


def test_close_removes_the_entry_and_reports_what_it_named(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 13, 1, "sh")
    decoder.decode(rec.open_record(13, "/etc/passwd", res=3))
    ev = decoder.decode(rec.generic_record(13, layout.SC_CLOSE, (3,)))
    assert ev is not None and ev.type == "close" and ev.fd is not None and ev.fd.path == "/etc/passwd"
    assert 3 not in table.procs[13].fds
    # EBADF: nothing was open under that number.
    ev = decoder.decode(rec.generic_record(13, layout.SC_CLOSE, (9,), res=-9))
    assert ev is not None and ev.res == -9


def test_eventfd_userfaultfd_and_fcntl_dupfd(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 14, 1, "sh")
    ev = decoder.decode(rec.generic_record(14, layout.SC_EVENTFD2, (0, 0o2000000), res=3))
    assert ev is not None and ev.type == "eventfd2" and ev.fd is not None and ev.fd.type == FdType.EVENT
    ev = decoder.decode(rec.generic_record(14, layout.SC_FCNTL, (3, 1030, 50), res=50))
    assert ev is not None and ev.type == "fcntl" and ev.arg("fd") == 3 and ev.arg("cmd") == 1030
    assert table.procs[14].fds[50].path == "anon_inode:[eventfd]" and 50 in table.procs[14].cloexec
    ev = decoder.decode(rec.generic_record(14, layout.SC_USERFAULTFD, (0,), res=4))
    assert ev is not None and ev.type == "userfaultfd" and table.procs[14].fds[4].type == FdType.USERFAULTFD


def test_recvfrom_sets_the_sender_and_flags_a_change(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 15, 1, "dnsmasq")
    decoder.decode(rec.socket_record(15, 3, socket.AF_INET, socket.SOCK_DGRAM, 0))
    addr = struct.pack("<H", socket.AF_INET) + struct.pack(">H", 5353) + bytes([10, 1, 2, 3]) + b"\0" * 8

    def recv(sc: int) -> bytes:
        body = layout.SOCK.pack(20, sc, 3, 512, len(addr), addr + b"\0" * (layout.SOCKADDR_MAX - len(addr)))
        return rec.hdr(layout.MSG_RECV, body, pid=15)

    first = decoder.decode(recv(layout.SC_RECVFROM))
    second = decoder.decode(recv(layout.SC_RECVMSG))
    assert first is not None and first.type == "recvfrom" and first.fd is not None
    assert first.fd.client_ip == bytes([10, 1, 2, 3]) and first.fd.client_port == 5353 and first.fd.name_changed
    assert second is not None and second.type == "recvmsg" and second.fd is not None
    assert second.fd.name_changed is False and second.arg("size") == 512


def test_mount_umount2_and_module_loads(decoder: Decoder, table: ProcessTable) -> None:
    add_proc(table, 16, 1, "insmod", cwd="/root")
    ev = decoder.decode(_strs(16, layout.SC_MOUNT, -1, ("none", "mnt", "tmpfs"), flags=1))
    assert ev is not None and ev.type == "mount"
    assert [(a.name, a.value) for a in ev.args] == [
        ("res", -1), ("dev", "none"), ("dir", "/root/mnt"), ("type", "tmpfs"), ("flags", 1)
    ]  # fmt: skip
    ev = decoder.decode(_strs(16, layout.SC_UMOUNT2, 0, ("/mnt",), flags=2))
    assert ev is not None and ev.type == "umount2" and ev.arg("name") == "/mnt" and ev.arg("flags") == 2
    ev = decoder.decode(_strs(16, layout.SC_INIT_MODULE, -38, ("x=1",), n0=4096))
    assert ev is not None and ev.type == "init_module" and ev.arg("length") == 4096 and ev.arg("uargs") == "x=1"
    decoder.decode(rec.open_record(16, "/tmp/rootkit.ko", res=3))
    ev = decoder.decode(_strs(16, layout.SC_FINIT_MODULE, -38, ("",), n0=3))
    assert ev is not None and ev.type == "finit_module" and ev.res == -38
    assert ev.fd is not None and ev.fd.path == "/tmp/rootkit.ko"


def test_close_stamps_judge_an_interval() -> None:
    assert not closed_between([0, 0, 0, 0], 0, 100, 200)
    assert closed_between([150, 0, 0, 0], 1, 100, 200)
    assert not closed_between([50, 0, 0, 0], 1, 100, 200)  # closed before the entry was made
    assert not closed_between([250, 0, 0, 0], 1, 100, 200)  # closed after the event
    assert closed_between([50, 150, 250, 260], 4, 100, 200)
    # Four later closes overwrote the earlier ones: one of those may fall in the interval.
    assert closed_between([210, 220, 230, 240], 9, 100, 200)
    assert not closed_between([10, 20, 30, 40], 9, 100, 200)


def test_proc_links_that_are_not_paths_get_their_type() -> None:
    assert fd_of_target(3, "pipe:[77]") == Fd(num=3, type=FdType.PIPE, path="pipe:[77]", ino=77)
    assert fd_of_target(4, "anon_inode:[eventfd]").type == FdType.EVENT
    assert fd_of_target(5, "anon_inode:[eventpoll]").type == FdType.EVENTPOLL
    assert fd_of_target(6, "anon_inode:inotify").type == FdType.INOTIFY
    sock = fd_of_target(7, "socket:[99]")
    assert sock.type == FdType.UNSPECIFIED and sock.ino == 99 and sock.path == "socket:[99]"


def test_attach_units_of_the_new_syscalls() -> None:
    tps = [
        b"syscalls:sys_enter_umount",
        b"syscalls:sys_exit_umount",
        b"raw_syscalls:sys_enter",
        b"syscalls:sys_exit_close",
    ]
    assert compiled_syscalls(tps) == ["close", "finit_module", "init_module", "umount"]
    assert syscalls_of("umount2") == ("umount",)
    assert _unit("init_module") == _unit("finit_module") == RAW_UNIT and _unit("close") == "close"


def test_every_event_type_of_the_stable_rules_is_traced() -> None:
    from collector.kfilter import LIFECYCLE

    res = load_rules([str(locate() / "falco_rules.yaml")])
    assert res.engine is not None
    need = needed(res.engine.enabled)
    assert not need.all_types
    text = layout.PROGRAM_PATH.read_text()
    compiled = set(LIFECYCLE) | {"init_module", "finit_module"}
    for line in text.splitlines():
        for marker in ("TRACEPOINT_PROBE(syscalls, sys_exit_", "GENERIC_PROBE("):
            if marker in line:
                compiled.add(line.split(marker, 1)[1].split(")")[0].split(",")[0])
    missing = [t for t in need.types if not set(syscalls_of(t)) & compiled and t != "procexit"]
    assert not missing, missing
    assert "init_module" in need.types and "close" in need.types


def test_the_new_records_take_the_services_wire_path(tmp_path: Path) -> None:
    from collector.procfs import BootClock
    from lanner.codec import shared_batch_wire
    from lanner.v1 import event_pb2
    from tests.collector.test_collector_wirepath import World

    world = World(tmp_path, BootClock())
    records = [
        _fdpair(20, layout.SC_PIPE2, 0, 3, 4),
        rec.generic_record(20, layout.SC_CLOSE, (4,)),
        _strs(20, layout.SC_FINIT_MODULE, -38, ("x=1",), n0=3),
    ]
    batch = event_pb2.EventBatch()
    batch.ParseFromString(shared_batch_wire(1, world.direct(records), 0))
    assert [e.type for e in batch.events] == ["pipe2", "close", "finit_module"]
    assert batch.events[0].fd.type == FdType.PIPE and batch.events[0].fd.path == b"pipe:[4242]"
    assert batch.events[2].fd.path == b"pipe:[4242]" and batch.events[2].res == -38
