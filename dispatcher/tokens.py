# SPDX-License-Identifier: Apache-2.0
"""Scoped bearer tokens for the public Subscribe stream.

A token file (``dispatcher.tokens_file``) lists who may subscribe and what each may see::

    tokens:
      - name: shop-oncall                 # shown in logs and metrics, never the token itself
        sha256: 9f86d08...                # sha256 hex of the token (or `token: <plain text>`)
        sources: [syscall]                # empty: every source
        min_priority: warning             # only alerts at least this severe
        namespaces: [shop]                # only alerts from pods in these namespaces (empty: all, host too)
        output_fields: false              # hide output fields and the rendered text, keep rule/priority/time
        max_subscribers: 4                # concurrent streams with this token

The file is read again whenever it changes, without a restart; a file that fails to parse keeps the previous
tokens and logs the located error. Tokens are compared by their digest in constant time.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
from dataclasses import dataclass
from typing import Any

import yaml

from lanner.priority import Priority

log = logging.getLogger(__name__)

_KEYS = frozenset(
    {"name", "sha256", "token", "sources", "min_priority", "namespaces", "output_fields", "max_subscribers"}
)


class TokenFileError(Exception):
    """The token file is unusable; the message names the file and the entry."""


@dataclass(frozen=True, slots=True)
class TokenScope:
    """What one token may see."""

    name: str
    digest: bytes
    sources: frozenset[str] = frozenset()
    min_priority: Priority = Priority.DEBUG
    namespaces: frozenset[str] = frozenset()
    output_fields: bool = True
    max_subscribers: int = 4


def _strings(value: Any, where: str) -> frozenset[str]:
    if value is None:
        return frozenset()
    if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
        raise TokenFileError(f"{where}: expected a list of strings")
    return frozenset(value)


def parse_tokens(text: str, path: str) -> dict[bytes, TokenScope]:
    """The scopes of a token file, by token digest."""
    try:
        doc = yaml.safe_load(text) or {}
    except yaml.YAMLError as exc:
        raise TokenFileError(f"{path}: {exc}") from None
    entries = doc.get("tokens") if isinstance(doc, dict) else None
    if not isinstance(entries, list):
        raise TokenFileError(f"{path}: expected a mapping with a 'tokens' list")
    out: dict[bytes, TokenScope] = {}
    for i, entry in enumerate(entries):
        where = f"{path}: tokens[{i}]"
        if not isinstance(entry, dict):
            raise TokenFileError(f"{where}: expected a mapping")
        unknown = set(entry) - _KEYS
        if unknown:
            raise TokenFileError(f"{where}: unknown key {sorted(unknown)[0]!r}")
        name = entry.get("name")
        if not isinstance(name, str) or not name:
            raise TokenFileError(f"{where}: 'name' is required")
        if "token" in entry:
            digest = hashlib.sha256(str(entry["token"]).encode()).digest()
        elif isinstance(entry.get("sha256"), str):
            try:
                digest = bytes.fromhex(entry["sha256"])
            except ValueError:
                raise TokenFileError(f"{where}.sha256: not hexadecimal") from None
            if len(digest) != 32:
                raise TokenFileError(f"{where}.sha256: expected 64 hex digits")
        else:
            raise TokenFileError(f"{where}: give 'sha256' (hex digest of the token) or 'token'")
        try:
            prio = Priority.parse(entry["min_priority"]) if "min_priority" in entry else Priority.DEBUG
        except ValueError as exc:
            raise TokenFileError(f"{where}.min_priority: {exc}") from None
        limit = entry.get("max_subscribers", 4)
        if not isinstance(limit, int) or limit < 1:
            raise TokenFileError(f"{where}.max_subscribers: expected a whole number >= 1")
        shown = entry.get("output_fields", True)
        if not isinstance(shown, bool):
            raise TokenFileError(f"{where}.output_fields: expected true or false")
        out[digest] = TokenScope(
            name=name,
            digest=digest,
            sources=_strings(entry.get("sources"), f"{where}.sources"),
            min_priority=prio,
            namespaces=_strings(entry.get("namespaces"), f"{where}.namespaces"),
            output_fields=shown,
            max_subscribers=limit,
        )
    return out


class TokenBook:
    """The tokens of a file, re-read when its modification time or size changes."""

    def __init__(self, path: str) -> None:
        self.path = path
        self._stamp: tuple[int, int] | None = None
        self._scopes: dict[bytes, TokenScope] = {}
        self.reload()  # a broken file at start-up is a start-up error

    def reload(self) -> None:
        """Read the file now; raises TokenFileError when it is unusable."""
        st = os.stat(self.path)
        with open(self.path, encoding="utf-8") as f:
            self._scopes = parse_tokens(f.read(), self.path)
        self._stamp = (st.st_mtime_ns, st.st_size)
        log.info("subscribe tokens loaded", extra={"file": self.path, "tokens": len(self._scopes)})

    def _refresh(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError as exc:
            log.error("token file unreadable; keeping the tokens loaded", extra={"file": self.path, "error": str(exc)})
            return
        if (st.st_mtime_ns, st.st_size) == self._stamp:
            return
        try:
            self.reload()
        except (OSError, TokenFileError) as exc:
            self._stamp = (st.st_mtime_ns, st.st_size)
            log.error("token file rejected; keeping the tokens loaded", extra={"file": self.path, "error": str(exc)})

    def lookup(self, token: str) -> TokenScope | None:
        """The scope of a presented token, or None."""
        self._refresh()
        digest = hashlib.sha256(token.encode()).digest()
        found = None
        for known, scope in self._scopes.items():
            if hmac.compare_digest(known, digest):
                found = scope
        return found


def bearer_token(metadata: Any) -> str:
    """The token of an ``authorization: Bearer <token>`` header in gRPC metadata ('' when none)."""
    for key, value in metadata or ():
        if key.lower() == "authorization" and isinstance(value, str) and value[:7].lower() == "bearer ":
            return value[7:].strip()
    return ""
