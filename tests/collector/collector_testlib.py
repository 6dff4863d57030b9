# SPDX-License-Identifier: Apache-2.0
"""Builders of ring-buffer records exactly as the probes lay them out (collector.layout formats)."""

from __future__ import annotations

from collector import layout
from collector.entry import ProcEntry
from collector.proctable import ProcessTable
from lanner.model import Process

BOOT_NS = 5_000_000_000


def hdr(
    msg: int,
    body_and_tail: bytes,
    *,
    pid: int,
    tid: int | None = None,
    comm: str = "cat",
    uid: int = 0,
    gid: int = 0,
    cgroup_id: int = 1,
    ts_ns: int = BOOT_NS,
    flags: int = 0,
    cpu: int = 0,
    vpid: int = 0,
    vtid: int = 0,
) -> bytes:
    size = layout.HDR.size + len(body_and_tail)
    head = layout.HDR.pack(
        ts_ns,
        cgroup_id,
        msg,
        size,
        pid,
        pid if tid is None else tid,
        uid,
        gid,
        cpu,
        flags,
        comm.encode()[:15],
        vpid,
        vtid,
    )
    return head + body_and_tail


def cbytes(s: str) -> bytes:
    return s.encode() + b"\0"


def exec_record(
    pid: int,
    filename: str,
    argv: list[str],
    *,
    res: int = 0,
    comm: str | None = None,
    old_tid: int | None = None,
    uid: int = 0,
    gid: int = 0,
    cgroup_id: int = 1,
    sc: int = layout.SC_EXECVE,
    env: list[str] | None = None,
    task: bytes | None = None,
) -> bytes:
    """An exec record; ``task`` is a packed ``struct lanner_task`` (default: empty, as without BTF)."""
    fn = cbytes(filename)
    blob = b"".join(cbytes(a) for a in argv)
    env_blob = b"".join(cbytes(a) for a in env or [])
    body = layout.EXEC.pack(
        res, sc, pid if old_tid is None else old_tid, -100, 0, len(fn), len(blob), len(argv), len(env_blob), b"\0" * 6
    )
    return hdr(
        layout.MSG_EXEC,
        body + (task if task is not None else bytes(layout.TASK.size)) + fn + blob + env_blob,
        pid=pid,
        comm=comm or filename.rsplit("/", 1)[-1],
        uid=uid,
        gid=gid,
        cgroup_id=cgroup_id,
    )


def fork_record(
    parent: int,
    child: int,
    *,
    flags: int = 17,
    sc: int = layout.SC_CLONE,
    comm: str = "bash",
    parent_tid: int | None = None,
) -> bytes:
    child_pid = parent if flags & 0x10000 else child
    body = layout.FORK.pack(flags, sc, parent, parent if parent_tid is None else parent_tid, child, child_pid, 0)
    return hdr(layout.MSG_FORK, body, pid=parent, tid=parent_tid, comm=comm)


def exit_record(
    pid: int,
    *,
    code: int = 0,
    has_code: bool = True,
    group_dead: bool = True,
    comm: str = "cat",
    tid: int | None = None,
) -> bytes:
    body = layout.EXIT.pack(code, int(has_code), int(group_dead), 0)
    return hdr(layout.MSG_EXIT, body, pid=pid, tid=tid, comm=comm)


def open_record(
    pid: int,
    name: str,
    *,
    res: int = 3,
    dirfd: int = -100,
    flags: int = 0,
    mode: int = 0,
    sc: int = layout.SC_OPENAT,
    comm: str = "cat",
    resolve: int = 0,
    uid: int = 0,
) -> bytes:
    nm = cbytes(name)
    body = layout.OPEN.pack(res, resolve, sc, dirfd, flags, mode, len(nm), b"\0" * 6)
    return hdr(layout.MSG_OPEN, body + nm, pid=pid, comm=comm, uid=uid)


def sock_record(
    msg: int,
    pid: int,
    fd: int,
    addr: bytes,
    *,
    res: int = 0,
    sc: int = layout.SC_CONNECT,
    flags: int = 0,
    comm: str = "curl",
) -> bytes:
    body = layout.SOCK.pack(res, sc, fd, flags, len(addr), addr.ljust(layout.SOCKADDR_MAX, b"\0"))
    return hdr(msg, body, pid=pid, comm=comm)


def socket_record(pid: int, res: int, domain: int, type_: int, proto: int, comm: str = "curl") -> bytes:
    body = layout.SOCKET.pack(res, layout.SC_SOCKET, domain, type_, proto)
    return hdr(layout.MSG_SOCKET, body, pid=pid, comm=comm)


def fileop_record(
    pid: int,
    sc: int,
    p1: str = "",
    p2: str = "",
    *,
    res: int = 0,
    dirfd1: int = -100,
    dirfd2: int = -100,
    flags: int = 0,
    mode: int = 0,
    comm: str = "sh",
) -> bytes:
    b1 = cbytes(p1) if p1 else b""
    b2 = cbytes(p2) if p2 else b""
    body = layout.FILEOP.pack(res, sc, dirfd1, dirfd2, flags, mode, len(b1), len(b2))
    return hdr(layout.MSG_FILEOP, body + b1 + b2, pid=pid, comm=comm)


def add_proc(
    table: ProcessTable,
    pid: int,
    ppid: int,
    comm: str,
    *,
    cwd: str = "/",
    uid: int = 0,
    args: tuple[str, ...] = (),
    exepath: str = "",
) -> ProcEntry:
    """Put a process in the table the way /proc seeding would."""
    p = Process(
        pid=pid,
        tid=pid,
        ppid=ppid,
        vpid=pid,
        vtid=pid,
        comm=comm,
        exe=comm,
        exepath=exepath or f"/usr/bin/{comm}",
        args=args,
        cwd=cwd,
        uid=uid,
        gid=uid,
        euid=uid,
        egid=uid,
        loginuid=-1,
    )
    entry = ProcEntry(proc=p, mntns=1)
    table.procs[pid] = entry
    return entry


def generic_record(pid: int, sc: int, args: tuple[int, ...], *, res: int = 0, comm: str = "sh", uid: int = 0) -> bytes:
    padded = [*args, 0, 0, 0, 0][:4]
    body = layout.GENERIC.pack(res, sc, 0, *padded)
    return hdr(layout.MSG_GENERIC, body, pid=pid, comm=comm, uid=uid)
