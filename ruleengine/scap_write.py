# SPDX-License-Identifier: Apache-2.0
"""``lanner record --format scap``: events -> a ``.scap`` capture that sysdig and Falco read.

A capture is a section header (SHB), machine info (MI), the process list (PL_V9, one entry per thread), one fd list
(FDL) per thread with the fds its events use, then each event as an **enter and an exit** event block, the way
captures of the 2022 libs hold them (sysdig 0.29, the oracle in tests, reads those). Each event type is written as
the newest event version that sysdig knows, with as many exit parameters as its table has: parameters that later
libs moved from enter to exit events go on the enter event, where those readers expect them (newer libs convert such
captures on reading). Blocks are version 1 (no parameter count in the header: readers infer it).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from typing import Any

from lanner.model import Event, FdType, L4Proto
from ruleengine.scap_codec import encode, sockaddr, tuple_
from ruleengine.scap_table import EVENTS

__all__ = ["WRITTEN", "ppm_open_flags", "write_scap"]

SHB, MI, PL_V9, FDL, EV = 0x0A0D0D0A, 0x201, 0x215, 0x203, 0x204
SHB_MAGIC = 0x1A2B3C4D
AT_FDCWD = -100

# event type -> (enter code, exit code, exit parameters written)
_LAYOUT: dict[str, tuple[int, int | None, int]] = {
    "open": (2, 3, 5),
    "openat": (306, 307, 6),
    "creat": (58, 59, 4),
    "close": (4, 5, 1),
    "socket": (18, 19, 1),
    "bind": (20, 21, 2),
    "listen": (24, 25, 1),
    "connect": (22, 23, 2),
    "accept": (246, 247, 5),
    "accept4": (248, 249, 5),
    "sendto": (30, 31, 2),
    "sendmsg": (48, 49, 2),
    "recvfrom": (34, 35, 3),
    "recvmsg": (52, 53, 4),
    "execve": (292, 293, 20),
    "clone": (222, 223, 20),
    "fork": (224, 225, 20),
    "vfork": (226, 227, 20),
    "procexit": (186, None, 4),
    "unlink": (300, 301, 2),
    "unlinkat": (302, 303, 4),
    "rename": (174, 175, 3),
    "renameat": (176, 177, 5),
    "renameat2": (318, 319, 6),
    "mkdir": (276, 277, 2),
    "mkdirat": (304, 305, 4),
    "rmdir": (278, 279, 2),
    "chmod": (314, 315, 3),
    "fchmod": (316, 317, 3),
    "fchmodat": (312, 313, 4),
    "symlink": (178, 179, 3),
    "symlinkat": (180, 181, 4),
    "link": (308, 309, 3),
    "linkat": (310, 311, 6),
    "setuid": (198, 199, 1),
    "setgid": (200, 201, 1),
    "setresuid": (192, 193, 1),
    "setresgid": (194, 195, 1),
    "ptrace": (168, 169, 3),
    "dup": (124, 125, 1),
    "dup2": (124, 125, 1),
    "dup3": (124, 125, 1),
    "chdir": (94, 95, 2),
    "fchdir": (96, 97, 1),
    "kill": (128, 129, 1),
    "setns": (240, 241, 1),
    "unshare": (284, 285, 1),
    "pipe": (60, 61, 4),
}
WRITTEN = frozenset(_LAYOUT)

# kernel open flags (as Lanner stores them) -> PPM_O_* bits (driver/ppm_events_public.h)
_KERNEL_TO_PPM = (
    (0o100, 1 << 2),
    (0o2000, 1 << 3),
    (0o10000, 1 << 4),
    (0o200, 1 << 5),
    (0o4000, 1 << 6),
    (0o4000000, 1 << 7),
    (0o1000, 1 << 8),
    (0o40000, 1 << 9),
    (0o200000, 1 << 10),
    (0o100000, 1 << 11),
    (0o2000000, 1 << 12),
    (0o20000000, 1 << 13),
    (1 << 28, 1 << 14),
)
# kernel CLONE_* bits -> PPM clone flag bits
_CLONE_TO_PPM = (
    (0x400, 1 << 0),
    (0x200, 1 << 1),
    (0x80000000, 1 << 2),
    (0x8000000, 1 << 3),
    (0x40000000, 1 << 4),
    (0x20000, 1 << 5),
    (0x20000000, 1 << 6),
    (0x4000000, 1 << 7),
    (0x8000, 1 << 8),
    (0x100000, 1 << 9),
    (0x2000, 1 << 10),
    (0x800, 1 << 11),
    (0x40000, 1 << 12),
    (0x10000, 1 << 13),
    (0x800000, 1 << 14),
    (0x100, 1 << 15),
    (0x10000000, 1 << 20),
    (0x200000, 1 << 23),
    (0x1000000, 1 << 24),
    (0x80000, 1 << 25),
    (0x4000, 1 << 27),
    (0x2000000, 1 << 28),
)
# Lanner's kernel ptrace request numbers -> PPM_PTRACE_* (enum ptrace_requests)
_PTRACE_TO_PPM = {
    0: 1,
    1: 2,
    2: 3,
    3: 4,
    4: 5,
    5: 6,
    6: 7,
    7: 8,
    8: 9,
    9: 10,
    16: 11,
    17: 12,
    24: 13,
    0x4200: 14,
    0x4201: 15,
    0x4202: 16,
    0x4203: 17,
    0x4204: 18,
    0x4205: 19,
    0x4206: 20,
    0x4207: 21,
    0x4208: 22,
    0x4209: 23,
    0x420A: 24,
    0x420B: 25,
    12: 26,
    13: 27,
    14: 28,
    15: 29,
}


def _bits(value: int, table: tuple[tuple[int, int], ...]) -> int:
    return sum(ppm for kernel, ppm in table if value & kernel == kernel)


def ppm_open_flags(kernel: int) -> int:
    """Kernel ``O_*`` flags -> the driver's ``PPM_O_*`` encoding."""
    return {0: 1, 1: 2, 2: 3}.get(kernel & 3, 0) | _bits(kernel, _KERNEL_TO_PPM)


