# SPDX-License-Identifier: Apache-2.0
"""The record types ``collector.wirepath`` writes straight to wire bytes, one handler each, and ``HANDLERS``, the
table that maps a record's message id to its struct and handler. See collector/README.md for adding one; each
handler must give what ``Decoder`` + ``EventEncoder`` give (tests/collector/test_collector_wirepath.py)."""

from __future__ import annotations

import struct
from typing import Any

from collector import layout
from collector.decode_file import AT_FDCWD, O_CLOEXEC, O_DIRECTORY
from collector.decode_net import SOCK_CLOEXEC, accept_fd, connect_fd, socket_fd
from collector.wirepath import (
    GENERAL,
    Handler,
    WirePath,
    body_index,
    cstring,
    event_type,
    is_normal_absolute,
    joined,
)
from lanner import codec
from lanner.codec import SharedEvent, field, varint
from lanner.model import Fd, FdType
from lanner.text import from_bytes, to_bytes

_CPU = [f[0] for f in layout.Hdr._fields_].index("cpu")  # in the unpacked header
_FD, _ARGS = codec.EVENT["fd"], codec.EVENT["args"]
_FD_PATH, _FD_PATH_RAW = codec.FD["path"], codec.FD["path_raw"]
_FD_FLAGS, _FD_MODE = codec.FD["open_flags"], codec.FD["mode"]
_FD_IS_FILE = codec.FD["type"] + varint(FdType.FILE)
_FD_IS_DIR = codec.FD["type"] + varint(FdType.DIRECTORY)

# ---------------------------------------------------------------------------------------------------- opens

_OPEN = joined(layout.OPEN)
_OPEN_RES = body_index(layout.OpenBody, "res")  # res, resolve, sc, dirfd, flags, mode, name_len follow
_OPEN_BODY_AT = layout.HDR.size
_OPEN_NAME_AT = layout.HDR.size + layout.OPEN.size
# (event type, argument names in Falco's order) per open syscall; "fd" is the result. open_by_handle_at reads
# /proc for its path and takes the general path.
_OPEN_ARGS = {
    layout.SC_OPEN: ("open", ("fd", "name", "flags", "mode")),
    layout.SC_OPENAT: ("openat", ("fd", "dirfd", "name", "flags", "mode")),
    layout.SC_OPENAT2: ("openat2", ("fd", "dirfd", "name", "flags", "mode", "resolve")),
    layout.SC_CREAT: ("creat", ("fd", "name", "mode")),
}
_OPEN_TYPES = {sc: (event_type(name), args) for sc, (name, args) in _OPEN_ARGS.items()}


def open_event(w: WirePath, t: tuple[Any, ...], raw: bytes) -> SharedEvent | None:
    """open, openat, openat2, creat: the new fd goes into the process's fd table, the event onto the wire.

    A storm repeats the same open, so its fd and argument fields (and the fd table's Fd, immutable by convention)
    are built once per distinct open: an open of an absolute, normal path means the same in every process and is
    found by its record body alone; a relative one is found once its path is resolved."""
    table = w.table
    body = raw[_OPEN_BODY_AT:]
    hit = w.opens_by_body.get(body)
    name_is_absolute = True  # opens_by_body holds only absolute, normal paths
    if hit is None:
        res, resolve, sc, dirfd, flags, mode, name_len = t[_OPEN_RES : _OPEN_RES + 7]
        name = cstring(raw, _OPEN_NAME_AT, name_len)  # before any table change: a bad record changes nothing
        table.now_ns = t[0]
        entry, procs = w.thread(t, raw)
        if is_normal_absolute(name):
            hit = _open_parts(res, resolve, sc, dirfd, flags, mode, name, name, w)
            if hit is None:
                return GENERAL
            if len(w.opens_by_body) >= _OPEN_CACHE:
                w.opens_by_body.clear()
            w.opens_by_body[body] = hit
        else:
            name_is_absolute = False
            path = to_bytes(table.resolve(entry, dirfd, from_bytes(name)))
            key = (res, resolve, sc, dirfd, flags, mode, name, path)
            hit = w.opens.get(key)
            if hit is None:
                hit = _open_parts(res, resolve, sc, dirfd, flags, mode, name, path, w)
                if hit is None:
                    return GENERAL
                if len(w.opens) >= _OPEN_CACHE:
                    w.opens.clear()
                w.opens[key] = hit
    else:
        table.now_ns = t[0]
        entry, procs = w.thread(t, raw)
    res = t[_OPEN_RES]
    if res >= 0:
        table.set_fd(entry, hit[2], hit[3])
    # The same record again, but for its time, changes nothing but the time (``WirePath.run`` repeats it), unless
    # its path was resolved against an fd: whether that fd's entry is stale depends on the record's time.
    if t[_OPEN_RES + 3] == AT_FDCWD or name_is_absolute:
        w.repeat = (len(raw), raw[8:], entry, procs, hit[2] if res >= 0 else None, hit[3], t[_CPU], hit[0], res, hit[1])
    return w.event(t[0], t[_CPU], entry, procs, hit[0], res, hit[1])


