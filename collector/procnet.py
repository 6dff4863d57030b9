# SPDX-License-Identifier: Apache-2.0
"""What a socket fd is, read from ``/proc/PID/net``: the fd table's fallback for a socket whose creating call
(socket, connect, accept) the kernel filter dropped, so a later event on it (a ``dup2`` onto stdin) still sees an
IPv4/IPv6/unix socket with its addresses.

Only the socket's inode is known from ``/proc/PID/fd/N`` (``socket:[INODE]``); the tables of the process's network
namespace give its family, protocol, addresses and state. Which side is the server is not written there: a
connection whose local port some listening socket of the table also has is taken as accepted (server side local),
any other as initiated here (server side remote).
"""

from __future__ import annotations

from lanner.model import Fd, FdType, L4Proto

AF_UNIX, AF_INET, AF_INET6 = 1, 2, 10
_TCP_LISTEN = "0A"
# file, family, protocol
_TABLES = (
    ("tcp", AF_INET, L4Proto.TCP),
    ("tcp6", AF_INET6, L4Proto.TCP),
    ("udp", AF_INET, L4Proto.UDP),
    ("udp6", AF_INET6, L4Proto.UDP),
    ("raw", AF_INET, L4Proto.RAW),
    ("raw6", AF_INET6, L4Proto.RAW),
)


def socket_inode(target: str) -> int | None:
    """The inode of a ``/proc/PID/fd`` link target ``socket:[N]`` (None for anything else)."""
    if not target.startswith("socket:[") or not target.endswith("]"):
        return None
    try:
        return int(target[8:-1])
    except ValueError:
        return None


def _endpoint(text: str, v6: bool) -> tuple[bytes, int]:
    """``/proc/net/tcp`` writes an address as hex 32-bit words in host (little-endian) order, then :PORT in hex."""
    addr, port = text.split(":")
    raw = bytes.fromhex(addr)
    ip = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    return (ip if v6 else ip[:4]), int(port, 16)


def _read(path: str) -> list[list[str]]:
    try:
        with open(path, encoding="ascii", errors="replace") as f:
            return [ln.split() for ln in f.readlines()[1:]]
    except OSError:
        return []


def socket_fd(proc_root: str, pid: int, num: int, inode: int) -> Fd | None:
    """The fd ``num`` of ``pid``, socket ``inode``, as its network namespace's tables describe it now."""
    base = f"{proc_root}/{pid}/net"
    for name, family, proto in _TABLES:
        rows = _read(f"{base}/{name}")
        for row in rows:
            if len(row) < 10 or row[9] != str(inode):
                continue
            v6 = family == AF_INET6
            local, lport = _endpoint(row[1], v6)
            remote, rport = _endpoint(row[2], v6)
            ftype = (FdType.IPV6 if v6 else FdType.IPV4) if proto != L4Proto.RAW else FdType.RAW_SOCKET
            listening = proto == L4Proto.TCP and row[3] == _TCP_LISTEN
            if listening or not any(remote):
                # A bound or listening socket: only the local (server) side.
                return Fd(num=num, type=ftype, family=family, l4proto=proto, server_ip=local, server_port=lport,
                          is_server=listening or None, connected=False)  # fmt: skip
            accepted = proto == L4Proto.TCP and any(
                r[3] == _TCP_LISTEN and _endpoint(r[1], v6)[1] == lport for r in rows if len(r) > 3
            )
            if accepted:
                return Fd(num=num, type=ftype, family=family, l4proto=proto, client_ip=remote, client_port=rport,
                          server_ip=local, server_port=lport, is_server=True, connected=True)  # fmt: skip
            return Fd(num=num, type=ftype, family=family, l4proto=proto, client_ip=local, client_port=lport,
                      server_ip=remote, server_port=rport, is_server=False, connected=True)  # fmt: skip
    for row in _read(f"{base}/unix"):
        if len(row) >= 7 and row[6] == str(inode):
            path = row[7] if len(row) > 7 else ""
            return Fd(num=num, type=FdType.UNIX, family=AF_UNIX, path=path.lstrip("@"))
    return None
