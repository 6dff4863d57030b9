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


def _read_proclist(body: bytes, threads: dict[int, _Thread]) -> None:
    off = 0
    while off + 4 <= len(body):
        (size,) = struct.unpack_from("<I", body, off)
        if size < 44 or off + size > len(body):
            return
        e = body[off + 4 : off + size]
        tid, pid, ptid, _sid, _vpgid = struct.unpack_from("<QQQQQ", e, 0)
        pos, strs = 40, []
        for _ in range(5):
            (n,) = struct.unpack_from("<H", e, pos)
            strs.append(e[pos + 2 : pos + 2 + n])
            pos += 2 + n
        uid = struct.unpack_from("<I", e, pos + 12)[0] if pos + 16 <= len(e) else 0
        args = [a.decode("utf-8", "surrogateescape") for a in strs[3].split(b"\0") if a]
        threads[tid] = _Thread(tid, pid, ptid, _str(strs[0]), _str(strs[1]), _str(strs[2]), args, _str(strs[4]), uid)
        off += size


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


def _event_record(body: bytes, kind: int, threads: dict[int, _Thread]) -> dict[str, Any] | None:
    off = 6 if kind in (EVF, EVF_V2, EVF_V2_LARGE) else 2
    ts, tid, length, etype = struct.unpack_from("<QQIH", body, off)
    hdr = 22
    v2 = kind in (EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE)
    if etype not in (OPEN_X, OPENAT_2_X):
        return None
    if v2:
        (nparams,) = struct.unpack_from("<I", body, off + 22)
        hdr = 26
    else:
        nparams = 6 if etype == OPENAT_2_X else 4
    lsize = 4 if kind in (EV_V2_LARGE, EVF_V2_LARGE) else 2
    ev = body[off : off + length]
    lens = []
    for n in range(nparams, 0, -1):  # V1: trim until the lengths add up, as libscap does
        lens = list(struct.unpack_from(f"<{n}{'I' if lsize == 4 else 'H'}", ev, hdr))
        if v2 or hdr + n * lsize + sum(lens) == length:
            break
    params, pos = [], hdr + len(lens) * lsize
    for n in lens:
        params.append(ev[pos : pos + n])
        pos += n
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
    if fd >= 0:
        rec["fd.num"] = fd
    if th is not None:
        rec.update(
            {
                "proc.pid": th.pid,
                "proc.name": th.comm,
                "proc.exe": th.exe,
                "proc.exepath": th.exepath,
                "proc.args": th.args,
                "user.uid": th.uid,
            }
        )
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
            elif kind in (PL_V9,):
                _read_proclist(body, threads)
            elif kind in (EV, EVF, EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE):
                rec = _event_record(body, kind, threads)
                if rec is not None:
                    yield rec
