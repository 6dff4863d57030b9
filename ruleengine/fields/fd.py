# SPDX-License-Identifier: Apache-2.0
"""``fd.*`` fields: the file descriptor an event refers to (files, sockets, pipes...)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable
from typing import Any

from lanner.model import Event, Fd, FdType, L4Proto
from ruleengine import dnsnames
from ruleengine.fields._builder import EventBuilder
from ruleengine.fields._context import EventContext
from ruleengine.fields._registry import register
from ruleengine.fields._types import Extractor, FieldType
from ruleengine.fields._values import as_bool, as_int, as_ip, as_str

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

_TYPE_NAMES = {
    FdType.FILE: ("file", "f"),
    FdType.DIRECTORY: ("directory", "d"),
    FdType.IPV4: ("ipv4", "4"),
    FdType.IPV6: ("ipv6", "6"),
    FdType.UNIX: ("unix", "u"),
    FdType.PIPE: ("pipe", "p"),
    FdType.EVENT: ("event", "e"),
    FdType.SIGNALFD: ("signalfd", "s"),
    FdType.EVENTPOLL: ("eventpoll", "l"),
    FdType.INOTIFY: ("inotify", "i"),
    FdType.TIMERFD: ("timerfd", "t"),
    FdType.NETLINK: ("netlink", "n"),
    FdType.BPF: ("bpf", "b"),
    FdType.USERFAULTFD: ("userfaultfd", "u"),
    FdType.IOURING: ("io_uring", "r"),
    FdType.MEMFD: ("memfd", "m"),
    FdType.PIDFD: ("pidfd", "P"),
}
_TYPE_BY_NAME = {name: t for t, (name, _) in _TYPE_NAMES.items()}
# 'u' is shared by unix and userfaultfd; a recorded 'u' means unix, by far the common case.
_TYPE_BY_CHAR = {ch: t for t, (_, ch) in reversed(_TYPE_NAMES.items())}
_L4_NAMES = {L4Proto.TCP: "tcp", L4Proto.UDP: "udp", L4Proto.ICMP: "icmp", L4Proto.RAW: "raw"}
_L4_BY_NAME = {v: k for k, v in _L4_NAMES.items()}
# Enum members hash in Python code, so hot-path lookups use tuples (identity-first membership) and tables
# indexed by the member's integer value instead of sets and dicts keyed by members.
_TYPE_TABLE: tuple[tuple[str, str] | None, ...] = tuple(_TYPE_NAMES.get(t) for t in sorted(FdType))
_L4_TABLE: tuple[str | None, ...] = tuple(_L4_NAMES.get(p) for p in sorted(L4Proto))
# Class attribute access to enum members is slow in Python 3.11; hot code uses these module constants.
_DIRECTORY = FdType.DIRECTORY
_FILE = FdType.FILE
_IPV4 = FdType.IPV4
_IPV6 = FdType.IPV6
_PIPE = FdType.PIPE
_RAW_SOCKET = FdType.RAW_SOCKET
_UNIX = FdType.UNIX
_IP_TYPES = (_IPV4, _IPV6, _RAW_SOCKET)


def _is_v6(fd: Fd) -> bool:
    return fd.family == 10 or len(fd.server_ip) == 16 or len(fd.client_ip) == 16


def fd_type(fd: Fd) -> str | None:
    """``fd.type``: file, directory, ipv4, ipv6, unix, pipe..."""
    if fd.type is _RAW_SOCKET:
        return "ipv6" if _is_v6(fd) else "ipv4"
    names = _TYPE_TABLE[fd.type]
    return names[0] if names else None


def fd_typechar(fd: Fd) -> str | None:
    """``fd.typechar``: f, d, 4, 6, u, p..."""
    if fd.type is _RAW_SOCKET:
        return "6" if _is_v6(fd) else "4"
    names = _TYPE_TABLE[fd.type]
    return names[1] if names else None


def ip_of(raw: bytes) -> IPAddress | None:
    """Packed address -> ipaddress object; IPv4-mapped IPv6 addresses come back as IPv4 (Falco prints them so)."""
    if len(raw) == 4:
        return ipaddress.IPv4Address(raw)
    if len(raw) == 16:
        addr = ipaddress.IPv6Address(raw)
        return addr.ipv4_mapped or addr
    return None


def _endpoint(ip: bytes, port: int | None) -> str:
    return f"{ip_of(ip)}:{port if port is not None else 0}"


_PATH_EVENTS = frozenset({"open", "openat", "openat2", "creat", "open_by_handle_at"})


def fd_name(ev: Event) -> str | None:
    """``fd.name``: the path for files, ``cip:cport->sip:sport`` for connected sockets, ``ip:port`` for bound ones."""
    fd = ev.fd
    if fd is None:
        # A failed open has no fd entry: Falco then takes the name from the event's path parameter.
        if ev.type in _PATH_EVENTS:
            v = ev.arg("name") if ev.type != "open_by_handle_at" else ev.arg("path")
            return v if isinstance(v, str) and v.startswith("/") else None
        return None
    if fd.type in _IP_TYPES:
        if fd.client_ip and fd.server_ip:
            return f"{_endpoint(fd.client_ip, fd.client_port)}->{_endpoint(fd.server_ip, fd.server_port)}"
        if fd.server_ip:
            return _endpoint(fd.server_ip, fd.server_port)
        if fd.client_ip:
            return _endpoint(fd.client_ip, fd.client_port)
        return fd.path
    return fd.path


def io_category(ev: Event) -> str:
    """``evt.category`` of read/write-style events: decided by the fd they use."""
    fd = ev.fd
    if fd is None:
        return "unknown"
    if fd.type in (_FILE, _DIRECTORY):
        return "file"
    if fd.type in _IP_TYPES:
        return "net"
    if fd.type in (_UNIX, _PIPE):
        return "ipc"
    return "unknown"


# Without an fd entry (a failed open, an unknown socket) Falco guesses the type character from the event type.
_GUESSED_TYPECHAR = {
    "open": "f",
    "openat": "f",
    "openat2": "f",
    "creat": "f",
    "open_by_handle_at": "f",
    "socket": "4",
    "accept": "4",
    "accept4": "4",
    "connect": "4",
    "bind": "4",
    "pipe": "p",
    "pipe2": "p",
    "eventfd": "e",
    "eventfd2": "e",
    "signalfd": "s",
    "signalfd4": "s",
    "inotify_init": "i",
    "inotify_init1": "i",
    "timerfd_create": "t",
    "memfd_create": "m",
    "userfaultfd": "u",
    "pidfd_open": "P",
    "bpf": "b",
    "io_uring_setup": "r",
}


def _typechar(ctx: EventContext) -> str | None:
    ev = ctx.event
    if ev.fd is None:
        return _GUESSED_TYPECHAR.get(ev.type)
    return fd_typechar(ev.fd)


def _with_fd(get: Callable[[Fd], object]) -> Extractor:
    def extract(ctx: EventContext) -> object:
        fd = ctx.event.fd
        return None if fd is None else get(fd)

    return extract


def _is_file(fd: Fd) -> bool:
    return fd.type in (_FILE, _DIRECTORY)


def _directory(ctx: EventContext) -> str | None:
    fd = ctx.event.fd
    if fd is None or not _is_file(fd) or not fd.path:
        return None
    idx = fd.path.rfind("/")
    if idx < 0:
        return None
    return "/" if idx == 0 else fd.path[:idx]


def _filename(ctx: EventContext) -> str | None:
    fd = ctx.event.fd
    if fd is None or fd.type is not _FILE or not fd.path:
        return None
    return fd.path[fd.path.rfind("/") + 1 :]


def _side(fd: Fd, local: bool | None, server: bool) -> bool | None:
    """True when the wanted endpoint is the server one; None when the socket's role is unknown."""
    if local is None:
        return server
    if fd.is_server is None:
        return None
    return fd.is_server if local else not fd.is_server


