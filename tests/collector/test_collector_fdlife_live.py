# SPDX-License-Identifier: Apache-2.0
"""The fd lifecycle and the syscalls added for issue 8, on the real kernel: pipes, socketpairs, eventfds and
fcntl-dup'd fds carry their real type and name; a reused fd number never shows its old name (also when the new fd
comes from a syscall that is not traced); close records when a rule wants them; recvfrom/recvmsg with the sender;
userfaultfd, mount/umount2 and init_module/finit_module (caught on the raw syscall tracepoints, attached only when a
rule wants them)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from collector.source import KernelSource
from lanner.model import Event, FdType
from ruleengine.kspec import build_spec
from tests.collector.live_programs import HOLD, engine_of, kernel_control, run_program
from tests.support.kernel_source import kernel_source

pytestmark = pytest.mark.bpf


@pytest.fixture(scope="module")
def source() -> Iterator[KernelSource]:
    yield from kernel_source(pages=4096)


_control = kernel_control
_engine = engine_of


def _run(src: KernelSource, code: str, hold: bool = False) -> tuple[list[Event], list[str]]:
    """The program's events and printed words; it prints its own pid first, which must be the one traced."""
    events, words, pid = run_program(src, code, hold=hold)
    assert int(words[0]) == pid
    return events, words


# The program opens a file at fd N, closes it, makes N something else, and dup2's N onto a high number: the dup2
# event shows what N names now.
REUSE = """
    import os, socket, select, sys
    print(os.getpid())
    n = os.open("/etc/hostname", os.O_RDONLY)
    os.close(n)
    {make}
    assert new == n, (new, n)
    os.dup2(n, 77)
    print(n, os.fstat(n).st_ino)
    {hold}
"""


def _dup2_fd(events: list[Event]) -> object:
    dups = [e for e in events if e.type == "dup2" and e.res == 77]
    assert dups, sorted({e.type for e in events})
    return dups[-1].fd


def test_a_pipe_reusing_a_closed_files_number_shows_as_the_pipe(source: KernelSource) -> None:
    make = "r, w = os.pipe(); new = r"
    events, out = _run(source, REUSE.format(make=make, hold=""))
    fd = _dup2_fd(events)
    ino = int(out[2])
    assert fd.type == FdType.PIPE and fd.path == f"pipe:[{ino}]", fd  # type: ignore[attr-defined]
    pipes = [e for e in events if e.type in ("pipe", "pipe2")]  # os.pipe calls pipe2(O_CLOEXEC)
    assert pipes and pipes[0].arg("ino") == ino and pipes[0].arg("fd1") == int(out[1])


def test_a_socketpair_reusing_a_closed_files_number_shows_as_the_socket(source: KernelSource) -> None:
    make = "a, b = socket.socketpair(); new = a.fileno()"
    events, out = _run(source, REUSE.format(make=make, hold=""))
    fd = _dup2_fd(events)
    ino = int(out[2])
    assert fd.type == FdType.UNIX and fd.path == f"socket:[{ino}]", fd  # type: ignore[attr-defined]
    pair = [e for e in events if e.type == "socketpair"]
    assert pair and pair[0].arg("domain") == 1


def test_an_untraced_fd_reusing_a_closed_files_number_never_shows_the_file(source: KernelSource) -> None:
    # epoll_create1 is not traced: only the close stamp tells the table its entry for N is stale, and /proc
    # (the process lingers) says what N is now.
    make = "ep = select.epoll(); new = ep.fileno()"
    events, _out = _run(source, REUSE.format(make=make, hold=HOLD), hold=True)
    fd = _dup2_fd(events)
    assert fd.type == FdType.EVENTPOLL and "hostname" not in fd.path, fd  # type: ignore[attr-defined]


def test_eventfd_and_fcntl_dupfd_carry_the_eventfd(source: KernelSource) -> None:
    code = """
        import os, fcntl
        print(os.getpid())
        e = os.eventfd(0, os.EFD_CLOEXEC)
        d = fcntl.fcntl(e, fcntl.F_DUPFD_CLOEXEC, 90)
        fcntl.fcntl(e, fcntl.F_GETFD)
        print(e, d)
    """
    events, out = _run(source, code)
    efd, dup = int(out[1]), int(out[2])
    ev = [e for e in events if e.type == "eventfd2"]
    assert ev and ev[0].res == efd and ev[0].fd.type == FdType.EVENT  # type: ignore[union-attr]
    fc = [e for e in events if e.type == "fcntl"]
    assert len(fc) == 1, "only the F_DUPFD commands are reported"
    assert fc[0].res == dup and fc[0].arg("fd") == efd and fc[0].arg("cmd") == 1030
    assert fc[0].fd is not None and fc[0].fd.type == FdType.EVENT and fc[0].fd.path == "anon_inode:[eventfd]"