def _open_parts(
    res: int, resolve: int, sc: int, dirfd: int, flags: int, mode: int, name: bytes, path: bytes, w: WirePath
) -> tuple[bytes, bytes, Fd, bool] | None:
    """(type field, fd and args fields, the fd table's Fd, close-on-exec) of one distinct open; None for the
    general path. Everything but the path is one of few shapes (a process opens many files alike): built once."""
    shape = w.open_shapes.get((sc, res, dirfd, flags, mode, resolve))
    if shape is None:
        shape = _open_shape(res, resolve, sc, dirfd, flags, mode, w)
        if shape is None:
            return None
    type_, fd_head, fd_tail, before, after, fd_type, cloexec = shape
    fd = b"".join(
        (fd_head, field(_FD_PATH, path) if path else b"", field(_FD_PATH_RAW, name) if name else b"", fd_tail)
    )
    fields = b"".join((field(_FD, fd), before, field(_ARGS, _NAME_ARG + field(codec.ARG_STR, name)), after))
    text = from_bytes(path)
    model = Fd(res if res >= 0 else -1, fd_type, text, text if name is path else from_bytes(name), flags, mode)
    return type_, fields, model, cloexec


_NAME_ARG = codec.text(codec.ARG_NAME, "name")


def _open_shape(
    res: int, resolve: int, sc: int, dirfd: int, flags: int, mode: int, w: WirePath
) -> tuple[bytes, bytes, bytes, bytes, bytes, FdType, bool] | None:
    """An open's wire pieces around its path: (type field, fd fields before and after the path, args fields
    before and after the name, fd type, close-on-exec)."""
    spec = _OPEN_TYPES.get(sc)
    if spec is None:
        return None
    fd_type = FdType.DIRECTORY if flags & O_DIRECTORY else FdType.FILE
    fd_head = codec.fd_num(res if res >= 0 else -1) + (_FD_IS_DIR if fd_type == FdType.DIRECTORY else _FD_IS_FILE)
    fd_tail = _FD_FLAGS + varint(flags) + _FD_MODE + varint(mode)
    values = {"fd": res, "dirfd": dirfd, "flags": flags, "mode": mode, "resolve": resolve}
    names = spec[1]
    at = names.index("name")
    before = b"".join(w.int_arg(arg, values[arg]) for arg in names[:at])
    after = b"".join(w.int_arg(arg, values[arg]) for arg in names[at + 1 :])
    shape = (spec[0], fd_head, fd_tail, before, after, fd_type, bool(flags & O_CLOEXEC))
    if len(w.open_shapes) >= _OPEN_CACHE:
        w.open_shapes.clear()
    w.open_shapes[(sc, res, dirfd, flags, mode, resolve)] = shape
    return shape


_OPEN_CACHE = 4096


# ---------------------------------------------------------------------------------------------------- file ops