def _ip_getter(local: bool | None, server: bool) -> Callable[[Fd], object]:
    def get(fd: Fd) -> object:
        srv = _side(fd, local, server) if fd.type in _IP_TYPES else None
        if srv is None:
            return None
        return ip_of(fd.server_ip if srv else fd.client_ip)

    return get


def _port_getter(local: bool | None, server: bool) -> Callable[[Fd], object]:
    def get(fd: Fd) -> object:
        srv = _side(fd, local, server) if fd.type in _IP_TYPES else None
        if srv is None:
            return None
        return fd.server_port if srv else fd.client_port

    return get


def _both(get_ip: bool) -> Extractor:
    def extract(ctx: EventContext) -> tuple[object, ...]:
        fd = ctx.event.fd
        if fd is None or fd.type not in _IP_TYPES:
            return ()
        if get_ip:
            vals: list[object] = [ip_of(fd.client_ip), ip_of(fd.server_ip)]
        else:
            vals = [fd.client_port, fd.server_port]
        return tuple(v for v in vals if v is not None)

    return extract


def _l4proto(fd: Fd) -> str | None:
    name = _L4_TABLE[fd.l4proto]
    if name is None and fd.type is _RAW_SOCKET:
        return "raw"
    return name if fd.type in _IP_TYPES else None


