# SPDX-License-Identifier: Apache-2.0
"""``.scap`` capture files (the pcapng-like format of libscap, read by Falco and ``sysdig -r``): a writer and a reader.

Format digest: ``shared/reference/scap-format.md``. Blocks are ``u32 type | u32 total length | body | padding |
u32 total length``, little-endian. A capture is a section header (SHB), machine info (MI), the process list (PL_V9:
one length-prefixed entry per thread) and event blocks. Events are written as version-1 EV blocks (no parameter
count in the header: readers take it from their event table and trim trailing parameters until the lengths add up),
so captures read back with old and new libscap alike; the reader takes V1 and V2 EV/EVF blocks.

Lanner writes and reads the file-open exit events (``openat``/``open``, the events most rules start from) with the
process table; other event types are counted and skipped by the reader. Parameters use the driver's encodings:
``PT_FD`` i64, strings NUL-terminated, open flags as ``PPM_O_*`` bits.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any, BinaryIO

from lanner.model import Event

SHB, MI, PL_V9, EV, EVF, EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE = (
    0x0A0D0D0A,
    0x201,
    0x215,
    0x204,
    0x208,
    0x216,
    0x217,
    0x221,
    0x222,
)
SHB_MAGIC = 0x1A2B3C4D
OPEN_X, OPENAT_2_X = 3, 307  # PPME_SYSCALL_OPEN_X, PPME_SYSCALL_OPENAT_2_X
AT_FDCWD = -100

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
# PPM_O_* bits -> names, in the driver's file_flags print order
_PPM_NAMES = (
    ("O_LARGEFILE", 1 << 11),
    ("O_DIRECTORY", 1 << 10),
    ("O_DIRECT", 1 << 9),
    ("O_TRUNC", 1 << 8),
    ("O_SYNC", 1 << 7),
    ("O_NONBLOCK", 1 << 6),
    ("O_EXCL", 1 << 5),
    ("O_DSYNC", 1 << 4),
    ("O_APPEND", 1 << 3),
    ("O_CREAT", 1 << 2),
    ("O_RDWR", 3),
    ("O_WRONLY", 2),
    ("O_RDONLY", 1),
    ("O_CLOEXEC", 1 << 12),
    ("O_TMPFILE", 1 << 13),
    ("O_F_CREATED", 1 << 14),
)


def ppm_open_flags(kernel: int) -> int:
    """Kernel ``O_*`` flags -> the driver's ``PPM_O_*`` encoding."""
    out = {0: 1, 1: 2, 2: 3}.get(kernel & 3, 0)
    for k, p in _KERNEL_TO_PPM:
        if kernel & k == k:
            out |= p
    return out


def render_ppm_open_flags(ppm: int) -> str:
    """``PPM_O_*`` bits as ``evt.arg.flags`` prints them."""
    names = []
    rest = ppm
    for name, bit in _PPM_NAMES:
        if bit in (1, 2, 3):
            if (ppm & 3) == bit:
                names.append(name)
        elif ppm & bit:
            names.append(name)
            rest &= ~bit
    return "|".join(names) if names else "O_NONE"


# --- writer ---------------------------------------------------------------------------------------------------
def _block(kind: int, body: bytes) -> bytes:
    pad = (-len(body)) % 4
    total = 8 + len(body) + pad + 4
    return struct.pack("<II", kind, total) + body + b"\0" * pad + struct.pack("<I", total)


def _s16(text: str) -> bytes:
    raw = text.encode("utf-8", "surrogateescape")
    return struct.pack("<H", len(raw)) + raw


def _tid(ev: Event) -> int:
    """The thread id an event is written under (a recording may only know the pid seen from a namespace)."""
    p = ev.proc
    return p.tid or p.pid or p.vpid or 1


def _proc_entry(ev: Event) -> bytes:
    p = ev.proc
    tid = _tid(ev)
    args = b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in p.args)
    env = b"".join(a.encode("utf-8", "surrogateescape") + b"\0" for a in p.env)
    ppid = ev.ancestors[0].pid if ev.ancestors and ev.ancestors[0].pid else 0
    uid = p.euid if p.euid is not None else (p.uid if p.uid is not None else 0)
    gid = p.egid if p.egid is not None else (p.gid if p.gid is not None else 0)
    body = (
        struct.pack("<QQQQQ", tid, p.pid or tid, ppid, p.sid or 0, p.vpgid or 0)
        + _s16(p.comm)
        + _s16(p.exe)
        + _s16(p.exepath)
        + struct.pack("<H", len(args))
        + args
        + _s16(p.cwd or "/")
        + struct.pack("<QIIIIIIQQ", p.fd_limit or 1024, 0, uid, gid, 0, 0, 0, 0, 0)
        + struct.pack("<H", len(env))
        + env
        + struct.pack("<qq", p.vtid or tid, p.vpid or p.pid or tid)
        + _s16("")
        + _s16("/")
        + struct.pack("<QI", 0, p.tty or 0)
    )
    return struct.pack("<I", 4 + len(body)) + body


