# SPDX-License-Identifier: Apache-2.0
"""Bind addresses: whether a listener is reachable from this host only."""

from __future__ import annotations

import ipaddress


def is_loopback(bind: str) -> bool:
    """Whether a ``HOST:PORT`` (or ``[v6]:PORT``, ``unix:PATH``) bind address is reachable only from this host.
    An empty host, ``0.0.0.0`` and ``::`` listen everywhere; a name other than ``localhost`` is not trusted to
    resolve to loopback."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0].strip("[]") if ":" in bind else bind
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False