def _sockfamily(fd: Fd) -> str | None:
    if fd.type in _IP_TYPES:
        return "ip"
    return "unix" if fd.type is _UNIX else None


# ---- setters -------------------------------------------------------------------------------------------------
_TUPLE = re.compile(r"^(.+):(\d+)->(.+):(\d+)$")
_ENDPOINT = re.compile(r"^([0-9.]+|[0-9a-fA-F:]*:[0-9a-fA-F:.]*):(\d+)$")


def _set_fd(key: str, conv: Callable[[object], Any]) -> Callable[[EventBuilder, str | None, object], None]:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        b.fd_dict()[key] = conv(v)

    return setter


def _set_name(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    fd = b.fd_dict()
    m = _TUPLE.match(text)
    if m and fd.get("type") in (None, _IPV4, _IPV6, _RAW_SOCKET):
        fd.setdefault("client_ip", as_ip(m.group(1)))
        fd.setdefault("client_port", int(m.group(2)))
        fd.setdefault("server_ip", as_ip(m.group(3)))
        fd.setdefault("server_port", int(m.group(4)))
        return
    m = _ENDPOINT.match(text)
    if m and fd.get("type") in (None, _IPV4, _IPV6, _RAW_SOCKET):
        try:
            fd.setdefault("server_ip", as_ip(m.group(1)))
            fd.setdefault("server_port", int(m.group(2)))
            return
        except ValueError:
            pass
    fd["path"] = text


def _set_type(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    if text not in _TYPE_BY_NAME:
        raise ValueError(f"unknown fd type '{text}' (one of {', '.join(sorted(_TYPE_BY_NAME))})")
    b.fd_dict()["type"] = _TYPE_BY_NAME[text]


def _set_typechar(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    if text not in _TYPE_BY_CHAR:
        raise ValueError(f"unknown fd type character '{text}'")
    b.fd_dict().setdefault("type", _TYPE_BY_CHAR[text])


def _set_l4proto(b: EventBuilder, arg: str | None, v: object) -> None:
    text = as_str(v)
    if text not in _L4_BY_NAME:
        raise ValueError(f"unknown l4 protocol '{text}' (tcp, udp, icmp, raw)")
    b.fd_dict()["l4proto"] = _L4_BY_NAME[text]


def _set_directory(b: EventBuilder, arg: str | None, v: object) -> None:
    b.fd_dict()["_dir"] = as_str(v)


def _set_filename(b: EventBuilder, arg: str | None, v: object) -> None:
    b.fd_dict()["_filename"] = as_str(v)


def _endpoint_setter(server: bool | None, port: bool, local: bool | None = None) -> Any:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        fd = b.fd_dict()
        srv = server
        if local is not None:
            is_srv = fd.get("is_server")
            if is_srv is None:
                raise ValueError("set fd.is_server before local/remote endpoints")
            srv = is_srv if local else not is_srv
        side = "server" if srv else "client"
        if port:
            fd[f"{side}_port"] = as_int(v)
        else:
            fd[f"{side}_ip"] = as_ip(v)

    return setter


def finalize_fd(b: EventBuilder) -> None:
    """Infer the fd type of a recorded event from what was given (addresses -> ipv4/ipv6, a path -> file)."""
    fd = b.fd
    if fd is None:
        return
    dirname, fname = fd.pop("_dir", None), fd.pop("_filename", None)
    if not fd.get("path") and (dirname is not None or fname is not None):
        fd["path"] = (dirname or "").rstrip("/") + "/" + (fname or "")
        fd.setdefault("type", _FILE)
    if "type" not in fd:
        ip = fd.get("server_ip") or fd.get("client_ip")
        if ip:
            fd["type"] = _IPV6 if len(ip) == 16 else _IPV4
        elif fd.get("path"):
            fd["type"] = _FILE
    if fd.get("type") in (_IPV4, _IPV6) and "l4proto" not in fd and fd.get("server_port"):
        fd["l4proto"] = L4Proto.TCP
    if "num" not in fd:
        res = b.event.get("res", 0)
        fd["num"] = res if isinstance(res, int) and b.event.get("type") in _FD_RETURNING else 3


_FD_RETURNING = frozenset(
    {
        "open",
        "openat",
        "openat2",
        "creat",
        "open_by_handle_at",
        "socket",
        "accept",
        "accept4",
        "memfd_create",
        "dup",
        "dup2",
        "dup3",
        "bpf",
    }
)


# The model has no slot for resolved domain names yet: whoever knows one (a DNS cache, a recorded event) passes it
# as a pseudo-argument named "lanner.fd.<cip|sip|lip|rip>.name", which evt.args never shows.
DNS_ARG_PREFIX = "lanner.fd."
DNS_NAME_FIELDS = frozenset({"fd.cip.name", "fd.sip.name", "fd.lip.name", "fd.rip.name"})


def _dns_name(which: str, get_ip: Callable[[Fd], object]) -> Extractor:
    """Every name the address has: one passed with the event, plus the names rules compare with that resolve to
    it now (ruleengine.dnsnames). A condition holds when any of them matches, as in Falco."""
    arg_name = f"{DNS_ARG_PREFIX}{which}.name"

    def extract(ctx: EventContext) -> tuple[str, ...] | None:
        v = ctx.event.arg(arg_name)
        fd = ctx.event.fd
        ip = get_ip(fd) if fd is not None else None
        names = dnsnames.WATCHED.names_for(ip) if ip is not None else ()
        if isinstance(v, str) and v:
            names = (v, *(n for n in names if n != v))
        return names or None

    return extract


def _set_dns_name(which: str) -> Callable[[EventBuilder, str | None, object], None]:
    def setter(b: EventBuilder, arg: str | None, v: object) -> None:
        b.args[f"{DNS_ARG_PREFIX}{which}.name"] = as_str(v)

    return setter


# ---- registrations -------------------------------------------------------------------------------------------
register(
    "fd.num",
    FieldType.INT,
    "the unique number identifying the file descriptor.",
    extract=_with_fd(lambda f: f.num),
    setter=_set_fd("num", as_int),
)
register(
    "fd.type",
    FieldType.STRING,
    "type of FD. Can be 'file', 'directory', 'ipv4', 'ipv6', 'unix', 'pipe', "
    "'event', 'signalfd', 'eventpoll', 'inotify', 'signalfd' or 'memfd'.",
    extract=_with_fd(fd_type),
    setter=_set_type,
)
register(
    "fd.typechar",
    FieldType.CHAR,
    "type of FD as a single character. Can be 'f' for file, 4 for IPv4 "
    "socket, 6 for IPv6 socket, 'u' for unix socket, p for pipe, 'e' for eventfd, 's' for signalfd, 'l' for "
    "eventpoll, 'i' for inotify, 'b' for bpf, 'u' for userfaultd, 'r' for io_uring, 'o' for unknown.",
    extract=_typechar,
    setter=_set_typechar,
)
register(
    "fd.name",
    FieldType.STRING,
    "FD full name. If the fd is a file, this field contains the full path. If "
    "the FD is a socket, this field contain the connection tuple.",
    extract=lambda c: fd_name(c.event),
    setter=_set_name,
)
register(
    "fd.nameraw",
    FieldType.STRING,
    "FD full name raw. Just like fd.name, but only used if fd is a file "
    "path. File path is kept raw with limited sanitization and without deriving the absolute path.",
    extract=_with_fd(lambda f: (f.path_raw or f.path) if _is_file(f) else None),
    setter=_set_fd("path_raw", as_str),
)
register(
    "fd.directory",
    FieldType.STRING,
    "If the fd is a file, the directory that contains it.",
    extract=_directory,
    setter=_set_directory,
    derived=True,
)
register(
    "fd.filename",
    FieldType.STRING,
    "If the fd is a file, the filename without the path.",
    extract=_filename,
    setter=_set_filename,
    derived=True,
)
register(
    "fd.containername",
    FieldType.STRING,
    "Chaining of the container ID and the FD name. Useful when trying to identify which container an FD belongs to.",
    extract=lambda c: None if (n := fd_name(c.event)) is None else f"{c.event.container.id}:{n}",
    derived=True,
)
register(
    "fd.containerdirectory",
    FieldType.STRING,
    "Chaining of the container ID and the directory name. Useful "
    "when trying to identify which container a directory belongs to.",
    extract=lambda c: None if (d := _directory(c)) is None else f"{c.event.container.id}:{d}",
    derived=True,
)
for _n, _d, _ip, _srv, _loc in (
    ("cip", "client IP address.", True, False, None),
    ("sip", "server IP address.", True, True, None),
    ("lip", "local IP address.", True, False, True),
    ("rip", "remote IP address.", True, False, False),
    ("cport", "for TCP/UDP FDs, the client port.", False, False, None),
    ("sport", "for TCP/UDP FDs, server port.", False, True, None),
    ("lport", "for TCP/UDP FDs, the local port.", False, False, True),
    ("rport", "for TCP/UDP FDs, the remote port.", False, False, False),
):
    _get = _ip_getter(_loc, _srv) if _ip else _port_getter(_loc, _srv)
    register(
        f"fd.{_n}",
        FieldType.IPADDR if _ip else FieldType.PORT,
        _d,
        extract=_with_fd(_get),
        setter=_endpoint_setter(_srv, not _ip, _loc),
    )
    if _ip:
        register(
            f"fd.{_n}.name",
            FieldType.STRING,
            f"Domain name associated with the {_d[:-1]}.",
            extract=_dns_name(_n, _get),
            setter=_set_dns_name(_n),
            no_rhs=True,
            any_of_without_arg=True,
        )
        register(
            f"fd.{_n[0]}net",
            FieldType.IPNET,
            f"matches the {_d[:-12]} IP network of the fd.",
            extract=_with_fd(_get),
            filter_only=True,
            no_rhs=True,
            derived=True,
        )
register(
    "fd.ip",
    FieldType.IPADDR,
    "matches the ip address (client or server) of the fd.",
    extract=_both(True),
    filter_only=True,
    no_rhs=True,
    any_of_without_arg=True,
    derived=True,
)
register(
    "fd.port",
    FieldType.PORT,
    "matches the port (either client or server) of the fd.",
    extract=_both(False),
    filter_only=True,
    no_rhs=True,
    any_of_without_arg=True,
    derived=True,
)
register(
    "fd.net",
    FieldType.IPNET,
    "matches the IP network (client or server) of the fd.",
    extract=_both(True),
    filter_only=True,
    no_rhs=True,
    any_of_without_arg=True,
    derived=True,
)
register(
    "fd.l4proto",
    FieldType.STRING,
    "the IP protocol of a socket. Can be 'tcp', 'udp', 'icmp' or 'raw'.",
    extract=_with_fd(_l4proto),
    setter=_set_l4proto,
)
register(
    "fd.sockfamily",
    FieldType.STRING,
    "the socket family for socket events. Can be 'ip' or 'unix'.",
    extract=_with_fd(_sockfamily),
    derived=True,
)
register(
    "fd.is_server",
    FieldType.BOOL,
    "'true' if the process owning this FD is the server endpoint in the connection.",
    extract=_with_fd(lambda f: f.is_server if f.type in _IP_TYPES or f.type is _UNIX else None),
    setter=_set_fd("is_server", as_bool),
)
register(
    "fd.connected",
    FieldType.BOOL,
    "for TCP/UDP FDs, 'true' if the socket is connected.",
    extract=_with_fd(
        lambda f: (
            f.connected
            if f.connected is not None
            else (bool(f.client_ip and f.server_ip) if f.type in _IP_TYPES else None)
        )
    ),
    setter=_set_fd("connected", as_bool),
)
register(
    "fd.name_changed",
    FieldType.BOOL,
    "True when an event changes the name of an fd used by this event. "
    "This can occur in some cases such as udp connections where the connection tuple changes.",
    extract=_with_fd(lambda f: bool(f.name_changed)),
    setter=_set_fd("name_changed", as_bool),
)
register(
    "fd.dev",
    FieldType.UINT,
    "device number (major/minor) containing the referenced file",
    extract=_with_fd(lambda f: f.dev),
    setter=_set_fd("dev", as_int),
)
register(
    "fd.dev.major",
    FieldType.UINT,
    "major device number containing the referenced file",
    extract=_with_fd(lambda f: None if f.dev is None else (f.dev & 0xFFF00) >> 8),
    derived=True,
)
register(
    "fd.dev.minor",
    FieldType.UINT,
    "minor device number containing the referenced file",
    extract=_with_fd(lambda f: None if f.dev is None else (f.dev & 0xFF) | ((f.dev >> 12) & 0xFFF00)),
    derived=True,
)
register(
    "fd.ino",
    FieldType.INT,
    "inode number of the referenced file",
    extract=_with_fd(lambda f: f.ino),
    setter=_set_fd("ino", as_int),
)