def _open_event(ev: Event) -> bytes:
    fd = ev.fd
    assert fd is not None
    flags = ev.arg("flags")
    kernel_flags = flags if isinstance(flags, int) else (fd.open_flags or 0)
    params = [
        struct.pack("<q", ev.res if ev.res < 0 else fd.num),
        struct.pack("<q", AT_FDCWD),
        fd.path.encode("utf-8", "surrogateescape") + b"\0",
        struct.pack("<I", ppm_open_flags(kernel_flags)),
        struct.pack("<I", fd.mode or 0),
        struct.pack("<I", fd.dev or 0),
    ]
    lens = b"".join(struct.pack("<H", len(x)) for x in params)
    total = 22 + len(lens) + sum(len(x) for x in params)
    head = struct.pack("<QQIH", ev.timing.event_ns, _tid(ev), total, OPENAT_2_X)
    return struct.pack("<H", ev.cpu) + head + lens + b"".join(params)


def write_scap(path: str, events: Iterable[Event], hostname: str = "lanner") -> tuple[int, int]:
    """Write a capture of the events' processes and file opens; returns (events written, events skipped)."""
    evs = list(events)
    threads: dict[int, bytes] = {}
    for ev in evs:
        if _tid(ev) not in threads:
            threads[_tid(ev)] = _proc_entry(ev)
    written = skipped = 0
    with open(path, "wb") as out:
        out.write(_block(SHB, struct.pack("<IHHq", SHB_MAGIC, 1, 2, -1)))
        host = hostname.encode()[:127].ljust(128, b"\0")
        out.write(_block(MI, struct.pack("<IQQ", 1, 0, 4194304) + host + struct.pack("<QQQQ", 0, 0, 0, 0)))
        if threads:
            out.write(_block(PL_V9, b"".join(threads.values())))
        for ev in evs:
            if ev.type in ("open", "openat") and ev.fd is not None and ev.fd.path:
                out.write(_block(EV, _open_event(ev)))
                written += 1
            else:
                skipped += 1
    return written, skipped


# --- reader ---------------------------------------------------------------------------------------------------
@dataclass
class _Thread:
    tid: int
    pid: int
    ptid: int
    comm: str
    exe: str
    exepath: str
    args: list[str]
    cwd: str
    uid: int


def _str(raw: bytes) -> str:
    return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


# PL block versions: V2..V9 = 0x207, 0x209, 0x210..0x215; which fields each has (libscap's reader)
_PL_VERSION = {0x207: 2, 0x209: 3, 0x210: 4, 0x211: 5, 0x212: 6, 0x213: 7, 0x214: 8, PL_V9: 9}


class _Cursor:
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


def _read_proclist(body: bytes, version: int, threads: dict[int, _Thread]) -> None:
    """One thread per entry. V9 entries carry their length; older ones are walked field by field (V6-V8 carry
    fields after ``root`` that are not read here, so only their first entry is taken)."""
    cur = _Cursor(body)
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
        threads[tid] = _Thread(
            tid,
            pid,
            ptid,
            _str(comm),
            _str(exe),
            _str(exepath),
            [a.decode("utf-8", "surrogateescape") for a in args.split(b"\0") if a],
            _str(cwd),
            uid,
        )
        if end is not None:
            cur.pos = end
        elif version > 5:
            return


def _blocks(fh: BinaryIO) -> Iterator[tuple[int, bytes]]:
    while True:
        head = fh.read(8)
        if len(head) < 8:
            return
        kind, total = struct.unpack("<II", head)
        if total < 12:
            raise ValueError(f"corrupted block of type {kind:#x} (length {total})")
        body = fh.read(total - 8)
        if len(body) < total - 8:
            raise ValueError("the capture ends inside a block")
        yield kind, body[:-4]


_EXECVE_X = frozenset({155, 173, 215, 231, 283, 289, 293, 331})
_CLONE_X = frozenset({157, 217, 219, 221, 223, 225, 227})
_WANTED = _EXECVE_X | _CLONE_X | {OPEN_X, OPENAT_2_X}


