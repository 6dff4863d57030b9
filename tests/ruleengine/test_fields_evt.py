# SPDX-License-Identifier: Apache-2.0
"""evt.* fields: results, open modes, argument rendering through Falco's flag tables, time formats."""

from __future__ import annotations

import time

import pytest

from lanner.model import Arg, Event, EventTiming, Fd, FdType, Process
from tests.ruleengine.fields_util import text, value

O_WRONLY, O_RDWR, O_CREAT, O_TRUNC, O_CLOEXEC = 0o1, 0o2, 0o100, 0o1000, 0o2000000
O_F_CREATED = 1 << 28


def openat(flags: int, res: int = 3, mode: int = 0, path: str = "/etc/shadow") -> Event:
    return Event(
        type="openat",
        res=res,
        fd=Fd(num=res, type=FdType.FILE, path=path, open_flags=flags, mode=mode),
        args=(Arg("dirfd", -100), Arg("name", path), Arg("flags", flags), Arg("mode", mode)),
    )


def test_res_and_rawres() -> None:
    assert value(openat(0), "evt.res") == "SUCCESS"
    assert value(openat(0, res=-2), "evt.res") == "ENOENT"
    assert value(openat(0, res=-13), "evt.res") == "EACCES"
    assert value(openat(0, res=-22), "evt.rawres") == -22
    assert value(openat(0, res=-22), "evt.failed") is True
    assert value(openat(0), "evt.failed") is False
    assert value(Event(type="connect", res=-115), "evt.res") == "EINPROGRESS"
    assert value(Event(type="connect", res=-9999), "evt.res") == "-9999"  # unknown errno: the number
    # Tracepoint events have no return value at all.
    exit_ev = Event(type="procexit", res=0)
    assert value(exit_ev, "evt.res") is None and value(exit_ev, "evt.rawres") is None
    assert text(exit_ev, "evt.res") == "<NA>"


@pytest.mark.parametrize(
    ("flags", "rendered"),
    [
        (0, "O_RDONLY"),
        (O_CLOEXEC, "O_RDONLY|O_CLOEXEC"),
        (O_RDWR, "O_RDWR"),
        (O_TRUNC | O_CREAT | O_WRONLY | O_CLOEXEC | O_F_CREATED, "O_TRUNC|O_CREAT|O_WRONLY|O_CLOEXEC|O_F_CREATED"),
        (0o200000 | 0o4000 | O_CLOEXEC, "O_DIRECTORY|O_NONBLOCK|O_RDONLY|O_CLOEXEC"),
        (0o400 | 0o400000, "O_RDONLY"),  # O_NOCTTY / O_NOFOLLOW have no Falco name
        (0o1 | (1 << 30), "O_WRONLY|FD_LOWER_LAYER"),
    ],
)
def test_open_flags_render_in_falco_order(flags: int, rendered: str) -> None:
    assert value(openat(flags), "evt.arg.flags") == rendered
    assert value(openat(flags), "evt.arg", "3") == rendered  # openat param 3 is flags
    assert value(openat(flags), "evt.rawarg.flags") == flags


def test_open_modes() -> None:
    assert value(openat(0), "evt.is_open_read") is True
    assert value(openat(0), "evt.is_open_write") is False
    assert value(openat(O_WRONLY), "evt.is_open_write") is True
    assert value(openat(O_WRONLY), "evt.is_open_read") is False
    assert value(openat(O_RDWR), "evt.is_open_read") is True and value(openat(O_RDWR), "evt.is_open_write") is True
    assert value(openat(O_CREAT | O_WRONLY, mode=0o755), "evt.is_open_exec") is True
    assert value(openat(O_CREAT | O_WRONLY, mode=0o644), "evt.is_open_exec") is False
    assert value(openat(O_WRONLY, mode=0o755), "evt.is_open_exec") is False  # no O_CREAT: mode is meaningless
    assert value(openat(O_WRONLY | O_F_CREATED), "evt.is_open_create") is True
    # Not an open event: false, not absent.
    assert value(Event(type="read", args=(Arg("flags", 0),)), "evt.is_open_read") is False
    creat = Event(type="creat", args=(Arg("mode", 0o700),))
    assert value(creat, "evt.is_open_exec") is True


