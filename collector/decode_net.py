# SPDX-License-Identifier: Apache-2.0
"""Network records: socket, connect, accept/accept4. Addresses stay raw bytes in network order."""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from collector import layout
from collector.decode import Header
from lanner.model import Arg, Event, Fd, FdType, L4Proto

if TYPE_CHECKING:
    from collector.decode import Decoder, FamilyDecoder

AF_UNIX = 1
AF_INET = 2
AF_INET6 = 10
AF_NETLINK = 16
SOCK_STREAM = 1
SOCK_DGRAM = 2
SOCK_RAW = 3
IPPROTO_ICMP = 1
IPPROTO_ICMPV6 = 58
SOCK_CLOEXEC = 0o2000000
EINPROGRESS = 115


@dataclass(frozen=True, slots=True)
class SockAddr:
    """A parsed ``struct sockaddr``: family, ip bytes (4/16) and port, or a unix path."""

    family: int
    ip: bytes = b""
    port: int | None = None
    path: str = ""


def parse_sockaddr(raw: bytes) -> SockAddr | None:
    """Parse the bytes of a sockaddr as the process passed it; None when too short to tell the family."""
    if len(raw) < 2:
        return None
    family = int.from_bytes(raw[0:2], "little")
    if family == AF_INET and len(raw) >= 8:
        return SockAddr(family, ip=bytes(raw[4:8]), port=int.from_bytes(raw[2:4], "big"))
    if family == AF_INET6 and len(raw) >= 24:
        return SockAddr(family, ip=bytes(raw[8:24]), port=int.from_bytes(raw[2:4], "big"))
    if family == AF_UNIX:
        body = raw[2:]
        if body[:1] == b"\0":
            # Abstract socket: the name starts after the leading NUL, which Falco drops.
            body = body[1:]
        nul = body.find(b"\0")
        if nul >= 0:
            body = body[:nul]
        return SockAddr(family, path=body.decode("utf-8", "surrogateescape"))
    return SockAddr(family)


def fd_type_for(family: int, sock_type: int = 0) -> FdType:
    """fd type of a socket of this family."""
    if family == AF_INET:
        return FdType.RAW_SOCKET if sock_type == SOCK_RAW else FdType.IPV4
    if family == AF_INET6:
        return FdType.RAW_SOCKET if sock_type == SOCK_RAW else FdType.IPV6
    if family == AF_UNIX:
        return FdType.UNIX
    if family == AF_NETLINK:
        return FdType.NETLINK
    return FdType.UNSPECIFIED


def l4proto_for(family: int, sock_type: int, protocol: int) -> L4Proto:
    """Layer-4 protocol of an IP socket from its type and protocol numbers."""
    if family not in (AF_INET, AF_INET6):
        return L4Proto.UNSPECIFIED
    base = sock_type & 0xF
    if base == SOCK_STREAM:
        return L4Proto.TCP
    if base == SOCK_DGRAM:
        return L4Proto.ICMP if protocol in (IPPROTO_ICMP, IPPROTO_ICMPV6) else L4Proto.UDP
    if base == SOCK_RAW:
        return L4Proto.RAW
    return L4Proto.UNSPECIFIED


