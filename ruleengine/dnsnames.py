# SPDX-License-Identifier: Apache-2.0
"""Domain names for ``fd.cip.name`` / ``fd.sip.name`` / ``fd.lip.name`` / ``fd.rip.name``, the way Falco does it.

Nothing in a syscall names the host a socket talks to, only its address. So, as Falco does, the names that rule
conditions compare these fields with (``fd.sip.name = "kubernetes.default.svc.cluster.local"``) are collected when
the rules compile, resolved in the background and re-resolved periodically, and an event's address "has" every
watched name that currently resolves to it. Names the rules never mention are never looked up, and no lookup
ever happens on the event path.
"""

from __future__ import annotations

import ipaddress
import logging
import socket
import threading
from collections.abc import Callable, Iterable

log = logging.getLogger(__name__)

REFRESH_S = 30.0
IpAddr = ipaddress.IPv4Address | ipaddress.IPv6Address
Resolver = Callable[[str], set[IpAddr]]


def system_resolve(name: str) -> set[IpAddr]:
    """Every address the system resolver (``/etc/hosts``, DNS...) gives for ``name``; empty when it fails."""
    try:
        infos = socket.getaddrinfo(name, None, proto=socket.IPPROTO_TCP)
    except (OSError, UnicodeError):
        return set()
    out: set[IpAddr] = set()
    for info in infos:
        try:
            out.add(ipaddress.ip_address(str(info[4][0]).split("%", 1)[0]))
        except ValueError:
            continue
    return out


class DnsNames:
    """Watched names and what they resolve to; a daemon thread refreshes them every ``refresh_s``."""

    def __init__(self, resolver: Resolver = system_resolve, refresh_s: float = REFRESH_S) -> None:
        self._resolve = resolver
        self.refresh_s = refresh_s
        self._names: set[str] = set()
        self._by_ip: dict[IpAddr, tuple[str, ...]] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        self.rounds = 0  # completed resolution rounds (tests wait on this instead of sleeping)
        # Moves each time the address map changes: the rule engine's decision memo forgets what it learnt then.
        self.generation = 0

    def watch(self, names: Iterable[str]) -> None:
        """Resolve these names from now on (the first round starts at once)."""
        new = {n.strip().rstrip(".").lower() for n in names} - self._names
        new.discard("")
        if not new:
            return
        with self._lock:
            self._names |= new
        if self._thread is None:
            self._thread = threading.Thread(target=self._loop, name="lanner-dns-names", daemon=True)
            self._thread.start()
        self._wake.set()

    @property
    def names(self) -> frozenset[str]:
        """The names watched now."""
        return frozenset(self._names)

    def names_for(self, ip: object) -> tuple[str, ...]:
        """Watched names resolving to ``ip`` now (sorted), () when none."""
        return self._by_ip.get(ip, ()) if self._by_ip else ()  # type: ignore[call-overload]

    def refresh(self) -> None:
        """Resolve every watched name once and swap in the new address map."""
        with self._lock:
            names = sorted(self._names)
        by_ip: dict[IpAddr, list[str]] = {}
        for name in names:
            for ip in self._resolve(name):
                by_ip.setdefault(ip, []).append(name)
        new = {ip: tuple(ns) for ip, ns in by_ip.items()}
        if new != self._by_ip:
            self._by_ip = new
            self.generation += 1
        self.rounds += 1

    def _loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                self.refresh()
            except Exception:  # a resolver bug must not end the refreshes
                log.exception("resolving watched domain names failed")
            self._wake.wait(self.refresh_s)


# The process-wide watch list: fields are extracted without an engine at hand, and every engine of a process
# shares one resolver (the same names resolve the same way for all of them).
WATCHED = DnsNames()
