# SPDX-License-Identifier: Apache-2.0
"""One process-table entry and the path helpers shared by the table and its fd operations."""

from __future__ import annotations

import posixpath
from dataclasses import dataclass, field

from lanner.model import Fd, Process


@dataclass(slots=True)
class ProcEntry:
    """One process. ``proc`` is the main thread's view; ``threads`` caches views of other threads (tid, comm)."""

    proc: Process
    mntns: int
    fds: dict[int, Fd] = field(default_factory=dict)
    fd_ns: dict[int, int] = field(default_factory=dict)  # boot time of the event that set each fd entry
    cloexec: set[int] = field(default_factory=set)
    threads: dict[int, Process] = field(default_factory=dict)
    complete: bool = True
    anc_gen: int = -1
    anc: tuple[Process, ...] = ()
    ppid_checked: bool = False
    # unshare(CLONE_NEWPID) succeeded: the children are born in a new pid namespace, the next one as its pid 1
    # (container runtimes unshare, then fork the container's init), which /proc may no longer show when the event
    # is decoded.
    children_pidns: bool = False
    newpid_pending: bool = False
    pcomm: str = ""  # the parent's comm at exec (kernel facts), for an ancestor that left the table
    # Forked while traced: the parent's pid and the boot time of the fork. The fd entries copied from the parent
    # are judged against the parent's close stamps up to then (collector/fdtable.py).
    fork_from: int = 0
    fork_ns: int = 0


def with_slash(cwd: str) -> str:
    """Falco renders proc.cwd with a trailing slash."""
    if not cwd:
        return ""
    return cwd if cwd.endswith("/") else cwd + "/"


def normalize(path: str) -> str:
    """Lexical normalisation of an absolute path (``.``, ``..``, repeated slashes)."""
    if "/." not in path and "//" not in path and (len(path) == 1 or not path.endswith("/")):
        return path
    p = posixpath.normpath(path)
    return "/" + p.lstrip("/") if p.startswith("//") else p