def _block(kind: int, body: bytes) -> bytes:
    pad = (-len(body)) % 4
    total = 8 + len(body) + pad + 4
    return struct.pack("<II", kind, total) + body + b"\0" * pad + struct.pack("<I", total)


def _s16(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    return struct.pack("<H", len(raw)) + raw


def _blob(items: Iterable[str]) -> bytes:
    return b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in items)


def _tid(ev: Event) -> int:
    """The thread id an event is written under (a recording may only know the pid seen from a namespace)."""
    p = ev.proc
    return p.tid or p.pid or p.vpid or 1


def _uid(ev: Event) -> int:
    p = ev.proc
    return p.euid if p.euid is not None else (p.uid if p.uid is not None else 0)


def _gid(ev: Event) -> int:
    p = ev.proc
    return p.egid if p.egid is not None else (p.gid if p.gid is not None else 0)


def _proc_entry(ev: Event) -> bytes:
    p = ev.proc
    tid = _tid(ev)
    args, env = _blob(p.args), _blob(p.env)
    ppid = p.ppid or (ev.ancestors[0].pid if ev.ancestors and ev.ancestors[0].pid else 0)
    body = (
        struct.pack("<QQQQQ", tid, p.pid or tid, ppid, p.sid or 0, p.vpgid or 0)
        + _s16(p.comm)
        + _s16(p.exe)
        + _s16(p.exepath)
        + struct.pack("<H", len(args))
        + args
        + _s16(p.cwd or "/")
        + struct.pack("<QIIIIIIQQ", p.fd_limit or 1024, 0, _uid(ev), _gid(ev), 0, 0, 0, 0, 0)
        + struct.pack("<H", len(env))
        + env
        + struct.pack("<qq", p.vtid or tid, p.vpid or p.pid or tid)
        + _s16("")
        + _s16("/")
        + struct.pack("<QI", 0, p.tty or 0)
    )
    return struct.pack("<I", 4 + len(body)) + body