def test_arg_tables() -> None:
    sock = Event(type="socket", args=(Arg("domain", 1), Arg("type", 524289), Arg("proto", 0)))
    assert value(sock, "evt.arg.domain") == "AF_LOCAL|AF_UNIX"
    assert value(sock, "evt.arg.type") == "524289"
    assert value(Event(type="socket", args=(Arg("domain", 17),)), "evt.arg.domain") == "AF_PACKET"
    assert value(Event(type="socket", args=(Arg("domain", 16),)), "evt.arg.domain") == "AF_ROUTE|AF_NETLINK"
    ptrace = Event(type="ptrace", args=(Arg("request", 16), Arg("pid", 42)))
    assert value(ptrace, "evt.arg.request") == "PTRACE_ATTACH"
    assert value(Event(type="ptrace", args=(Arg("request", 0),)), "evt.arg.request") == "PTRACE_TRACEME"
    assert value(Event(type="ptrace", args=(Arg("request", 0x4206),)), "evt.arg.request") == "PTRACE_SEIZE"
    assert value(Event(type="bpf", args=(Arg("cmd", 5),)), "evt.arg.cmd") == "BPF_PROG_LOAD"
    chmod = Event(type="chmod", args=(Arg("filename", "/bin/x"), Arg("mode", 0o4755)))
    assert value(chmod, "evt.arg.mode") == "S_IXOTH|S_IROTH|S_IXGRP|S_IRGRP|S_IXUSR|S_IWUSR|S_IRUSR|S_ISUID"
    clone = Event(type="clone", args=(Arg("flags", 0x100 | 0x200 | 0x400 | 0x800 | 0x10000),))
    assert value(clone, "evt.arg.flags") == "CLONE_FILES|CLONE_FS|CLONE_SIGHAND|CLONE_THREAD|CLONE_VM"
    unshare = Event(type="unshare", args=(Arg("flags", 0x10000000),))
    assert value(unshare, "evt.arg.flags") == "CLONE_NEWUSER"
    mount = Event(type="mount", args=(Arg("flags", 0),))
    assert value(mount, "evt.arg.flags") == "0"  # nothing matches: the number
    mmap = Event(type="mmap", args=(Arg("prot", 7), Arg("flags", 0x22)))
    assert value(mmap, "evt.arg.prot") == "PROT_READ|PROT_WRITE|PROT_EXEC"
    assert value(mmap, "evt.arg.flags") == "MAP_PRIVATE|MAP_ANONYMOUS"
    assert value(Event(type="mprotect", args=(Arg("prot", 0),)), "evt.arg.prot") == "PROT_NONE"
    kill = Event(type="kill", args=(Arg("pid", 1), Arg("sig", 9)))
    assert value(kill, "evt.arg.sig") == "SIGKILL"
    cap = Event(type="capset", args=(Arg("cap_effective", (1 << 41) - 1),))
    assert value(cap, "evt.arg.cap_effective") == "1FFFFFFFFFF"
    setuid = Event(type="setuid", args=(Arg("uid", 0),))
    assert value(setuid, "evt.arg.uid") == "root"
    assert (
        value(Event(type="symlink", args=(Arg("target", "../x"), Arg("linkpath", "/tmp/l"))), "evt.arg.target")
        == "../x"
    )


def test_arg_absent_and_fd_args() -> None:
    ev = openat(O_CLOEXEC)
    assert value(ev, "evt.arg.request") is None  # openat has no such param
    assert value(ev, "evt.arg.dirfd") == "AT_FDCWD"
    assert value(ev, "evt.arg.fd") == "<f>/etc/shadow"
    assert value(ev, "evt.arg", "0") == "<f>/etc/shadow"
    assert value(ev, "evt.arg", "9") is None
    failed = openat(0, res=-2)
    assert value(failed, "evt.arg.fd") == "ENOENT"


def test_args_string() -> None:
    ev = openat(O_CLOEXEC)
    assert value(ev, "evt.args") == (
        "fd=3(<f>/etc/shadow) dirfd=-100(AT_FDCWD) name=/etc/shadow flags=524288(O_RDONLY|O_CLOEXEC) mode=0"
    )
    assert value(ev, "evt.info") == value(ev, "evt.args")


def test_buffer() -> None:
    ev = Event(type="write", args=(Arg("data", b"\x7fELF\x00ab"), Arg("fd", 1)))
    assert value(ev, "evt.buffer") == b"\x7fELF\x00ab"
    assert text(ev, "evt.buffer") == ".ELF.ab"
    assert value(ev, "evt.buflen") == 7


def test_time_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TZ", "UTC")
    time.tzset()
    try:
        ev = Event(type="open", timing=EventTiming(event_ns=1718000011726060287))
        assert value(ev, "evt.time") == "06:13:31.726060287"
        assert value(ev, "evt.time.s") == "06:13:31"
        assert value(ev, "evt.datetime") == "2024-06-10 06:13:31.726060287"
        assert value(ev, "evt.time.iso8601") == "2024-06-10T06:13:31.726060287+0000"
        assert value(ev, "evt.rawtime") == 1718000011726060287
        assert value(ev, "evt.rawtime.s") == 1718000011
        assert value(ev, "evt.rawtime.ns") == 726060287
        monkeypatch.setenv("TZ", "Asia/Kolkata")
        time.tzset()
        assert value(ev, "evt.time") == "11:43:31.726060287"  # local time
        assert value(ev, "evt.time.iso8601") == "2024-06-10T06:13:31.726060287+0000"  # always UTC
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()


def test_misc_evt() -> None:
    ev = Event(type="execve", proc=Process(comm="ls"), cpu=3)
    assert value(ev, "evt.type") == "execve"
    assert value(ev, "evt.dir") == "<"
    assert value(Event(type="procexit"), "evt.dir") == ">"
    assert value(ev, "evt.cpu") == 3
    assert value(ev, "evt.category") == "process"
    assert value(openat(0), "evt.category") == "file"
    assert value(Event(type="read", fd=Fd(num=4, type=FdType.IPV4)), "evt.category") == "net"
    assert value(Event(type="read", fd=Fd(num=4, type=FdType.PIPE)), "evt.category") == "ipc"
    assert value(ev, "evt.source") == "syscall"
    assert value(ev, "evt.hostname") is None


def test_abspath() -> None:
    ren = Event(
        type="renameat2",
        proc=Process(cwd="/home/u/"),
        args=(Arg("olddirfd", -100), Arg("oldpath", "a/../b"), Arg("newdirfd", 5), Arg("newpath", "/tmp/c")),
    )
    assert value(ren, "evt.abspath") == "/home/u/b"
    assert value(ren, "evt.abspath.src") == "/home/u/b"
    assert value(ren, "evt.abspath.dst") == "/tmp/c"
    unl = Event(type="unlinkat", args=(Arg("dirfd", 7), Arg("name", "x")))
    assert value(unl, "evt.abspath") is None  # relative to an fd we do not know
    assert value(Event(type="open"), "evt.abspath") is None
