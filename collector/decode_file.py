# SPDX-License-Identifier: Apache-2.0
"""File records: open/openat/openat2/creat; unlink/rename/mkdir/rmdir/chdir/fchdir; chmod/symlink/link families."""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from collector import layout
from collector.decode import Header, cstr
from lanner.model import Arg, Event, Fd, FdType

if TYPE_CHECKING:
    from collector.decode import Decoder, FamilyDecoder

O_DIRECTORY = 0o200000
O_CLOEXEC = 0o2000000
AT_FDCWD = -100

_OPEN_NAMES = {
    layout.SC_OPEN: "open",
    layout.SC_OPENAT: "openat",
    layout.SC_OPENAT2: "openat2",
    layout.SC_CREAT: "creat",
    layout.SC_OPEN_BY_HANDLE_AT: "open_by_handle_at",
}


def decode_open(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """An open-family syscall returned; a new fd is recorded in the process's fd table."""
    d.body(layout.OPEN.size, raw)
    res, resolve, sc, dirfd, flags, mode, name_len, _pad = layout.OPEN.unpack_from(raw, layout.HDR.size)
    name = cstr(raw, layout.HDR.size + layout.OPEN.size, name_len)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    if sc == layout.SC_OPEN_BY_HANDLE_AT:
        # The kernel resolved a file handle; its path is whatever the new fd points at (if the process still lives).
        path = table.fd_target(entry, res) if res >= 0 else ""
    else:
        path = table.resolve(entry, dirfd, name)
    fd = Fd(
        num=res if res >= 0 else -1,
        type=FdType.DIRECTORY if flags & O_DIRECTORY else FdType.FILE,
        path=path,
        path_raw=name,
        open_flags=flags,
        mode=mode,
    )
    if res >= 0:
        table.set_fd(entry, fd, bool(flags & O_CLOEXEC))
    if sc == layout.SC_CREAT:
        args: tuple[Arg, ...] = (Arg("fd", res), Arg("name", name), Arg("mode", mode))
    elif sc == layout.SC_OPEN_BY_HANDLE_AT:
        args = (Arg("fd", res), Arg("mountfd", dirfd), Arg("flags", flags), Arg("path", path))
    elif sc == layout.SC_OPEN:
        args = (Arg("fd", res), Arg("name", name), Arg("flags", flags), Arg("mode", mode))
    elif sc == layout.SC_OPENAT2:
        args = (
            Arg("fd", res),
            Arg("dirfd", dirfd),
            Arg("name", name),
            Arg("flags", flags),
            Arg("mode", mode),
            Arg("resolve", resolve),
        )
    else:
        args = (Arg("fd", res), Arg("dirfd", dirfd), Arg("name", name), Arg("flags", flags), Arg("mode", mode))
    proc = table.view(entry, h.tid, h.comm, h.vtid)
    return d.event(
        h,
        _OPEN_NAMES.get(sc, "openat"),
        proc,
        table.ancestors(entry),
        res=res,
        fd=fd,
        args=args,
        incomplete=not entry.complete,
    )


def decode_fileop(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """unlink*, rename*, mkdir*, rmdir, chdir, fchdir. chdir/fchdir also move the process's cwd."""
    d.body(layout.FILEOP.size, raw)
    res, sc, dirfd1, dirfd2, flags, mode, l1, l2 = layout.FILEOP.unpack_from(raw, layout.HDR.size)
    start = layout.HDR.size + layout.FILEOP.size
    p1 = cstr(raw, start, l1)
    p2 = cstr(raw, start + l1, l2)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    args: tuple[Arg, ...]
    type_: str
    if sc == layout.SC_UNLINK:
        type_, args = "unlink", (Arg("res", res), Arg("path", p1))
    elif sc == layout.SC_UNLINKAT:
        type_, args = "unlinkat", (Arg("res", res), Arg("dirfd", dirfd1), Arg("name", p1), Arg("flags", flags))
    elif sc == layout.SC_RENAME:
        type_, args = "rename", (Arg("res", res), Arg("oldpath", p1), Arg("newpath", p2))
    elif sc in (layout.SC_RENAMEAT, layout.SC_RENAMEAT2):
        type_ = "renameat" if sc == layout.SC_RENAMEAT else "renameat2"
        args = (
            Arg("res", res),
            Arg("olddirfd", dirfd1),
            Arg("oldpath", p1),
            Arg("newdirfd", dirfd2),
            Arg("newpath", p2),
        )
        if sc == layout.SC_RENAMEAT2:
            args += (Arg("flags", flags),)
    elif sc == layout.SC_MKDIR:
        type_, args = "mkdir", (Arg("res", res), Arg("path", p1), Arg("mode", mode))
    elif sc == layout.SC_MKDIRAT:
        type_, args = "mkdirat", (Arg("res", res), Arg("dirfd", dirfd1), Arg("path", p1), Arg("mode", mode))
    elif sc == layout.SC_RMDIR:
        type_, args = "rmdir", (Arg("res", res), Arg("path", p1))
    elif sc == layout.SC_CHDIR:
        type_, args = "chdir", (Arg("res", res), Arg("path", p1))
        if res == 0:
            table.chdir(entry, table.resolve(entry, AT_FDCWD, p1))
    elif sc == layout.SC_FCHDIR:
        type_, args = "fchdir", (Arg("res", res), Arg("fd", dirfd1))
        if res == 0:
            fd = table.get_fd(entry, dirfd1)
            if fd is not None and fd.path.startswith("/"):
                table.chdir(entry, fd.path)
    elif sc == layout.SC_CHMOD:
        type_, args = "chmod", (Arg("res", res), Arg("filename", p1), Arg("mode", mode))
    elif sc == layout.SC_FCHMOD:
        type_, args = "fchmod", (Arg("res", res), Arg("fd", dirfd1), Arg("mode", mode))
    elif sc == layout.SC_FCHMODAT:
        type_, args = "fchmodat", (Arg("res", res), Arg("dirfd", dirfd1), Arg("filename", p1), Arg("mode", mode))
    elif sc == layout.SC_SYMLINK:
        type_, args = "symlink", (Arg("res", res), Arg("target", p1), Arg("linkpath", p2))
    elif sc == layout.SC_SYMLINKAT:
        type_, args = "symlinkat", (Arg("res", res), Arg("target", p1), Arg("linkdirfd", dirfd2), Arg("linkpath", p2))
    elif sc == layout.SC_LINK:
        type_, args = "link", (Arg("res", res), Arg("oldpath", p1), Arg("newpath", p2))
    elif sc == layout.SC_LINKAT:
        type_ = "linkat"
        args = (
            Arg("res", res),
            Arg("olddir", dirfd1),
            Arg("oldpath", p1),
            Arg("newdir", dirfd2),
            Arg("newpath", p2),
            Arg("flags", flags),
        )
    else:
        return None
    proc = table.view(entry, h.tid, h.comm, h.vtid)
    return d.event(h, type_, proc, table.ancestors(entry), res=res, args=args, incomplete=not entry.complete)


_DUP_NAMES = {layout.SC_DUP: "dup", layout.SC_DUP2: "dup2", layout.SC_DUP3: "dup3"}


def _s32(raw: int) -> int:
    v = raw & 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def decode_dup(d: Decoder, h: Header, res: int, sc: int, raw_args: tuple[int, int, int, int]) -> Event | None:
    """dup/dup2/dup3: the new fd number names what the old one did (a socket dup'ed onto stdout stays a socket)."""
    oldfd = _s32(raw_args[0])
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    old = table.get_fd(entry, oldfd) if oldfd >= 0 else None
    fd = replace(old, num=res) if old is not None and res >= 0 else Fd(num=res if res >= 0 else -1)
    if res >= 0 and old is not None:
        table.set_fd(entry, fd, sc == layout.SC_DUP3 and bool(raw_args[2] & O_CLOEXEC))
    args: tuple[Arg, ...] = (Arg("res", res), Arg("oldfd", oldfd))
    if sc != layout.SC_DUP:
        args += (Arg("newfd", _s32(raw_args[1])),)
    if sc == layout.SC_DUP3:
        args += (Arg("flags", raw_args[2] & 0xFFFFFFFF),)
    proc = table.view(entry, h.tid, h.comm, h.vtid)
    return d.event(
        h, _DUP_NAMES[sc], proc, table.ancestors(entry), res=res, fd=fd, args=args, incomplete=not entry.complete
    )


FAMILY: dict[int, FamilyDecoder] = {
    layout.MSG_OPEN: decode_open,
    layout.MSG_FILEOP: decode_fileop,
}