def test_userfaultfd_is_reported(source: KernelSource) -> None:
    code = """
        import ctypes, os
        print(os.getpid())
        libc = ctypes.CDLL(None, use_errno=True)
        r = libc.syscall(323, os.O_CLOEXEC)
        print(r if r >= 0 else -ctypes.get_errno())
    """
    events, out = _run(source, code)
    uf = [e for e in events if e.type == "userfaultfd"]
    assert uf and uf[0].res == int(out[1]) and uf[0].arg("flags") == 0o2000000
    if uf[0].res >= 0:
        assert uf[0].fd is not None and uf[0].fd.type == FdType.USERFAULTFD


def test_recvfrom_and_recvmsg_name_the_sender(source: KernelSource) -> None:
    code = """
        import os, socket
        print(os.getpid())
        srv = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); srv.bind(("127.0.0.1", 0))
        cli = socket.socket(socket.AF_INET, socket.SOCK_DGRAM); cli.bind(("127.0.0.1", 0))
        cli.sendto(b"one", srv.getsockname()); srv.recvfrom(100)
        cli.sendto(b"two", srv.getsockname()); srv.recvmsg(100)
        print(srv.fileno(), cli.getsockname()[1])
    """
    events, out = _run(source, code)
    fdnum, port = int(out[1]), int(out[2])
    recv = [e for e in events if e.type in ("recvfrom", "recvmsg") and e.arg("fd") == fdnum]
    assert [e.type for e in recv] == ["recvfrom", "recvmsg"], [(e.type, e.arg("fd")) for e in events]
    first, second = recv
    for e in recv:
        assert e.fd is not None and e.fd.client_ip == bytes([127, 0, 0, 1]) and e.fd.client_port == port
        assert e.fd.type == FdType.IPV4 and e.res == 3
    assert first.fd is not None and first.fd.name_changed is True
    assert second.fd is not None and second.fd.name_changed is False


def test_mount_and_umount2_are_reported(source: KernelSource, tmp_path: object) -> None:
    code = f"""
        import ctypes, os
        print(os.getpid())
        libc = ctypes.CDLL(None, use_errno=True)
        r = libc.mount(b"lanner-tmpfs", b"{tmp_path}", b"tmpfs", 0, None)
        print(r if r == 0 else -ctypes.get_errno())
        r = libc.umount2(b"{tmp_path}", 2)
        print(r if r == 0 else -ctypes.get_errno())
    """
    events, out = _run(source, code)
    m = [e for e in events if e.type == "mount"]
    u = [e for e in events if e.type == "umount2"]
    assert m and m[0].res == int(out[1]) and m[0].arg("dev") == "lanner-tmpfs" and m[0].arg("type") == "tmpfs"
    assert m[0].arg("dir") == str(tmp_path)
    assert u and u[0].res == int(out[2]) and u[0].arg("name") == str(tmp_path) and u[0].arg("flags") == 2


# The open must pass the kernel filter for the table to know the file.
CLOSE_RULES = (
    "evt.type = close",
    "evt.type = dup2 and fd.typechar = p",
    "evt.type = openat and fd.name = /etc/hostname",
)

MODULES = f"""
    import ctypes, os, sys
    print(os.getpid())
    libc = ctypes.CDLL(None, use_errno=True)
    fd = os.open("/etc/hostname", os.O_RDONLY)
    r1 = libc.syscall(175, b"\\x7fELF", 4, b"lanner=1")
    e1 = ctypes.get_errno()
    r2 = libc.syscall(313, fd, b"lanner=2", 0)
    e2 = ctypes.get_errno()
    print(r1 if r1 == 0 else -e1, r2 if r2 == 0 else -e2, fd, flush=True)
    {HOLD}  # the kernel filter dropped the open: the fd's name comes from /proc while the process lives
"""


