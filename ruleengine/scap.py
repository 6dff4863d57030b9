# SPDX-License-Identifier: Apache-2.0
"""``.scap`` capture files (the pcapng-like format of libscap, read by Falco and ``sysdig -r``): the reader.

Format digest: ``shared/reference/scap-format.md``. Blocks are ``u32 type | u32 total length | body | padding |
u32 total length``, little-endian: a section header (SHB), machine info, the process list (PL, one entry per thread),
fd lists (FDL, one per thread), then event blocks (EV/EVF, versions 1 and 2). Every event type of
:mod:`ruleengine.scap_table` is decoded by its code, old versions included.

As libsinsp does, the reader keeps a thread table (from the PL blocks, clone/fork/execve exits, chdir, setuid and
procexit) and an fd table (FDL blocks, opens, sockets, connect/accept, dup, close), and yields one record of Falco
field names per **exit** event (and per procexit). An enter event's parameters go to its exit event when that lacks
them, as libs' converter does for old captures. The writer is :mod:`ruleengine.scap_write`.
"""

from __future__ import annotations

import gzip
import struct
from collections.abc import Iterator
from typing import Any, BinaryIO

from ruleengine.scap_codec import decode
from ruleengine.scap_state import DUPS, FORKS, OPENS, PL_VERSION, Fd, State, join, read_fdlist, read_proclist
from ruleengine.scap_table import EVENTS
from ruleengine.scap_write import _CLONE_TO_PPM, _PTRACE_TO_PPM, SHB, SHB_MAGIC, ppm_open_flags, write_scap

__all__ = ["ppm_open_flags", "render_ppm_open_flags", "scap_records", "write_scap"]

EV, EVF, EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE = 0x204, 0x208, 0x216, 0x217, 0x221, 0x222
_EVENT_BLOCKS = frozenset({EV, EVF, EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE, 0x8010ABCD})
_FDL_BLOCKS = frozenset({0x203, 0x218, 0x8001ABCD})
PROCEXIT_1_E = 186
_PPM_TO_CLONE = tuple((ppm, kernel) for kernel, ppm in _CLONE_TO_PPM)
_PPM_TO_PTRACE = {ppm: kernel for kernel, ppm in _PTRACE_TO_PPM.items()}

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


# --- reader ---------------------------------------------------------------------------------------------------
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


