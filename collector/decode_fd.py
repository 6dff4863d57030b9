# SPDX-License-Identifier: Apache-2.0
"""fd lifecycle records: close, pipe/pipe2, socketpair, eventfd/eventfd2, userfaultfd, fcntl(F_DUPFD*); the
receives that name a sender (recvfrom/recvmsg); and the string-argument calls mount, umount2, init_module and
finit_module.

Each new fd enters the fd table with its real type and a name like the one ``/proc/PID/fd`` shows
(``pipe:[INODE]``, ``socket:[INODE]``, ``anon_inode:[eventfd]``), so a reused fd number never keeps its old name.
Arguments carry Falco's parameter names (``ruleengine/fields/_params.py``).
"""

from __future__ import annotations

from dataclasses import replace
from typing import TYPE_CHECKING

from collector import layout
from collector.decode import Header, cstr
from collector.decode_net import (
    AF_INET,
    AF_INET6,
    SOCK_CLOEXEC,
    fd_type_for,
    l4proto_for,
    parse_sockaddr,
)
from lanner.model import Arg, Event, Fd, FdType, L4Proto

if TYPE_CHECKING:
    from collector.decode import Decoder, FamilyDecoder

O_CLOEXEC = 0o2000000
EFD_CLOEXEC = O_CLOEXEC
UFFD_CLOEXEC = O_CLOEXEC
F_DUPFD_CLOEXEC = 1030


def _s32(raw: int) -> int:
    v = raw & 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


def _emit(d: Decoder, h: Header, type_: str, res: int, fd: Fd | None, args: tuple[Arg, ...]) -> Event:
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    proc = table.view(entry, h.tid, h.comm, h.vtid)
    return d.event(h, type_, proc, table.ancestors(entry), res=res, fd=fd, args=args, incomplete=not entry.complete)


def decode_fd_generic(d: Decoder, h: Header, res: int, sc: int, a: tuple[int, int, int, int]) -> Event | None:
    """close, eventfd, eventfd2, userfaultfd, fcntl (numeric arguments, ``struct lanner_generic``)."""
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    if sc == layout.SC_CLOSE:
        num = _s32(a[0])
        # Not get_fd: this close's own stamp would make the entry look stale, and /proc no longer has the fd.
        old = entry.fds.get(num)
        if res == 0 or res == -4:  # EINTR: Linux has released the fd all the same
            table.close_fd(entry, num)
        return _emit(d, h, "close", res, old or Fd(num=num), (Arg("res", res), Arg("fd", num)))
    if sc in (layout.SC_EVENTFD, layout.SC_EVENTFD2):
        flags = (a[1] & 0xFFFFFFFF) if sc == layout.SC_EVENTFD2 else 0
        fd = Fd(num=res if res >= 0 else -1, type=FdType.EVENT, path="anon_inode:[eventfd]", open_flags=flags)
        if res >= 0:
            table.set_fd(entry, fd, bool(flags & EFD_CLOEXEC))
        type_ = "eventfd" if sc == layout.SC_EVENTFD else "eventfd2"
        return _emit(d, h, type_, res, fd, (Arg("res", res), Arg("initval", a[0] & 0xFFFFFFFF), Arg("flags", flags)))
    if sc == layout.SC_USERFAULTFD:
        flags = a[0] & 0xFFFFFFFF
        fd = Fd(num=res if res >= 0 else -1, type=FdType.USERFAULTFD, path="anon_inode:[userfaultfd]")
        if res >= 0:
            table.set_fd(entry, fd, bool(flags & UFFD_CLOEXEC))
        return _emit(d, h, "userfaultfd", res, fd, (Arg("res", res), Arg("flags", flags)))
    if sc == layout.SC_FCNTL:
        # Only F_DUPFD / F_DUPFD_CLOEXEC reach userspace: the new fd names what the old one did, like dup.
        oldfd, cmd = _s32(a[0]), a[1] & 0xFFFFFFFF
        old = table.get_fd(entry, oldfd) if oldfd >= 0 else None
        fd = replace(old, num=res) if old is not None and res >= 0 else Fd(num=res if res >= 0 else -1)
        if res >= 0 and old is not None:
            table.set_fd(entry, fd, cmd == F_DUPFD_CLOEXEC)
        return _emit(d, h, "fcntl", res, fd, (Arg("res", res), Arg("fd", oldfd), Arg("cmd", cmd)))
    return None