def _fd_entry(ev: Event) -> bytes | None:
    """The event's fd as an entry of its thread's FDL (V1) block: ``i64 fd, u64 ino, u8 type`` and the type's
    payload; files and IPv4/IPv6 sockets, the fds the events below name without opening them."""
    fd = ev.fd
    if fd is None or fd.num < 0:
        return None
    head = struct.pack("<qQ", fd.num, fd.ino or 0)
    proto = {L4Proto.TCP: 2, L4Proto.UDP: 3}.get(fd.l4proto, 0)
    ports = struct.pack("<HHB", fd.client_port or 0, fd.server_port or 0, proto)
    if fd.type == FdType.IPV4 and len(fd.client_ip) == 4 and len(fd.server_ip) == 4:
        return head + b"\x03" + fd.client_ip + fd.server_ip + ports
    if fd.type == FdType.IPV6 and len(fd.client_ip) == 16 and len(fd.server_ip) == 16:
        return head + b"\x04" + fd.client_ip + fd.server_ip + ports
    if fd.type == FdType.DIRECTORY and fd.path:
        return head + b"\x02" + _s16(fd.path)
    if fd.type == FdType.FILE and fd.path:  # SCAP_FD_FILE_V2: open flags, then the name
        return head + b"\x10" + struct.pack("<I", ppm_open_flags(fd.open_flags or 0)) + _s16(fd.path)
    return None


def _arg(ev: Event, name: str) -> Any:
    value = ev.arg(name)
    return value.decode("utf-8", "surrogateescape") if isinstance(value, bytes) and name != "data" else value


def _tuple(ev: Event) -> bytes | None:
    fd = ev.fd
    if fd is None or not (fd.client_ip or fd.server_ip):
        return None
    return tuple_(fd.client_ip, fd.client_port, fd.server_ip, fd.server_port)


def _remote(ev: Event) -> bytes | None:
    fd = ev.fd
    if fd is None:
        return None
    if fd.server_ip:
        return sockaddr(fd.server_ip, fd.server_port)
    return sockaddr(b"", None, fd.path) if fd.path else None


def _fd_of(ev: Event, name: str) -> Any:
    value = ev.arg(name)
    if value is None and ev.fd is not None:
        return ev.fd.num
    return value


def _proc_param(ev: Event, name: str) -> Any:
    p = ev.proc
    values: dict[str, Callable[[], Any]] = {
        "exe": lambda: p.exe,
        "args": lambda: _blob(p.args),
        "tid": lambda: _tid(ev),
        "pid": lambda: p.pid or _tid(ev),
        "cwd": lambda: p.cwd,
        "ptid": lambda: p.ppid or (ev.ancestors[0].pid if ev.ancestors else 0),
        "fdlimit": lambda: p.fd_limit or 0,
        "comm": lambda: p.comm,
        "env": lambda: _blob(p.env),
        "cgroups": lambda: _blob(p.cgroups),
        "tty": lambda: p.tty or 0,
        "pgid": lambda: p.vpgid or p.pgid,
        "loginuid": lambda: p.loginuid,
        "uid": lambda: _uid(ev),
        "gid": lambda: _gid(ev),
        "vtid": lambda: p.vtid or _tid(ev),
        "vpid": lambda: p.vpid or p.pid or _tid(ev),
        "vm_size": lambda: p.vm_size_kb or 0,
        "vm_rss": lambda: p.vm_rss_kb or 0,
        "vm_swap": lambda: p.vm_swap_kb or 0,
        "filename": lambda: p.exepath or p.exe,
    }
    get = values.get(name)
    return get() if get is not None else 0


