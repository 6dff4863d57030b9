# SPDX-License-Identifier: Apache-2.0
"""Parameter values of scap events: ``PT_*`` types to bytes and back (format digest:
``shared/reference/scap-format.md``; parameter tables: :mod:`ruleengine.scap_table`).

Integers are little-endian at their type's width; strings are NUL-terminated; a zero-length parameter is absent.
``PT_SOCKADDR`` is a family byte and the address (IPv4: 4 address bytes in network order then a u16 port; IPv6: 16
bytes then the port; unix: the path). ``PT_SOCKTUPLE`` is a family byte, then source address and port, then
destination address and port (unix: two u64 socket pointers and the path). ``PT_DYN`` is a selector byte and a
value (selector 0: u64).
"""

from __future__ import annotations

import ipaddress
import struct

__all__ = [
    "AF_INET",
    "AF_INET6",
    "AF_UNIX",
    "decode",
    "encode",
    "render_sockaddr",
    "render_tuple",
    "sockaddr",
    "tuple_",
]

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10

_FORMATS = {
    **dict.fromkeys(("INT8",), "<b"),
    **dict.fromkeys(("UINT8", "SIGTYPE", "FLAGS8", "ENUMFLAGS8", "L4PROTO", "SOCKFAMILY"), "<B"),
    **dict.fromkeys(("INT16",), "<h"),
    **dict.fromkeys(("UINT16", "FLAGS16", "ENUMFLAGS16", "PORT", "SYSCALLID"), "<H"),
    **dict.fromkeys(("INT32",), "<i"),
    **dict.fromkeys(("UINT32", "FLAGS32", "ENUMFLAGS32", "UID", "GID", "MODE", "BOOL", "SIGSET"), "<I"),
    **dict.fromkeys(("INT64", "ERRNO", "FD", "PID"), "<q"),
    **dict.fromkeys(("UINT64", "RELTIME", "ABSTIME"), "<Q"),
}
_TEXT = frozenset({"CHARBUF", "FSPATH", "FSRELPATH"})


def _text(value: object) -> bytes:
    if isinstance(value, bytes):
        return value
    return str(value).encode("utf-8", "surrogateescape")


def encode(pt: str, value: object) -> bytes:
    """One parameter's bytes; ``None`` is an absent (zero-length) parameter."""
    if value is None:
        return b""
    fmt = _FORMATS.get(pt)
    if fmt is not None:
        number = int(value) if isinstance(value, int | str) and not isinstance(value, bool) else int(bool(value))
        bits = struct.calcsize(fmt) * 8
        number &= (1 << bits) - 1  # the field's width, as the driver stores it
        if fmt[1].islower() and number >= 1 << (bits - 1):
            number -= 1 << bits
        return struct.pack(fmt, number)
    if pt in _TEXT:
        return _text(value) + b"\0"
    if pt == "DYN":
        return struct.pack("<BQ", 0, int(value) & (2**64 - 1)) if isinstance(value, int) else b""
    if pt == "DOUBLE":
        return struct.pack("<d", float(value))  # type: ignore[arg-type]
    return _text(value)  # BYTEBUF, SOCKADDR/SOCKTUPLE already encoded, FDLIST...


def decode(pt: str, raw: bytes) -> int | str | bytes | None:
    """A parameter's value: an int, text, raw bytes, or None when absent; sockets render as Falco prints them."""
    if not raw:
        return None
    fmt = _FORMATS.get(pt)
    if fmt is not None:
        size = struct.calcsize(fmt)
        return int(struct.unpack_from(fmt, raw.ljust(size, b"\0"))[0])
    if pt in _TEXT:
        return raw.split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    if pt == "SOCKADDR":
        return render_sockaddr(raw)
    if pt == "SOCKTUPLE":
        return render_tuple(raw)
    if pt == "DYN":
        return int(struct.unpack_from("<Q", raw.ljust(9, b"\0"), 1)[0]) if raw[0] == 0 else raw[1:]
    return raw


def _ip(raw: bytes) -> str:
    addr = ipaddress.ip_address(raw)
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped is not None:
        return str(addr.ipv4_mapped)
    return str(addr)


def sockaddr(ip: bytes, port: int | None, path: str = "") -> bytes:
    """A ``PT_SOCKADDR``: an IPv4/IPv6 address and port, or a unix path."""
    if not ip:
        return bytes([AF_UNIX]) + _text(path) + b"\0"
    family = AF_INET if len(ip) == 4 else AF_INET6
    return bytes([family]) + ip + struct.pack("<H", port or 0)


def tuple_(src: bytes, sport: int | None, dst: bytes, dport: int | None) -> bytes:
    """A ``PT_SOCKTUPLE`` from source to destination (both IPv4 or both IPv6)."""
    if len(src) != len(dst):  # one side unknown: widen it to the other's family, as zeros
        src, dst = src or bytes(len(dst)), dst or bytes(len(src))
    family = AF_INET if len(src) == 4 else AF_INET6
    return bytes([family]) + src + struct.pack("<H", sport or 0) + dst + struct.pack("<H", dport or 0)


def render_sockaddr(raw: bytes) -> str:
    family = raw[0]
    if family == AF_INET and len(raw) >= 7:
        return f"{_ip(raw[1:5])}:{struct.unpack_from('<H', raw, 5)[0]}"
    if family == AF_INET6 and len(raw) >= 19:
        return f"{_ip(raw[1:17])}:{struct.unpack_from('<H', raw, 17)[0]}"
    if family == AF_UNIX:
        return raw[1:].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    return f"family {family}"


def render_tuple(raw: bytes) -> str:
    family = raw[0]
    if family == AF_INET and len(raw) >= 13:
        src, sport, dst, dport = (
            raw[1:5],
            struct.unpack_from("<H", raw, 5)[0],
            raw[7:11],
            struct.unpack_from("<H", raw, 11)[0],
        )
    elif family == AF_INET6 and len(raw) >= 37:
        src, sport, dst, dport = (
            raw[1:17],
            struct.unpack_from("<H", raw, 17)[0],
            raw[19:35],
            struct.unpack_from("<H", raw, 35)[0],
        )
    elif family == AF_UNIX and len(raw) >= 17:
        a, b = struct.unpack_from("<QQ", raw, 1)
        return f"{a:x}->{b:x} " + raw[17:].split(b"\0", 1)[0].decode("utf-8", "surrogateescape")
    else:
        return f"family {family}"
    return f"{_ip(src)}:{sport}->{_ip(dst)}:{dport}"