def _params(ev: bytes, hdr: int, lsize: int, nparams: int | None, length: int, most: int) -> list[bytes]:
    """The parameter values of one event. V1 blocks do not say how many there are: like libscap, take the largest
    count up to the event table's (``most``) whose lengths add up to the event length."""
    fmt = "I" if lsize == 4 else "H"
    counts = [nparams] if nparams is not None else range(min(most, (length - hdr) // lsize), -1, -1)
    for n in counts:
        lens = struct.unpack_from(f"<{n}{fmt}", ev, hdr)
        if nparams is not None or hdr + n * lsize + sum(lens) == length:
            out, pos = [], hdr + n * lsize
            for size in lens:
                out.append(ev[pos : pos + size])
                pos += size
            return out
    return []


def _event_record(body: bytes, kind: int, state: State) -> dict[str, Any] | None:
    off = 6 if kind in (EVF, EVF_V2, EVF_V2_LARGE) else 2
    ts, tid, length, code = struct.unpack_from("<QQIH", body, off)
    entry = EVENTS.get(code)
    if entry is None:
        return None
    name, table = entry
    v2 = kind in (EV_V2, EVF_V2, EV_V2_LARGE, EVF_V2_LARGE)
    nparams = struct.unpack_from("<I", body, off + 22)[0] if v2 else None
    lsize = 4 if kind in (EV_V2_LARGE, EVF_V2_LARGE) else 2
    raw = _params(body[off : off + length], 26 if v2 else 22, lsize, nparams, length, len(table))
    values = {p: decode(pt, r) for (p, pt), r in zip(table, raw, strict=False)}
    if code % 2 == 0 and code != PROCEXIT_1_E:  # an enter event: its parameters wait for the exit
        state.enters[tid] = (code, values)
        return None
    enter = state.enters.pop(tid, None)
    if enter is not None and enter[0] == code - 1:
        for key, value in enter[1].items():
            if name in DUPS and key == "fd":
                key = "oldfd"
            if values.get(key) is None:
                values[key] = value
    procexit = code == PROCEXIT_1_E
    first = values.get(table[0][0]) if table else None
    res = first if isinstance(first, int) and not procexit else 0
    # libsinsp updates its tables before rules see the exit event, except that a closed fd and an exited thread
    # go only after it
    if name == "close" or procexit:
        rec = _record(name, ts, tid, values, res, state, procexit)
        state.track(name, tid, values, res)
        return rec
    state.track(name, tid, values, res)
    return _record(name, ts, tid, values, res, state, procexit)


def _record(name: str, ts: int, tid: int, v: dict[str, Any], res: int, state: State, procexit: bool) -> dict[str, Any]:
    rec: dict[str, Any] = {"evt.type": name, "evt.rawtime": ts, "thread.tid": tid}
    if not procexit:
        rec["evt.rawres"] = res
    th = state.threads.get(tid)
    if th is not None:
        rec.update(
            {
                "proc.pid": th.pid,
                "proc.name": th.comm,
                "proc.exe": th.exe,
                "proc.args": th.args,
                "user.uid": th.uid,
                "proc.cwd": th.cwd,
            }
        )
        if th.exepath:
            rec["proc.exepath"] = th.exepath
        parent = state.threads.get(th.ptid)
        if parent is not None:
            rec["proc.aname[1]"] = parent.comm
    for key, value in v.items():
        if value is None or isinstance(value, bytes):
            continue
        if key == "flags" and name in OPENS | {"dup3", "pipe2"}:
            rec["evt.arg.flags"] = render_ppm_open_flags(value)
        elif key == "flags" and name in FORKS:
            rec["evt.rawarg.flags"] = sum(k for p, k in _PPM_TO_CLONE if value & p)
        elif key == "request" and name == "ptrace":
            rec["evt.rawarg.request"] = _PPM_TO_PTRACE.get(value, value)
        elif key != "res":
            rec[f"evt.rawarg.{key}"] = value
    _fd_fields(rec, name, tid, v, res, state)
    return rec


def _fd_fields(rec: dict[str, Any], name: str, tid: int, v: dict[str, Any], res: int, state: State) -> None:
    """fd.* of the event: the fd it names, as the fd table knows it (or, for a failed open, its path)."""
    if name in OPENS:
        path = join(state.base(tid, v.get("dirfd")), str(v.get("name") or v.get("path") or ""))
        rec.update({"fd.num": res if res >= 0 else -1, "fd.name": path})
        rec["fd.type"] = "directory" if int(v.get("flags") or 0) & 1 << 10 else "file"
        return
    num = res if name in DUPS | {"socket", "accept", "accept4"} else v.get("fd", v.get("fd2"))
    if not isinstance(num, int) or num < 0:
        return
    fd = state.fd_table(tid).get(num)
    if name == "connect" and v.get("tuple"):  # the event names its endpoints, whether it succeeded or not
        fd = Fd(fd.type if fd is not None else "ipv4", str(v["tuple"]), fd.l4proto if fd is not None else "")
    if fd is None:  # an fd opened before the capture and not in its fd lists: its number, no name
        rec.update({"fd.num": num, "fd.name": ""})
        return
    rec["fd.num"] = num
    rec["fd.type"] = fd.type
    if fd.name:
        rec["fd.name"] = fd.name
    if fd.l4proto:
        rec["fd.l4proto"] = fd.l4proto


def scap_records(path: str) -> Iterator[dict[str, Any]]:
    """Field records of the capture's exit events (and procexits), with their thread's process and fd facts."""
    with open(path, "rb") as raw:
        gz = raw.read(2) == b"\x1f\x8b"
    with gzip.open(path, "rb") if gz else open(path, "rb") as fh:
        state = State()
        for kind, body in _blocks(fh):  # type: ignore[arg-type]
            if kind == SHB:
                if struct.unpack_from("<I", body, 0)[0] != SHB_MAGIC:
                    raise ValueError("not a little-endian scap capture")
            elif kind in PL_VERSION:
                read_proclist(body, PL_VERSION[kind], state.threads)
            elif kind in _FDL_BLOCKS:
                read_fdlist(body, kind, state.fds, state.threads)
            elif kind in _EVENT_BLOCKS:
                rec = _event_record(body, EV if kind == 0x8010ABCD else kind, state)
                if rec is not None:
                    yield rec