def test_module_loads_are_caught_on_raw_syscalls_only_while_a_rule_wants_them(source: KernelSource) -> None:
    control = _control(source)
    raw = b"sys_enter"  # a BPF raw tracepoint
    try:
        ack = source.apply_spec(build_spec(_engine("evt.type = mkdir").enabled))
        assert "init_module" not in ack.attached and not control.enter_attached("init_module")
        events, _ = _run(source, MODULES, hold=True)
        assert not [e for e in events if e.type in ("init_module", "finit_module")]

        ack = source.apply_spec(build_spec(_engine("evt.type in (init_module, finit_module)").enabled))
        assert {"init_module", "finit_module"} <= set(ack.attached) and control.enter_attached("init_module")
        assert raw in control.bpf.raw_tracepoint_fds
        events, out = _run(source, MODULES, hold=True)
        init = [e for e in events if e.type == "init_module"]
        finit = [e for e in events if e.type == "finit_module"]
        assert init and init[0].res == int(out[1]) and init[0].arg("uargs") == "lanner=1"
        assert init[0].arg("length") == 4
        assert finit and finit[0].res == int(out[2]) and finit[0].arg("uargs") == "lanner=2"
        assert finit[0].arg("fd") == int(out[3])
        assert finit[0].fd is not None and finit[0].fd.path == "/etc/hostname"
    finally:
        source.apply_spec(build_spec(_engine(*CLOSE_RULES).enabled))


def test_close_records_when_a_rule_wants_them(source: KernelSource) -> None:
    source.apply_spec(build_spec(_engine(*CLOSE_RULES).enabled))
    code = """
        import os
        print(os.getpid())
        n = os.open("/etc/hostname", os.O_RDONLY)
        os.close(n)
        r, w = os.pipe()
        os.dup2(r, 77)
        print(n, r)
    """
    events, out = _run(source, code)
    n = int(out[1])
    closes = [e for e in events if e.type == "close" and e.arg("fd") == n]
    # (Python's start-up closes many fds numbered n; their opens were dropped by the kernel filter.)
    named = [e for e in closes if e.fd is not None and e.fd.path == "/etc/hostname"]
    assert len(named) == 1 and named[0].res == 0, [(e.res, e.fd) for e in closes]
    dup = [e for e in events if e.type == "dup2" and e.res == 77]
    assert dup and dup[0].fd is not None and dup[0].fd.type == FdType.PIPE


RECV_ON_A_PAIR = f"""
    import os, socket, sys
    print(os.getpid())
    a, b = socket.socketpair()
    a.send(b"x")
    b.recv(10)
    print(b.fileno(), flush=True)
    {HOLD}
"""


def test_receives_without_a_sender_are_reported_only_when_a_rule_wants_them(source: KernelSource) -> None:
    try:
        source.apply_spec(build_spec(_engine("evt.type = recvfrom and fd.typechar = u").enabled))
        events, out = _run(source, RECV_ON_A_PAIR, hold=True)
        recv = [e for e in events if e.type == "recvfrom" and e.arg("fd") == int(out[1])]
        assert recv and recv[0].res == 1 and recv[0].fd is not None and recv[0].fd.type == FdType.UNIX
        # As before any spec arrived: everything attached, receives reported only with a sender.
        control = _control(source)
        control._attach(set(control.compiled))
        control._set_fdx(0, 0)
        control.fingerprint = ""
        events, out = _run(source, RECV_ON_A_PAIR, hold=True)
        assert "recvfrom" in control.attached
        assert not [e for e in events if e.type == "recvfrom"]
    finally:
        source.apply_spec(build_spec(_engine(*CLOSE_RULES).enabled))


def test_a_child_never_shows_a_name_its_parent_closed_before_the_fork(source: KernelSource) -> None:
    # The parent closes fd N before forking; the child reuses N through a syscall the table does not see. The
    # entry the child inherited in the table is judged against the parent's close. (No rule on close: its records
    # would remove the parent's entry before the fork.)
    source.apply_spec(build_spec(_engine(*CLOSE_RULES[1:]).enabled))
    code = f"""
        import os, select, sys
        print(os.getpid(), flush=True)
        n = os.open("/etc/hostname", os.O_RDONLY)
        os.close(n)
        child = os.fork()
        if child == 0:
            ep = select.epoll()
            assert ep.fileno() == n
            os.dup2(n, 77)
            {HOLD}
            os._exit(0)
        os.waitpid(child, 0)
        print(child, n)
    """
    events, out, _pid = run_program(source, code, hold=True, children=True)
    child = int(out[1])
    dups = [e for e in events if e.proc.pid == child and e.type == "dup2" and e.res == 77]
    assert dups and dups[0].fd is not None, sorted({e.type for e in events if e.proc.pid == child})
    assert "hostname" not in dups[0].fd.path and dups[0].fd.type == FdType.EVENTPOLL, dups[0].fd