_FILEOP = joined(layout.FILEOP)
_FILEOP_AT = layout.HDR.size + layout.FILEOP.size
_FO = {n: body_index(layout.FileopBody, n) for n in ("res", "sc", "dirfd1", "dirfd2", "flags", "mode")}
_FO_RES, _FO_SC, _FO_L1 = _FO["res"], _FO["sc"], body_index(layout.FileopBody, "path1_len")
# Per syscall: the event type and its arguments in Falco's order, each named after the record field it comes
# from (p1/p2: the two strings). chdir and fchdir move the cwd and take the general path.
_FILEOP_ARGS: dict[int, tuple[str, tuple[tuple[str, str], ...]]] = {
    layout.SC_UNLINK: ("unlink", (("res", "res"), ("path", "p1"))),
    layout.SC_UNLINKAT: ("unlinkat", (("res", "res"), ("dirfd", "dirfd1"), ("name", "p1"), ("flags", "flags"))),
    layout.SC_RENAME: ("rename", (("res", "res"), ("oldpath", "p1"), ("newpath", "p2"))),
    layout.SC_RENAMEAT: (
        "renameat",
        (("res", "res"), ("olddirfd", "dirfd1"), ("oldpath", "p1"), ("newdirfd", "dirfd2"), ("newpath", "p2")),
    ),
    layout.SC_RENAMEAT2: (
        "renameat2",
        (
            ("res", "res"),
            ("olddirfd", "dirfd1"),
            ("oldpath", "p1"),
            ("newdirfd", "dirfd2"),
            ("newpath", "p2"),
            ("flags", "flags"),
        ),
    ),
    layout.SC_MKDIR: ("mkdir", (("res", "res"), ("path", "p1"), ("mode", "mode"))),
    layout.SC_MKDIRAT: ("mkdirat", (("res", "res"), ("dirfd", "dirfd1"), ("path", "p1"), ("mode", "mode"))),
    layout.SC_RMDIR: ("rmdir", (("res", "res"), ("path", "p1"))),
    layout.SC_CHMOD: ("chmod", (("res", "res"), ("filename", "p1"), ("mode", "mode"))),
    layout.SC_FCHMOD: ("fchmod", (("res", "res"), ("fd", "dirfd1"), ("mode", "mode"))),
    layout.SC_FCHMODAT: ("fchmodat", (("res", "res"), ("dirfd", "dirfd1"), ("filename", "p1"), ("mode", "mode"))),
    layout.SC_SYMLINK: ("symlink", (("res", "res"), ("target", "p1"), ("linkpath", "p2"))),
    layout.SC_SYMLINKAT: (
        "symlinkat",
        (("res", "res"), ("target", "p1"), ("linkdirfd", "dirfd2"), ("linkpath", "p2")),
    ),
    layout.SC_LINK: ("link", (("res", "res"), ("oldpath", "p1"), ("newpath", "p2"))),
    layout.SC_LINKAT: (
        "linkat",
        (
            ("res", "res"),
            ("olddir", "dirfd1"),
            ("oldpath", "p1"),
            ("newdir", "dirfd2"),
            ("newpath", "p2"),
            ("flags", "flags"),
        ),
    ),
}
_FILEOP_TYPES = {sc: (event_type(name), args) for sc, (name, args) in _FILEOP_ARGS.items()}


def fileop_event(w: WirePath, t: tuple[Any, ...], raw: bytes) -> SharedEvent | None:
    """unlink*, rename*, mkdir*, rmdir, chmod*, symlink*, link*: no table changes, arguments only."""
    spec = _FILEOP_TYPES.get(t[_FO_SC])
    if spec is None:
        return GENERAL
    l1, l2 = t[_FO_L1], t[_FO_L1 + 1]
    strings = {"p1": cstring(raw, _FILEOP_AT, l1), "p2": cstring(raw, _FILEOP_AT + l1, l2)}
    w.table.now_ns = t[0]
    entry, procs = w.thread(t, raw)
    rest = b"".join(
        w.str_arg(arg, strings[src]) if src in strings else w.int_arg(arg, t[_FO[src]]) for arg, src in spec[1]
    )
    return w.event(t[0], t[_CPU], entry, procs, spec[0], t[_FO_RES], rest)


# ---------------------------------------------------------------------------------------------------- sockets