def decode_socket(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """socket(2): the new fd gets its family and protocol, used later by connect/accept."""
    d.body(layout.SOCKET.size, raw)
    res, _sc, domain, sock_type, protocol = layout.SOCKET.unpack_from(raw, layout.HDR.size)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    fd = socket_fd(res, domain, sock_type, protocol)
    if res >= 0:
        table.set_fd(entry, fd, bool(sock_type & SOCK_CLOEXEC))
    args = (Arg("fd", res), Arg("domain", domain), Arg("type", sock_type), Arg("proto", protocol))
    return d.event(
        h,
        "socket",
        table.view(entry, h.tid, h.comm, h.vtid),
        table.ancestors(entry),
        res=res,
        fd=fd,
        args=args,
        incomplete=not entry.complete,
    )


def connect_fd(known: Fd | None, fdnum: int, res: int, addr_raw: bytes) -> Fd:
    """The fd after connect(2) of ``fdnum`` (``known``: what the table had for it) to ``addr_raw``; shared with
    the direct path (``collector.wirepath``)."""
    sa = parse_sockaddr(addr_raw)
    family = sa.family if sa else (known.family if known and known.family is not None else 0)
    fd = Fd(
        num=fdnum,
        type=fd_type_for(family),
        family=family,
        l4proto=known.l4proto if known else L4Proto.UNSPECIFIED,
        server_ip=sa.ip if sa else b"",
        server_port=sa.port if sa else None,
        path=sa.path if sa else "",
        is_server=False,
        connected=res == 0 or res == -EINPROGRESS,
    )
    if known is not None and known.type == FdType.RAW_SOCKET:
        fd = replace(fd, type=FdType.RAW_SOCKET)
    return fd


def socket_fd(res: int, domain: int, sock_type: int, protocol: int) -> Fd:
    """The fd socket(2) returned (shared with the direct path)."""
    return Fd(
        num=res if res >= 0 else -1,
        type=fd_type_for(domain, sock_type & 0xF),
        l4proto=l4proto_for(domain, sock_type, protocol),
        family=domain,
    )


def decode_connect(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """connect(2): the fd becomes a client socket to the given server address."""
    d.body(layout.SOCK.size, raw)
    res, _sc, fdnum, _flags, addr_len, addr = layout.SOCK.unpack_from(raw, layout.HDR.size)
    addr_raw = bytes(addr[: min(addr_len, layout.SOCKADDR_MAX)])
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    fd = connect_fd(entry.fds.get(fdnum), fdnum, res, addr_raw)
    if fd.connected:
        table.set_fd(entry, fd, fdnum in entry.cloexec)
    args = (Arg("res", res), Arg("fd", fdnum), Arg("addr", addr_raw))
    return d.event(
        h,
        "connect",
        table.view(entry, h.tid, h.comm, h.vtid),
        table.ancestors(entry),
        res=res,
        fd=fd,
        args=args,
        incomplete=not entry.complete,
    )


def accept_fd(lst: Fd | None, res: int, addr_raw: bytes) -> Fd:
    """The fd accept(2) returned (``res``), from the listening fd ``lst`` and the peer address (shared with the
    direct path)."""
    sa = parse_sockaddr(addr_raw)
    family = sa.family if sa else (lst.family if lst and lst.family is not None else 0)
    return Fd(
        num=res if res >= 0 else -1,
        type=fd_type_for(family),
        family=family,
        l4proto=lst.l4proto
        if lst and lst.l4proto
        else (L4Proto.TCP if family in (AF_INET, AF_INET6) else L4Proto.UNSPECIFIED),
        client_ip=sa.ip if sa else b"",
        client_port=sa.port if sa else None,
        server_ip=lst.server_ip if lst else b"",
        server_port=lst.server_port if lst else None,
        path=(sa.path if sa and sa.path else (lst.path if lst else "")),
        is_server=True,
        connected=res >= 0,
    )


def decode_accept(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """accept/accept4: the new fd is the server side of a connection from the peer address."""
    d.body(layout.SOCK.size, raw)
    res, sc, listen_fd, flags, addr_len, addr = layout.SOCK.unpack_from(raw, layout.HDR.size)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    fd = accept_fd(entry.fds.get(listen_fd), res, bytes(addr[: min(addr_len, layout.SOCKADDR_MAX)]))
    if res >= 0:
        table.set_fd(entry, fd, bool(flags & SOCK_CLOEXEC))
    args: tuple[Arg, ...] = (Arg("fd", res),)
    type_ = "accept"
    if sc == layout.SC_ACCEPT4:
        type_ = "accept4"
        args += (Arg("flags", flags),)
    return d.event(
        h,
        type_,
        table.view(entry, h.tid, h.comm, h.vtid),
        table.ancestors(entry),
        res=res,
        fd=fd,
        args=args,
        incomplete=not entry.complete,
    )


def decode_send(d: Decoder, h: Header, raw: bytes) -> Event | None:
    """sendto/sendmsg naming a destination: the socket's peer is (re)set by this call (``fd.name_changed``)."""
    d.body(layout.SOCK.size, raw)
    res, sc, fdnum, size, addr_len, addr = layout.SOCK.unpack_from(raw, layout.HDR.size)
    addr_raw = bytes(addr[: min(addr_len, layout.SOCKADDR_MAX)])
    sa = parse_sockaddr(addr_raw)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    known = entry.fds.get(fdnum)
    family = sa.family if sa else (known.family if known and known.family is not None else 0)
    fd = Fd(
        num=fdnum,
        type=known.type if known is not None and known.type == FdType.RAW_SOCKET else fd_type_for(family),
        family=family,
        l4proto=known.l4proto if known else L4Proto.UNSPECIFIED,
        client_ip=known.client_ip if known else b"",
        client_port=known.client_port if known else None,
        server_ip=sa.ip if sa else b"",
        server_port=sa.port if sa else None,
        path=sa.path if sa else "",
        is_server=False,
        connected=known.connected if known and known.connected is not None else False,
        name_changed=True,
    )
    if res >= 0:
        table.set_fd(entry, replace(fd, name_changed=None), fdnum in entry.cloexec)
    type_ = "sendto" if sc == layout.SC_SENDTO else "sendmsg"
    args: tuple[Arg, ...] = (Arg("res", res), Arg("fd", fdnum))
    if sc == layout.SC_SENDTO:
        args += (Arg("size", size),)
    args += (Arg("addr", addr_raw),)
    return d.event(
        h,
        type_,
        table.view(entry, h.tid, h.comm, h.vtid),
        table.ancestors(entry),
        res=res,
        fd=fd,
        args=args,
        incomplete=not entry.complete,
    )


def decode_listen(d: Decoder, h: Header, res: int, raw_fd: int, backlog: int) -> Event | None:
    """listen(2): the socket becomes a server socket."""
    fdnum = _s32(raw_fd)
    table = d.table
    entry = table.get(h.pid, h.comm, h.uid, h.gid, h.cgroup_id, h.vpid)
    known = table.get_fd(entry, fdnum) if fdnum >= 0 else None
    fd = replace(known, is_server=True) if known is not None else Fd(num=fdnum, is_server=True)
    if res == 0 and known is not None:
        table.set_fd(entry, fd, fdnum in entry.cloexec)
    args = (Arg("res", res), Arg("fd", fdnum), Arg("backlog", _s32(backlog)))
    return d.event(
        h,
        "listen",
        table.view(entry, h.tid, h.comm, h.vtid),
        table.ancestors(entry),
        res=res,
        fd=fd,
        args=args,
        incomplete=not entry.complete,
    )


def _s32(raw: int) -> int:
    v = raw & 0xFFFFFFFF
    return v - (1 << 32) if v >= 1 << 31 else v


FAMILY: dict[int, FamilyDecoder] = {
    layout.MSG_SOCKET: decode_socket,
    layout.MSG_CONNECT: decode_connect,
    layout.MSG_ACCEPT: decode_accept,
    layout.MSG_SEND: decode_send,
}
