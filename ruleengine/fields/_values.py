# SPDX-License-Identifier: Apache-2.0
"""Coercion of JSON values given for a field in a recorded event; each raises ValueError with a short message."""

from __future__ import annotations

import ipaddress


def as_str(v: object) -> str:
    """A JSON string (numbers are accepted and printed in decimal)."""
    if isinstance(v, str):
        return v
    if isinstance(v, bool):
        raise ValueError("expected a string, got a boolean")
    if isinstance(v, int):
        return str(v)
    raise ValueError(f"expected a string, got {type(v).__name__}")


def as_int(v: object) -> int:
    """A JSON integer, or a string holding one (decimal or 0x-hex)."""
    if isinstance(v, bool):
        raise ValueError("expected an integer, got a boolean")
    if isinstance(v, int):
        return v
    if isinstance(v, str):
        t = v.strip()
        try:
            return int(t, 16) if t.lower().startswith("0x") else int(t)
        except ValueError:
            pass
    raise ValueError(f"expected an integer, got {v!r}")


def as_bool(v: object) -> bool:
    """A JSON boolean, or the strings true/false."""
    if isinstance(v, bool):
        return v
    if v in ("true", "false"):
        return v == "true"
    raise ValueError(f"expected true or false, got {v!r}")


def as_str_list(v: object) -> tuple[str, ...]:
    """A JSON list of strings, or one string split on single spaces."""
    if isinstance(v, list):
        return tuple(as_str(x) for x in v)
    s = as_str(v)
    return tuple(s.split(" ")) if s else ()


def as_ip(v: object) -> bytes:
    """An IP address string -> packed bytes (4 or 16)."""
    try:
        return ipaddress.ip_address(as_str(v)).packed
    except ValueError:
        raise ValueError(f"'{v}' is not a valid IP address") from None