_SOCKET = joined(layout.SOCKET)
_SK_RES = body_index(layout.SocketBody, "res")  # res, sc, domain, type, protocol
_SOCKET_TYPE = event_type("socket")


def socket_event(w: WirePath, t: tuple[Any, ...], raw: bytes) -> SharedEvent | None:
    """socket(2): the new fd gets its family and protocol, for later connects."""
    res, _sc, domain, sock_type, protocol = t[_SK_RES : _SK_RES + 5]
    w.table.now_ns = t[0]
    entry, procs = w.thread(t, raw)
    fd = socket_fd(res, domain, sock_type, protocol)
    if res >= 0:
        w.table.set_fd(entry, fd, bool(sock_type & SOCK_CLOEXEC))
    rest = b"".join(
        (
            field(_FD, codec.fd_bytes(fd)),
            w.int_arg("fd", res),
            w.int_arg("domain", domain),
            w.int_arg("type", sock_type),
            w.int_arg("proto", protocol),
        )
    )
    return w.event(t[0], t[_CPU], entry, procs, _SOCKET_TYPE, res, rest)


_SOCK = joined(layout.SOCK)
_SO_RES = body_index(layout.SockBody, "res")  # res, sc, fd, flags, addr_len, addr
_CONNECT_TYPE = event_type("connect")


def connect_event(w: WirePath, t: tuple[Any, ...], raw: bytes) -> SharedEvent | None:
    """connect(2): the fd becomes a client socket to the server address."""
    res, _sc, fdnum, _flags, addr_len, addr = t[_SO_RES : _SO_RES + 6]
    addr_raw = addr[: min(addr_len, layout.SOCKADDR_MAX)]
    table = w.table
    table.now_ns = t[0]
    entry, procs = w.thread(t, raw)
    fd = connect_fd(entry.fds.get(fdnum), fdnum, res, addr_raw)
    if fd.connected:
        table.set_fd(entry, fd, fdnum in entry.cloexec)
    rest = b"".join(
        (field(_FD, codec.fd_bytes(fd)), w.int_arg("res", res), w.int_arg("fd", fdnum), w.encoder.arg("addr", addr_raw))
    )
    return w.event(t[0], t[_CPU], entry, procs, _CONNECT_TYPE, res, rest)


_ACCEPT_TYPES = {layout.SC_ACCEPT: event_type("accept"), layout.SC_ACCEPT4: event_type("accept4")}


def accept_event(w: WirePath, t: tuple[Any, ...], raw: bytes) -> SharedEvent | None:
    """accept/accept4: the new fd is the server side of a connection from the peer address."""
    res, sc, listen_fd, flags, addr_len, addr = t[_SO_RES : _SO_RES + 6]
    table = w.table
    table.now_ns = t[0]
    entry, procs = w.thread(t, raw)
    fd = accept_fd(entry.fds.get(listen_fd), res, addr[: min(addr_len, layout.SOCKADDR_MAX)])
    if res >= 0:
        table.set_fd(entry, fd, bool(flags & SOCK_CLOEXEC))
    accept4 = sc == layout.SC_ACCEPT4
    rest = b"".join(
        (field(_FD, codec.fd_bytes(fd)), w.int_arg("fd", res), w.int_arg("flags", flags) if accept4 else b"")
    )
    return w.event(
        t[0], t[_CPU], entry, procs, _ACCEPT_TYPES[layout.SC_ACCEPT4 if accept4 else layout.SC_ACCEPT], res, rest
    )


# Message id (the header's ``type`` field as its four little-endian bytes) -> (struct of header + body, handler).
HANDLERS: dict[bytes, tuple[struct.Struct, Handler]] = {
    struct.pack("<I", layout.MSG_OPEN): (_OPEN, open_event),
    struct.pack("<I", layout.MSG_FILEOP): (_FILEOP, fileop_event),
    struct.pack("<I", layout.MSG_SOCKET): (_SOCKET, socket_event),
    struct.pack("<I", layout.MSG_CONNECT): (_SOCK, connect_event),
    struct.pack("<I", layout.MSG_ACCEPT): (_SOCK, accept_event),
}