def decode_fdpair(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """pipe/pipe2 (``pipe:[INODE]`` on both ends) and socketpair (two connected unix sockets)."""
    d.body(layout.FDPAIR.size, raw)
    res, sc, fd1, fd2, flags, domain, sock_type, proto, _pad, ino1, ino2 = layout.FDPAIR.unpack_from(
        raw, layout.HDR.size
    )
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    fds: list[Fd] = []
    if sc == layout.SC_SOCKETPAIR:
        cloexec = bool(sock_type & SOCK_CLOEXEC)
        for num, ino in ((fd1, ino1), (fd2, ino2)):
            if res == 0 and not ino:
                ino = _link_ino(table.fd_target(entry, num))
            fds.append(
                Fd(
                    num=num,
                    type=fd_type_for(domain, sock_type & 0xF),
                    l4proto=l4proto_for(domain, sock_type, proto),
                    family=domain,
                    path=f"socket:[{ino}]" if ino else "",
                    ino=ino or None,
                    connected=True,
                )
            )
        args: tuple[Arg, ...] = (
            Arg("res", res),
            Arg("fd1", fd1),
            Arg("fd2", fd2),
            Arg("domain", domain),
            Arg("type", sock_type),
            Arg("proto", proto),
        )
        type_ = "socketpair"
    else:
        cloexec = bool(flags & O_CLOEXEC)
        ino = ino1 or (_link_ino(table.fd_target(entry, fd1)) if res == 0 else 0)
        for num in (fd1, fd2):
            fds.append(
                Fd(num=num, type=FdType.PIPE, path=f"pipe:[{ino}]" if ino else "", ino=ino or None, open_flags=flags)
            )
        args = (Arg("res", res), Arg("fd1", fd1), Arg("fd2", fd2), Arg("ino", ino))
        type_ = "pipe"
        if sc == layout.SC_PIPE2:
            type_ = "pipe2"
            args += (Arg("flags", flags),)
    if res == 0:
        for fd in fds:
            if fd.num >= 0:
                table.set_fd(entry, fd, cloexec)
    return _emit(d, h, type_, res, fds[0] if res == 0 else None, args)


def _link_ino(target: str) -> int:
    """The inode in a ``pipe:[INO]`` / ``socket:[INO]`` link (0 when there is none): the fallback without BTF."""
    _, _, rest = target.partition(":[")
    return int(rest[:-1]) if rest.endswith("]") and rest[:-1].isdigit() else 0


def decode_recv(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """recvfrom/recvmsg. A datagram's sender becomes the fd's client end (``fd.name_changed`` when it differs from
    the last one), as Falco orients an unconnected socket that receives."""
    d.body(layout.SOCK.size, raw)
    res, sc, fdnum, size, addr_len, addr = layout.SOCK.unpack_from(raw, layout.HDR.size)
    addr_raw = bytes(addr[: min(addr_len, layout.SOCKADDR_MAX)])
    sa = parse_sockaddr(addr_raw)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    known = table.get_fd(entry, fdnum) if fdnum >= 0 else None
    fd = known or Fd(num=fdnum)
    if res >= 0 and sa is not None and sa.family in (AF_INET, AF_INET6):
        changed = fd.client_ip != sa.ip or fd.client_port != sa.port
        fd = replace(
            fd,
            num=fdnum,
            type=fd.type if fd.type == FdType.RAW_SOCKET else fd_type_for(sa.family),
            family=sa.family,
            l4proto=fd.l4proto if fd.l4proto != L4Proto.UNSPECIFIED else L4Proto.UDP,
            client_ip=sa.ip,
            client_port=sa.port,
            is_server=True,
            connected=bool(fd.connected),
        )
        table.set_fd(entry, fd, fdnum in entry.cloexec)
        fd = replace(fd, name_changed=changed)
    type_ = "recvfrom" if sc == layout.SC_RECVFROM else "recvmsg"
    args = (Arg("res", res), Arg("fd", fdnum), Arg("size", size), Arg("addr", addr_raw))
    return _emit(d, h, type_, res, fd, args)


_STRS_NAMES = {
    layout.SC_MOUNT: "mount",
    layout.SC_UMOUNT2: "umount2",
    layout.SC_INIT_MODULE: "init_module",
    layout.SC_FINIT_MODULE: "finit_module",
}


def decode_strs(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """mount, umount2, init_module, finit_module (the module image itself is not captured)."""
    d.body(layout.STRS.size, raw)
    res, sc, flags, n0, _n1, l0, l1, l2, _pad = layout.STRS.unpack_from(raw, layout.HDR.size)
    start = layout.HDR.size + layout.STRS.size
    s0 = cstr(raw, start, l0)
    s1 = cstr(raw, start + l0, l1)
    s2 = cstr(raw, start + l0 + l1, l2)
    type_ = _STRS_NAMES.get(sc)
    if type_ is None:
        return None
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    fd: Fd | None = None
    args: tuple[Arg, ...]
    if sc == layout.SC_MOUNT:
        target = table.resolve(entry, -100, s1)
        args = (Arg("res", res), Arg("dev", s0), Arg("dir", target), Arg("type", s2), Arg("flags", flags))
    elif sc == layout.SC_UMOUNT2:
        args = (Arg("res", res), Arg("name", table.resolve(entry, -100, s0)), Arg("flags", flags))
    elif sc == layout.SC_INIT_MODULE:
        args = (Arg("res", res), Arg("img", b""), Arg("length", n0), Arg("uargs", s0))
    else:
        num = _s32(n0)
        fd = table.get_fd(entry, num) if num >= 0 else None
        args = (Arg("res", res), Arg("fd", num), Arg("uargs", s0), Arg("flags", flags))
    return _emit(d, h, type_, res, fd, args)


FAMILY: dict[int, FamilyDecoder] = {
    layout.MSG_FDPAIR: decode_fdpair,
    layout.MSG_RECV: decode_recv,
    layout.MSG_STRS: decode_strs,
}
