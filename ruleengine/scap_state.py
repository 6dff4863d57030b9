# SPDX-License-Identifier: Apache-2.0
"""What a ``.scap`` reader must remember between events, as libsinsp does: threads and fds.

Threads come from the process-list blocks (PL V2..V9) and from clone/fork/execve exits, chdir and setuid; fds from
the fd-list blocks (FDL V1/V2) and from opens, sockets, connect/accept/bind, pipes, dup and close. Format digest:
``shared/reference/scap-format.md``.
"""

from __future__ import annotations

import struct
from dataclasses import dataclass, field, replace
from typing import Any

from ruleengine.scap_codec import decode
from ruleengine.scap_write import PL_V9

__all__ = [
    "DUPS",
    "FORKS",
    "OPENS",
    "PL_VERSION",
    "Fd",
    "State",
    "Thread",
    "cstr",
    "join",
    "read_fdlist",
    "read_proclist",
]


@dataclass
class Thread:
    """A thread as the capture describes it: ids, process names and arguments, working directory, user."""

    tid: int
    pid: int
    ptid: int
    comm: str
    exe: str
    exepath: str
    args: list[str]
    cwd: str
    uid: int


def cstr(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


# PL block versions: V2..V9 = 0x207, 0x209, 0x210..0x215; which fields each has (libscap's reader)
PL_VERSION = {0x207: 2, 0x209: 3, 0x210: 4, 0x211: 5, 0x212: 6, 0x213: 7, 0x214: 8, PL_V9: 9}


class Cursor:
    __slots__ = ("buf", "pos")

    def __init__(self, buf: bytes, pos: int = 0) -> None:
        self.buf, self.pos = buf, pos

    def num(self, fmt: str) -> int:
        (v,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += struct.calcsize(fmt)
        return int(v)

    def blob(self) -> bytes:
        n = self.num("<H")
        out = self.buf[self.pos : self.pos + n]
        self.pos += n
        return out


def read_proclist(body: bytes, version: int, threads: dict[int, Thread]) -> None:
    """One thread per entry. V9 entries carry their length; older ones end with ``root`` (V5..V8) or before it,
    and are walked field by field (libscap reads the later fields only when an entry's length says they are there)."""
    cur = Cursor(body)
    while cur.pos + 24 <= len(body):
        end = None
        if version == 9:
            end = cur.pos + cur.num("<I")
        tid, pid, ptid = cur.num("<Q"), cur.num("<Q"), cur.num("<Q")
        if version >= 6:
            cur.num("<Q")  # sid
        if version >= 8:
            cur.num("<Q")  # vpgid
        comm, exe = cur.blob(), cur.blob()
        exepath = cur.blob() if version >= 7 else b""
        args, cwd = cur.blob(), cur.blob()
        cur.num("<Q")  # fdlimit
        cur.num("<I")  # flags
        uid = cur.num("<I")
        cur.num("<I")  # gid
        if version >= 2:
            cur.pos += 12 + 16  # vmsize, vmrss, vmswap (u32), pfmajor, pfminor (u64)
        if version >= 3:
            cur.blob()  # env
        if version >= 4:
            cur.pos += 16  # vtid, vpid
            cur.blob()  # cgroups
        if version >= 5:
            cur.blob()  # root
        threads[tid] = Thread(
            tid,
            pid,
            ptid,
            cstr(comm),
            cstr(exe),
            cstr(exepath),
            [a.decode("utf-8", "surrogateescape") for a in args.split(b"\0") if a],
            cstr(cwd),
            uid,
        )
        if end is not None:
            cur.pos = end


# --- state: threads and fds, as libsinsp follows them --------------------------------------------------------------
@dataclass
class Fd:
    """An entry of a process's fd table."""

    type: str  # Falco's fd.type: file, directory, ipv4, ipv6, unix...
    name: str = ""
    l4proto: str = ""


_SOCKET_TYPES = {1: "unix", 2: "ipv4", 10: "ipv6", 16: "netlink"}
OPENS = frozenset({"open", "openat", "openat2", "creat", "open_by_handle_at"})
FORKS = frozenset({"clone", "fork", "vfork", "clone3"})
DUPS = frozenset({"dup", "dup2", "dup3"})


def read_fdlist(body: bytes, kind: int, fds: dict[int, dict[int, Fd]], threads: dict[int, Thread]) -> None:
    """One thread's fds: ``u64 tid`` then ``[u32 length] i64 fd, u64 ino, u8 type`` entries and their payloads."""
    cur = Cursor(body)
    tid = cur.num("<Q")
    table = fds.setdefault(threads[tid].pid if tid in threads else tid, {})
    while cur.pos + 17 <= len(body):
        end = cur.pos + 4 + cur.num("<I") if kind == 0x218 else None
        num, _ino, ftype = cur.num("<q"), cur.num("<Q"), cur.num("<B")
        fd: Fd | None = None
        if ftype in (3, 4):  # IPv4/IPv6 socket: source, destination, ports, protocol
            size = 4 if ftype == 3 else 16
            sip, dip = body[cur.pos : cur.pos + size], body[cur.pos + size : cur.pos + 2 * size]
            cur.pos += 2 * size
            sport, dport, proto = cur.num("<H"), cur.num("<H"), cur.num("<B")
            text = decode(
                "SOCKTUPLE",
                bytes([2 if size == 4 else 10]) + sip + struct.pack("<H", sport) + dip + struct.pack("<H", dport),
            )
            fd = Fd("ipv4" if size == 4 else "ipv6", str(text), {2: "tcp", 3: "udp"}.get(proto, ""))
        elif ftype in (5, 6):  # server sockets: address, port, protocol
            size = 4 if ftype == 5 else 16
            cur.pos += size + 3
            fd = Fd("ipv4" if size == 4 else "ipv6")
        elif ftype == 7:  # unix: two socket pointers, then the name
            cur.pos += 16
            fd = Fd("unix", cstr(cur.blob()))
        elif ftype == 16:  # a file with its open flags
            cur.num("<I")
            fd = Fd("file", cstr(cur.blob()))
        else:
            name = cstr(cur.blob())
            fd = Fd({1: "file", 2: "directory", 9: "pipe"}.get(ftype, "unknown"), name)
        if end is not None:
            cur.pos = end
        table[num] = fd


@dataclass
class State:
    """The thread and fd tables of one capture, and each thread's pending enter event."""

    threads: dict[int, Thread] = field(default_factory=dict)
    fds: dict[int, dict[int, Fd]] = field(default_factory=dict)  # by process id
    enters: dict[int, tuple[int, dict[str, Any]]] = field(default_factory=dict)  # by thread id

    def fd_table(self, tid: int) -> dict[int, Fd]:
        th = self.threads.get(tid)
        return self.fds.setdefault(th.pid if th is not None else tid, {})

    def base(self, tid: int, dirfd: object) -> str:
        """The directory a relative path of this thread is taken from (dirfd AT_FDCWD: the working directory)."""
        th = self.threads.get(tid)
        if isinstance(dirfd, int) and dirfd >= 0:
            fd = self.fd_table(tid).get(dirfd)
            return fd.name if fd is not None else "<UNKNOWN>"
        return th.cwd if th is not None else "/"

    def track(self, name: str, tid: int, v: dict[str, Any], res: int) -> None:
        """The thread and fd tables after one exit event."""
        th = self.threads.get(tid)
        if name in FORKS:
            if res > 0 and th is not None:  # the parent's side: the child starts as a copy of the parent
                self.threads.setdefault(
                    res, replace(th, tid=res, ptid=tid, pid=res if v.get("flags", 0) & 1 << 13 == 0 else th.pid)
                )
            elif res == 0:
                self.threads[tid] = Thread(
                    tid,
                    int(v.get("pid") or tid),
                    int(v.get("ptid") or 0),
                    str(v.get("comm") or ""),
                    str(v.get("exe") or ""),
                    th.exepath if th else "",
                    argv(v.get("args")),
                    str(v.get("cwd") or "/"),
                    int(v.get("uid") or 0),
                )
        elif name in ("execve", "execveat") and res == 0:
            exe = str(v.get("exe") or "")
            self.threads[tid] = Thread(
                tid,
                int(v.get("pid") or tid),
                int(v.get("ptid") or 0),
                str(v.get("comm") or exe.rsplit("/", 1)[-1]),
                exe,
                str(v.get("trusted_exepath") or v.get("filename") or ""),
                argv(v.get("args")),
                str(v.get("cwd") or (th.cwd if th else "/")),
                int(v["uid"]) if isinstance(v.get("uid"), int) else (th.uid if th else 0),
            )
        elif th is not None and res == 0 and name == "chdir" and v.get("path"):
            th.cwd = join(th.cwd, str(v["path"]))
        elif th is not None and res == 0 and name in ("setuid", "setresuid"):
            uid = v.get("uid", v.get("euid"))
            th.uid = uid if isinstance(uid, int) else th.uid
        elif name == "procexit":
            self.threads.pop(tid, None)
        table = self.fd_table(tid)
        if name in OPENS and res >= 0:
            path = join(self.base(tid, v.get("dirfd")), str(v.get("name") or v.get("path") or ""))
            table[res] = Fd("directory" if int(v.get("flags") or 0) & 1 << 10 else "file", path)
        elif name == "socket" and res >= 0:
            table[res] = Fd(_SOCKET_TYPES.get(int(v.get("domain") or 0), "unknown"))
        elif name in ("pipe", "pipe2") and res >= 0:
            for key in ("fd1", "fd2"):
                if isinstance(v.get(key), int):
                    table[v[key]] = Fd("pipe")
        elif name == "connect" and (res >= 0 or res == -115) and isinstance(v.get("fd"), int) and v.get("tuple"):
            fd = table.setdefault(v["fd"], Fd("ipv4"))
            fd.name = str(v["tuple"])
        elif name == "bind" and res == 0 and isinstance(v.get("fd"), int) and v.get("addr"):
            table.setdefault(v["fd"], Fd("ipv4")).name = str(v["addr"])
        elif name in ("accept", "accept4") and res >= 0:
            tup = str(v.get("tuple") or "")
            table[res] = Fd("ipv6" if tup.count(":") > 2 else "ipv4", tup, "tcp")
        elif name in DUPS and res >= 0 and isinstance(v.get("oldfd"), int) and v["oldfd"] in table:
            table[res] = table[v["oldfd"]]
        elif name == "close" and res >= 0 and isinstance(v.get("fd"), int):
            table.pop(v["fd"], None)


def argv(raw: object) -> list[str]:
    text = raw.decode("utf-8", "surrogateescape") if isinstance(raw, bytes) else str(raw or "")
    return [a for a in text.split("\0") if a]


def join(base: str, path: str) -> str:
    if path.startswith("/") or not path:
        return path
    return base.rstrip("/") + "/" + path
