# SPDX-License-Identifier: Apache-2.0
"""fd.* fields: files, sockets (IPv4/IPv6, client/server, local/remote), networks, types."""

from __future__ import annotations

import ipaddress

import pytest

from lanner.model import Event, Fd, FdType, L4Proto
from ruleengine.fields import EventContext, resolve_field
from tests.ruleengine.fields_util import text, value

V4 = ipaddress.IPv4Address


def sock(**kw: object) -> Event:
    base: dict[str, object] = dict(
        num=5,
        type=FdType.IPV4,
        client_ip=bytes([172, 40, 111, 222]),
        client_port=54321,
        server_ip=bytes([142, 251, 111, 147]),
        server_port=443,
        l4proto=L4Proto.TCP,
    )
    base.update(kw)
    return Event(type="connect", fd=Fd(**base))  # type: ignore[arg-type]


def test_file_fields() -> None:
    ev = Event(type="openat", fd=Fd(num=3, type=FdType.FILE, path="/tmp/the_file", path_raw="the_file"))
    assert value(ev, "fd.name") == "/tmp/the_file"
    assert value(ev, "fd.directory") == "/tmp"
    assert value(ev, "fd.filename") == "the_file"
    assert value(ev, "fd.nameraw") == "the_file"
    assert value(ev, "fd.typechar") == "f" and value(ev, "fd.type") == "file"
    assert value(ev, "fd.num") == 3
    assert value(ev, "fd.containername") == "host:/tmp/the_file"
    root = Event(type="openat", fd=Fd(num=3, type=FdType.FILE, path="/vmlinuz"))
    assert value(root, "fd.directory") == "/"
    assert value(ev, "fd.l4proto") is None and value(ev, "fd.sip") is None and value(ev, "fd.sockfamily") is None


def test_no_fd_means_no_value() -> None:
    ev = Event(type="execve")
    for name in ("fd.name", "fd.num", "fd.typechar", "fd.directory", "fd.sip", "fd.l4proto"):
        assert value(ev, name) is None, name
        assert text(ev, name) == "<NA>"


@pytest.mark.parametrize(
    ("ftype", "name", "char"),
    [
        (FdType.DIRECTORY, "directory", "d"),
        (FdType.IPV6, "ipv6", "6"),
        (FdType.UNIX, "unix", "u"),
        (FdType.PIPE, "pipe", "p"),
        (FdType.EVENT, "event", "e"),
        (FdType.SIGNALFD, "signalfd", "s"),
        (FdType.EVENTPOLL, "eventpoll", "l"),
        (FdType.INOTIFY, "inotify", "i"),
        (FdType.TIMERFD, "timerfd", "t"),
        (FdType.NETLINK, "netlink", "n"),
        (FdType.BPF, "bpf", "b"),
        (FdType.USERFAULTFD, "userfaultfd", "u"),
        (FdType.IOURING, "io_uring", "r"),
        (FdType.MEMFD, "memfd", "m"),
        (FdType.PIDFD, "pidfd", "P"),
    ],
)
def test_type_table(ftype: FdType, name: str, char: str) -> None:
    ev = Event(type="read", fd=Fd(num=1, type=ftype))
    assert value(ev, "fd.type") == name and value(ev, "fd.typechar") == char


def test_ipv4_client_socket() -> None:
    ev = sock(is_server=False)
    assert value(ev, "fd.name") == "172.40.111.222:54321->142.251.111.147:443"
    assert value(ev, "fd.typechar") == "4" and value(ev, "fd.type") == "ipv4"
    assert value(ev, "fd.cip") == V4("172.40.111.222") and value(ev, "fd.cport") == 54321
    assert value(ev, "fd.sip") == V4("142.251.111.147") and value(ev, "fd.sport") == 443
    assert text(ev, "fd.sip") == "142.251.111.147"
    assert value(ev, "fd.lip") == V4("172.40.111.222") and value(ev, "fd.rport") == 443
    assert value(ev, "fd.l4proto") == "tcp" and value(ev, "fd.sockfamily") == "ip"
    assert value(ev, "fd.connected") is True
    assert value(ev, "fd.is_server") is False


def test_server_side_and_unknown_role() -> None:
    srv = sock(is_server=True)
    assert value(srv, "fd.lip") == V4("142.251.111.147") and value(srv, "fd.lport") == 443
    assert value(srv, "fd.rip") == V4("172.40.111.222") and value(srv, "fd.rport") == 54321
    unknown = sock()
    assert value(unknown, "fd.lip") is None and value(unknown, "fd.rport") is None


def test_listening_and_ipv6() -> None:
    bound = Event(type="bind", fd=Fd(num=3, type=FdType.IPV4, server_ip=bytes(4), server_port=8080))
    assert value(bound, "fd.name") == "0.0.0.0:8080" and value(bound, "fd.sport") == 8080
    v6 = sock(
        type=FdType.IPV6,
        client_ip=ipaddress.IPv6Address("::1").packed,
        server_ip=ipaddress.IPv6Address("2001:4860:4860::8888").packed,
    )
    assert value(v6, "fd.name") == "::1:54321->2001:4860:4860::8888:443"  # no brackets
    assert value(v6, "fd.typechar") == "6"
    mapped = sock(type=FdType.IPV6, client_ip=ipaddress.IPv6Address("::ffff:10.0.0.1").packed)
    assert value(mapped, "fd.name").startswith("10.0.0.1:54321->")  # type: ignore[union-attr]


def test_networks_and_any_endpoint_fields() -> None:
    ev = sock()
    snet = resolve_field("syscall", "fd.snet")
    net = snet.parse_literal("142.251.0.0/16")
    got = EventContext(ev).get(snet)
    assert got in net  # type: ignore[operator]
    ip = resolve_field("syscall", "fd.ip")
    assert ip.any_of and EventContext(ev).get(ip) == (V4("172.40.111.222"), V4("142.251.111.147"))
    port = resolve_field("syscall", "fd.port")
    assert EventContext(ev).get(port) == (54321, 443)
    assert value(ev, "fd.sip.name") is None


def test_unix_and_raw() -> None:
    unix = Event(type="connect", fd=Fd(num=4, type=FdType.UNIX, path="/var/run/docker.sock"))
    assert value(unix, "fd.name") == "/var/run/docker.sock" and value(unix, "fd.sockfamily") == "unix"
    assert value(unix, "fd.directory") is None and value(unix, "fd.l4proto") is None
    raw = Event(type="socket", fd=Fd(num=4, type=FdType.RAW_SOCKET, family=2))
    assert value(raw, "fd.l4proto") == "raw" and value(raw, "fd.typechar") == "4"
    udp = sock(l4proto=L4Proto.UDP, name_changed=True)
    assert value(udp, "fd.l4proto") == "udp" and value(udp, "fd.name_changed") is True


def test_failed_open_takes_the_name_from_the_event() -> None:
    from lanner.model import Arg

    ev = Event(type="openat", res=-2, args=(Arg("dirfd", -100), Arg("name", "/etc/shadow"), Arg("flags", 0)))
    assert value(ev, "fd.name") == "/etc/shadow"
    assert value(Event(type="openat", res=-2, args=(Arg("name", "rel/x"),)), "fd.name") is None


def test_typechar_guessed_without_fd() -> None:
    assert value(Event(type="openat", res=-13), "fd.typechar") == "f"
    assert value(Event(type="pipe2"), "fd.typechar") == "p"
    assert value(Event(type="execve"), "fd.typechar") is None
