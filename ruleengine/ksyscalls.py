# SPDX-License-Identifier: Apache-2.0
"""Which event types the kernel must report for the enabled rules, and why (``lanner collector syscalls``).

A type is needed when some enabled syscall rule can match it, or when the collector's tables need it to fill the
fields of those events: the process table always (exec, fork and clone, exit), the cwd for relative paths and
``proc.cwd`` (chdir, fchdir; rare, always kept), and the fd table whenever a needed event reads an fd it did not
open itself (dup onto stdout, fchdir, a path relative to a directory fd, a send on a socket...).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from ruleengine.build import CompiledRule

PROCESS_STATE = ("execve", "execveat", "clone", "clone3", "fork", "vfork", "procexit")
CWD_STATE = ("chdir", "fchdir")
# close only stamps the fd number in the kernel (no record) unless a rule wants the close event itself.
FD_PRODUCERS = (
    "open", "openat", "openat2", "creat", "open_by_handle_at", "socket", "connect", "accept", "accept4", "dup",
    "dup2", "dup3", "close", "pipe", "pipe2", "socketpair", "eventfd", "eventfd2", "fcntl", "userfaultfd",
)  # fmt: skip
FD_READERS = frozenset({
    "dup", "dup2", "dup3", "fchdir", "fchmod", "fchmodat", "connect", "sendto", "sendmsg", "listen", "openat",
    "openat2", "unlinkat", "renameat", "renameat2", "mkdirat", "symlinkat", "linkat", "execveat", "accept",
    "accept4", "recvfrom", "recvmsg", "close", "fcntl", "finit_module",
})  # fmt: skip


@dataclass(frozen=True, slots=True)
class Needed:
    """``all_types``: some rule can match any type (trace everything); else ``types`` maps each needed type to the
    rules and state that need it."""

    all_types: bool
    types: dict[str, tuple[str, ...]]


def needed(rules: Sequence[CompiledRule]) -> Needed:
    """The event types the enabled ``rules`` need the kernel to report."""
    reasons: dict[str, list[str]] = {}
    all_types = False
    for r in rules:
        if r.source != "syscall":
            continue
        if r.evttypes.complement:
            all_types = True
            continue
        for t in sorted(r.evttypes.names):
            reasons.setdefault(t, []).append(f"rule: {r.name}")
    for t in PROCESS_STATE:
        reasons.setdefault(t, []).append("state: process table")
    for t in CWD_STATE:
        reasons.setdefault(t, []).append("state: cwd (proc.cwd, relative paths)")
    readers = sorted(t for t in reasons if t in FD_READERS and any(x.startswith("rule: ") for x in reasons[t]))
    if readers:
        for t in FD_PRODUCERS:
            reasons.setdefault(t, []).append(f"state: fd table (for {', '.join(readers)})")
    return Needed(all_types, {t: tuple(v) for t, v in sorted(reasons.items())})