def _params(ev: bytes, hdr: int, lsize: int, nparams: int | None, length: int) -> list[bytes]:
    """The parameter values of one event. V1 blocks do not say how many there are: like libscap, take the largest
    count whose lengths add up to the event length (libscap starts from its event table; this starts from 32)."""
    fmt = "I" if lsize == 4 else "H"
    counts = [nparams] if nparams is not None else range(min(32, (length - hdr) // lsize), 0, -1)
    for n in counts:
        lens = struct.unpack_from(f"<{n}{fmt}", ev, hdr)
        if nparams is not None or hdr + n * lsize + sum(lens) == length:
            out, pos = [], hdr + n * lsize
            for size in lens:
                out.append(ev[pos : pos + size])
                pos += size
            return out
    return []


def _track_process(etype: int, tid: int, p: list[bytes], threads: dict[int, _Thread]) -> None:
    """Follow clone/fork and execve exits, as libsinsp's thread table does, for the facts file opens need."""
    if len(p) < 7:
        return
    res = struct.unpack("<q", p[0][:8])[0] if len(p[0]) >= 8 else -1
    if res < 0:
        return
    if etype in _CLONE_X and res > 0:  # the parent's side: the child starts as a copy of its parent
        parent = threads.get(tid)
        if parent is not None and res not in threads:
            threads[res] = _Thread(
                res, parent.pid, tid, parent.comm, parent.exe, parent.exepath, parent.args, parent.cwd, parent.uid
            )
        return
    old = threads.get(tid)
    exe = _str(p[1])
    comm = _str(p[13]) if len(p) > 13 and p[13] else exe.rsplit("/", 1)[-1]
    args = [a.decode("utf-8", "surrogateescape") for a in p[2].split(b"\0") if a]
    pid, ptid = (struct.unpack("<q", p[i][:8])[0] if len(p[i]) >= 8 else 0 for i in (4, 5))
    threads[tid] = _Thread(
        tid,
        pid,
        ptid,
        comm,
        exe,
        old.exepath if old and etype in _CLONE_X else "",
        args,
        _str(p[6]),
        old.uid if old else 0,
    )


def _event_record(body: bytes, kind: int, threads: dict[int, _Thread]) -> dict[str, Any] | None:
    off = 6 if kind in (EVF, EVF_V2, EVF_V2_LARGE) else 2
    ts, tid, length, etype = struct.unpack_from("<QQIH", body, off)
    if etype not in _WANTED:
        return None
    v2 = kind in (EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE)
    nparams = struct.unpack_from("<I", body, off + 22)[0] if v2 else None
    lsize = 4 if kind in (EV_V2_LARGE, EVF_V2_LARGE) else 2
    params = _params(body[off : off + length], 26 if v2 else 22, lsize, nparams, length)
    if etype in _EXECVE_X or etype in _CLONE_X:
        _track_process(etype, tid, params, threads)
        return None
    if etype == OPENAT_2_X and len(params) >= 4:
        fd, name, flags = struct.unpack("<q", params[0])[0], params[2], struct.unpack("<I", params[3][:4])[0]
    elif etype == OPEN_X and len(params) >= 3:
        fd, name, flags = struct.unpack("<q", params[0])[0], params[1], struct.unpack("<I", params[2][:4])[0]
    else:
        return None
    th = threads.get(tid)
    path = _str(name)
    if th is not None and not path.startswith("/"):
        path = th.cwd.rstrip("/") + "/" + path
    rec: dict[str, Any] = {
        "evt.type": "openat" if etype == OPENAT_2_X else "open",
        "evt.dir": "<",
        "evt.rawtime": ts,
        "thread.tid": tid,
        "fd.name": path,
        "evt.arg.flags": render_ppm_open_flags(flags),
        "evt.rawres": fd,
    }
    rec["fd.num"] = fd if fd >= 0 else -1  # a failed open has no fd: libsinsp shows -1
    if th is not None:
        rec.update(
            {"proc.pid": th.pid, "proc.name": th.comm, "proc.exe": th.exe, "proc.args": th.args, "user.uid": th.uid}
        )
        if th.exepath:
            rec["proc.exepath"] = th.exepath
        parent = threads.get(th.ptid)
        if parent is not None:
            rec["proc.aname[1]"] = parent.comm
    return rec


def scap_records(path: str) -> Iterator[dict[str, Any]]:
    """Field records of the capture's file-open exit events, with their thread's process facts."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
        threads: dict[int, _Thread] = {}
        for kind, body in _blocks(fh):  # type: ignore[arg-type]
            if kind == SHB:
                if struct.unpack_from("<I", body, 0)[0] != SHB_MAGIC:
                    raise ValueError("not a little-endian scap capture")
            elif kind in _PL_VERSION:
                _read_proclist(body, _PL_VERSION[kind], threads)
            elif kind in (EV, EVF, EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE):
                rec = _event_record(body, kind, threads)
                if rec is not None:
                    yield rec