def _value(ev: Event, name: str, pt: str, exit_: bool) -> Any:
    """The value of one parameter of ``ev``'s enter or exit event, from its arguments and facts."""
    family = ev.type in ("execve", "clone", "fork", "vfork")
    if name == "res" and exit_:
        return ev.res
    if name == "fd" and exit_ and ev.type in ("open", "openat", "creat", "socket", "accept", "accept4"):
        return ev.res if ev.res < 0 else (ev.fd.num if ev.fd is not None else ev.res)
    if family and name != "flags":
        return _proc_param(ev, name)
    if ev.type in ("open", "openat", "creat") and ev.fd is not None:
        if name == "name":
            return ev.arg("name") or ev.fd.path
        if name == "flags":
            flags = ev.arg("flags")
            return ppm_open_flags(flags if isinstance(flags, int) else (ev.fd.open_flags or 0))
    if name == "flags" and ev.type in ("clone", "fork", "vfork"):
        flags = ev.arg("flags")
        return _bits(flags, _CLONE_TO_PPM) if isinstance(flags, int) else 0
    if name == "request":
        request = ev.arg("request")
        return _PTRACE_TO_PPM.get(request, 0) if isinstance(request, int) else 0
    if pt == "SOCKTUPLE":
        return _tuple(ev)
    if pt == "SOCKADDR":
        return _remote(ev)
    if name == "fd" and not exit_ and ev.type in ("dup", "dup2", "dup3"):
        return ev.arg("oldfd")
    if name in ("fd", "oldfd") and pt == "FD":
        return _fd_of(ev, name)
    if name == "dirfd" and ev.arg(name) is None:
        return AT_FDCWD
    value = _arg(ev, name)
    if value is None and pt in ("CHARBUF", "FSPATH", "FSRELPATH") and name in ("path", "name", "filename"):
        value = ev.fd.path if ev.fd is not None and ev.fd.path else ""
    return value


def _param(pt: str, value: object) -> bytes:
    """A parameter's bytes; nothing known gives 0 or an empty string (readers take fixed-size types at their size
    whatever length the event says)."""
    if value is None and pt not in ("BYTEBUF", "SOCKTUPLE", "SOCKADDR", "FDLIST"):
        value = "" if pt in ("CHARBUF", "FSPATH", "FSRELPATH") else 0
    return encode(pt, value)


def _event_block(ev: Event, code: int, count: int | None, exit_: bool, ts: int) -> bytes:
    _name, params = EVENTS[code]
    raw = [_param(pt, _value(ev, pname, pt, exit_)) for pname, pt in params[:count]]
    lens = b"".join(struct.pack("<H", len(x)) for x in raw)
    total = 22 + len(lens) + sum(len(x) for x in raw)
    head = struct.pack("<QQIH", ts, _tid(ev), total, code)
    return _block(EV, struct.pack("<H", ev.cpu) + head + lens + b"".join(raw))


def write_scap(path: str, events: Iterable[Event], hostname: str = "lanner") -> tuple[int, int]:
    """Write a capture of the events, their threads and fds; returns (events written, events skipped)."""
    evs = list(events)
    threads: dict[int, bytes] = {}
    fds: dict[int, dict[int, bytes]] = {}
    for ev in evs:
        tid = _tid(ev)
        threads.setdefault(tid, _proc_entry(ev))
        entry = _fd_entry(ev) if ev.type not in ("open", "openat", "creat", "socket", "accept", "accept4") else None
        if entry is not None and ev.fd is not None:
            fds.setdefault(tid, {}).setdefault(ev.fd.num, entry)
    written = skipped = 0
    with open(path, "wb") as out:
        out.write(_block(SHB, struct.pack("<IHHq", SHB_MAGIC, 1, 2, -1)))
        host = hostname.encode()[:127].ljust(128, b"\0")
        out.write(_block(MI, struct.pack("<IQQ", 1, 0, 4194304) + host + struct.pack("<QQQQ", 0, 0, 0, 0)))
        if threads:
            out.write(_block(PL_V9, b"".join(threads.values())))
        for tid, table in fds.items():
            out.write(_block(FDL, struct.pack("<Q", tid) + b"".join(table.values())))
        for ev in evs:
            layout = _LAYOUT.get(ev.type)
            if layout is None:
                skipped += 1
                continue
            enter, exit_code, count = layout
            ts = ev.timing.event_ns
            if exit_code is None:  # an event with no exit (procexit): the enter event is the event
                out.write(_event_block(ev, enter, count, False, ts))
            else:
                out.write(_event_block(ev, enter, None, False, max(ts - 1, 0)))
            if exit_code is not None:
                out.write(_event_block(ev, exit_code, count, True, ts))
            written += 1
    return written, skipped
